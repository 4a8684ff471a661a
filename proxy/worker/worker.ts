/**
 * ProxyWorker: a worker process's composition root. It wires the listeners (listen/), which
 * hand it connections once what precedes HTTP is read, to the HTTP paths (http/): every
 * connection starts on the fast path, which hands it to the node:http server for requests it
 * does not take. It applies routing updates (source/routing.ts) and lends every exchange its
 * context: routing state, metrics, options.
 *
 * Draining (shutdown or replacement): listeners close, every response from then on says
 * `Connection: close`, in-flight requests get up to the drain timeout, then idle keep-alive
 * connections are closed and whatever is left is destroyed.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { newRequestId } from '../http/request-id.ts';
import type { RouteSpec } from '../../core/index.ts';
import type { Logger } from '../../lib/log.ts';
import { tlsPolicyOptions, type HstsDefaults, type OutlierOptions, type ProxyOptions } from '../options.ts';
import { Router, type RoutingState } from '../source/routing.ts';
import { Endpoints } from '../upstream/endpoints.ts';
import { TlsStore, type KeyPair } from '../listen/tls.ts';
import { WorkerMetrics, type Protocol, type RequestStats } from '../metrics.ts';
import type { ExchangeContext } from '../http/exchange.ts';
import { acceptsUpgrade, connectionEnding, GeneralExchange, UpgradeExchange } from '../http/general.ts';
import { Listeners, type ClientInfo, type ListenerHost } from '../listen/listeners.ts';
import { closingErrorBytes } from '../http/replies.ts';
import { ClientConnection, type FastPathHost, type HandoffReason } from '../http/fast-path.ts';
import { H2Front, type H2Host } from '../http/h2.ts';
import type { HandedOffSocket } from '../listen/shared-reads.ts';
import type { WireDelta } from '../source/source.ts';

/** Time keep-alive clients get, once draining starts, to send their next request and learn to close. */
const DRAIN_LINGER_MS = 1_000;

export interface WorkerInit {
  options: ProxyOptions;
  ticketKeys: Buffer;
  fakeCertificate: KeyPair;
}

export class ProxyWorker implements ExchangeContext, FastPathHost, ListenerHost, H2Host {
  state: RoutingState | null = null;
  readonly metrics = new WorkerMetrics();
  readonly outlier: OutlierOptions;
  readonly retries: number;
  readonly httpsRedirectPort: number;
  readonly hsts: HstsDefaults;
  draining = false;
  readonly unrouted: RequestStats;
  readonly unroutedH2: RequestStats;
  readonly maxHeaderBytes: number;
  readonly clientHeaderTimeoutMs: number;
  readonly clientBodyTimeoutMs: number;
  readonly clientBodyTotalTimeoutMs: number;
  readonly clientKeepAliveTimeoutMs: number;
  readonly h2c: boolean;

  private readonly options: ProxyOptions;
  private readonly log: Logger;
  private readonly endpoints: Endpoints;
  private readonly router: Router;
  private readonly tls: TlsStore;
  private readonly statsByRoute = new WeakMap<RouteSpec, RequestStats[]>();
  /** Upgraded connections to canary backends, by backend: closed when the split is rolled back. */
  private readonly canaryTunnels = new Map<string, Set<() => void>>();
  private readonly sockets = new Set<Duplex>();
  /** Plain-HTTP connections the fast path owns (the rest belong to the node:http servers). */
  private readonly fastConnections = new Set<ClientConnection>();
  private active = 0;
  private idleWaiter: (() => void) | null = null;
  private readonly httpServer: HttpServer;
  /** HTTP/2 clients (null with --no-http2). */
  private readonly h2: H2Front | null;
  private readonly listeners: Listeners;

