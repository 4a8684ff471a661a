/**
 * A world for the canary controller's unit tests: a fake clock, the real compiler and Fleet
 * standing in for the operator's pipeline, proxies that ACK on demand, and an in-memory
 * object store that behaves as the API server does where the controller depends on it
 * (resourceVersions, `test` conflicts, finalizers, a watch event after every write).
 */
import { Compiler, STATS_BUCKETS_MS, type Canary, type CanarySpec, type CanaryStatus, type Ingress, type KubeObject, type SideStats } from '../../../core/index.ts';
import { Fleet, type RoutingVersion, type OperatorContext } from '../../../operator/index.ts';
import { CanaryController, applyPatch, statusPatch, type Clock, type CanaryStore, type WriteOutcome, type PatchOp, type WebhookCall } from '../../../operator/canary/index.ts';
import type { PrometheusResult, WebhookResult } from '../../../core/index.ts';
import { createLogger } from '../../../lib/log.ts';
import { ingress, service, slice } from '../../support/objects.ts';

export const T0 = Date.parse('2025-03-01T12:00:00Z');
export const NS = 'shop';
export const KEY = `${NS}/checkout`;

/** FakeClock runs timers only when a test advances it. */
export class FakeClock implements Clock {
  nowMs = T0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  now(): number { return this.nowMs; }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.nowMs + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(handle: unknown): void { this.timers.delete(handle as number); }

  /** due pops the earliest timer at or before `until`. */
  due(until: number): { at: number; fn: () => void } | null {
    let best: [number, { at: number; fn: () => void }] | null = null;
    for (const entry of this.timers) if (entry[1].at <= until && (!best || entry[1].at < best[1].at)) best = entry;
    if (!best) return null;
    this.timers.delete(best[0]);
    return best[1];
  }

  get pending(): number { return this.timers.size; }
}

/** settle lets every promise chain started so far run to its end. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

export function stats(requests: number, failures = 0, latencyMs = 20): SideStats {
  const latency = new Array<number>(STATS_BUCKETS_MS.length + 1).fill(0);
  const i = STATS_BUCKETS_MS.findIndex((b) => latencyMs <= b);
  latency[i === -1 ? STATS_BUCKETS_MS.length : i] = requests;
  return { requests, failures, latency };
}

export function progressiveSpec(analysis: Partial<NonNullable<CanarySpec['analysis']>> = {}, extra: Partial<CanarySpec> = {}): CanarySpec {
  return {
    ingressRef: { name: 'shop' }, service: 'checkout', canaryService: { name: 'checkout-v2' },
    traffic: { header: { name: 'X-Canary' } },
    analysis: { interval: '10s', stepWeights: [10, 25, 50], threshold: 2, minRequests: 50, metrics: [{ name: 'success-rate', min: 99 }], ...analysis },
    ...extra,
  };
}

/** MemoryStore keeps Canaries as an API server would and reports every write as a watch event. */
export class MemoryStore implements CanaryStore {
  readonly finalizers = true;
  readonly objects = new Map<string, Canary>();
  readonly ingresses = new Map<string, Ingress>();
  readonly log: string[] = [];
  events: { type: string; reason: string; message: string }[] = [];
  statusWrites = 0;
  /** The next status writes fail like this (consumed one by one). */
  failures: ('conflict' | 'error')[] = [];
  private rv = 100;
  watch: (obj: KubeObject) => void = () => undefined;
  /** While set, watch events wait here, as when the API server's watch lags behind a write. */
  held: KubeObject[] | null = null;

  release(): void {
    const queued = this.held ?? [];
    this.held = null;
    for (const obj of queued) this.watch(obj);
  }

  private notify(obj: KubeObject): void {
    const copy = structuredClone(obj);
    queueMicrotask(() => { if (this.held) this.held.push(copy); else this.watch(copy); });
  }

