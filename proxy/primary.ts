/**
 * The proxy's primary process: it owns the routing source, forks the workers (node:cluster,
 * whose round-robin hand-off lets a worker leave without resetting connections queued on
 * its socket, unlike SO_REUSEPORT), sends them routing deltas, serves the admin port and
 * orders shutdown.
 *
 * Why the primary owns the source: the directory (later the operator stream) is read and
 * compiled once per pod, not once per core; every worker serves the same version; and the
 * compile of a large update runs off the request path — workers only apply deltas.
 */
import cluster, { type Worker } from 'node:cluster';
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Gauge, Counter, Registry } from 'prom-client';
import type { Logger } from '../lib/log.ts';
import type { ProxyOptions } from './options.ts';
import { toWireDelta, type RoutingSource, type RoutingUpdate } from './source.ts';
import { selfSignedCertificate } from './x509.ts';
import { ClusterMetrics, type MetricsSnapshot } from './metrics.ts';
import type { PrimaryMessage, WorkerMessage } from './ipc.ts';
import { StatsReporter } from './fleet-stats.ts';
import type { BackendStats } from '../core/index.ts';
import type { WorkerInit } from './worker.ts';
import { workerExecArgv } from './worker-flags.ts';

const METRICS_TIMEOUT_MS = 2_000;
/** Crash-looping workers are restarted at most this often. */
const RESTART_BACKOFF_MS = 1_000;

interface WorkerState {
  worker: Worker;
  listening: boolean;
  ready: boolean;
  generation: number;
  retiring: boolean;
  lastMetrics: MetricsSnapshot | undefined;
  onReady: (() => void) | null;
}

export interface ProxyHandle {
  /** Actual ports (useful with port 0). */
  ports: { http: number; https: number; admin: number };
  /** stop runs the graceful shutdown and resolves when every worker has exited. */
  stop(): Promise<void>;
  done: Promise<void>;
  /** stats: request statistics since the previous call, for the operator (canary analysis). */
  stats(): Promise<Record<string, BackendStats>>;
}

function workerEntry(): string {
  const self = fileURLToPath(import.meta.url);
  return fileURLToPath(new URL(`./worker-main${extname(self)}`, import.meta.url));
}

