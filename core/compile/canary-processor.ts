/**
 * The Canary processor: Canary changes → Canary fragments, their index entries, and the
 * hosts and statuses they reach.
 *
 * Invariants:
 * - Every stored Canary has a fragment, valid or not (every Canary has a status), and an
 *   entry in the indexes for the Ingress and canary Service it names (core/selectors.ts).
 * - A Canary never creates a route: it changes the routes of its Ingress, so a changed
 *   fragment makes pending every host of the Ingress it named before and names now, and the
 *   statuses of every Canary on those Ingresses (which of them wins a conflict may change).
 */
import { namespaceOf, type Canary } from '../objects.ts';
import { parseCanary, type CanaryFragment } from '../canary.ts';
import { servedHosts, type IngressFragment } from '../ingress.ts';
import { ingressOfCanary, serviceOfCanary } from '../selectors.ts';
import { FragmentMemo, type Processor, type StageContext } from './processor.ts';

export class CanaryProcessor implements Processor {
  private readonly memo = new FragmentMemo<CanaryFragment, Canary>();
  private readonly c: StageContext;
  private readonly ingresses: ReadonlyMap<string, IngressFragment>;

  /** ingresses are the fragments of Vane's Ingresses (IngressProcessor.vane): a split lands on the hosts they serve. */
  constructor(context: StageContext, ingresses: ReadonlyMap<string, IngressFragment>) {
    this.c = context;
    this.ingresses = ingresses;
  }

  /** fragment is the Canary's fragment, current once the processor has run. */
  fragment(key: string): CanaryFragment | undefined {
    return this.memo.get(key);
  }

  run(): void {
    const { pending } = this.c;
    for (const key of pending.canaries) {
      pending.canaryStatuses.add(key);
      this.refresh(key);
    }
    pending.canaries.clear();
  }

  private refresh(key: string): void {
    const { store, indexes } = this.c;
    const obj = store.get<Canary>('Canary', key);
    const old = this.memo.get(key);
    let frag: CanaryFragment | undefined;
    if (obj) frag = this.memo.of(key, obj, parseCanary);
    else this.memo.delete(key);
    if (old === frag) return;

    const before = indexes.canaryIngress.of(key);
    if (before !== undefined) this.reachIngress(before);
    const ingress = obj ? ingressOfCanary(obj) : undefined;
    const service = obj ? serviceOfCanary(obj) : undefined;
    indexes.canaryIngress.set(key, ingress !== undefined ? `${namespaceOf(obj!)}/${ingress}` : undefined);
    indexes.canaryServices.set(key, service !== undefined ? `${namespaceOf(obj!)}/${service}` : undefined);
    const after = indexes.canaryIngress.of(key);
    if (after !== undefined) this.reachIngress(after);
  }

  /** reachIngress marks what a Canary change on an Ingress reaches: its hosts and its other Canaries. */
  private reachIngress(ingressKey: string): void {
    const { indexes, pending } = this.c;
    const ingress = this.ingresses.get(ingressKey);
    if (ingress) for (const host of servedHosts(ingress)) pending.hosts.add(host);
    for (const canary of indexes.canaryIngress.to(ingressKey)) pending.canaryStatuses.add(canary);
  }
}
