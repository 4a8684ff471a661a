/**
 * Supervisor: the primary's workers. It forks them (node:cluster, whose round-robin hand-off
 * lets a worker leave without resetting connections queued on its socket, unlike
 * SO_REUSEPORT), hands each the routing (the newest full set on start, deltas after), replaces
 * a worker that asks (the new one serves before the old one drains), restarts one that dies
 * (at most once a second) and orders the drain at shutdown.
 *
 * A routing update resolves once every serving worker runs its generation: the source ACKs a
 * version to the operator only then, so the operator's convergence means the fleet serves it,
 * not merely that the primaries received it.
 */
import cluster, { type Worker } from 'node:cluster';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../lib/log.ts';
import type { ProxyOptions } from '../options.ts';
import { toWireDelta, type RoutingUpdate } from '../source/source.ts';
import type { MetricsSnapshot } from '../metrics.ts';
import type { PrimaryMessage, WorkerMessage } from '../ipc.ts';
import type { WorkerInit } from '../worker/worker.ts';
import { workerExecArgv } from './worker-flags.ts';

/** Crash-looping workers are restarted at most this often. */
const RESTART_BACKOFF_MS = 1_000;

export interface WorkerState {
  worker: Worker;
  listening: boolean;
  ready: boolean;
  generation: number;
  retiring: boolean;
  lastMetrics: MetricsSnapshot | undefined;
  onReady: (() => void) | null;
}

/** SupervisorEvents is what the supervisor reports to the primary's metrics. */
export interface SupervisorEvents {
  /** A worker answered metrics request `id`. */
  metrics(id: number, snapshot: MetricsSnapshot): void;
  /** The number of workers changed. */
  workers(count: number): void;
  /** A worker is replaced, on request or after a crash. */
  restarted(): void;
  /** A worker exited; `last` is the last metrics snapshot it sent. */
  exited(last: MetricsSnapshot | undefined): void;
}

function workerEntry(): string {
  const self = fileURLToPath(import.meta.url);
  return fileURLToPath(new URL(`../worker-main${extname(self)}`, import.meta.url));
}

export class Supervisor {
  /** Traffic ports the workers listen on (useful with port 0). */
  readonly ports = { http: 0, https: 0 };
  /** The newest routing update the source delivered. */
  latest: RoutingUpdate | null = null;
  shuttingDown = false;
  private readonly workers = new Map<number, WorkerState>();
  private readonly options: ProxyOptions;
  private readonly init: WorkerInit;
  private readonly log: Logger;
  private readonly events: SupervisorEvents;
  private lastRestartAt = 0;
  private readonly servingWaiters: { generation: number; resolve: () => void }[] = [];
  private onAllExited: (() => void) | null = null;

