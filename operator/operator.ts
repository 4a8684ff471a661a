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
import { ManifestWatcher } from '../lib/manifest-watch.ts';
import { formatProblem, type CompileOptions, type ObjectStatus } from '../core/index.ts';
import type { Logger } from '../lib/log.ts';

export interface OperatorOptions {
  /** Directory of manifests (file mode). */
  fromFiles: string;
  compile?: CompileOptions;
  streamHost?: string;
  streamPort?: number;
  /** PEM serving certificate and key for the stream; without them the stream is plain ws (loopback demos only). */
  tls?: { cert: string; key: string };
  adminHost?: string;
  adminPort?: number;
  authenticate: Authenticator;
  /** Names of the proxies expected to serve (file mode). */
  expectedProxies: string[];
  logger: Logger;
  quietMs?: number;
  maxHoldMs?: number;
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
  private readonly watcher: ManifestWatcher;
  private streamServer: Server | null = null;
  private adminServer: Server | null = null;
  private stream: StreamServer | null = null;
  private reported = new Map<string, string>();
  private convergedGeneration = 0;

  constructor(options: OperatorOptions) {
    this.options = options;
    this.metrics = createOperatorMetrics();
    this.fleet.setExpected(options.expectedProxies);
    this.metrics.expectedProxies.set(options.expectedProxies.length);
    this.pipeline = new Pipeline({
      ...(options.compile ? { compile: options.compile } : {}),
      ...(options.quietMs !== undefined ? { quietMs: options.quietMs } : {}),
      ...(options.maxHoldMs !== undefined ? { maxHoldMs: options.maxHoldMs } : {}),
      onVersion: (v) => this.onVersion(v),
      onStatuses: (s) => this.reportStatuses(s),
    });
    this.watcher = new ManifestWatcher({
      dir: options.fromFiles,
      onError: (err) => options.logger.error({ dir: options.fromFiles, err: err.message }, 'reading manifests failed'),
    });
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
      authenticate: this.options.authenticate,
      logger: log,
      onHello: (_proxy, version) => {
        if (version && this.pipeline.current && version.generation >= this.pipeline.current.generation) this.pipeline.raiseGeneration(version.generation);
      },
      onAck: (proxy, version) => { this.fleet.ack(proxy, version); this.checkConvergence(); },
      onNack: () => this.metrics.nacks.inc(),
      onStats: (proxy, stats) => this.fleet.addStats(proxy, stats, Date.now()),
      onConnectionsChanged: () => this.metrics.connectedProxies.set(this.stream?.connectionInfo().length ?? 0),
      onSend: (kind, bytes) => { this.metrics.sends.inc({ kind }); this.metrics.sendBytes.inc({ kind }, bytes); },
    });
    await listen(this.streamServer, this.options.streamPort ?? 0, this.options.streamHost ?? '127.0.0.1');
    this.adminServer = createHttpServer((req, res) => { void this.admin(req, res); });
    await listen(this.adminServer, this.options.adminPort ?? 0, this.options.adminHost ?? '127.0.0.1');
    await this.watcher.start((changes) => {
      for (const e of changes.errors) log.error({ file: e.file }, `${e.file}: ${e.message}`);
      for (const obj of changes.set) this.pipeline.set(obj);
      for (const d of changes.deleted) this.pipeline.delete(d.kind, d.key);
    });
    this.pipeline.flush();
    log.info({ stream: this.streamAddress, admin: this.adminAddress, tls: Boolean(this.options.tls), expected: this.options.expectedProxies.length }, 'operator started');
  }

  async close(): Promise<void> {
    await this.watcher.close();
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

  private onVersion(version: RoutingVersion): void {
    this.metrics.compileSeconds.observe(version.compileMs / 1000);
    this.metrics.generation.set(version.generation);
    this.options.logger.info({
      generation: version.generation, root: version.root.slice(0, 12),
      upserts: version.changed.upserts.length, removals: version.changed.removals.length, compileMs: Math.round(version.compileMs * 100) / 100,
    }, 'new routing version');
    this.stream?.publish(version);
    this.checkConvergence();
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

  /** reportStatuses logs each object's problems once per change, in `vane validate` form. */
  private reportStatuses(statuses: ReadonlyMap<string, ObjectStatus>): void {
    const seen = new Set<string>();
    for (const [id, status] of statuses) {
      seen.add(id);
      const text = status.problems.map(formatProblem).join('\n');
      if (this.reported.get(id) === text) continue;
      this.reported.set(id, text);
      for (const p of status.problems) {
        const entry = { object: `${status.kind} ${status.key}`, reason: p.reason, field: p.field };
        if (p.severity === 'error') this.options.logger.error(entry, `${status.kind} ${status.key}: ${formatProblem(p)}`);
        else this.options.logger.warn(entry, `${status.kind} ${status.key}: ${formatProblem(p)}`);
      }
    }
    for (const id of this.reported.keys()) if (!seen.has(id)) this.reported.delete(id);
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
