/**
 * The operator's composition root: a source of objects feeds the pipeline, each version is
 * published to the stream server, and the fleet's ACKs and statistics come back. The admin
 * server answers /healthz, /readyz, /metrics and /fleet (the convergence report as JSON).
 */
import { createServer as createHttpServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Pipeline, type RoutingVersion } from './pipeline.ts';
import { StreamServer, type Authenticator } from './stream/server.ts';
import { Fleet, type Convergence } from './fleet.ts';
import { createOperatorMetrics, type OperatorMetrics } from './metrics.ts';
import { formatProblem, CLOSE, SERVICE_NAME_LABEL, type CompileOptions, type ObjectStatus, type KubeObject, type ObjectKind, type Ingress, type EndpointSlice } from '../core/index.ts';
import type { ObjectSource } from './sources/source.ts';
import type { StatusWriter } from './status.ts';
import type { Logger } from '../lib/log.ts';
import { ProblemLog } from '../lib/manifests.ts';

/**
 * A Controller runs inside the operator beside the compile pipeline (the canary controller
 * is one): it sees every object, hears about every version and ACK, and acts only while
 * this replica leads. See OperatorContext for what it may use.
 */
export interface Controller {
  observe(obj: KubeObject, deleted: boolean): void;
  /** A new routing version was published, or an expected proxy ACKed one. */
  fleetChanged(): void;
  startedLeading(): void;
  stoppedLeading(): void;
  close(): Promise<void>;
}

export interface OperatorContext {
  isLeader(): boolean;
  fleet: Fleet;
  current(): RoutingVersion | null;
  logger: Logger;
  /**
   * overlay replaces an object as the compiler sees it, without writing it anywhere: in
   * file mode, where no API server stores status, the canary controller keeps Canary status
   * this way. The next event for the object from the source replaces the overlay.
   */
  overlay(obj: KubeObject): void;
  /** True when objects come from files: there is no API server to write status to. */
  fileMode: boolean;
}

/** Leadership as the operator needs it; file mode uses ALWAYS_LEADER. */
export interface Leadership {
  isLeader(): boolean;
  start(): void;
  close(): Promise<void>;
}

export interface OperatorOptions {
  source: ObjectSource;
  compile?: CompileOptions;
  streamHost?: string;
  streamPort?: number;
  /** PEM serving certificate and key for the stream; required unless allowPlaintext. */
  tls?: { cert: string; key: string };
  /** Serve plain ws:// without tls (local development only: tokens and routing travel in the clear). */
  allowPlaintext?: boolean;
  adminHost?: string;
  adminPort?: number;
  authenticate: Authenticator;
  /** Names of the proxies expected to serve (file mode). */
  expectedProxies?: string[];
  /** `namespace/name` of the proxies' Service: ready endpoints of its EndpointSlices are the expected fleet. */
  proxyService?: string;
  /** Builds the leader elector, given what to do when leadership starts and stops; absent: always the leader. */
  leadership?: (events: { onStartedLeading: () => void; onStoppedLeading: () => void }) => Leadership;
  status?: StatusWriter;
  /** Controllers to run in this operator, built once it is constructed. */
  controllers?: (context: OperatorContext) => Controller[];
  /** Objects come from files (no API server for status writes). */
  fileMode?: boolean;
  logger: Logger;
  quietMs?: number;
  maxHoldMs?: number;
  /** Stream full snapshots only, never deltas (the propagation benchmark's baseline). */
  fullSendsOnly?: boolean;
}

export interface FleetReport {
  version: { generation: number; root: string } | null;
  convergence: Convergence | null;
  connected: { proxy: string; acked: { generation: number; root: string } | null }[];
}

