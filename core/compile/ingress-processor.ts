/**
 * The Ingress processor: IngressClass and Ingress changes → the fragments of Vane's
 * Ingresses, their index entries, and the hosts, listener and statuses they reach.
 *
 * Invariants:
 * - `vane` holds a fragment for exactly the stored Ingresses whose class is Vane's
 *   (core/selectors.ts classIsVane), valid or not: every one of them has a status. An
 *   Ingress of another class has no fragment, no index entry and no status.
 * - An IngressClass change may change the class verdict of any Ingress, so it re-reads all
 *   of them (fragments stay memoised: only the verdicts are recomputed).
 * - When a fragment changes, every host its Ingress named before or names now is pending,
 *   and the listener when it had or has a default backend or a host-less TLS Secret.
 */
import { namespaceOf, type Ingress } from '../objects.ts';
import { parseIngress, type IngressFragment } from '../ingress.ts';
import { classIsVane, hostsOfIngress, servicesOfIngress } from '../selectors.ts';
import { FragmentMemo, type Processor, type StageContext } from './processor.ts';

export class IngressProcessor implements Processor {
  /** Fragments of Vane's Ingresses by `namespace/name`. */
  readonly vane = new Map<string, IngressFragment>();
  /** Fragments by key, with the object each was made from: what its index entries were selected from. */
  private readonly memo = new FragmentMemo<IngressFragment, Ingress>();
  private readonly c: StageContext;

  constructor(context: StageContext) {
    this.c = context;
  }

  run(): void {
    const { pending, store, indexes } = this.c;
    if (pending.classes) {
      pending.classes = false;
      for (const key of store.keys('Ingress')) pending.ingresses.add(key);
      for (const key of this.vane.keys()) pending.ingresses.add(key);
    }
    for (const key of pending.ingresses) {
      this.refresh(key);
      pending.ingressStatuses.add(key);
      for (const canary of indexes.canaryIngress.to(key)) pending.canaryStatuses.add(canary);
    }
    pending.ingresses.clear();
  }

  private refresh(key: string): void {
    const { options, store, indexes, pending } = this.c;
    const obj = store.get<Ingress>('Ingress', key);
    const old = this.vane.get(key);
    const source = this.memo.source(key);
    let frag: IngressFragment | undefined;
    if (obj && classIsVane(obj, store.classes, options)) frag = this.memo.of(key, obj, parseIngress);
    else this.memo.delete(key);
    if (old === frag) return;

    if (source) this.unindex(key, source);
    if (indexes.withDefaultBackend.delete(key)) pending.listener = true;
    if (indexes.withHostlessTls.delete(key)) pending.listener = true;
    if (!frag || !obj) {
      this.vane.delete(key);
      return;
    }
    this.vane.set(key, frag);
    const namespace = namespaceOf(obj);
    for (const host of hostsOfIngress(obj)) { indexes.ingressHosts.add(key, host); pending.hosts.add(host); }
    for (const name of servicesOfIngress(obj)) indexes.ingressServices.add(key, `${namespace}/${name}`);
    if (frag.defaultBackend) { indexes.withDefaultBackend.add(key); pending.listener = true; }
    if (frag.tls.some((t) => t.hosts.length === 0 && t.secret)) { indexes.withHostlessTls.add(key); pending.listener = true; }
  }

  /** unindex removes what source selected from the indexes and marks its hosts pending. */
  private unindex(key: string, source: Ingress): void {
    const { indexes, pending } = this.c;
    const namespace = namespaceOf(source);
    for (const host of hostsOfIngress(source)) { indexes.ingressHosts.remove(key, host); pending.hosts.add(host); }
    for (const name of servicesOfIngress(source)) indexes.ingressServices.remove(key, `${namespace}/${name}`);
  }
}
