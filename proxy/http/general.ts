/**
 * The general path: requests node:http parsed (everything the fast path hands over — chunked
 * and Expect bodies, upgrades, HTTP/1.0 — and requests to HTTPS backends), sent upstream
 * through undici's dispatch() with the exchange as the handler (one object per request). The
 * lifecycle is Exchange's; this file is its transport: undici for the upstream side, a
 * ServerResponse (GeneralExchange) or the raw socket of an upgrade (UpgradeExchange) for the client.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { RouteSpec } from '../../core/index.ts';
import { Cluster, type Endpoint } from '../upstream/endpoints.ts';
import { filterResponseHeaders, inspectHeaders, type HeaderFacts } from '../http1/headers.ts';
import { absoluteTarget, validHost } from '../http1/target.ts';
import { hasToken } from '../http1/request-head.ts';
import { Exchange, type ExchangeContext, type Prepared, type RequestLine } from './exchange.ts';
import type { ClientInfo } from '../listen/listeners.ts';
import { replyBytes, STATUS_TEXT, type Reply } from './replies.ts';
import { tunnel } from '../listen/tunnel.ts';
import { idleSweeper, type IdleWatched } from '../idle.ts';
import { BodyError, UpstreamError } from '../errors.ts';

const kExchange = Symbol('vane.exchange');

/**
 * BodySource is a request body as node:http (IncomingMessage, `complete` once the client sent it
 * all) or node:http2 (a stream, without `complete`: readableEnded then) gives it.
 */
export type BodySource = Readable & { readonly complete?: boolean };

/**
 * BodyGuard passes a request body through to undici and fails it (BodyError, which undici
 * ends the upstream request with) once it exceeds the route's limit (chunked bodies: a
 * declared length was checked before), or when the client is silent for the body timeout
 * while the proxy reads, or has not sent it all within the total.
 */
export class BodyGuard extends Transform implements IdleWatched {
  active = false;
  idleLimitMs = 0;
  idleDeadline = 0;
  private seen = 0;
  private readonly req: BodySource;
  private readonly limit: number;
  private readonly idleMs: number;
  private readonly total: NodeJS.Timeout | null;

  constructor(req: BodySource, limit: number, idleMs: number, totalMs: number) {
    super();
    this.req = req;
    this.limit = limit;
    this.idleMs = idleMs;
    idleSweeper.watch(this, idleMs);
    this.total = totalMs > 0 ? setTimeout(() => this.fail(`request body not received within ${totalMs} ms`), totalMs) : null;
    req.pipe(this);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.active = true;
    this.seen += chunk.length;
    if (this.limit > 0 && this.seen > this.limit) { cb(new BodyError('EVANE_BODY_TOO_LARGE', `request body over the limit of ${this.limit} bytes`)); return; }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.stop();
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.stop();
    this.req.unpipe(this);
    cb(err);
  }

  /** idleTimedOut: silence counts only while the proxy reads (pipe pauses the request for back-pressure). */
  idleTimedOut(): void {
    if (this.req.isPaused()) { idleSweeper.watch(this, this.idleMs); return; }
    this.fail(`no request body bytes for ${this.idleMs} ms`);
  }

  private fail(detail: string): void {
    if (!(this.req.complete ?? this.req.readableEnded)) this.destroy(new BodyError('EVANE_BODY_TIMEOUT', detail));
  }

  private stop(): void {
    idleSweeper.unwatch(this);
    if (this.total !== null) clearTimeout(this.total);
  }
}

/**
 * QueueWait bounds the time an attempt waits in undici's Pool for a connection (undici's own
 * queue has neither a bound nor a deadline); it ends when the request starts.
 */
class QueueWait implements IdleWatched {
  /** Never set: time in the queue counts whatever happens meanwhile. */
  active = false;
  idleLimitMs = 0;
  idleDeadline = 0;
  private readonly exchange: UndiciExchange;

