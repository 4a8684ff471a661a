/**
 * Which Ingresses are Vane's, and which cached objects can change the verdict on one object.
 * Handing validate() only those keeps a review O(related objects) instead of a compile of
 * the whole cluster; tests/unit/webhook/context.test.ts holds the selection to the verdict
 * validate() gives with every object.
 */
import { INGRESS_CONTROLLER, namespaceOf, type Canary, type Ingress, type IngressClass, type KubeObject, type ObjectKind } from '../core/index.ts';
import type { ObjectCache } from './cache.ts';

/**
 * CONTEXT_KINDS: every kind contextFor reads from the cache — what `--watch-cluster` lists and
 * watches, and nothing more (no EndpointSlices: no verdict depends on them). Secrets are read
 * for their existence only; the watch fetches their metadata, never their data.
 */
export const CONTEXT_KINDS: readonly ObjectKind[] = ['IngressClass', 'Ingress', 'Service', 'Secret', 'Canary'];

const LEGACY_CLASS_ANNOTATION = 'kubernetes.io/ingress.class';
const DEFAULT_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';

export interface ClassOptions {
  /** Name of Vane's IngressClass (default `vane`). */
  ingressClass: string;
  /** spec.controller of Vane's IngressClasses (default vane.dev/ingress-controller). */
  controller: string;
  /** Class-less Ingresses are Vane's when the cache holds no IngressClass to tell (Vane is the cluster default). */
  defaultClass: boolean;
}

export const DEFAULT_CLASS_OPTIONS: ClassOptions = { ingressClass: 'vane', controller: INGRESS_CONTROLLER, defaultClass: false };

function classNameOf(ing: Ingress): string | undefined {
  const spec = ing.spec && typeof ing.spec === 'object' ? ing.spec : {};
  const name = spec.ingressClassName ?? ing.metadata?.annotations?.[LEGACY_CLASS_ANNOTATION];
  return typeof name === 'string' && name !== '' ? name : undefined;
}

function classes(cache: ObjectCache): IngressClass[] {
  return [...cache.list('IngressClass')] as IngressClass[];
}

/** isVaneIngress decides as compile() does: Vane's class by name or controller, or class-less with Vane's class the default. */
export function isVaneIngress(ing: Ingress, cache: ObjectCache, options: ClassOptions): boolean {
  const className = classNameOf(ing);
  if (className !== undefined) {
    if (className === options.ingressClass) return true;
    const cls = cache.get('IngressClass', '', className) as IngressClass | undefined;
    return cls?.spec?.controller === options.controller;
  }
  const known = classes(cache);
  if (known.length === 0) return options.defaultClass;
  return known.some((c) => c.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true' && c.spec?.controller === options.controller);
}

function list<T>(value: unknown): T[] {
  return Array.isArray(value) ? value as T[] : [];
}

function hostsOf(ing: Ingress): Set<string> {
  const spec = ing.spec && typeof ing.spec === 'object' ? ing.spec : {};
  const hosts = new Set<string>();
  for (const rule of list<{ host?: unknown }>(spec.rules)) {
    hosts.add(typeof rule?.host === 'string' && rule.host !== '' ? rule.host : '*');
  }
  return hosts;
}

function servicesOf(ing: Ingress): Set<string> {
  const spec = ing.spec && typeof ing.spec === 'object' ? ing.spec : {};
  const names = new Set<string>();
  const add = (b: unknown) => {
    const name = (b as { service?: { name?: unknown } } | null)?.service?.name;
    if (typeof name === 'string') names.add(name);
  };
  add(spec.defaultBackend);
  for (const rule of list<{ http?: { paths?: unknown } }>(spec.rules)) {
    for (const p of list<{ backend?: unknown }>(rule?.http?.paths)) add(p?.backend);
  }
  return names;
}

function pushGet(out: KubeObject[], cache: ObjectCache, kind: 'Service' | 'Secret' | 'Ingress', namespace: string, name: unknown): void {
  if (typeof name !== 'string' || name === '') return;
  const obj = cache.get(kind, namespace, name);
  if (obj) out.push(obj);
}

/**
 * contextFor lists the cached objects that can change obj's verdict. When options.defaultClass
 * stands in for a missing default IngressClass, a synthetic one says so to compile().
 */
export function contextFor(kind: 'Ingress' | 'Canary', obj: KubeObject, cache: ObjectCache, options: ClassOptions): KubeObject[] {
  const out: KubeObject[] = classes(cache);
  if (out.length === 0 && options.defaultClass) {
    out.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'IngressClass',
      metadata: { name: options.ingressClass, annotations: { [DEFAULT_CLASS_ANNOTATION]: 'true' } },
      spec: { controller: options.controller },
    } as IngressClass);
  }
  const namespace = namespaceOf(obj);
  if (kind === 'Ingress') {
    const ing = obj as Ingress;
    for (const name of servicesOf(ing)) pushGet(out, cache, 'Service', namespace, name);
    const spec = ing.spec && typeof ing.spec === 'object' ? ing.spec : {};
    for (const t of list<{ secretName?: unknown }>(spec.tls)) pushGet(out, cache, 'Secret', namespace, t?.secretName);
    const hosts = hostsOf(ing);
    if (hosts.size > 0) {
      for (const other of cache.list('Ingress')) {
        for (const h of hostsOf(other as Ingress)) if (hosts.has(h)) { out.push(other); break; }
      }
    }
    return out;
  }
  const spec = (obj as Canary).spec && typeof (obj as Canary).spec === 'object' ? (obj as Canary).spec! : {};
  const ingress = spec.ingressRef?.name;
  pushGet(out, cache, 'Ingress', namespace, ingress);
  pushGet(out, cache, 'Service', namespace, spec.canaryService?.name);
  if (typeof ingress === 'string') {
    for (const other of cache.list('Canary', namespace)) {
      if ((other as Canary).spec?.ingressRef?.name === ingress) out.push(other);
    }
  }
  return out;
}
