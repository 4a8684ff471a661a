/**
 * One proxied request on the general path (node:http, undici): routing through core's
 * match(), header rewriting, upstream dispatch through undici with this object as the
 * handler, retries, errors. BaseExchange is shared with the fast path (fast-path.ts). An
 * Exchange is the MatchRequest core reads (header() and cookie() are methods, so routing
 * needs no per-request closures) and the undici DispatchHandler (one object per request).
 *
 * Retries: only idempotent requests without a body, only when the upstream connection
 * failed before the request was written (undici had not called onRequestStart), on another
 * endpoint when there is one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Transform, type TransformCallback } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { newRequestId } from './request-id.ts';
import { match, type Decision, type MatchRequest, type RouteSpec } from '../core/index.ts';
import type { RoutingState } from './routing.ts';
import { Cluster, type Endpoint } from './upstream.ts';
import type { RequestStats, WorkerMetrics } from './metrics.ts';
import type { OutlierOptions } from './options.ts';
import { errorBody, filterResponseHeaders, inspectHeaders, rawErrorResponse, STATUS_TEXT, type HeaderFacts } from './headers.ts';

/** ClientInfo is computed once per connection: the client address (PROXY protocol aware) and whether it is trusted. */
export interface ClientInfo {
  address: string;
  trusted: boolean;
  /** Port the client connected to, for X-Forwarded-Port, as the header carries it. */
  port: string;
  scheme: 'http' | 'https';
}

export const kClientInfo = Symbol('vane.clientInfo');
const kExchange = Symbol('vane.exchange');

/** ExchangeContext is what a worker lends every exchange. */
export interface ExchangeContext {
  readonly state: RoutingState | null;
  readonly metrics: WorkerMetrics;
  readonly outlier: OutlierOptions;
  readonly retries: number;
  readonly httpsRedirectPort: number;
  readonly draining: boolean;
  routeStats(route: RouteSpec, service: string): RequestStats;
  readonly unrouted: RequestStats;
  begin(): void;
  end(): void;
  /**
   * trackCanaryTunnel registers an upgraded connection to a canary backend, so that a
   * rollback (the split gone from the routing) closes it; it returns the unregister call.
   */
  trackCanaryTunnel(backend: string, close: () => void): () => void;
}

/** The sticky-canary cookie: the client's bucket in [0, 100), shared by every Canary. */
export const STICKY_COOKIE = 'vane_bucket';
const STICKY_MAX_AGE_SEC = 30 * 86_400;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'ETIMEDOUT', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED']);
const BODY_TOO_LARGE = 'EVANE_BODY_TOO_LARGE';

function validRequestId(v: string): boolean {
  if (v.length === 0 || v.length > 200) return false;
  for (let i = 0; i < v.length; i++) { const c = v.charCodeAt(i); if (c < 0x21 || c > 0x7e) return false; }
  return true;
}

/** BodyLimit passes a chunked request body through and fails once it exceeds the route's limit. */
class BodyLimit extends Transform {
  private seen = 0;
  private readonly limit: number;
  constructor(limit: number) { super(); this.limit = limit; }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) { cb(Object.assign(new Error('request body exceeds the limit'), { code: BODY_TOO_LARGE })); return; }
    cb(null, chunk);
  }
}

/** RequestLine is what an exchange reads of a request head, from node:http or the fast path's parser. */
export interface RequestLine {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly httpVersionMinor: number;
}

export type Prepared = { kind: 'error'; status: number; detail: string; extra?: string[] } | { kind: 'redirect'; location: string } | { kind: 'forward' };
/** FORWARD is the one 'forward' answer, not an object per request. */
const FORWARD: Prepared = Object.freeze({ kind: 'forward' });

/** The fast path sends the client's own header lines and never fills `headers`. */
const NO_HEADERS = Object.freeze([]) as unknown as string[];

/** BaseExchange holds what plain and upgrade exchanges share: request inspection and routing. */
export abstract class BaseExchange implements MatchRequest {
  host: string | undefined = undefined;
  target: string;
  scheme: 'http' | 'https';
  bucket = 0;
  httpsPort: number;