  put(obj: Canary): Canary {
    const key = `${obj.metadata?.namespace}/${obj.metadata?.name}`;
    const stored = structuredClone({ ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv), uid: obj.metadata?.uid ?? 'uid-1', generation: obj.metadata?.generation ?? 1 } });
    this.objects.set(key, stored);
    this.notify(stored);
    return structuredClone(stored);
  }

  private patch(canary: Canary, ops: PatchOp[], what: string): WriteOutcome<Canary> {
    const key = `${canary.metadata?.namespace}/${canary.metadata?.name}`;
    const current = this.objects.get(key);
    if (!current) return { ok: false, reason: 'gone', message: 'not found' };
    const next = applyPatch(current, ops);
    if (!next) { this.log.push(`${what} conflict`); return { ok: false, reason: 'conflict', message: 'the object has been modified' }; }
    this.log.push(what);
    return { ok: true, object: this.put(next) };
  }

  async writeStatus(canary: Canary, status: CanaryStatus): Promise<WriteOutcome<Canary>> {
    const injected = this.failures.shift();
    if (injected === 'error') { this.log.push('status error'); return { ok: false, reason: 'error', message: 'HTTP 500: etcd is sad' }; }
    if (injected === 'conflict') {
      // Someone else wrote meanwhile: the object moves on, and this write's test fails.
      const key = `${canary.metadata?.namespace}/${canary.metadata?.name}`;
      this.put(this.objects.get(key)!);
    }
    const out = this.patch(canary, statusPatch(canary, status), `status ${status.phase}/${status.weight}`);
    if (out.ok) this.statusWrites++;
    return out;
  }

  async patchCanary(canary: Canary, ops: PatchOp[]): Promise<WriteOutcome<Canary>> {
    return this.patch(canary, ops, `meta ${JSON.stringify(ops.filter((o) => o.op !== 'test').map((o) => o.op))}`);
  }

  async patchIngress(ing: Ingress, ops: PatchOp[]): Promise<WriteOutcome<Ingress>> {
    const key = `${ing.metadata?.namespace}/${ing.metadata?.name}`;
    const next = applyPatch(this.ingresses.get(key) ?? ing, ops);
    if (!next) return { ok: false, reason: 'conflict', message: 'test failed' };
    this.ingresses.set(key, next);
    this.log.push(`ingress ${key}`);
    this.notify(next);
    return { ok: true, object: next };
  }

  async read(canary: Canary): Promise<Canary | null> {
    const c = this.objects.get(`${canary.metadata?.namespace}/${canary.metadata?.name}`);
    return c ? structuredClone(c) : null;
  }

  event(_canary: Canary, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.events.push({ type, reason, message });
  }

  get(key = KEY): Canary { return this.objects.get(key)!; }
  get status(): CanaryStatus { return this.get().status ?? {}; }
  condition(type: string): { status?: string; reason?: string; message?: string } {
    return this.status.conditions?.find((c) => c.type === type) ?? {};
  }
  reasons(): string[] { return this.events.map((e) => e.reason); }
}

export interface WorldOptions {
  proxies?: string[];
  webhook?: (call: WebhookCall) => Promise<WebhookResult>;
  prometheus?: (address: string, query: string) => Promise<PrometheusResult>;
  prometheusUrl?: string;
  /** Proxies ACK every new version at once unless a test holds them. */
  autoAck?: boolean;
}

export class World {
  readonly clock = new FakeClock();
  readonly fleet = new Fleet();
  readonly store = new MemoryStore();
  readonly compiler = new Compiler();
  readonly controller: CanaryController;
  readonly proxies: string[];
  leader = true;
  autoAck: boolean;
  /** Proxies that do not ACK while listed. */
  readonly lagging = new Set<string>();
  current: RoutingVersion | null = null;
  webhookCalls: WebhookCall[] = [];
  queries: string[] = [];
  private generation = 1000;
  private seq = 0;

