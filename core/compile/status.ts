/**
 * Statuses: the problems of every Vane Ingress and every Canary, as the operator writes
 * them into conditions and the webhook shows them in its verdicts.
 *
 * Invariants:
 * - There is a status for exactly Vane's Ingresses and every Canary, keyed `Kind/namespace/name`.
 * - An Ingress's problems are its fragment's own, those its hosts' builds found for it
 *   (Assembler.hostProblems), and one per Service it names that does not exist; a Canary's
 *   are its fragment's own and, when valid, what its Ingress, canary Service and sibling
 *   Canaries say. Problems are deduplicated and sorted (core/problems.ts), so a status is a
 *   pure function of the objects, whatever the order they came in.
 * - The stage runs last: it reads fragments, host problems and the store as the build left them.
 */
import { ingressOrder, servedHosts, UNVERIFIED, type IngressFragment } from '../ingress.ts';
import type { Service } from '../objects.ts';
import { warning, sortProblems, type Problem } from '../problems.ts';
import type { StageContext } from './processor.ts';
import type { Fragments } from './assemble.ts';

export interface ObjectStatus {
  kind: 'Ingress' | 'Canary';
  key: string;
  problems: Problem[];
}

export class StatusStage {
  readonly statuses = new Map<string, ObjectStatus>();
  private readonly c: StageContext;
  private readonly fragments: Fragments;
  private readonly hostProblems: ReadonlyMap<string, ReadonlyMap<string, Problem[]>>;

  constructor(context: StageContext, fragments: Fragments, hostProblems: ReadonlyMap<string, ReadonlyMap<string, Problem[]>>) {
    this.c = context;
    this.fragments = fragments;
    this.hostProblems = hostProblems;
  }

  run(): void {
    const { pending } = this.c;
    for (const key of pending.ingressStatuses) this.ingressStatus(key);
    pending.ingressStatuses.clear();
    for (const key of pending.canaryStatuses) this.canaryStatus(key);
    pending.canaryStatuses.clear();
  }

  private ingressStatus(key: string): void {
    const frag = this.fragments.ingresses.get(key);
    if (!frag) { this.statuses.delete(`Ingress/${key}`); return; }
    const problems = [...frag.problems];
    for (const host of servedHosts(frag)) for (const p of this.hostProblems.get(host)?.get(key) ?? []) problems.push(p);
    for (const [service, field] of serviceFields(frag)) {
      if (!this.c.store.has('Service', `${frag.namespace}/${service}`)) {
        problems.push(warning('ServiceNotFound', field, `Service ${frag.namespace}/${service} not found; its routes answer 503 until it exists`));
      }
    }
    // Pass-through hands the client's TLS to the backend: the proxy verifies nothing there.
    if (!frag.backendTls && !frag.settings.sslPassthrough) this.unverifiedHttps(frag, problems);
    this.statuses.set(`Ingress/${key}`, { kind: 'Ingress', key, problems: problems.length > 1 ? sortProblems(dedupe(problems)) : problems });
  }

  /** unverifiedHttps warns of each route to a Service port that says HTTPS, dialled unverified for want of backend TLS annotations. */
  private unverifiedHttps(frag: IngressFragment, problems: Problem[]): void {
    const routes = frag.defaultBackend ? [...frag.entries, frag.defaultBackend] : frag.entries;
    for (const e of routes) {
      const b = 'backend' in e ? e.backend : e;
      const field = 'backend' in e ? `${e.field}.backend.service.name` : `${e.field}.service.name`;
      const svc = this.c.store.get<Service>('Service', `${frag.namespace}/${b.service}`);
      const ports = Array.isArray(svc?.spec?.ports) ? svc.spec.ports : [];
      const port = ports.find((p) => (typeof b.port === 'number' ? p?.port === b.port : p?.name === b.port));
      if (port?.appProtocol === 'https' || port?.name === 'https') problems.push(warning('BackendTLSUnverified', field, UNVERIFIED));
    }
  }

  private canaryStatus(key: string): void {
    const { store, indexes } = this.c;
    const frag = this.fragments.canary(key);
    if (!frag) { this.statuses.delete(`Canary/${key}`); return; }
    const problems = [...frag.problems];
    if (frag.valid) {
      const ingKey = `${frag.namespace}/${frag.ingress}`;
      const ing = this.fragments.ingresses.get(ingKey);
      if (!store.has('Ingress', ingKey)) problems.push(warning('IngressNotFound', 'spec.ingressRef.name', `Ingress ${ingKey} not found; the canary routes nothing until it exists`));
      else if (!ing) problems.push(warning('IngressNotServed', 'spec.ingressRef.name', `Ingress ${ingKey} is not of Vane's IngressClass`));
      else if (!ing.entries.some((e) => e.backend.service === frag.service)) {
        problems.push(warning('NoMatchingRoute', 'spec.service', `Ingress ${ingKey} has no route to Service ${frag.service}; the canary splits nothing`));
      }
      if (!store.has('Service', `${frag.namespace}/${frag.canaryService}`)) {
        problems.push(warning('ServiceNotFound', 'spec.canaryService.name', `Service ${frag.namespace}/${frag.canaryService} not found; canary requests answer 503`));
      }
      for (const other of indexes.canaryIngress.to(ingKey)) {
        const o = this.fragments.canary(other);
        if (o && o !== frag && o.valid && o.service === frag.service && ingressOrder(o, frag) < 0) {
          problems.push(warning('CanaryConflict', 'spec.service', `Canary ${o.key} already splits Service ${frag.service} on Ingress ${ingKey}; this one is ignored`));
        }
      }
    }
    this.statuses.set(`Canary/${key}`, { kind: 'Canary', key, problems: sortProblems(problems) });
  }
}

/** serviceFields maps each Service a valid Ingress routes to onto the first field naming it. */
function serviceFields(frag: IngressFragment): Map<string, string> {
  const fields = new Map<string, string>();
  for (const e of frag.entries) if (!fields.has(e.backend.service)) fields.set(e.backend.service, `${e.field}.backend.service.name`);
  if (frag.defaultBackend && !fields.has(frag.defaultBackend.service)) fields.set(frag.defaultBackend.service, 'spec.defaultBackend.service.name');
  return fields;
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.severity} ${p.reason} ${p.field} ${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