  constructor(options: ProxyOptions, init: WorkerInit, log: Logger, events: SupervisorEvents) {
    this.options = options;
    this.init = init;
    this.log = log;
    this.events = events;
    cluster.setupPrimary({ exec: workerEntry(), args: [], execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS), serialization: 'advanced' });
  }

  /** start forks the configured number of workers and resolves once all of them serve. */
  async start(): Promise<void> {
    const initial: Promise<void>[] = [];
    for (let i = 0; i < this.options.workers; i++) {
      const w = this.fork();
      initial.push(new Promise<void>((resolve, reject) => {
        w.onReady = resolve;
        w.worker.once('exit', () => { if (!w.ready) reject(new Error('a worker exited before it was ready; see its log')); });
      }));
    }
    await Promise.all(initial);
  }

  /** route sends an update to every worker; it resolves once every serving worker runs it. */
  route(update: RoutingUpdate): Promise<void> {
    this.latest = update;
    const delta = toWireDelta(update, false);
    for (const w of this.workers.values()) this.send(w, { t: 'routing', delta });
    return new Promise<void>((resolve) => {
      this.servingWaiters.push({ generation: update.generation, resolve });
      this.settleServing();
    });
  }

  /** live are the workers that can still answer messages. */
  live(): WorkerState[] {
    return [...this.workers.values()].filter((w) => w.worker.isConnected());
  }

  send(w: WorkerState, msg: PrimaryMessage): void {
    if (w.worker.isConnected()) w.worker.send(msg);
  }

  /** ready: routing is loaded and some worker not being replaced serves it (and no shutdown began). */
  ready(): boolean {
    if (this.shuttingDown || this.latest === null) return false;
    for (const w of this.workers.values()) if (w.ready && !w.retiring) return true;
    return false;
  }

  /** readiness is /readyz's body. */
  readiness(): object {
    return {
      ready: this.ready(),
      shuttingDown: this.shuttingDown,
      generation: this.latest?.generation ?? 0,
      root: this.latest?.root ?? null,
      workers: [...this.workers.values()].map((w) => ({ pid: w.worker.process.pid, ready: w.ready, generation: w.generation, retiring: w.retiring })),
    };
  }

  /**
   * shutdown drains every worker (after the shutdown delay, which readiness spends failing)
   * and resolves once all have exited; past the drain timeout they are killed.
   */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    await new Promise((r) => setTimeout(r, this.options.shutdownDelayMs));
    const exited = new Promise<void>((resolve) => { this.onAllExited = resolve; });
    for (const w of this.workers.values()) this.send(w, { t: 'drain', timeoutMs: this.options.drainTimeoutMs });
    const killer = setTimeout(() => { for (const w of this.workers.values()) w.worker.process.kill('SIGKILL'); }, this.options.drainTimeoutMs + 5_000);
    if (this.workers.size === 0) this.onAllExited?.();
    await exited;
    clearTimeout(killer);
  }

  private fork(): WorkerState {
    const worker = cluster.fork({ VANE_PROXY_WORKER: '1' });
    const state: WorkerState = { worker, listening: false, ready: false, generation: 0, retiring: false, lastMetrics: undefined, onReady: null };
    this.workers.set(worker.id, state);
    this.events.workers(this.workers.size);
    this.send(state, { t: 'init', init: this.init });
    if (this.latest) this.send(state, { t: 'routing', delta: toWireDelta(this.latest, true) });
    worker.on('message', (msg: WorkerMessage) => this.onMessage(state, msg));
    worker.on('exit', (code, signal) => this.onExit(state, code, signal));
    return state;
  }

  private onMessage(w: WorkerState, msg: WorkerMessage): void {
    switch (msg.t) {
      case 'listening':
        w.listening = true;
        this.ports.http = msg.ports.http;
        this.ports.https = msg.ports.https;
        break;
      case 'ready':
        w.ready = true;
        w.onReady?.();
        w.onReady = null;
        this.settleServing();
        break;
      case 'applied':
        w.generation = msg.generation;
        this.settleServing();
        break;
      case 'rejected':
        this.log.error({ pid: w.worker.process.pid, generation: msg.generation, reason: msg.reason }, 'a worker could not apply routing');
        break;
      case 'metrics':
        w.lastMetrics = msg.snapshot;
        this.events.metrics(msg.id, msg.snapshot);
        break;
      case 'retire':
        if (!this.shuttingDown) this.replace(w, 'worker asked to be replaced');
        break;
    }
  }

  /** replace starts a new worker and drains the old one once the new one serves. */
  private replace(old: WorkerState, reason: string): void {
    if (old.retiring) return;
    old.retiring = true;
    this.events.restarted();
    this.log.info({ pid: old.worker.process.pid, reason }, 'replacing worker');
    const next = this.fork();
    next.onReady = () => this.send(old, { t: 'drain', timeoutMs: this.options.drainTimeoutMs });
  }

  private onExit(w: WorkerState, code: number | null, signal: string | null): void {
    this.workers.delete(w.worker.id);
    this.events.workers(this.workers.size);
    this.events.exited(w.lastMetrics);
    if (this.shuttingDown || w.retiring) {
      if (this.shuttingDown && this.workers.size === 0) this.onAllExited?.();
      return;
    }
    this.log.error({ pid: w.worker.process.pid, code, signal }, 'worker exited unexpectedly; starting another');
    this.events.restarted();
    const wait = Math.max(0, this.lastRestartAt + RESTART_BACKOFF_MS - Date.now());
    this.lastRestartAt = Date.now() + wait;
    setTimeout(() => { if (!this.shuttingDown) this.fork(); }, wait);
  }

  /** serving: every live worker that serves runs `generation` or newer, and one serves. */
  private serving(generation: number): boolean {
    const live = [...this.workers.values()].filter((w) => w.worker.isConnected() && !w.retiring);
    return live.some((w) => w.ready) && live.every((w) => !w.ready || w.generation >= generation);
  }

  private settleServing(): void {
    for (const waiter of this.servingWaiters.slice()) {
      if (!this.serving(waiter.generation)) continue;
      this.servingWaiters.splice(this.servingWaiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }
}
