/**
 * The Service processor: Service and EndpointSlice changes → the backends, endpoints and
 * statuses they reach. Neither kind has a fragment of its own: assembly reads them straight
 * from the store when it builds a backend or its endpoints.
 *
 * Invariants:
 * - A changed Service makes pending the backend and endpoints resources of every backend in
 *   use that points at it (a backend not yet in use is made pending by assembly when a route
 *   first refers to it), and the statuses of the Ingresses and Canaries naming it.
 * - A changed EndpointSlice makes pending only endpoints resources: those of the Service it
 *   belonged to and of the one it belongs to now. This is the fast path of DESIGN.md: an
 *   endpoint change never rebuilds a route.
 */
import { SERVICE_NAME_LABEL, type EndpointSlice } from '../objects.ts';
import type { Processor, StageContext } from './processor.ts';

export class ServiceProcessor implements Processor {
  private readonly c: StageContext;

  constructor(context: StageContext) {
    this.c = context;
  }

  run(): void {
    const { indexes, pending } = this.c;
    for (const service of pending.services) {
      for (const backend of indexes.backendService.to(service)) { pending.backends.add(backend); pending.endpoints.add(backend); }
      for (const ingress of indexes.ingressServices.to(service)) pending.ingressStatuses.add(ingress);
      for (const canary of indexes.canaryServices.to(service)) pending.canaryStatuses.add(canary);
    }
    pending.services.clear();
    for (const key of pending.slices) this.refreshSlice(key);
    pending.slices.clear();
  }

  private refreshSlice(key: string): void {
    const { store, indexes } = this.c;
    const before = indexes.sliceService.of(key);
    if (before !== undefined) this.markEndpoints(before);
    const label = store.get<EndpointSlice>('EndpointSlice', key)?.metadata?.labels?.[SERVICE_NAME_LABEL];
    const after = typeof label === 'string' && label !== '' ? `${key.slice(0, key.indexOf('/'))}/${label}` : undefined;
    indexes.sliceService.set(key, after);
    if (after !== undefined && after !== before) this.markEndpoints(after);
  }

  private markEndpoints(service: string): void {
    for (const backend of this.c.indexes.backendService.to(service)) this.c.pending.endpoints.add(backend);
  }
}
