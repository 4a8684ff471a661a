/**
 * The canary controller: an adapter around core's pure step() (core/rollout.ts), run by
 * the leading operator only. It keeps the Canary objects the operator observes and calls
 * step() for each on every change of the Canary or its Ingress, on every routing version
 * and ACK, when a webhook or Prometheus answers, and at the time step() asks to be woken.
 *
 * What it feeds step(): the fleet's convergence on the routing version that carries the
 * status passed in (fleet-input.ts), the fleet's merged statistics since
 * `status.intervalStart`, Prometheus query results and gating webhook answers by key, and
 * whether the Ingress already names the canary Service.
 *
 * What it does with the result: writes the status when it changed (store.ts: a JSON patch
 * of the status subresource through the lease-fenced, rate-limited StatusWriter; an
 * overlay in file mode), and only once that write succeeded, performs the actions —
 * Events, webhook calls, the Ingress switch, finalizers — each keyed action at most once
 * at a time. A failed write is retried with back-off after reading the object again.
 */
import {
  analysisWindow, durationMsOf, namespaceOf, step, withCanaryDefaults, FINALIZER,
  type Action, type Canary, type Ingress, type KubeObject, type MetricsInput, type PrometheusResult, type StepResult, type WebhookResult,
} from '../../core/index.ts';
import type { Controller, OperatorContext } from '../operator.ts';
import { fleetInput } from './fleet-input.ts';
import { callWebhook, queryPrometheus, type WebhookCall } from './http.ts';
import { addFinalizerPatch, ingressSwitched, ingressSwitchPatch, removeFinalizerPatch } from './patches.ts';
import type { CanaryStore } from './store.ts';

/** Clock is time and timers, injectable so unit tests run the controller on a fake clock. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface CanaryControllerOptions {
  store: CanaryStore;
  /** Prometheus base URL for metrics that do not name their own `prometheus.address`. */
  prometheusUrl?: string;
  prometheusTimeoutMs?: number;
  clock?: Clock;
  /** Coalesces bursts of triggers (ACKs from a large fleet) into one step() per Canary. */
  debounceMs?: number;
  /** First retry delay after a failed write or action; doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  webhook?: (call: WebhookCall, signal: AbortSignal) => Promise<WebhookResult>;
  prometheus?: (address: string, query: string, timeMs: number, timeoutMs: number, signal: AbortSignal) => Promise<PrometheusResult>;
}

/** Passes of one run before yielding to the debounce: a status change usually settles in two. */
const MAX_PASSES = 4;
/** Answers kept per Canary: enough for every gating webhook of a few intervals. */
const MAX_REMEMBERED = 128;

interface PrometheusWindow {
  id: string;
  results: Record<string, PrometheusResult> | null;
}

interface Entry {
  key: string;
  canary: Canary;
  running: boolean;
  again: boolean;
  wakeAt: number | null;
  timer: unknown;
  timerAt: number | null;
  writeFailures: number;
  retryAt: number | null;
  answers: Map<string, WebhookResult>;
  notified: Map<string, true>;
  inflight: Set<string>;
  actionRetryAt: Map<string, number>;
  actionFailures: Map<string, number>;
  prometheus: PrometheusWindow | null;
}

function keyOf(obj: KubeObject): string {
  return `${namespaceOf(obj)}/${obj.metadata?.name ?? ''}`;
}

function remember<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > MAX_REMEMBERED) map.delete(map.keys().next().value as K);
}

export class CanaryController implements Controller {
  private readonly ctx: OperatorContext;
  private readonly store: CanaryStore;
  private readonly clock: Clock;
  private readonly o: Required<Pick<CanaryControllerOptions, 'prometheusTimeoutMs' | 'debounceMs' | 'retryMs' | 'maxRetryMs' | 'webhook' | 'prometheus'>> & Pick<CanaryControllerOptions, 'prometheusUrl'>;
  private readonly entries = new Map<string, Entry>();
  private readonly ingresses = new Map<string, Ingress>();
  private readonly dirty = new Set<string>();
  private flushTimer: unknown = null;
  private readonly abort = new AbortController();
  private closed = false;