export async function startProxy(options: ProxyOptions, source: RoutingSource, log: Logger): Promise<ProxyHandle> {
  const ticketKeys = randomBytes(48);
  const fake = selfSignedCertificate({ commonName: 'Vane Fake Certificate', altNames: ['vane.invalid'] });
  const init: WorkerInit = { options, ticketKeys, fakeCertificate: fake };
  const workers = new Map<number, WorkerState>();
  const metrics = new ClusterMetrics();
  const own = new Registry();
  const workerGauge = new Gauge({ name: 'vane_proxy_workers', help: 'Worker processes alive.', registers: [own], aggregator: 'sum' });
  const restarts = new Counter({ name: 'vane_proxy_worker_restarts_total', help: 'Workers replaced after a crash or on request.', registers: [own], aggregator: 'sum' });
  const sourceGeneration = new Gauge({ name: 'vane_proxy_source_generation', help: 'Newest routing generation the source delivered.', registers: [own], aggregator: 'max' });
  let latest: RoutingUpdate | null = null;
  let shuttingDown = false;
  let lastRestartAt = 0;
  const ports = { http: 0, https: 0, admin: 0 };
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => { resolveDone = r; });

  cluster.setupPrimary({ exec: workerEntry(), args: [], execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS), serialization: 'advanced' });

  const send = (w: WorkerState, msg: PrimaryMessage) => { if (w.worker.isConnected()) w.worker.send(msg); };

  function fork(): WorkerState {
    const worker = cluster.fork({ VANE_PROXY_WORKER: '1' });
    const state: WorkerState = { worker, listening: false, ready: false, generation: 0, retiring: false, lastMetrics: undefined, onReady: null };
    workers.set(worker.id, state);
    workerGauge.set(workers.size);
    send(state, { t: 'init', init });
    if (latest) send(state, { t: 'routing', delta: toWireDelta(latest, true) });
    worker.on('message', (msg: WorkerMessage) => onMessage(state, msg));
    worker.on('exit', (code, signal) => onExit(state, code, signal));
    return state;
  }

  const pendingMetrics = new Map<number, { snapshots: MetricsSnapshot[]; waiting: number; resolve: (s: MetricsSnapshot[]) => void }>();
  let metricsId = 0;

  function onMessage(w: WorkerState, msg: WorkerMessage): void {
    switch (msg.t) {
      case 'listening':
        w.listening = true;
        ports.http = msg.ports.http;
        ports.https = msg.ports.https;
        break;
      case 'ready':
        w.ready = true;
        w.onReady?.();
        w.onReady = null;
        settleServing();
        break;
      case 'applied':
        w.generation = msg.generation;
        settleServing();
        break;
      case 'rejected':
        log.error({ pid: w.worker.process.pid, generation: msg.generation, reason: msg.reason }, 'a worker could not apply routing');
        break;
      case 'metrics': {
        w.lastMetrics = msg.snapshot;
        const p = pendingMetrics.get(msg.id);
        if (p) { p.snapshots.push(msg.snapshot); if (--p.waiting === 0) { pendingMetrics.delete(msg.id); p.resolve(p.snapshots); } }
        break;
      }
      case 'retire':
        if (!shuttingDown) replace(w, 'worker asked to be replaced');
        break;
    }
  }

  /** replace starts a new worker and drains the old one once the new one serves. */
  function replace(old: WorkerState, reason: string): void {
    if (old.retiring) return;
    old.retiring = true;
    restarts.inc();
    log.info({ pid: old.worker.process.pid, reason }, 'replacing worker');
    const next = fork();
    next.onReady = () => send(old, { t: 'drain', timeoutMs: options.drainTimeoutMs });
  }

  function onExit(w: WorkerState, code: number | null, signal: string | null): void {
    workers.delete(w.worker.id);
    workerGauge.set(workers.size);
    metrics.retire(w.lastMetrics);
    if (shuttingDown || w.retiring) {
      if (shuttingDown && workers.size === 0) finish();
      return;
    }
    log.error({ pid: w.worker.process.pid, code, signal }, 'worker exited unexpectedly; starting another');
    restarts.inc();
    const wait = Math.max(0, lastRestartAt + RESTART_BACKOFF_MS - Date.now());
    lastRestartAt = Date.now() + wait;
    setTimeout(() => { if (!shuttingDown) fork(); }, wait);
  }

  function collect(): Promise<MetricsSnapshot[]> {
    const live = [...workers.values()].filter((w) => w.worker.isConnected());
    if (live.length === 0) return Promise.resolve([]);
    const id = ++metricsId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { const p = pendingMetrics.get(id); pendingMetrics.delete(id); resolve(p?.snapshots ?? []); }, METRICS_TIMEOUT_MS);
      pendingMetrics.set(id, { snapshots: [], waiting: live.length, resolve: (s) => { clearTimeout(timer); resolve(s); } });
      for (const w of live) send(w, { t: 'metrics', id });
    });
  }

  function ready(): boolean {
    if (shuttingDown || latest === null) return false;
    let serving = 0;
    for (const w of workers.values()) if (w.ready && !w.retiring) serving++;
    return serving > 0;
  }

  const admin: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') { res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n'); return; }
    if (path === '/readyz') {
      const ok = ready();
      const body = {
        ready: ok,
        shuttingDown,
        generation: latest?.generation ?? 0,
        root: latest?.root ?? null,
        workers: [...workers.values()].map((w) => ({ pid: w.worker.process.pid, ready: w.ready, generation: w.generation, retiring: w.retiring })),
      };
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
      return;
    }
    if (path === '/metrics') {
      collect().then((snaps) => metrics.render(snaps, own)).then(({ text, contentType }) => {
        res.writeHead(200, { 'content-type': contentType }).end(text);
      }, (err: Error) => {
        log.error({ err: err.message }, 'rendering metrics failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen({ port: options.adminPort, host: options.adminHost }, () => { admin.off('error', reject); resolve(); });
  });
  ports.admin = (admin.address() as { port: number }).port;

  /**
   * Waiters for "every serving worker runs generation g": the source ACKs a version to the
   * operator only then, so the operator's convergence means the fleet serves it, not merely
   * that the primaries received it.
   */
  const servingWaiters: { generation: number; resolve: () => void }[] = [];
  function serving(generation: number): boolean {
    const live = [...workers.values()].filter((w) => w.worker.isConnected() && !w.retiring);
    return live.some((w) => w.ready) && live.every((w) => !w.ready || w.generation >= generation);
  }
  function settleServing(): void {
    for (const waiter of servingWaiters.slice()) {
      if (!serving(waiter.generation)) continue;
      servingWaiters.splice(servingWaiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }

  await source.start((update) => {
    latest = update;
    sourceGeneration.set(update.generation);
    const delta = toWireDelta(update, false);
    for (const w of workers.values()) send(w, { t: 'routing', delta });
    return new Promise<void>((resolve) => {
      servingWaiters.push({ generation: update.generation, resolve });
      settleServing();
    });
  });

  const initial: Promise<void>[] = [];
  for (let i = 0; i < options.workers; i++) {
    const w = fork();
    initial.push(new Promise<void>((resolve, reject) => {
      w.onReady = resolve;
      w.worker.once('exit', () => { if (!w.ready) reject(new Error('a worker exited before it was ready; see its log')); });
    }));
  }
  await Promise.all(initial);
  log.info({ http: ports.http, https: ports.https, admin: ports.admin, workers: options.workers, generation: latest!.generation }, 'proxy listening');

  let finished = false;
  function finish(): void {
    if (finished) return;
    finished = true;
    admin.close();
    admin.closeAllConnections();
    source.close().finally(() => { log.info({}, 'proxy stopped'); resolveDone(); });
  }

  async function stop(): Promise<void> {
    if (shuttingDown) return done;
    shuttingDown = true;
    log.info({ shutdownDelayMs: options.shutdownDelayMs }, 'shutting down: readiness fails, then listeners close and requests drain');
    await new Promise((r) => setTimeout(r, options.shutdownDelayMs));
    for (const w of workers.values()) send(w, { t: 'drain', timeoutMs: options.drainTimeoutMs });
    const killer = setTimeout(() => { for (const w of workers.values()) w.worker.process.kill('SIGKILL'); }, options.drainTimeoutMs + 5_000);
    if (workers.size === 0) finish();
    await done;
    clearTimeout(killer);
  }

  const reporter = new StatsReporter();
  const stats = async () => reporter.take([...(await collect()), metrics.retiredSnapshot], latest?.resources ?? null);
  return { ports, stop, done, stats };
}
