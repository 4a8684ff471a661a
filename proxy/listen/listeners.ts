/**
 * Listeners: a worker's traffic ports. Connections arrive on plain net servers (shared through
 * the cluster primary), which read what precedes HTTP — a PROXY protocol header, and on the
 * HTTPS port the ClientHello when some host is passed through — then tunnel the connection to
 * a pass-through backend, or hand it to the host for HTTP: on the HTTPS port once the TLS
 * server (node:tls, contexts from TlsStore per SNI name) decrypted it, as HTTP/2 when ALPN chose h2.
 *
 * Each connection's ClientInfo (address, PROXY protocol aware, and whether it is trusted) is
 * computed once here and kept on the socket for node:http's requests (`clientInfoOf`).
 *
 * With --max-connections-per-client, connections are counted per untrusted client address
 * (after the PROXY header, so the address is the client's) in this worker; one over the
 * limit is served nothing but a 503 (nginx's limit_conn answers the request too, rather than
 * resetting it), or closed when it is a TLS pass-through. Trusted proxies are not counted:
 * all their clients share their address.
 */
import { connect, createServer as createNetServer, isIPv6, type BlockList, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TlsOptions, type TLSSocket } from 'node:tls';
import { constants as cryptoConstants } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { findHost, normalizeHost } from '../../core/index.ts';
import { addTrusted, tlsPolicyOptions, type OutlierOptions, type ProxyOptions } from '../options.ts';
import type { RoutingState } from '../source/routing.ts';
import type { WorkerMetrics } from '../metrics.ts';
import type { KeyPair, TlsStore } from './tls.ts';
import { parseClientHello, parseProxyHeader, readPreamble, readSharedPreamble, type ProxiedAddress } from './preamble.ts';
import { acceptSharedReads, hasSharedReads } from './shared-reads.ts';
import { tunnel } from './tunnel.ts';
import { readClientCertificate, type ClientCertificate } from './client-cert.ts';

const PREAMBLE_TIMEOUT_MS = 10_000;
/** Idle limit of TLS pass-through tunnels (nginx's stream proxy_timeout default is 10 minutes). */
export const PASSTHROUGH_IDLE_MS = 600_000;
const PASSTHROUGH_CONNECT_MS = 5_000;

/** ClientInfo is computed once per connection: the client address (PROXY protocol aware) and whether it is trusted. */
export interface ClientInfo {
  address: string;
  trusted: boolean;
  /** Port the client connected to, for X-Forwarded-Port, as the header carries it. */
  port: string;
  scheme: 'http' | 'https';
  /** The client already has --max-connections-per-client others: its request gets 503. */
  overLimit: boolean;
  /** TLS connections: the virtual host the SNI name chose at the handshake (null: none); undefined for plain ones. */
  tlsHost?: string | null;
  /** Connections to hosts that ask for client certificates: what the handshake showed. */
  clientCert?: ClientCertificate;
}

const kClientInfo = Symbol('vane.clientInfo');

type Listener = 'http' | 'https';

/** ListenerHost is what the listeners hand connections to: the worker. */
export interface ListenerHost {
  readonly state: RoutingState | null;
  readonly draining: boolean;
  readonly metrics: WorkerMetrics;
  readonly outlier: OutlierOptions;
  /** serveHttp takes a connection, plain or decrypted, once what precedes HTTP is read; `rest`: bytes read past it. */
  serveHttp(socket: Socket, info: ClientInfo, rest: Buffer | null): void;
  /** serveH2 takes a TLS connection that chose h2 by ALPN. */
  serveH2(socket: TLSSocket, info: ClientInfo): void;
  /** track keeps a client socket until it closes, for the drain. */
  track(socket: Socket): void;
}

function plainAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export class Listeners {
  private readonly options: ProxyOptions;
  private readonly host: ListenerHost;
  private readonly trusted: BlockList;
  /** --proxy-protocol-peers: the only connections whose PROXY header is read. */
  private readonly proxyPeers: BlockList;
  /** Terminates TLS; the decrypted connections then take the same HTTP paths as plain ones. */
  private readonly tlsServer: TlsServer;
  /**
   * Terminates TLS for hosts that ask for client certificates (node:tls asks per server, not
   * per SNI context): chosen by the ClientHello's SNI, it issues no session tickets, so every
   * connection to such a host shows its certificate in a full handshake.
   */
  private readonly clientAuthServer: TlsServer;
  private readonly rawServers: { http: NetServer; https: NetServer };
  /** Open connections per counted client address. */
  private readonly perClient = new Map<string, number>();

  constructor(options: ProxyOptions, ticketKeys: Buffer, tls: TlsStore, host: ListenerHost) {
    this.options = options;
    this.host = host;
    this.trusted = addTrusted(options.trustedProxies);
    this.proxyPeers = addTrusted(options.proxyProtocolPeers, '--proxy-protocol-peers');
    const fake = tls.defaultPair;
    const common: TlsOptions = {
      ...tlsPolicyOptions(options.tls),
      cert: fake.certificatePem,
      key: fake.privateKeyPem,
      // h2 first: a client offering both gets HTTP/2, as from nginx and Envoy.
      ALPNProtocols: options.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
      SNICallback: (servername, cb) => cb(null, tls.contextFor(this.host.state, servername)),
    };
    this.tlsServer = createTlsServer({ ...common, ticketKeys });
    // The verdict is the request's (client-cert.ts): a client without a valid certificate gets an HTTP answer saying why.
    this.clientAuthServer = createTlsServer({ ...common, requestCert: true, rejectUnauthorized: false, secureOptions: cryptoConstants.SSL_OP_NO_TICKET });
    for (const [server, clientAuth] of [[this.tlsServer, false], [this.clientAuthServer, true]] as const) {
      server.on('secureConnection', (socket: TLSSocket) => this.onSecureConnection(socket, clientAuth));
      server.on('tlsClientError', (_err, socket: TLSSocket) => socket.destroy());
    }
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
    this.host.metrics.sharedReads = acceptSharedReads(this.rawServers.http, (s) => this.onConnection(s, 'http'));
    return ports;
  }

  /** setDefaultCertificate is the certificate for clients without SNI or for unknown names. */
  setDefaultCertificate(pair: KeyPair): void {
    const policy = tlsPolicyOptions(this.options.tls);
    this.tlsServer.setSecureContext({ ...policy, cert: pair.certificatePem, key: pair.privateKeyPem });
    this.clientAuthServer.setSecureContext({ ...policy, cert: pair.certificatePem, key: pair.privateKeyPem, secureOptions: cryptoConstants.SSL_OP_NO_TICKET });
  }

  /** close stops accepting; connections are the drain's. */
  close(): void {
    for (const server of [this.rawServers.http, this.rawServers.https]) if (server.listening) server.close();
  }

  /** clientInfoOf is the ClientInfo of a socket accepted here (or of the TLS socket over one). */
  clientInfoOf(socket: Socket): ClientInfo {
    const s = socket as unknown as Record<symbol, ClientInfo> & { _parent?: Record<symbol, ClientInfo> };
    return s[kClientInfo] ?? s._parent?.[kClientInfo] ?? this.clientInfo(socket, 'https', null);
  }

  private clientInfo(socket: Socket, listener: Listener, proxied: ProxiedAddress | null): ClientInfo {
    const address = plainAddress(proxied ? proxied.sourceAddress : socket.remoteAddress);
    const trusted = address !== '' && this.trusted.check(address, isIPv6(address) ? 'ipv6' : 'ipv4');
    return { address, trusted, port: String(proxied ? proxied.destinationPort : socket.localPort ?? 0), scheme: listener, overLimit: false };
  }

  /** count adds the connection to its client's; true when that puts the client over the limit. */
  private count(socket: Socket, info: ClientInfo): boolean {
    const limit = this.options.maxConnectionsPerClient;
    if (limit === 0 || info.trusted || info.address === '') return false;
    const address = info.address;
    const n = (this.perClient.get(address) ?? 0) + 1;
    if (n > limit) {
      this.host.metrics.clientLimitRefusals++;
      return true;
    }
    this.perClient.set(address, n);
    socket.once('close', () => {
      const left = this.perClient.get(address)! - 1;
      if (left === 0) this.perClient.delete(address); else this.perClient.set(address, left);
    });
    return false;
  }

  private onConnection(socket: Socket, listener: Listener): void {
    const host = this.host;
    if (host.draining) { socket.destroy(); return; }
    host.metrics.activeConnections[listener]++;
    host.track(socket);
    socket.once('close', () => { host.metrics.activeConnections[listener]--; });
    socket.on('error', () => socket.destroy());
    // Anyone else who sends a PROXY header sends a malformed HTTP request or TLS record.
    const proxied = this.options.proxyProtocol[listener] && this.proxyPeer(socket);
    if (proxied && hasSharedReads(socket)) {
      readSharedPreamble(socket, PREAMBLE_TIMEOUT_MS, 232, parseProxyHeader)
        .then(({ preamble, rest }) => this.accept(socket, listener, preamble.address, rest))
        .catch(() => socket.destroy());
    } else if (proxied) {
      readPreamble(socket, PREAMBLE_TIMEOUT_MS, 232, parseProxyHeader)
        .then((h) => this.accept(socket, listener, h.address))
        .catch(() => socket.destroy());
    } else {
      this.accept(socket, listener, null);
    }
  }

  private proxyPeer(socket: Socket): boolean {
    const address = plainAddress(socket.remoteAddress);
    return address !== '' && this.proxyPeers.check(address, isIPv6(address) ? 'ipv6' : 'ipv4');
  }

  /** accept serves a connection once its preamble, if any, is read; `rest`: bytes read past it (shared reads). */
  private accept(socket: Socket, listener: Listener, proxied: ProxiedAddress | null, rest: Buffer | null = null): void {
    const info = this.clientInfo(socket, listener, proxied);
    info.overLimit = this.count(socket, info);
    (socket as unknown as Record<symbol, ClientInfo>)[kClientInfo] = info;
    if (listener === 'http') { this.host.serveHttp(socket, info, rest); return; }
    const state = this.host.state;
    if (state === null || (state.passthrough.size === 0 && state.clientAuth.size === 0)) { this.tlsServer.emit('connection', socket); return; }
    readPreamble(socket, PREAMBLE_TIMEOUT_MS, 18_432 + 5, parseClientHello)
      .then((hello) => {
        const now = this.host.state;
        const vhost = now && hello.servername ? findHost(now.table, normalizeHost(hello.servername)) : null;
        if (now && vhost && now.clientAuth.has(vhost.name)) this.clientAuthServer.emit('connection', socket);
        else if (!now || !vhost?.spec.passthrough || !now.passthrough.has(vhost.name)) this.tlsServer.emit('connection', socket);
        else if (info.overLimit) socket.destroy();
        else this.passthrough(socket, now, vhost.spec.passthrough.backend);
      })
      .catch(() => socket.destroy());
  }

  private onSecureConnection(socket: TLSSocket, clientAuth: boolean): void {
    const parent = (socket as unknown as { _parent?: Record<symbol, ClientInfo> })._parent;
    const info = parent?.[kClientInfo] ?? this.clientInfo(socket, 'https', null);
    const state = this.host.state;
    const servername = socket.servername;
    info.tlsHost = state && typeof servername === 'string' && servername !== '' ? findHost(state.table, normalizeHost(servername))?.name ?? null : null;
    if (clientAuth) info.clientCert = readClientCertificate(socket);
    (socket as unknown as Record<symbol, ClientInfo>)[kClientInfo] = info;
    if (socket.alpnProtocol === 'h2') this.host.serveH2(socket, info);
    else this.host.serveHttp(socket, info, null);
  }

  /** passthrough tunnels a TLS connection, undecrypted, to an endpoint of the backend. */
  private passthrough(socket: Socket, state: RoutingState, backend: string): void {
    const metrics = this.host.metrics;
    const cluster = state.clusters.get(backend);
    const ep = cluster?.pick(false, performance.now(), null) ?? null;
    if (!cluster || !ep) { socket.destroy(); return; }
    const upstream = connect({ host: ep.address, port: ep.port, timeout: PASSTHROUGH_CONNECT_MS });
    const failed = () => {
      metrics.connectError(cluster.service);
      if (cluster.connectFailed(ep, performance.now(), this.host.outlier)) metrics.ejection(cluster.service);
      upstream.destroy();
      socket.destroy();
    };
    upstream.once('timeout', failed);
    upstream.once('error', failed);
    upstream.once('connect', () => {
      upstream.off('timeout', failed);
      upstream.off('error', failed);
      upstream.setTimeout(0);
      metrics.activeConnections.passthrough++;
      tunnel(socket, upstream, PASSTHROUGH_IDLE_MS, () => { metrics.activeConnections.passthrough--; });
    });
  }
}