  constructor(ctx: OperatorContext, options: CanaryControllerOptions) {
    this.ctx = ctx;
    this.store = options.store;
    this.clock = options.clock ?? SYSTEM_CLOCK;
    this.o = {
      prometheusTimeoutMs: options.prometheusTimeoutMs ?? 10_000,
      debounceMs: options.debounceMs ?? 50,
      retryMs: options.retryMs ?? 1_000,
      maxRetryMs: options.maxRetryMs ?? 30_000,
      webhook: options.webhook ?? ((call, signal) => callWebhook(call, signal)),
      prometheus: options.prometheus ?? ((address, query, timeMs, timeoutMs, signal) => queryPrometheus(address, query, timeMs, timeoutMs, signal)),
      ...(options.prometheusUrl ? { prometheusUrl: options.prometheusUrl } : {}),
    };
  }

  /** canaries is every Canary as the controller last knew it (status included), by `namespace/name`. */
  canaries(): Map<string, Canary> {
    return new Map([...this.entries].map(([k, e]) => [k, structuredClone(e.canary)]));
  }

  observe(obj: KubeObject, deleted: boolean): void {
    if (this.closed) return;
    if (obj.kind === 'Ingress') {
      const key = keyOf(obj);
      if (deleted) this.ingresses.delete(key); else this.ingresses.set(key, obj as Ingress);
      for (const e of this.entries.values()) {
        if (`${namespaceOf(e.canary)}/${e.canary.spec?.ingressRef?.name ?? ''}` === key) this.schedule(e.key);
      }
      return;
    }
    if (obj.kind !== 'Canary') return;
    const key = keyOf(obj);
    if (deleted) { this.forget(key); return; }
    const canary = this.store.restore?.(obj as Canary) ?? obj as Canary;
    const entry = this.entries.get(key);
    if (entry) entry.canary = canary;
    else {
      this.entries.set(key, {
        key, canary, running: false, again: false, wakeAt: null, timer: null, timerAt: null, writeFailures: 0, retryAt: null,
        answers: new Map(), notified: new Map(), inflight: new Set(), actionRetryAt: new Map(), actionFailures: new Map(), prometheus: null,
      });
    }
    this.schedule(key);
  }

  fleetChanged(): void {
    for (const key of this.entries.keys()) this.schedule(key);
  }

  startedLeading(): void {
    this.fleetChanged();
  }

  stoppedLeading(): void {
    for (const e of this.entries.values()) this.disarm(e);
    this.dirty.clear();
    if (this.flushTimer !== null) { this.clock.clearTimeout(this.flushTimer); this.flushTimer = null; }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    this.stoppedLeading();
    this.entries.clear();
  }

  private forget(key: string): void {
    const e = this.entries.get(key);
    if (e) this.disarm(e);
    this.entries.delete(key);
    this.dirty.delete(key);
    this.store.forget?.(key);
  }

  private schedule(key: string): void {
    if (this.closed || !this.ctx.isLeader()) return;
    this.dirty.add(key);
    if (this.flushTimer !== null) return;
    this.flushTimer = this.clock.setTimeout(() => {
      this.flushTimer = null;
      const keys = [...this.dirty];
      this.dirty.clear();
      for (const k of keys) {
        const e = this.entries.get(k);
        if (e) void this.run(e);
      }
    }, this.o.debounceMs);
  }

  /** run reconciles one Canary; calls that arrive meanwhile fold into one more pass. */
  private async run(e: Entry): Promise<void> {
    if (e.running) { e.again = true; return; }
    e.running = true;
    try {
      let passes = 0;
      do {
        e.again = false;
        await this.reconcile(e);
      } while (e.again && ++passes < MAX_PASSES && !this.closed && this.entries.get(e.key) === e);
      // More to do after MAX_PASSES: go through the debounce rather than spin.
      if (e.again) this.schedule(e.key);
    } catch (err) {
      this.ctx.logger.error({ canary: e.key, err: (err as Error).message }, 'canary reconcile failed');
      this.retryLater(e);
    } finally {
      e.running = false;
    }
  }