  constructor(init: WorkerInit, log: Logger) {
    const o = init.options;
    this.options = o;
    this.log = log;
    this.outlier = o.outlier;
    this.retries = o.retries;
    this.httpsRedirectPort = o.httpsRedirectPort;
    this.hsts = o.hsts;
    this.maxHeaderBytes = o.maxHeaderBytes;
    this.clientHeaderTimeoutMs = o.clientHeaderTimeoutMs;
    this.clientBodyTimeoutMs = o.clientBodyTimeoutMs;
    this.clientBodyTotalTimeoutMs = o.clientBodyTotalTimeoutMs;
    this.clientKeepAliveTimeoutMs = o.clientKeepAliveTimeoutMs;
    this.h2c = o.h2c;
    this.unrouted = this.metrics.requestStats('', '', 'none', null);
    this.unroutedH2 = this.metrics.requestStats('', '', 'none', null, 'h2');
    this.endpoints = new Endpoints({
      connections: o.upstreamConnections, keepAliveMs: o.upstreamKeepAliveMs, queue: o.upstreamQueue, queueTimeoutMs: o.upstreamQueueTimeoutMs,
      waiting: this.metrics.upstreamWaiting,
    });
    this.router = new Router(this.endpoints);
    this.tls = new TlsStore(init.fakeCertificate, () => { this.metrics.tlsContextsBuilt++; }, tlsPolicyOptions(o.tls));

    const serverOptions = {
      maxHeaderSize: o.maxHeaderBytes,
      headersTimeout: o.clientHeaderTimeoutMs,
      requestTimeout: 0,
      keepAliveTimeout: o.clientKeepAliveTimeoutMs,
      noDelay: true,
      shouldUpgradeCallback: acceptsUpgrade,
    };
    this.httpServer = createHttpServer(serverOptions);
    this.httpServer.on('request', this.onRequest);
    this.httpServer.on('checkContinue', this.onCheckContinue);
    this.httpServer.on('upgrade', this.onUpgrade);
    this.httpServer.on('clientError', this.onClientError);
    this.h2 = o.http2 ? new H2Front(this, o.http2MaxConcurrentStreams) : null;
    this.listeners = new Listeners(o, init.ticketKeys, this.tls, this);
  }

  /** listen opens both traffic listeners. */
  listen(): Promise<{ http: number; https: number }> { return this.listeners.listen(); }

  /** apply installs a routing update (and the certificates it carries). */
  apply(delta: WireDelta): void {
    const { state, secrets } = this.router.apply(delta);
    if (this.tls.update(this.router.resourceMap, secrets)) {
      this.listeners.setDefaultCertificate(this.tls.defaultPair);
    }
    this.state = state;
    this.closeRetiredCanaryTunnels();
    this.metrics.routingGeneration = state.generation;
    this.metrics.routingAppliedAtMs = Date.now();
    this.metrics.routingResources = this.router.resourceMap.size;
  }

  /**
   * closeRetiredCanaryTunnels ends upgraded connections (WebSocket and the like) to canary
   * backends that no route splits to any more — a rolled-back canary — so that no client
   * keeps talking to it once the fleet serves the rollback.
   */
  private closeRetiredCanaryTunnels(): void {
    if (this.canaryTunnels.size === 0) return;
    const live = new Set<string>();
    for (const r of this.router.resourceMap.values()) {
      if (r.resource.type !== 'vhost') continue;
      for (const route of r.resource.spec.routes) if (route.canary) live.add(route.canary.backend);
    }
    for (const [backend, closers] of this.canaryTunnels) {
      if (live.has(backend)) continue;
      for (const close of [...closers]) close();
      this.canaryTunnels.delete(backend);
    }
  }

  trackCanaryTunnel(backend: string, close: () => void): () => void {
    let closers = this.canaryTunnels.get(backend);
    if (!closers) { closers = new Set(); this.canaryTunnels.set(backend, closers); }
    closers.add(close);
    return () => {
      const set = this.canaryTunnels.get(backend);
      set?.delete(close);
      if (set?.size === 0) this.canaryTunnels.delete(backend);
    };
  }

  // ---- ExchangeContext ------------------------------------------------------------