  protected readonly ctx: ExchangeContext;
  protected readonly method: string;
  private readonly request: RequestLine;
  protected readonly versionMinor: number;
  protected readonly client: ClientInfo;
  protected readonly startMs = performance.now();
  protected requestId = '';
  protected decision: Decision | null = null;
  protected cluster: Cluster | null = null;
  protected endpoint: Endpoint | null = null;
  protected stats: RequestStats;
  /** The general path's upstream headers, flat `[name, value, …]` for undici (set by prepareRaw). */
  protected headers: string[] = NO_HEADERS;
  /** The forwarding headers' values the upstream gets (prepare). */
  protected forwardedFor = '';
  protected forwardedProto = '';
  protected forwardedPort = '';
  protected realIp = '';
  protected forwardedHost: string | null = null;
  protected controller: Dispatcher.DispatchController | null = null;
  /** The current attempt wrote (some of) the request upstream: it is no longer safe to retry. */
  protected requestSent = false;
  protected attempts = 0;
  protected done = false;
  protected clientGone = false;
  protected hasBody = false;
  protected chunked = false;
  protected contentLength = -1;
  protected setCookie: string | null = null;
  /** Every Cookie header's value, joined with "; " (RFC 6265 §5.4's one cookie string). */
  private cookies: string | null = null;
  private stickyFromCookie = false;
  protected upgradeProtocol: string | null = null;

  constructor(ctx: ExchangeContext, head: RequestLine, client: ClientInfo) {
    this.ctx = ctx;
    this.method = head.method;
    this.request = head;
    this.versionMinor = head.httpVersionMinor;
    this.client = client;
    this.target = head.url;
    this.scheme = client.scheme;
    this.httpsPort = ctx.httpsRedirectPort;
    this.stats = ctx.unrouted;
  }

