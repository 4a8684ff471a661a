/**
 * FleetMetrics: the primary's view of its workers' numbers. /metrics and the operator's
 * statistics ask every live worker for a snapshot over IPC (waiting at most 2 s), merge them
 * with what exited workers had counted (so totals never go backwards) and with the primary's
 * own counters (workers alive, restarts, the source's generation).
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { BackendStats } from '../../core/index.ts';
import type { ResourceMap } from '../../core/index.ts';
import { ClusterMetrics, type MetricsSnapshot } from '../metrics.ts';
import { StatsReporter } from './fleet-stats.ts';
import type { SupervisorEvents, WorkerState } from './supervisor.ts';
import type { PrimaryMessage } from '../ipc.ts';

const METRICS_TIMEOUT_MS = 2_000;

/** Fleet is how FleetMetrics reaches the workers. */
export interface Fleet {
  live(): WorkerState[];
  send(w: WorkerState, msg: PrimaryMessage): void;
}

export class FleetMetrics implements SupervisorEvents {
  private readonly merged = new ClusterMetrics();
  private readonly own = new Registry();
  private readonly workerGauge = new Gauge({ name: 'vane_proxy_workers', help: 'Worker processes alive.', registers: [this.own], aggregator: 'sum' });
  private readonly restarts = new Counter({ name: 'vane_proxy_worker_restarts_total', help: 'Workers replaced after a crash or on request.', registers: [this.own], aggregator: 'sum' });
  private readonly sourceGeneration = new Gauge({ name: 'vane_proxy_source_generation', help: 'Newest routing generation the source delivered.', registers: [this.own], aggregator: 'max' });
  private readonly pending = new Map<number, { snapshots: MetricsSnapshot[]; waiting: number; resolve: (s: MetricsSnapshot[]) => void }>();
  private lastId = 0;
  private readonly reporter = new StatsReporter();
  private fleet: Fleet | null = null;

  /** attach names the workers to ask (the supervisor, which reports to this object). */
  attach(fleet: Fleet): void { this.fleet = fleet; }

  // ---- SupervisorEvents ---------------------------------------------------------------

  metrics(id: number, snapshot: MetricsSnapshot): void {
    const p = this.pending.get(id);
    if (!p) return;
    p.snapshots.push(snapshot);
    if (--p.waiting === 0) { this.pending.delete(id); p.resolve(p.snapshots); }
  }

  workers(count: number): void { this.workerGauge.set(count); }
  restarted(): void { this.restarts.inc(); }
  exited(last: MetricsSnapshot | undefined): void { this.merged.retire(last); }

  // ---- what the primary asks --------------------------------------------------------------

  sourceUpdated(generation: number): void { this.sourceGeneration.set(generation); }

  /** collect asks every live worker for its snapshot; a worker that does not answer in time is left out. */
  collect(): Promise<MetricsSnapshot[]> {
    const fleet = this.fleet;
    const live = fleet?.live() ?? [];
    if (fleet === null || live.length === 0) return Promise.resolve([]);
    const id = ++this.lastId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { const p = this.pending.get(id); this.pending.delete(id); resolve(p?.snapshots ?? []); }, METRICS_TIMEOUT_MS);
      this.pending.set(id, { snapshots: [], waiting: live.length, resolve: (s) => { clearTimeout(timer); resolve(s); } });
      for (const w of live) fleet.send(w, { t: 'metrics', id });
    });
  }

  /** render is /metrics: every worker's numbers merged with the retired ones and the primary's own. */
  async render(): Promise<{ text: string; contentType: string }> {
    return this.merged.render(await this.collect(), this.own);
  }

  /** stats: request statistics since the previous call, for the operator (canary analysis). */
  async stats(resources: ResourceMap | null): Promise<Record<string, BackendStats>> {
    return this.reporter.take([...(await this.collect()), this.merged.retiredSnapshot], resources);
  }
}