  constructor(exchange: UndiciExchange, timeoutMs: number) {
    this.exchange = exchange;
    idleSweeper.watch(this, timeoutMs);
  }

  idleTimedOut(): void { this.exchange.queueExpired(); }
}

/**
 * acceptsUpgrade is node:http's shouldUpgradeCallback. An upgrade to h2c is turned down: the
 * request is served as HTTP/1.1, its Upgrade, HTTP2-Settings and Connection dropped as hop-by-hop
 * headers are (Envoy does the same). Passed on, a backend that speaks h2c would switch the
 * connection to HTTP/2 and take requests on it that routing never saw (h2c smuggling).
 */
export function acceptsUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return upgrade === undefined || !hasToken(upgrade.toLowerCase(), 'h2c');
}

/** GeneralRequestLine is a RequestLine with an absolute-form target split: its url is the origin form. */
export interface GeneralRequestLine extends RequestLine { readonly authority: string | null }

/** requestLine reads node's parsed request; node:http always sets method and url on server requests. */
function requestLine(req: IncomingMessage): GeneralRequestLine {
  const absolute = absoluteTarget(req.url!);
  return { method: req.method!, url: absolute?.originForm ?? req.url!, authority: absolute?.authority ?? null, rawHeaders: req.rawHeaders, httpVersionMinor: req.httpVersionMinor };
}

/**
 * useAuthority puts an absolute-form target's authority in Host's place, for routing and for the
 * upstream, which gets the origin form (RFC 9112 §3.2.2: a proxy ignores the received Host).
 */
function useAuthority(f: HeaderFacts, out: string[], authority: string): void {
  f.host = authority;
  for (let i = 0; i < out.length; i += 2) {
    if (out[i]!.length === 4 && out[i]!.toLowerCase() === 'host') { out[i + 1] = authority; return; }
  }
  out.push('host', authority);
}

/** UndiciExchange is an exchange whose upstream side is undici (the general path's and HTTP/2's). */
export abstract class UndiciExchange extends Exchange implements Dispatcher.DispatchHandler {
  /** The upstream's headers, flat `[name, value, …]`, forwarding headers last (prepareRaw). */
  protected headers: string[] = [];
  protected controller: Dispatcher.DispatchController | null = null;
  /** Set while the attempt waits for one of undici's connections. */
  private queued: QueueWait | null = null;
  /** The attempt was answered with 503 while undici still held it: whatever undici reports later is not this exchange's. */
  private abandoned = false;

  /** The authority of an absolute-form target, null for the origin form. */
  private readonly authority: string | null;

  constructor(ctx: ExchangeContext, line: GeneralRequestLine, client: ClientInfo) {
    super(ctx, line, client);
    this.authority = line.authority;
  }

  /**
   * prepareRaw is prepare on node's raw headers; it fills `headers`. `bodyFollows`: an HTTP/2
   * request whose stream stays open after its headers, a body that without Content-Length has no
   * declared length, as a chunked one (the upstream gets it chunked).
   */
  protected prepareRaw(bodyFollows = false): Prepared {
    const out = this.headers;
    const f = inspectHeaders(this.request.rawHeaders, out, this.client.trusted);
    if (bodyFollows && f.lengths === 0) f.chunked = true;
    // An invalid Host stays, for prepare's 400, even when the target's authority would replace it.
    if (this.authority !== null && (f.host === undefined || validHost(f.host))) useAuthority(f, out, this.authority);
    const p = this.prepare(f);
    out.push('x-forwarded-for', this.forwardedFor, 'x-forwarded-proto', this.forwardedProto, 'x-forwarded-port', this.forwardedPort,
      'x-real-ip', this.realIp, 'x-request-id', this.requestId);
    if (this.forwardedHost !== null) out.push('x-forwarded-host', this.forwardedHost);
    if (this.clientCertHeaders !== null) out.push(...this.clientCertHeaders);
    return p;
  }