  routeStats(route: RouteSpec, backend: string, protocol: Protocol): RequestStats {
    let pair = this.statsByRoute.get(route);
    if (!pair) { pair = []; this.statsByRoute.set(route, pair); }
    const side = route.canary === undefined ? 0 : backend === route.backend ? 1 : 2;
    const slot = protocol === 'h2' ? side + 3 : side;
    let s = pair[slot];
    if (!s) {
      s = this.metrics.requestStats(route.ingress, backend.slice('backend/'.length), side === 0 ? 'none' : side === 1 ? 'stable' : 'canary',
        this.options.metricsPerPath ? route.path : null, protocol);
      pair[slot] = s;
    }
    return s;
  }

  begin(): void { this.active++; }

  end(): void {
    if (--this.active === 0 && this.idleWaiter) this.idleWaiter();
  }

  handoff(socket: Socket | HandedOffSocket, reason: HandoffReason): void {
    this.metrics.handoffs[reason]++;
    if (reason === 'h2c') this.h2!.serve(socket, this.listeners.clientInfoOf(socket as Socket));
    else this.httpServer.emit('connection', socket);
  }

  connectionClosed(conn: ClientConnection): void { this.fastConnections.delete(conn); }

  // ---- connections ------------------------------------------------------------------

  track(socket: Socket | Duplex): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** serveHttp starts a client connection (plain, or decrypted TLS) on the fast path. */
  serveHttp(socket: Socket, info: ClientInfo, rest: Buffer | null): void {
    // The fast path answers a request after the client half-closed, as node:http does.
    socket.allowHalfOpen = true;
    const conn = new ClientConnection(this, socket, info);
    this.fastConnections.add(conn);
    if (rest !== null) conn.received(rest);
  }

  /** serveH2 runs HTTP/2 on a TLS connection whose client chose h2 (offered only when enabled). */
  serveH2(socket: TLSSocket, info: ClientInfo): void {
    if (this.h2 === null) { socket.destroy(); return; }
    this.h2.serve(socket, info);
  }

  private info(req: IncomingMessage): ClientInfo { return this.listeners.clientInfoOf(req.socket); }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    if (connectionEnding(req.socket)) return;
    new GeneralExchange(this, req, res, this.info(req), false).start();
  };

  private readonly onCheckContinue = (req: IncomingMessage, res: ServerResponse): void => {
    if (connectionEnding(req.socket)) return;
    new GeneralExchange(this, req, res, this.info(req), true).start();
  };

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (connectionEnding(socket)) { socket.end(); return; }
    this.track(socket);
    new UpgradeExchange(this, req, socket, head, this.info(req)).start();
  };

  private readonly onClientError = (err: Error & { code?: string }, socket: Duplex): void => {
    const code = err.code ?? '';
    // The proxy's closing reply is being written: nothing after it is answered.
    if (connectionEnding(socket)) { socket.end(); return; }
    const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    this.unrouted.record(status, 0);
    if (socket.writable && code !== 'ECONNRESET') {
      socket.end(closingErrorBytes(status, newRequestId(), status === 431 ? 'request header fields too large' : status === 408 ? 'request head not received in time' : 'malformed request'));
    } else {
      socket.destroy();
    }
  };

  // ---- draining ---------------------------------------------------------------------

  /** drain stops accepting and lets in-flight requests finish within timeoutMs. */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    const deadline = Date.now() + timeoutMs;
    this.listeners.close();
    this.h2?.drain();
    await sleep(Math.min(DRAIN_LINGER_MS, timeoutMs));
    if (this.active > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.idleWaiter = () => { clearTimeout(timer); resolve(); };
      });
    }
    this.httpServer.closeIdleConnections();
    for (const c of this.fastConnections) c.closeIfIdle();
    const left = deadline - Date.now();
    if (this.sockets.size > 0 && left > 0) await Promise.race([sleep(Math.min(left, 1_000)), waitEmpty(this.sockets)]);
    for (const s of this.sockets) s.destroy();
    await this.endpoints.destroyAll();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitEmpty(set: Set<unknown>): Promise<void> {
  while (set.size > 0) await sleep(50);
}