  private async reconcile(e: Entry): Promise<void> {
    if (this.closed || !this.ctx.isLeader() || this.entries.get(e.key) !== e) return;
    const now = this.clock.now();
    if (e.retryAt !== null && now < e.retryAt) { this.arm(e); return; }
    e.retryAt = null;
    const canary = e.canary;
    const metrics = this.metricsFor(e, now);
    if (metrics === null) return;
    const spec = canary.spec;
    const ingress = this.ingresses.get(`${namespaceOf(canary)}/${spec?.ingressRef?.name ?? ''}`);
    const result: StepResult = step({
      canary, now,
      fleet: fleetInput(this.ctx.fleet, this.ctx.current(), canary),
      metrics,
      webhooks: [...e.answers.values()],
      ingressSwitched: ingressSwitched(ingress, spec?.service ?? '', spec?.canaryService?.name ?? ''),
    });
    e.wakeAt = result.wakeAt;
    if (result.changed) {
      const outcome = await this.store.writeStatus(canary, result.status);
      if (this.entries.get(e.key) !== e) return;
      if (!outcome.ok) {
        await this.writeFailed(e, outcome.reason, outcome.message);
        return;
      }
      e.writeFailures = 0;
      // A newer object observed while the write was in flight wins; it carries this status too.
      if (e.canary === canary) e.canary = outcome.object;
      this.ctx.logger.info({ canary: e.key, phase: result.status.phase, weight: result.status.weight, step: result.status.step }, 'canary status written');
      // Our own write is a change of the Canary; in file mode no watch event brings it back.
      e.again = true;
    }
    await this.perform(e, result.actions);
    this.arm(e);
  }

  private async writeFailed(e: Entry, reason: string, message: string): Promise<void> {
    if (reason === 'dropped') return;
    if (reason === 'gone') { this.forget(e.key); return; }
    if (reason === 'conflict') {
      const fresh = await this.store.read(e.canary).catch(() => undefined);
      if (fresh === null) { this.forget(e.key); return; }
      if (fresh && this.entries.get(e.key) === e) { e.canary = fresh; e.again = true; return; }
    }
    this.ctx.logger.warn({ canary: e.key, reason, err: message }, 'canary status write failed; retrying');
    this.retryLater(e);
  }

  private retryLater(e: Entry): void {
    e.writeFailures++;
    e.retryAt = this.clock.now() + Math.min(this.o.maxRetryMs, this.o.retryMs * 2 ** (e.writeFailures - 1));
    this.arm(e);
  }

  /**
   * metricsFor gathers step()'s metrics: the fleet's statistics of both sides since the
   * interval started and, when a check is due, the Prometheus results of this interval —
   * null while those are still being fetched (their answer schedules another pass).
   */
  private metricsFor(e: Entry, now: number): MetricsInput | null {
    const canary = e.canary;
    const window = analysisWindow(canary);
    const since = window?.sinceMs ?? now;
    const metrics: MetricsInput = {
      canary: this.ctx.fleet.canaryStats(e.key, 'canary', since),
      stable: this.ctx.fleet.canaryStats(e.key, 'stable', since),
    };
    const analysis = withCanaryDefaults(canary.spec).analysis;
    const queries = (analysis?.metrics ?? []).filter((m) => m.prometheus);
    if (queries.length === 0 || window?.side !== 'canary') return metrics;
    const intervalMs = durationMsOf(analysis?.interval) ?? 30_000;
    if (now < since + intervalMs) return metrics;
    const id = `${canary.status?.run ?? 0}/${since}`;
    if (e.prometheus?.id === id) return e.prometheus.results ? { ...metrics, prometheus: e.prometheus.results } : null;
    const pending: PrometheusWindow = { id, results: null };
    e.prometheus = pending;
    void Promise.all(queries.map(async (m) => {
      const address = m.prometheus?.address ?? this.o.prometheusUrl;
      const r: PrometheusResult = address
        ? await this.o.prometheus(address, m.prometheus?.query ?? '', now, this.o.prometheusTimeoutMs, this.abort.signal)
        : { value: null, error: 'no Prometheus address: set prometheus.address or the operator\'s --prometheus-url' };
      return [m.name ?? '', r] as const;
    })).then((pairs) => {
      pending.results = Object.fromEntries(pairs);
      this.schedule(e.key);
    });
    return null;
  }

  private async perform(e: Entry, actions: Action[]): Promise<void> {
    for (const a of actions) {
      switch (a.type) {
        case 'Event':
          this.store.event(e.canary, a.eventType, a.reason, a.message);
          break;
        case 'CallWebhook':
          this.webhook(e, a);
          break;
        case 'UpdateIngress':
          this.keyed(e, a.key, () => this.updateIngress(e, a));
          break;
        case 'AddFinalizer':
        case 'RemoveFinalizer': {
          if (!this.store.finalizers) break;
          // Awaited: the next status write tests the resourceVersion this patch moves.
          await this.keyed(e, a.key, async () => {
            const ops = a.type === 'AddFinalizer' ? addFinalizerPatch(e.canary, FINALIZER) : removeFinalizerPatch(e.canary, FINALIZER);
            if (!ops) return true;
            const outcome = await this.store.patchCanary(e.canary, ops);
            if (outcome.ok) { if (this.entries.get(e.key) === e) e.canary = outcome.object; return true; }
            if (outcome.reason === 'gone') return true;
            this.ctx.logger.warn({ canary: e.key, action: a.type, err: outcome.message }, 'finalizer patch failed');
            return false;
          });
          break;
        }
      }
    }
  }