  /** send dispatches the attempt through the endpoint's undici Pool, unless too many already wait there. */
  protected override send(ep: Endpoint, route: RouteSpec): void {
    this.controller = null;
    if (ep.undiciWaiting >= ep.queueLimit) {
      this.upstreamError(new UpstreamError('EVANE_QUEUE_FULL', `${ep.queueLimit} requests already wait for a connection to ${ep.key}`));
      return;
    }
    ep.undiciQueued(1);
    this.queued = new QueueWait(this, ep.queueTimeoutMs);
    ep.pool(route.timeouts.connectMs, this.upstreamTls).dispatch(this.dispatchOptions(route), this);
  }

  protected abstract dispatchOptions(route: RouteSpec): Dispatcher.DispatchOptions;

  /** leaveQueue: the attempt no longer waits for a connection; false when it was not waiting. */
  private leaveQueue(): boolean {
    const q = this.queued;
    if (q === null) return false;
    this.queued = null;
    idleSweeper.unwatch(q);
    this.endpoint!.undiciQueued(-1);
    return true;
  }

  /** queueExpired answers 503 for an attempt undici has not started within the queue timeout. */
  queueExpired(): void {
    if (!this.leaveQueue()) return;
    this.abandoned = true;
    this.upstreamError(new UpstreamError('EVANE_QUEUE_TIMEOUT', `no connection to ${this.endpoint!.key} in time`));
  }

  /** bodyFailed: the body guard refused the body; undici reports it only once the request has started. */
  protected bodyFailed(err: Error): void {
    if (!this.leaveQueue()) return;
    this.abandoned = true;
    this.upstreamError(err);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abandoned) { controller.abort(new Error('answered while queued')); return; }
    this.leaveQueue();
    this.requestSent = true;
    if (this.clientGone) controller.abort(new Error('client went away'));
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.abandoned) return;
    this.leaveQueue();
    this.upstreamError(err);
  }
}

/** GeneralExchange is a plain HTTP request/response on node:http. */
/**
 * Connections whose last reply said `connection: close`. node:http goes on parsing what the
 * client sent after the refused request (it arrived in the same read): a request or a parse
 * error found there must get no exchange and no reply of its own, or a refusal would let the
 * bytes behind it through as a request of their own.
 */
const endingConnections = new WeakSet<Duplex>();

/** connectionEnding: the proxy has already answered this connection with a closing reply. */
export function connectionEnding(socket: Duplex): boolean { return endingConnections.has(socket); }

export class GeneralExchange extends UndiciExchange {
  private readonly req: IncomingMessage;
  private readonly res: ServerResponse;
  private readonly expectContinue: boolean;
  private body: BodyGuard | null = null;
  private status = 0;

  constructor(ctx: ExchangeContext, req: IncomingMessage, res: ServerResponse, client: ClientInfo, expectContinue: boolean) {
    super(ctx, requestLine(req), client);
    this.req = req;
    this.res = res;
    this.expectContinue = expectContinue;
    // An upgrade acceptsUpgrade turned down: node reads no further bytes of the connection after
    // its head (those of a pipelined request would wait unanswered), so the connection ends here.
    if (req.headers.upgrade !== undefined) res.shouldKeepAlive = false;
  }

  start(): void {
    this.ctx.begin();
    (this.res as unknown as Record<symbol, GeneralExchange>)[kExchange] = this;
    this.res.once('close', onResponseClose);
    if (this.answerLocally(this.prepareRaw())) return;
    const route = this.decision!.route!;
    if (this.hasBody) {
      const c = this.ctx;
      this.body = new BodyGuard(this.req, this.chunked ? route.maxBodyBytes : 0, c.clientBodyTimeoutMs, c.clientBodyTotalTimeoutMs);
      this.body.on('error', (err: Error) => this.bodyFailed(err));
    }
    if (this.expectContinue) this.res.writeContinue();
    this.attempt(null);
  }

