/**
 * Selectors: which Ingresses are Vane's, and which other objects an Ingress or a Canary
 * names. The compiler indexes objects by them (core/compile/) and the admission webhook
 * picks from its cache, by the same functions, the objects a verdict can depend on
 * (webhook/context.ts), so the two can never disagree on what relates to what.
 *
 * Invariants:
 * - Selectors read raw objects, never trusted: every field may be missing or of any type,
 *   and no selector throws.
 * - Each returns a superset of what compile() uses from a valid object (a host of a rule
 *   without paths, the Service of an invalid backend still count). Selecting too much costs
 *   a little work; selecting too little would be a wrong verdict or a stale resource.
 * - Names are as written in the object; keys (`namespace/name`) are formed by the caller,
 *   in the namespace of the object that names them.
 */
import {
  DEFAULT_CLASS_ANNOTATION, LEGACY_CLASS_ANNOTATION, type Canary, type Ingress, type IngressClass,
} from './objects.ts';

/** ClassSelection says which IngressClasses are Vane's. */
export interface ClassSelection {
  /** Name of Vane's IngressClass: Ingresses naming it are Vane's even before the IngressClass exists. */
  ingressClass: string;
  /** spec.controller value that marks an IngressClass as Vane's. */
  controller: string;
}

/** IngressClassLookup is whatever holds the cluster's IngressClasses (the compiler's store, the webhook's cache). */
export interface IngressClassLookup {
  get(name: string): IngressClass | undefined;
  all(): Iterable<IngressClass>;
}

function specOf<T>(obj: { spec?: T }): Partial<T> {
  return obj.spec && typeof obj.spec === 'object' ? obj.spec : {};
}

function list<T>(value: unknown): T[] {
  return Array.isArray(value) ? value as T[] : [];
}

function nameOf(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** ingressClassNameOf is spec.ingressClassName, else the legacy annotation; undefined for a class-less Ingress. */
function ingressClassNameOf(ing: Ingress): string | undefined {
  return nameOf(specOf(ing).ingressClassName ?? ing.metadata?.annotations?.[LEGACY_CLASS_ANNOTATION]);
}

/** isDefaultVaneClass: an IngressClass of Vane's controller marked as the cluster's default. */
function isDefaultVaneClass(cls: IngressClass, selection: ClassSelection): boolean {
  return cls.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true' && cls.spec?.controller === selection.controller;
}

/**
 * classIsVane decides whether Vane serves an Ingress, by its class alone: a class naming
 * Vane's IngressClass or one of Vane's controller; a class-less Ingress when one of Vane's
 * IngressClasses is the default. An Ingress of another class is ignored entirely.
 */
export function classIsVane(ing: Ingress, classes: IngressClassLookup, selection: ClassSelection): boolean {
  const className = ingressClassNameOf(ing);
  if (className !== undefined) {
    if (className === selection.ingressClass) return true;
    return classes.get(className)?.spec?.controller === selection.controller;
  }
  for (const cls of classes.all()) if (isDefaultVaneClass(cls, selection)) return true;
  return false;
}

/** hostsOfIngress lists the hosts an Ingress's rules name, `*` for a rule without host. */
export function hostsOfIngress(ing: Ingress): Set<string> {
  const hosts = new Set<string>();
  for (const rule of list<{ host?: unknown }>(specOf(ing).rules)) hosts.add(nameOf(rule?.host) ?? '*');
  return hosts;
}

/** servicesOfIngress lists the Services an Ingress routes to: its default backend and every path's backend. */
export function servicesOfIngress(ing: Ingress): Set<string> {
  const spec = specOf(ing);
  const names = new Set<string>();
  const add = (backend: unknown) => {
    const name = nameOf((backend as { service?: { name?: unknown } } | null | undefined)?.service?.name);
    if (name !== undefined) names.add(name);
  };
  add(spec.defaultBackend);
  for (const rule of list<{ http?: { paths?: unknown } }>(spec.rules)) {
    for (const p of list<{ backend?: unknown }>(rule?.http?.paths)) add(p?.backend);
  }
  return names;
}

/** secretsOfIngress lists the TLS Secrets an Ingress names: in spec.tls, for HTTPS to its backends and for client certificates. */
export function secretsOfIngress(ing: Ingress): Set<string> {
  const names = new Set<string>();
  for (const t of list<{ secretName?: unknown }>(specOf(ing).tls)) {
    const name = nameOf(t?.secretName);
    if (name !== undefined) names.add(name);
  }
  for (const key of ['vane.dev/backend-tls-secret', 'vane.dev/auth-tls-secret']) {
    const name = nameOf(ing.metadata?.annotations?.[key]);
    if (name !== undefined) names.add(name.trim());
  }
  return names;
}

/** ingressOfCanary is the name of the Ingress a Canary splits (spec.ingressRef.name). */
export function ingressOfCanary(canary: Canary): string | undefined {
  return nameOf(specOf(canary).ingressRef?.name);
}

/**
 * serviceOfCanary is the name of the canary Service (spec.canaryService.name): the only
 * Service whose existence a Canary's status reports. The stable Service is the Ingress's
 * route backend, and its existence is the Ingress's status.
 */
export function serviceOfCanary(canary: Canary): string | undefined {
  return nameOf(specOf(canary).canaryService?.name);
}