  /** header is core's header lookup: first value by lower-case name. */
  header(name: string): string | undefined {
    const raw = this.request.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      if (n.length === name.length && n.toLowerCase() === name) return raw[i + 1];
    }
    return undefined;
  }

  /** cookie is core's cookie lookup over every Cookie header. */
  cookie(name: string): string | undefined {
    const v = this.cookies;
    if (v === null) return undefined;
    for (let from = 0; ;) {
      const at = v.indexOf(name, from);
      if (at < 0) return undefined;
      const end = at + name.length;
      const before = at === 0 ? 59 : v.charCodeAt(at - 1);
      if ((before === 59 || before === 32) && v.charCodeAt(end) === 61) {
        const stop = v.indexOf(';', end + 1);
        return v.slice(end + 1, stop < 0 ? v.length : stop).trim();
      }
      from = end;
    }
  }

  /**
   * prepareRaw is prepare for the general path: it reads node's raw headers and puts the
   * upstream's headers, forwarding headers last, in `headers`.
   */
  protected prepareRaw(): Prepared {
    const out: string[] = [];
    this.headers = out;
    const p = this.prepare(inspectHeaders(this.request.rawHeaders, out));
    out.push('x-forwarded-for', this.forwardedFor, 'x-forwarded-proto', this.forwardedProto, 'x-forwarded-port', this.forwardedPort,
      'x-real-ip', this.realIp, 'x-request-id', this.requestId);
    if (this.forwardedHost !== null) out.push('x-forwarded-host', this.forwardedHost);
    return p;
  }

  /** prepare checks the request's framing, sets the forwarding headers' values and routes it. */
  protected prepare(f: HeaderFacts): Prepared {
    this.host = f.host;
    this.contentLength = f.contentLength;
    this.chunked = f.chunked;
    this.upgradeProtocol = f.upgrade;
    this.cookies = f.cookies;
    this.requestId = f.requestId !== null && validRequestId(f.requestId) ? f.requestId : newRequestId();
    // Framing the parser let through but a proxy must not forward (RFC 9112 §6.1, §6.3).
    if (f.hosts > 1) return { kind: 'error', status: 400, detail: 'more than one Host header' };
    if (f.lengths > 1) return { kind: 'error', status: 400, detail: 'more than one Content-Length header' };
    if (this.chunked && (f.lengths > 0 || this.versionMinor === 0)) return { kind: 'error', status: 400, detail: 'Transfer-Encoding with Content-Length or on HTTP/1.0' };
    this.hasBody = this.chunked || this.contentLength > 0;

    // Incoming forwarding headers count only from trusted proxies.
    const addr = this.client.address;
    if (this.client.trusted) {
      this.forwardedFor = f.forwardedFor !== null ? f.forwardedFor + ', ' + addr : addr;
      this.forwardedProto = f.forwardedProto ?? this.scheme;
      this.forwardedPort = f.forwardedPort ?? this.client.port;
      this.realIp = f.realIp ?? addr;
      this.forwardedHost = f.forwardedHost ?? f.host ?? null;
    } else {
      this.forwardedFor = addr;
      this.forwardedProto = this.scheme;
      this.forwardedPort = this.client.port;
      this.realIp = addr;
      this.forwardedHost = f.host ?? null;
    }

    if (this.cookies !== null) {
      const sticky = this.cookie(STICKY_COOKIE);
      const b = sticky === undefined ? NaN : Number(sticky);
      if (b >= 0 && b < 100) { this.bucket = b; this.stickyFromCookie = true; } else this.bucket = Math.random() * 100;
    } else {
      this.bucket = Math.random() * 100;
    }

    const state = this.ctx.state;
    if (state === null) return { kind: 'error', status: 503, detail: 'routing not loaded yet' };
    const d = match(state.table, this);
    this.decision = d;
    if (d.result === 'not-found') return { kind: 'error', status: 404, detail: 'no route for this host and path' };
    if (d.result === 'bad-request') return { kind: 'error', status: 400, detail: 'malformed request path' };
    if (d.result === 'redirect') return { kind: 'redirect', location: d.location! };
    const route = d.route!;
    const backend = d.backend!;
    this.stats = this.ctx.routeStats(route, backend);
    if (route.maxBodyBytes > 0 && this.contentLength > route.maxBodyBytes) {
      return { kind: 'error', status: 413, detail: `request body larger than ${route.maxBodyBytes} bytes` };
    }
    const cluster = state.clusters.get(backend);
    if (cluster === undefined || cluster.candidates.length === 0) {
      return { kind: 'error', status: 503, detail: `no ready endpoints for service ${backend.slice('backend/'.length)}` };
    }
    this.cluster = cluster;
    if (d.compiled?.canary?.spec.sticky && !this.stickyFromCookie) {
      this.setCookie = `${STICKY_COOKIE}=${this.bucket.toFixed(3)}; Path=/; Max-Age=${STICKY_MAX_AGE_SEC}; SameSite=Lax; HttpOnly`;
    }
    return FORWARD;
  }

  /** replayable: an idempotent request without a body, safe to send again. */
  protected replayable(): boolean {
    return !this.hasBody && IDEMPOTENT.has(this.method);
  }

  /** retryable: a replayable request whose connection failed before it was written. */
  protected retryable(err: Error): boolean {
    return !this.requestSent && this.replayable() && this.attempts <= this.ctx.retries
      && CONNECT_ERRORS.has((err as { code?: string }).code ?? '');
  }

  /** upstreamFailed does the outlier bookkeeping; true when the request should be retried. */
  protected upstreamFailed(err: Error): boolean {
    const ep = this.endpoint!;
    ep.inflight--;
    const code = (err as { code?: string }).code ?? '';
    if (!this.requestSent && CONNECT_ERRORS.has(code) && this.cluster !== null) {
      this.ctx.metrics.connectError(this.cluster.service);
      if (this.cluster.connectFailed(ep, performance.now(), this.ctx.outlier)) this.ctx.metrics.ejection(this.cluster.service);
    }
    if (this.clientGone || !this.retryable(err)) return false;
    this.ctx.metrics.retry(this.cluster!.service);
    return true;
  }

  protected statusFor(err: Error): number {
    const code = (err as { code?: string }).code;
    if (code === BODY_TOO_LARGE) return 413;
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 504;
    return 502;
  }

  protected finish(status: number): void {
    if (this.done) return;
    this.done = true;
    this.stats.record(status, (performance.now() - this.startMs) / 1000);
    this.ctx.end();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    this.requestSent = true;
    if (this.clientGone) controller.abort(new Error('client went away'));
  }
}

/** Exchange is a plain HTTP request/response. */
export class Exchange extends BaseExchange implements Dispatcher.DispatchHandler {
  private readonly req: IncomingMessage;
  private readonly res: ServerResponse;
  private readonly expectContinue: boolean;
  private body: IncomingMessage | BodyLimit | null = null;
  private status = 0;

  constructor(ctx: ExchangeContext, req: IncomingMessage, res: ServerResponse, client: ClientInfo, expectContinue: boolean) {
    super(ctx, requestLine(req), client);
    this.req = req;
    this.res = res;
    this.expectContinue = expectContinue;
  }

  start(): void {
    this.ctx.begin();
    (this.res as unknown as Record<symbol, Exchange>)[kExchange] = this;
    this.res.once('close', onResponseClose);
    const p = this.prepareRaw();
    if (p.kind === 'error') { this.reply(p.status, p.detail); return; }
    if (p.kind === 'redirect') { this.redirect(p.location); return; }
    const route = this.decision!.route!;
    if (this.hasBody) {
      if (this.chunked && route.maxBodyBytes > 0) {
        const limit = new BodyLimit(route.maxBodyBytes);
        this.req.pipe(limit);
        limit.on('error', () => this.req.unpipe(limit));
        this.body = limit;
      } else {
        this.body = this.req;
      }
    }
    if (this.expectContinue) this.res.writeContinue();
    this.dispatch(null);
  }