  constructor(o: WorldOptions = {}) {
    this.proxies = o.proxies ?? ['proxy-a', 'proxy-b'];
    this.autoAck = o.autoAck ?? true;
    this.fleet.setExpected(this.proxies);
    const ctx: OperatorContext = {
      isLeader: () => this.leader,
      fleet: this.fleet,
      current: () => this.current,
      logger: createLogger('test', 'silent'),
      overlay: () => { throw new Error('a store with an API server never overlays'); },
      fileMode: false,
    };
    this.controller = new CanaryController(ctx, {
      store: this.store,
      clock: this.clock,
      debounceMs: 0,
      retryMs: 1000,
      maxRetryMs: 8000,
      ...(o.prometheusUrl ? { prometheusUrl: o.prometheusUrl } : {}),
      webhook: async (call) => { this.webhookCalls.push(call); return o.webhook ? o.webhook(call) : { key: call.key, approved: true }; },
      prometheus: async (address, query) => { this.queries.push(`${address} ${query}`); return o.prometheus ? o.prometheus(address, query) : { value: 0 }; },
    });
    this.store.watch = (obj) => this.deliver(obj);
    for (const obj of [service('checkout', NS), service('checkout-v2', NS), slice('checkout-1', 'checkout', [{ ip: '10.0.0.1' }], { namespace: NS }),
      slice('checkout-v2-1', 'checkout-v2', [{ ip: '10.0.0.2' }], { namespace: NS }),
      ingress({ name: 'shop', namespace: NS, rules: [{ host: 'shop.test', paths: [{ path: '/', service: 'checkout' }] }] })]) {
      if (obj.kind === 'Ingress') this.store.ingresses.set(`${NS}/shop`, obj as Ingress);
      this.deliver(obj);
    }
  }

  /** deliver plays the operator's sink: the controller observes, the compiler recompiles, proxies ACK. */
  deliver(obj: KubeObject, deleted = false): void {
    this.controller.observe(obj, deleted);
    if (deleted) this.compiler.delete(obj.kind as 'Canary', `${obj.metadata?.namespace}/${obj.metadata?.name}`);
    else this.compiler.set(obj);
    const r = this.compiler.build();
    if (this.current && r.changed.upserts.length === 0 && r.changed.removals.length === 0) return;
    const now = this.clock.now();
    this.current = {
      generation: ++this.generation, root: r.root, resources: new Map(r.resources), changed: r.changed,
      previousRoot: this.current?.root ?? null, changeStartedAt: now, builtAt: now, compileMs: 0,
    };
    this.controller.fleetChanged();
    if (this.autoAck) this.ack();
  }

  /** ack makes every proxy not lagging ACK the current version. */
  ack(): void {
    if (!this.current) return;
    for (const p of this.proxies) if (!this.lagging.has(p)) this.fleet.ack(p, { generation: this.current.generation, root: this.current.root });
    this.controller.fleetChanged();
  }

  create(spec: CanarySpec, meta: Partial<NonNullable<Canary['metadata']>> = {}): void {
    this.store.put({ apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'checkout', namespace: NS, ...meta }, spec });
  }

  /** edit changes the stored Canary as `kubectl apply` would (generation + 1 for spec changes). */
  edit(change: (c: Canary) => void, specChange = true): void {
    const c = structuredClone(this.store.get());
    change(c);
    if (specChange) c.metadata!.generation = (c.metadata!.generation ?? 1) + 1;
    this.store.put(c);
  }

  /** traffic reports one stats message per proxy: `requests` canary requests each, `failures` of them failed. */
  traffic(requests: number, failures = 0, side: 'canary' | 'stable' = 'canary'): void {
    for (const p of this.proxies) {
      this.fleet.addStats(p, {
        seq: ++this.seq, startedAt: T0,
        backends: { [`${NS}/checkout-v2:80`]: { canary: KEY, side, stats: stats(requests, failures) } },
      }, this.clock.now());
    }
  }

  /** advance moves time forward by ms, firing due timers in order and letting their work finish. */
  async advance(ms: number): Promise<void> {
    const until = this.clock.nowMs + ms;
    await settle();
    for (;;) {
      const t = this.clock.due(until);
      if (!t) break;
      this.clock.nowMs = Math.max(this.clock.nowMs, t.at);
      t.fn();
      await settle();
    }
    this.clock.nowMs = until;
    await settle();
  }

  /** during advances ms while reporting `perSecond` canary requests per proxy each second. */
  async during(ms: number, perSecond: number, failures = 0): Promise<void> {
    for (let t = 0; t < ms; t += 1000) {
      this.traffic(perSecond, failures);
      await this.advance(Math.min(1000, ms - t));
    }
  }
}