export class Operator {
  readonly metrics: OperatorMetrics;
  readonly fleet = new Fleet();
  private readonly options: OperatorOptions;
  private readonly pipeline: Pipeline;
  private readonly leadership: Leadership | null;
  private leading: boolean;
  private readonly ingresses = new Map<string, Ingress>();
  private readonly controllers: Controller[];
  private readonly proxySlices = new Map<string, string[]>();
  private streamServer: Server | null = null;
  private adminServer: Server | null = null;
  private stream: StreamServer | null = null;
  private reported = new Map<string, string>();
  private lastStatuses: ReadonlyMap<string, ObjectStatus> = new Map();
  private readonly problemLog: ProblemLog;
  /** Statuses a follower saw but could not write; written once it leads. */
  private readonly statusPending = new Set<string>();
  private readonly ingressesTouched = new Set<string>();
  private convergedGeneration = 0;

  constructor(options: OperatorOptions) {
    if (!options.tls && !options.allowPlaintext) throw new Error('stream: tls (a serving certificate and key) is required; allowPlaintext serves ws:// for local development only');
    this.options = options;
    this.metrics = createOperatorMetrics();
    this.problemLog = new ProblemLog(options.logger, (kind, key) => options.source.fileOf?.(kind, key));
    this.fleet.setExpected(options.expectedProxies ?? []);
    this.metrics.expectedProxies.set(options.expectedProxies?.length ?? 0);
    this.pipeline = new Pipeline({
      ...(options.compile ? { compile: options.compile } : {}),
      ...(options.quietMs !== undefined ? { quietMs: options.quietMs } : {}),
      ...(options.maxHoldMs !== undefined ? { maxHoldMs: options.maxHoldMs } : {}),
      onVersion: (v) => this.onVersion(v),
      onStatuses: (s) => this.reportStatuses(s),
    });
    this.leadership = options.leadership?.({ onStartedLeading: () => this.startedLeading(), onStoppedLeading: () => this.stoppedLeading() }) ?? null;
    this.leading = this.leadership === null;
    this.metrics.leader.set(this.leading ? 1 : 0);
    this.controllers = options.controllers?.({
      isLeader: () => this.isLeader(),
      fleet: this.fleet,
      current: () => this.pipeline.current,
      logger: options.logger,
      overlay: (obj) => this.pipeline.set(obj),
      fileMode: options.fileMode ?? false,
    }) ?? [];
  }

  /** isLeader: file mode always; in a cluster while the lease is held and fresh. */
  isLeader(): boolean { return this.leadership ? this.leadership.isLeader() : true; }

  /** isLeading: this replica serves the stream — it has been told it leads, and the lease is still fresh. */
  private isLeading(): boolean { return this.leading && this.isLeader(); }

  /** setServingCertificate swaps the stream's certificate without dropping connections (rotation). */
  setServingCertificate(tls: { cert: string; key: string }): void {
    const server = this.streamServer as (Server & { setSecureContext?: (o: { cert: string; key: string }) => void }) | null;
    server?.setSecureContext?.({ cert: tls.cert, key: tls.key });
  }

  get streamAddress(): AddressInfo { return this.streamServer!.address() as AddressInfo; }
  get adminAddress(): AddressInfo { return this.adminServer!.address() as AddressInfo; }
  get current(): RoutingVersion | null { return this.pipeline.current; }

