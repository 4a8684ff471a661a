/**
 * ProxyWorker: one process's listeners and routing. Connections arrive on plain net
 * servers (shared through the cluster primary), which read what precedes HTTP — a PROXY
 * protocol header, and on the HTTPS port the ClientHello when some host is passed through —
 * then tunnel it to a pass-through backend or serve HTTP on it: on the HTTPS port after the
 * TLS server decrypted it, in both cases starting on the fast path (http/fast-path.ts), which hands
 * the connection to the node:http server for requests it does not take.
 *
 * Draining (shutdown or replacement): listeners close, every response from then on says
 * `Connection: close`, in-flight requests get up to the drain timeout, then idle keep-alive
 * connections are closed and whatever is left is destroyed.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer, connect, isIPv6, type BlockList, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { newRequestId } from '../http/request-id.ts';
import { findHost, normalizeHost, type RouteSpec } from '../../core/index.ts';
import type { Logger } from '../../lib/log.ts';
import { addTrusted, type OutlierOptions, type ProxyOptions } from '../options.ts';
import { Router, type RoutingState } from '../source/routing.ts';
import { Endpoints } from '../upstream/endpoints.ts';
import { TlsStore, type KeyPair } from '../listen/tls.ts';
import { WorkerMetrics, type RequestStats } from '../metrics.ts';
import { kClientInfo, type ClientInfo, type ExchangeContext } from '../http/exchange.ts';
import { GeneralExchange, UpgradeExchange } from '../http/general.ts';
import { tunnel } from '../http/tunnel.ts';
import { parseClientHello, parseProxyHeader, readPreamble, readSharedPreamble, type ProxiedAddress } from '../listen/preamble.ts';
import { closingErrorBytes } from '../http/replies.ts';
import { ClientConnection, type FastPathHost, type HandoffReason } from '../http/fast-path.ts';
import { acceptSharedReads, hasSharedReads, type HandedOffSocket } from '../listen/shared-reads.ts';
import type { WireDelta } from '../source/source.ts';

const PREAMBLE_TIMEOUT_MS = 10_000;
/** Idle limit of TLS pass-through tunnels (nginx's stream proxy_timeout default is 10 minutes). */
export const PASSTHROUGH_IDLE_MS = 600_000;
const PASSTHROUGH_CONNECT_MS = 5_000;
/** Time keep-alive clients get, once draining starts, to send their next request and learn to close. */
const DRAIN_LINGER_MS = 1_000;

export interface WorkerInit {
  options: ProxyOptions;
  ticketKeys: Buffer;
  fakeCertificate: KeyPair;
}

type Listener = 'http' | 'https';

function plainAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export class ProxyWorker implements ExchangeContext, FastPathHost {
  state: RoutingState | null = null;
  readonly metrics = new WorkerMetrics();
  readonly outlier: OutlierOptions;
  readonly retries: number;
  readonly httpsRedirectPort: number;
  draining = false;
  readonly unrouted: RequestStats;
  readonly maxHeaderBytes: number;
  readonly clientHeaderTimeoutMs: number;
  readonly clientKeepAliveTimeoutMs: number;

  private readonly options: ProxyOptions;
  private readonly log: Logger;
  private readonly trusted: BlockList;
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
  /** Terminates TLS; the decrypted connections then take the same HTTP paths as plain ones. */
  private readonly tlsServer: TlsServer;
  private readonly rawServers: { http: NetServer; https: NetServer };

  constructor(init: WorkerInit, log: Logger) {
    const o = init.options;
    this.options = o;
    this.log = log;
    this.outlier = o.outlier;
    this.retries = o.retries;
    this.httpsRedirectPort = o.httpsRedirectPort;
    this.maxHeaderBytes = o.maxHeaderBytes;
    this.clientHeaderTimeoutMs = o.clientHeaderTimeoutMs;
    this.clientKeepAliveTimeoutMs = o.clientKeepAliveTimeoutMs;
    this.trusted = addTrusted(o.trustedProxies);
    this.unrouted = this.metrics.requestStats('', '', 'none', null);
    this.endpoints = new Endpoints({ connections: o.upstreamConnections, keepAliveMs: o.upstreamKeepAliveMs });
    this.router = new Router(this.endpoints);
    this.tls = new TlsStore(init.fakeCertificate, () => { this.metrics.tlsContextsBuilt++; });

    const serverOptions = {
      maxHeaderSize: o.maxHeaderBytes,
      headersTimeout: o.clientHeaderTimeoutMs,
      requestTimeout: 0,
      keepAliveTimeout: o.clientKeepAliveTimeoutMs,
      noDelay: true,
    };
    this.httpServer = createHttpServer(serverOptions);
    const fake = init.fakeCertificate;
    this.tlsServer = createTlsServer({
      cert: fake.certificatePem,
      key: fake.privateKeyPem,
      ticketKeys: init.ticketKeys,
      ALPNProtocols: ['http/1.1'],
      SNICallback: (servername, cb) => cb(null, this.tls.contextFor(this.state, servername)),
    });
    this.tlsServer.on('secureConnection', (socket: TLSSocket) => this.onSecureConnection(socket));
    this.tlsServer.on('tlsClientError', (_err, socket: TLSSocket) => socket.destroy());
    this.httpServer.on('request', this.onRequest);
    this.httpServer.on('checkContinue', this.onCheckContinue);
    this.httpServer.on('upgrade', this.onUpgrade);
    this.httpServer.on('clientError', this.onClientError);
    // Sockets accepted here bypass the HTTP servers' own accept path: Nagle must be off here.
    this.rawServers = {
      http: createNetServer({ noDelay: true }, (s) => this.onConnection(s, 'http')),
      https: createNetServer({ noDelay: true }, (s) => this.onConnection(s, 'https')),
    };
  }

  /** listen opens both traffic listeners; in a cluster worker the primary shares one socket per port. */
  async listen(): Promise<{ http: number; https: number }> {
    const o = this.options;
    const open = (server: NetServer, port: number) => new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host: o.host, backlog: 4096 }, () => { server.off('error', reject); resolve((server.address() as { port: number }).port); });
    });
    const ports = { http: await open(this.rawServers.http, o.httpPort), https: await open(this.rawServers.https, o.httpsPort) };
    // TLS reads its own way; the plain listener reads into the shared buffer.
    this.metrics.sharedReads = acceptSharedReads(this.rawServers.http, (s) => this.onConnection(s, 'http'));
    return ports;
  }

  /** apply installs a routing update (and the certificates it carries). */
  apply(delta: WireDelta): void {
    const { state, secrets } = this.router.apply(delta);
    if (this.tls.update(this.router.resourceMap, secrets)) {
      const pair = this.tls.defaultPair;
      this.tlsServer.setSecureContext({ cert: pair.certificatePem, key: pair.privateKeyPem });
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

  routeStats(route: RouteSpec, backend: string): RequestStats {
    let pair = this.statsByRoute.get(route);
    if (!pair) { pair = []; this.statsByRoute.set(route, pair); }
    const side = route.canary === undefined ? 0 : backend === route.backend ? 1 : 2;
    let s = pair[side];
    if (!s) {
      s = this.metrics.requestStats(route.ingress, backend.slice('backend/'.length), side === 0 ? 'none' : side === 1 ? 'stable' : 'canary',
        this.options.metricsPerPath ? route.path : null);
      pair[side] = s;
    }
    return s;
  }

  begin(): void { this.active++; }

  end(): void {
    if (--this.active === 0 && this.idleWaiter) this.idleWaiter();
  }

  handoff(socket: Socket | HandedOffSocket, reason: HandoffReason): void {
    this.metrics.handoffs[reason]++;
    this.httpServer.emit('connection', socket);
  }

  connectionClosed(conn: ClientConnection): void { this.fastConnections.delete(conn); }

  // ---- connections ------------------------------------------------------------------

  private clientInfo(socket: Socket, listener: Listener, proxied: ProxiedAddress | null): ClientInfo {
    const address = plainAddress(proxied ? proxied.sourceAddress : socket.remoteAddress);
    const trusted = address !== '' && this.trusted.check(address, isIPv6(address) ? 'ipv6' : 'ipv4');
    return { address, trusted, port: String(proxied ? proxied.destinationPort : socket.localPort ?? 0), scheme: listener };
  }

  private onConnection(socket: Socket, listener: Listener): void {
    if (this.draining) { socket.destroy(); return; }
    this.metrics.activeConnections[listener]++;
    this.sockets.add(socket);
    socket.once('close', () => { this.metrics.activeConnections[listener]--; this.sockets.delete(socket); });
    socket.on('error', () => socket.destroy());
    if (this.options.proxyProtocol[listener] && hasSharedReads(socket)) {
      readSharedPreamble(socket, PREAMBLE_TIMEOUT_MS, 232, parseProxyHeader)
        .then(({ preamble, rest }) => this.accept(socket, listener, preamble.address, rest))
        .catch(() => socket.destroy());
    } else if (this.options.proxyProtocol[listener]) {
      readPreamble(socket, PREAMBLE_TIMEOUT_MS, 232, parseProxyHeader)
        .then((h) => this.accept(socket, listener, h.address))
        .catch(() => socket.destroy());
    } else {
      this.accept(socket, listener, null);
    }
  }

  /** accept serves a connection once its preamble, if any, is read; `rest`: bytes read past it (shared reads). */
  private accept(socket: Socket, listener: Listener, proxied: ProxiedAddress | null, rest: Buffer | null = null): void {
    const info = this.clientInfo(socket, listener, proxied);
    (socket as unknown as Record<symbol, ClientInfo>)[kClientInfo] = info;
    if (listener === 'http') { this.serveHttp(socket, info, rest); return; }
    if (this.state === null || this.state.passthrough.size === 0) { this.tlsServer.emit('connection', socket); return; }
    readPreamble(socket, PREAMBLE_TIMEOUT_MS, 18_432 + 5, parseClientHello)
      .then((hello) => {
        const state = this.state;
        const vhost = state && hello.servername ? findHost(state.table, normalizeHost(hello.servername)) : null;
        if (state && vhost?.spec.passthrough && state.passthrough.has(vhost.name)) this.passthrough(socket, state, vhost.spec.passthrough.backend);
        else this.tlsServer.emit('connection', socket);
      })
      .catch(() => socket.destroy());
  }

  /** serveHttp starts a client connection (plain, or decrypted TLS) on the fast path. */
  private serveHttp(socket: Socket, info: ClientInfo, rest: Buffer | null = null): void {
    // The fast path answers a request after the client half-closed, as node:http does.
    socket.allowHalfOpen = true;
    const conn = new ClientConnection(this, socket, info);
    this.fastConnections.add(conn);
    if (rest !== null) conn.received(rest);
  }

  private onSecureConnection(socket: TLSSocket): void {
    const parent = (socket as unknown as { _parent?: Record<symbol, ClientInfo> })._parent;
    const info = parent?.[kClientInfo] ?? this.clientInfo(socket, 'https', null);
    (socket as unknown as Record<symbol, ClientInfo>)[kClientInfo] = info;
    this.serveHttp(socket, info);
  }

  /** passthrough tunnels a TLS connection, undecrypted, to an endpoint of the backend. */
  private passthrough(socket: Socket, state: RoutingState, backend: string): void {
    const cluster = state.clusters.get(backend);
    const ep = cluster?.pick(false, performance.now(), null) ?? null;
    if (!cluster || !ep) { socket.destroy(); return; }
    const upstream = connect({ host: ep.address, port: ep.port, timeout: PASSTHROUGH_CONNECT_MS });
    const failed = () => {
      this.metrics.connectError(cluster.service);
      if (cluster.connectFailed(ep, performance.now(), this.outlier)) this.metrics.ejection(cluster.service);
      upstream.destroy();
      socket.destroy();
    };
    upstream.once('timeout', failed);
    upstream.once('error', failed);
    upstream.once('connect', () => {
      upstream.off('timeout', failed);
      upstream.off('error', failed);
      upstream.setTimeout(0);
      this.metrics.activeConnections.passthrough++;
      tunnel(socket, upstream, PASSTHROUGH_IDLE_MS, () => { this.metrics.activeConnections.passthrough--; });
    });
  }

  private info(req: IncomingMessage): ClientInfo {
    const s = req.socket as unknown as Record<symbol, ClientInfo> & { _parent?: Record<symbol, ClientInfo> };
    return s[kClientInfo] ?? s._parent?.[kClientInfo] ?? this.clientInfo(req.socket, 'https', null);
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    new GeneralExchange(this, req, res, this.info(req), false).start();
  };

  private readonly onCheckContinue = (req: IncomingMessage, res: ServerResponse): void => {
    new GeneralExchange(this, req, res, this.info(req), true).start();
  };

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    new UpgradeExchange(this, req, socket, head, this.info(req)).start();
  };

  private readonly onClientError = (err: Error & { code?: string }, socket: Duplex): void => {
    const code = err.code ?? '';
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
    await Promise.all([closeServer(this.rawServers.http), closeServer(this.rawServers.https)]);
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

/** closeServer stops accepting; its callback would wait for every connection, which drain handles itself. */
function closeServer(server: NetServer): Promise<void> {
  if (server.listening) server.close();
  return Promise.resolve();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitEmpty(set: Set<unknown>): Promise<void> {
  while (set.size > 0) await sleep(50);
}