  private dispatch(avoid: Endpoint | null): void {
    const route = this.decision!.route!;
    const ep = this.cluster!.pick(route.loadBalance === 'least-request', performance.now(), avoid);
    if (ep === null) { this.reply(503, 'no ready endpoints'); return; }
    this.endpoint = ep;
    this.controller = null;
    this.requestSent = false;
    this.attempts++;
    ep.inflight++;
    const t = route.timeouts;
    ep.pool(t.connectMs).dispatch({
      path: this.decision!.path,
      method: this.method,
      headers: this.headers,
      body: this.body,
      headersTimeout: t.readMs,
      bodyTimeout: t.readMs,
    }, this);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, _headers: unknown, statusMessage?: string): void {
    if (statusCode < 200) return;
    const ep = this.endpoint!;
    Cluster.succeeded(ep);
    if (this.clientGone) { controller.abort(new Error('client went away')); return; }
    const flat: string[] = [];
    filterResponseHeaders(controller.rawHeaders as Buffer[], flat);
    if (this.setCookie !== null) flat.push('set-cookie', this.setCookie);
    if (this.ctx.draining) flat.push('connection', 'close');
    this.status = statusCode;
    if (statusMessage) this.res.writeHead(statusCode, statusMessage, flat);
    else this.res.writeHead(statusCode, flat);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', onResponseDrain);
    }
  }

  onResponseEnd(): void {
    this.endpoint!.inflight--;
    this.res.end();
    this.finish(this.status);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    const sent = this.res.headersSent;
    if (!sent && this.upstreamFailed(err)) { this.dispatch(this.endpoint); return; }
    if (sent) this.endpoint!.inflight--;
    if (this.clientGone) { this.finish(499); return; }
    if (!sent) {
      const status = this.statusFor(err);
      this.reply(status, status === 413 ? 'request body too large' : status === 504 ? 'upstream timed out' : 'upstream failed');
      return;
    }
    this.res.destroy(err);
    this.finish(502);
  }

  private reply(status: number, detail: string): void {
    const body = errorBody(status, this.requestId || newRequestId(), detail);
    const headers = ['content-type', 'text/plain; charset=utf-8', 'content-length', String(Buffer.byteLength(body)), 'x-request-id', this.requestId];
    // An unread or refused body leaves the connection in an unknown state: close it.
    if (this.ctx.draining || status === 413 || status === 400 || (this.hasBody && !this.req.complete)) headers.push('connection', 'close');
    this.res.writeHead(status, STATUS_TEXT[status], headers);
    this.res.end(body);
    this.finish(status);
  }

  private redirect(location: string): void {
    const headers = ['location', location, 'content-length', '0', 'x-request-id', this.requestId];
    if (this.ctx.draining) headers.push('connection', 'close');
    this.res.writeHead(308, STATUS_TEXT[308], headers);
    this.res.end();
    this.finish(308);
  }

  /** clientClosed runs when the response closes; before the end that means the client went away. */
  clientClosed(): void {
    if (this.done) return;
    this.clientGone = true;
    if (this.controller !== null) this.controller.abort(new Error('client went away'));
  }

  resume(): void { this.controller?.resume(); }
}

/** requestLine reads node's parsed request; node:http always sets method and url on server requests. */
function requestLine(req: IncomingMessage): RequestLine {
  return { method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, httpVersionMinor: req.httpVersionMinor };
}

function onResponseClose(this: ServerResponse): void {
  (this as unknown as Record<symbol, Exchange>)[kExchange]!.clientClosed();
}

function onResponseDrain(this: ServerResponse): void {
  (this as unknown as Record<symbol, Exchange>)[kExchange]!.resume();
}

/** UpgradeExchange proxies an `Upgrade` request (WebSocket and others) and then the raw bytes both ways. */
export class UpgradeExchange extends BaseExchange implements Dispatcher.DispatchHandler {
  private readonly socket: Duplex;
  private readonly head: Buffer;
  private status = 0;
  private idleMs = 60_000;

  constructor(ctx: ExchangeContext, req: IncomingMessage, socket: Duplex, head: Buffer, client: ClientInfo) {
    super(ctx, requestLine(req), client);
    this.socket = socket;
    this.head = head;
  }