  async start(): Promise<void> {
    const log = this.options.logger;
    this.streamServer = this.options.tls ? createHttpsServer({ cert: this.options.tls.cert, key: this.options.tls.key }) : createHttpServer();
    this.streamServer.on('request', (_req: IncomingMessage, res: ServerResponse) => { res.writeHead(426, { 'content-type': 'text/plain' }).end('use the vane.v1 WebSocket at /stream\n'); });
    this.stream = new StreamServer({
      server: this.streamServer,
      // Asked again after the review: leadership may end while a TokenReview is in flight.
      authenticate: async (token, req) => {
        const notLeader = { ok: false, code: CLOSE.notLeader, reason: 'not the leader; try another operator replica' } as const;
        if (!this.isLeading()) return notLeader;
        const result = await this.options.authenticate(token, req);
        return this.isLeading() ? result : notLeader;
      },
      logger: log,
      ...(this.options.fullSendsOnly ? { fullSendsOnly: true } : {}),
      // A proxy refuses versions below its own: its first must be above what it holds, unless it holds this one.
      onHello: (_proxy, version) => {
        const current = this.pipeline.current;
        if (!version || (current && (version.generation < current.generation || (version.generation === current.generation && version.root === current.root)))) return;
        this.pipeline.reissueAbove(version.generation);
      },
      onAck: (proxy, version) => { this.fleet.ack(proxy, version); this.checkConvergence(); this.notifyFleet(); },
      onNack: (proxy, version, reason) => {
        this.metrics.nacks.inc();
        const ns = this.options.proxyService?.split('/')[0];
        if (ns && this.isLeader()) {
          this.options.status?.event({ apiVersion: 'v1', kind: 'Pod', metadata: { name: proxy, namespace: ns } }, 'Warning', 'ProxyNack', `refused routing generation ${version.generation}: ${reason}`);
        }
      },
      onStats: (proxy, stats) => this.fleet.addStats(proxy, stats, Date.now()),
      onConnectionsChanged: () => this.metrics.connectedProxies.set(this.stream?.connectionInfo().length ?? 0),
      onSend: (kind, bytes) => { this.metrics.sends.inc({ kind }); this.metrics.sendBytes.inc({ kind }, bytes); },
      onRejected: (reason) => this.metrics.streamRejections.inc({ reason }),
      onReplaced: () => this.metrics.streamReplaced.inc(),
      onRefusedTooOften: () => this.metrics.streamRefusalDisconnects.inc(),
    });
    await listen(this.streamServer, this.options.streamPort ?? 0, this.options.streamHost ?? '127.0.0.1');
    this.adminServer = createHttpServer((req, res) => { void this.admin(req, res); });
    await listen(this.adminServer, this.options.adminPort ?? 0, this.options.adminHost ?? '127.0.0.1');
    await this.options.source.start({
      set: (obj) => { this.observe(obj, false); this.pipeline.set(obj); },
      delete: (kind, key) => { this.observeDeleted(kind, key); this.pipeline.delete(kind, key); },
    });
    this.pipeline.flush();
    this.leadership?.start();
    if (!this.options.tls) log.warn({ stream: this.streamAddress }, 'the stream is plain ws:// (allowPlaintext): tokens and routing travel unencrypted; for local development only');
    log.info({ source: String(this.options.source), stream: this.streamAddress, admin: this.adminAddress, tls: Boolean(this.options.tls) }, 'operator started');
  }