  private webhook(e: Entry, a: WebhookCall): void {
    if (e.inflight.has(a.key) || (a.gating ? e.answers.has(a.key) : e.notified.has(a.key))) return;
    e.inflight.add(a.key);
    if (!a.gating) remember(e.notified, a.key, true);
    void this.o.webhook(a, this.abort.signal).then((answer) => {
      e.inflight.delete(a.key);
      if (this.closed) return;
      this.ctx.logger.info({ canary: e.key, webhook: a.name, type: a.hookType, approved: answer.approved, message: answer.message }, 'canary webhook answered');
      if (a.gating) { remember(e.answers, a.key, answer); this.schedule(e.key); }
    });
  }

  /** keyed runs an action at most once at a time, and after a failure not before its back-off. */
  private async keyed(e: Entry, key: string, fn: () => Promise<boolean>): Promise<void> {
    const now = this.clock.now();
    if (e.inflight.has(key) || (e.actionRetryAt.get(key) ?? 0) > now) return;
    e.inflight.add(key);
    let ok = false;
    try {
      ok = await fn();
    } catch (err) {
      this.ctx.logger.warn({ canary: e.key, action: key, err: (err as Error).message }, 'canary action failed');
    } finally {
      e.inflight.delete(key);
    }
    if (ok) { e.actionFailures.delete(key); e.actionRetryAt.delete(key); return; }
    const n = (e.actionFailures.get(key) ?? 0) + 1;
    e.actionFailures.set(key, n);
    e.actionRetryAt.set(key, this.clock.now() + Math.min(this.o.maxRetryMs, this.o.retryMs * 2 ** (n - 1)));
    this.arm(e);
  }

  private async updateIngress(e: Entry, a: Extract<Action, { type: 'UpdateIngress' }>): Promise<boolean> {
    const key = `${namespaceOf(e.canary)}/${a.ingress}`;
    const ingress = this.ingresses.get(key);
    if (!ingress) {
      this.ctx.logger.warn({ canary: e.key, ingress: key }, 'UpdateIngress: the Ingress is not there');
      return false;
    }
    if (ingressSwitched(ingress, a.fromService, a.toService)) return true;
    const ops = ingressSwitchPatch(ingress, a.fromService, a.toService, a.port);
    if (!ops) {
      this.ctx.logger.warn({ canary: e.key, ingress: key, service: a.fromService }, 'UpdateIngress: no backend of the Ingress names the stable Service');
      return false;
    }
    const outcome = await this.store.patchIngress(ingress, ops);
    if (!outcome.ok) {
      this.ctx.logger.warn({ canary: e.key, ingress: key, err: outcome.message }, 'UpdateIngress: patch failed');
      return false;
    }
    this.ingresses.set(key, outcome.object);
    this.ctx.logger.info({ canary: e.key, ingress: key, from: a.fromService, to: a.toService }, 'Ingress switched to the canary Service');
    this.schedule(e.key);
    return true;
  }

  /** arm sets the one timer of a Canary to the earliest of its wake-up, its write retry and its action retries. */
  private arm(e: Entry): void {
    if (this.closed || !this.ctx.isLeader()) return;
    let at = e.wakeAt;
    for (const t of [e.retryAt, ...e.actionRetryAt.values()]) if (t !== null && (at === null || t < at)) at = t;
    if (at === e.timerAt && e.timer !== null) return;
    this.disarm(e);
    if (at === null) return;
    e.timerAt = at;
    e.timer = this.clock.setTimeout(() => { e.timer = null; e.timerAt = null; this.schedule(e.key); }, Math.max(0, at - this.clock.now()));
  }

  private disarm(e: Entry): void {
    if (e.timer !== null) this.clock.clearTimeout(e.timer);
    e.timer = null;
    e.timerAt = null;
  }
}