  start(): void {
    this.ctx.begin();
    this.socket.on('error', () => { this.clientGone = true; });
    this.socket.once('close', () => { if (!this.done) { this.clientGone = true; this.controller?.abort(new Error('client went away')); } });
    const p = this.prepareRaw();
    if (p.kind === 'error') { this.fail(p.status, p.detail); return; }
    if (p.kind === 'redirect') {
      this.socket.end(`HTTP/1.1 308 Permanent Redirect\r\nLocation: ${p.location}\r\nContent-Length: 0\r\nX-Request-Id: ${this.requestId}\r\nConnection: close\r\n\r\n`);
      this.finish(308);
      return;
    }
    this.idleMs = this.decision!.route!.timeouts.idleMs;
    this.dispatch(null);
  }

  private dispatch(avoid: Endpoint | null): void {
    const route = this.decision!.route!;
    const ep = this.cluster!.pick(route.loadBalance === 'least-request', performance.now(), avoid);
    if (ep === null) { this.fail(503, 'no ready endpoints'); return; }
    this.endpoint = ep;
    this.controller = null;
    this.requestSent = false;
    this.attempts++;
    ep.inflight++;
    ep.pool(route.timeouts.connectMs).dispatch({
      path: this.decision!.path,
      method: this.method,
      headers: this.headers,
      body: null,
      upgrade: this.upgradeProtocol ?? 'websocket',
      headersTimeout: route.timeouts.readMs,
    }, this);
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, _headers: unknown, upstream: Duplex): void {
    this.endpoint!.inflight--;
    Cluster.succeeded(this.endpoint!);
    const flat: string[] = [];
    filterResponseHeaders(controller.rawHeaders as Buffer[], flat);
    let head = `HTTP/1.1 ${statusCode} Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${this.upgradeProtocol ?? 'websocket'}\r\n`;
    for (let i = 0; i < flat.length; i += 2) head += `${flat[i]}: ${flat[i + 1]}\r\n`;
    const client = this.socket;
    if (this.clientGone) { upstream.destroy(); this.finish(499); return; }
    client.write(head + '\r\n');
    if (this.head.length > 0) upstream.write(this.head);
    this.ctx.metrics.activeConnections.upgraded++;
    this.finish(statusCode);
    const untrack = this.decision!.canary === 'canary'
      ? this.ctx.trackCanaryTunnel(this.decision!.backend!, () => { client.destroy(); upstream.destroy(); })
      : null;
    tunnel(client, upstream, this.idleMs, () => { this.ctx.metrics.activeConnections.upgraded--; untrack?.(); });
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, _headers: unknown, statusMessage?: string): void {
    if (statusCode < 200) return;
    Cluster.succeeded(this.endpoint!);
    const flat: string[] = [];
    filterResponseHeaders(controller.rawHeaders as Buffer[], flat);
    this.status = statusCode;
    let head = `HTTP/1.1 ${statusCode} ${statusMessage ?? STATUS_TEXT[statusCode] ?? ''}\r\n`;
    for (let i = 0; i < flat.length; i += 2) {
      if (flat[i]!.toLowerCase() === 'content-length') continue;
      head += `${flat[i]}: ${flat[i + 1]}\r\n`;
    }
    this.socket.write(`${head}Connection: close\r\n\r\n`);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.socket.write(chunk);
  }

  onResponseEnd(): void {
    this.endpoint!.inflight--;
    this.socket.end();
    this.finish(this.status);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.status === 0 && this.upstreamFailed(err)) { this.dispatch(this.endpoint); return; }
    if (this.clientGone) { this.finish(499); return; }
    if (this.status === 0) { this.fail(this.statusFor(err), 'upstream failed'); return; }
    this.socket.destroy();
    this.finish(502);
  }

  private fail(status: number, detail: string): void {
    if (!this.requestId) this.requestId = newRequestId();
    this.socket.end(rawErrorResponse(status, this.requestId, detail));
    this.finish(status);
  }
}

/** tunnel pipes two sockets until either side closes or both stay idle for idleMs. */
export function tunnel(a: Duplex, b: Duplex, idleMs: number, onClose: () => void): void {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    a.destroy();
    b.destroy();
    onClose();
  };
  a.on('error', close).on('close', close);
  b.on('error', close).on('close', close);
  const timeout = (s: Duplex) => { const sock = s as Duplex & { setTimeout?: (ms: number, cb: () => void) => void }; sock.setTimeout?.(idleMs, close); };
  timeout(a);
  timeout(b);
  a.pipe(b);
  b.pipe(a);
}