  async close(): Promise<void> {
    for (const c of this.controllers) await c.close();
    await this.leadership?.close();
    this.options.status?.close();
    await this.options.source.close();
    this.pipeline.close();
    await this.stream?.close();
    for (const s of [this.streamServer, this.adminServer]) {
      if (!s) continue;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }

  fleetReport(): FleetReport {
    const current = this.pipeline.current;
    return {
      version: current ? { generation: current.generation, root: current.root } : null,
      convergence: current ? this.fleet.convergence(current) : null,
      connected: (this.stream?.connectionInfo() ?? []).map((c) => ({ proxy: c.proxy, acked: c.acked })).sort((a, b) => (a.proxy < b.proxy ? -1 : 1)),
    };
  }

  private startedLeading(): void {
    this.leading = true;
    this.metrics.leader.set(1);
    const current = this.pipeline.current;
    if (current) this.stream?.publish(current);
    this.reportStatuses(this.lastStatuses, true);
    for (const c of this.controllers) c.startedLeading();
  }

  private stoppedLeading(): void {
    this.leading = false;
    this.metrics.leader.set(0);
    this.stream?.disconnectAll(CLOSE.notLeader, 'no longer the leader; reconnect to the new one');
    for (const c of this.controllers) c.stoppedLeading();
  }

  private notifyFleet(): void {
    for (const c of this.controllers) c.fleetChanged();
  }

  /** observe keeps what status writing and the expected fleet need from the object stream. */
  private observe(obj: KubeObject, deleted: boolean): void {
    for (const c of this.controllers) c.observe(obj, deleted);
    if (obj.kind === 'Ingress') {
      const key = `${obj.metadata?.namespace ?? 'default'}/${obj.metadata?.name ?? ''}`;
      if (deleted) this.ingresses.delete(key); else this.ingresses.set(key, obj as Ingress);
      this.ingressesTouched.add(key);
      return;
    }
    const proxyService = this.options.proxyService;
    if (obj.kind !== 'EndpointSlice' || !proxyService) return;
    const ns = obj.metadata?.namespace ?? 'default';
    if (`${ns}/${obj.metadata?.labels?.[SERVICE_NAME_LABEL] ?? ''}` !== proxyService) return;
    const key = `${ns}/${obj.metadata?.name ?? ''}`;
    if (deleted) this.proxySlices.delete(key);
    else {
      const ready: string[] = [];
      for (const ep of (obj as EndpointSlice).endpoints ?? []) {
        const pod = (ep as { targetRef?: { kind?: string; name?: string } }).targetRef;
        if (pod?.name && (ep.conditions?.ready ?? true)) ready.push(pod.name);
      }
      this.proxySlices.set(key, ready);
    }
    const expected = new Set([...this.proxySlices.values()].flat());
    this.fleet.setExpected(expected);
    this.metrics.expectedProxies.set(expected.size);
    this.checkConvergence();
  }

  private observeDeleted(kind: ObjectKind, key: string): void {
    const slash = key.indexOf('/');
    const meta = slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
    this.observe({ kind, metadata: meta } as KubeObject, true);
  }

  private onVersion(version: RoutingVersion): void {
    this.metrics.compileSeconds.observe(version.compileMs / 1000);
    this.metrics.generation.set(version.generation);
    this.options.logger.info({
      generation: version.generation, root: version.root.slice(0, 12),
      upserts: version.changed.upserts.length, removals: version.changed.removals.length, compileMs: Math.round(version.compileMs * 100) / 100,
    }, 'new routing version');
    if (this.isLeading()) this.stream?.publish(version);
    this.checkConvergence();
    this.notifyFleet();
  }

  private checkConvergence(): void {
    const current = this.pipeline.current;
    if (!current) return;
    const c = this.fleet.convergence(current);
    this.metrics.proxiesAtVersion.set({ state: 'current' }, c.converged);
    this.metrics.proxiesAtVersion.set({ state: 'behind' }, c.expected - c.converged);
    if (c.expected > 0 && c.converged === c.expected && this.convergedGeneration !== current.generation) {
      this.convergedGeneration = current.generation;
      const seconds = (Date.now() - current.changeStartedAt) / 1000;
      this.metrics.propagationSeconds.observe(seconds);
      this.options.logger.info({ generation: current.generation, proxies: c.expected, propagationMs: Math.round(seconds * 1000) }, 'fleet converged');
    }
  }

  /**
   * reportStatuses logs each object's problems once per change, in `vane validate` form, and
   * (leader only) hands Vane's Ingresses to the status writer: address and Events.
   */
  private reportStatuses(statuses: ReadonlyMap<string, ObjectStatus>, all = false): void {
    this.lastStatuses = statuses;
    if (!all) this.problemLog.report(statuses);
    const seen = new Set<string>();
    for (const [id, status] of statuses) {
      seen.add(id);
      const text = status.problems.map(formatProblem).join('\n');
      const touched = status.kind === 'Ingress' && this.ingressesTouched.has(status.key);
      if (!all && this.reported.get(id) === text && !this.statusPending.has(id) && !touched) continue;
      this.reported.set(id, text);
      const ing = status.kind === 'Ingress' ? this.ingresses.get(status.key) : undefined;
      if (ing && this.options.status) {
        if (this.isLeader()) {
          this.statusPending.delete(id);
          this.options.status.ingress(ing);
          this.options.status.problems(ing, status);
        } else {
          this.statusPending.add(id);
        }
      }
    }
    for (const id of this.reported.keys()) if (!seen.has(id)) this.reported.delete(id);
    this.ingressesTouched.clear();
  }

  private async admin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') { res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n'); return; }
    if (path === '/readyz') {
      const ready = this.pipeline.current !== null;
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'no routing version yet\n');
      return;
    }
    if (path === '/metrics') {
      const body = await this.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(body);
      return;
    }
    if (path === '/fleet') { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.fleetReport(), null, 2)); return; }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
}