  protected override dispatchOptions(route: RouteSpec): Dispatcher.DispatchOptions {
    const t = route.timeouts;
    return { path: this.decision!.path, method: this.method, headers: this.headers, body: this.body, headersTimeout: t.readMs, bodyTimeout: t.readMs };
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, _headers: unknown, statusMessage?: string): void {
    if (statusCode < 200) return;
    if (this.clientGone) { Cluster.succeeded(this.endpoint!); controller.abort(new Error('client went away')); return; }
    this.responseStarted();
    const flat: string[] = [];
    filterResponseHeaders(controller.rawHeaders as Buffer[], flat);
    if (this.setCookie !== null) flat.push('set-cookie', this.setCookie);
    if (this.hsts !== null) flat.push('strict-transport-security', this.hsts);
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
    this.res.end();
    this.responseEnded(this.status);
  }

  protected override abortResponse(err: Error): void { this.res.destroy(err); }

  protected override bodyUnread(): boolean { return this.hasBody && !this.req.complete; }

  protected override sendReply(r: Reply, close: boolean): void {
    if (close) endingConnections.add(this.req.socket);
    this.res.writeHead(r.status, r.reason, r.headers);
    this.res.end(r.body);
    this.finish(r.status);
  }

  /** clientClosed runs when the response closes; before the end that means the client went away. */
  clientClosed(): void {
    if (this.done) return;
    this.clientGone = true;
    if (this.controller !== null) this.controller.abort(new Error('client went away'));
  }

  resume(): void { this.controller?.resume(); }
}

function onResponseClose(this: ServerResponse): void {
  (this as unknown as Record<symbol, GeneralExchange>)[kExchange]!.clientClosed();
}

function onResponseDrain(this: ServerResponse): void {
  (this as unknown as Record<symbol, GeneralExchange>)[kExchange]!.resume();
}

/** UpgradeExchange proxies an `Upgrade` request (WebSocket and others) and then the raw bytes both ways. */
export class UpgradeExchange extends UndiciExchange {
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
    if (this.answerLocally(this.prepareRaw())) return;
    this.idleMs = this.decision!.route!.timeouts.idleMs;
    this.attempt(null);
  }

  protected override dispatchOptions(route: RouteSpec): Dispatcher.DispatchOptions {
    return { path: this.decision!.path, method: this.method, headers: this.headers, body: null, upgrade: this.upgradeProtocol ?? 'websocket', headersTimeout: route.timeouts.readMs };
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, _headers: unknown, upstream: Duplex): void {
    this.endpoint!.inflight--;
    Cluster.succeeded(this.endpoint!);
    const flat: string[] = [];
    filterResponseHeaders(controller.rawHeaders as Buffer[], flat);
    let head = `HTTP/1.1 ${statusCode} Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${this.upgradeProtocol ?? 'websocket'}\r\n`;
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

  /** onResponseStart relays a response that is not an upgrade, and the connection closes after it. */
  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, _headers: unknown, statusMessage?: string): void {
    if (statusCode < 200) return;
    this.responseStarted();
    const flat: string[] = [];
    filterResponseHeaders(controller.rawHeaders as Buffer[], flat);
    this.status = statusCode;
    let head = `HTTP/1.1 ${statusCode} ${statusMessage ?? STATUS_TEXT[statusCode] ?? ''}\r\n`;
    for (let i = 0; i < flat.length; i += 2) {
      if (flat[i]!.toLowerCase() === 'content-length') continue;
      head += `${flat[i]}: ${flat[i + 1]}\r\n`;
    }
    this.socket.write(`${head}connection: close\r\n\r\n`);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.socket.write(chunk);
  }

  onResponseEnd(): void {
    this.socket.end();
    this.responseEnded(this.status);
  }

  protected override abortResponse(): void { this.socket.destroy(); }

  /** An upgrade request's connection never carries another request. */
  protected override closesAfter(): boolean { return true; }

  protected override bodyUnread(): boolean { return false; }

  protected override sendReply(r: Reply): void {
    this.socket.end(replyBytes(r));
    this.finish(r.status);
  }
}
