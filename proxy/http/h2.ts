/**
 * HTTP/2 to clients. Connections that chose h2 by ALPN on the HTTPS listener, or sent the HTTP/2
 * preface on the plain one with --h2c, are handed (as sockets) to one node:http2 server per
 * worker. Each stream is an H2Exchange: the lifecycle of every HTTP/1.1 request (Exchange:
 * core's match(), the canary side, retries, the proxy's replies), with the upstream spoken to in
 * HTTP/1.1 through undici as on the general path.
 *
 * Translation, as RFC 9113 §8.3 has an intermediary do it (Envoy and nginx alike):
 * - `:authority` is the request's Host, and the upstream's; a Host header that differs is 400
 *   (§8.3.1: routing on one and the upstream reading the other is a confusion to refuse).
 * - `:path` must be an origin-form target of visible ASCII, the fast path's rule; CONNECT is 400
 *   (the extended CONNECT of RFC 8441 is not offered).
 * - Cookie headers, split into many fields in HTTP/2 (§8.2.3), are joined with "; " into the one
 *   an HTTP/1.1 upstream may get.
 * - Connection-specific headers never arrive (nghttp2 refuses such a stream, §8.2.2); they and
 *   those Connection names are dropped from responses, and `te` from requests, as on HTTP/1.1.
 * - A body streams with HTTP/2 flow control: node:http2 opens the client's window only as the
 *   proxy reads, and the proxy reads only as fast as the upstream takes it.
 * - Trailers of a chunked upstream response are the HTTP/2 response's trailers. Trailers of a
 *   request body have no way to an HTTP/1.1 upstream through undici and are dropped, as nginx
 *   does; HTTP/2 upstreams are where they will go.
 *
 * Limits: SETTINGS_MAX_CONCURRENT_STREAMS (--http2-max-concurrent-streams; nghttp2 refuses a
 * stream over it with REFUSED_STREAM), SETTINGS_MAX_HEADER_LIST_SIZE of --max-header-bytes (a
 * larger header list resets the stream), the client body timeouts (BodyGuard), and
 * --client-keepalive-timeout as the idle limit of a connection without open streams.
 *
 * Rapid reset (CVE-2023-44487): a client that opens streams and resets them at once makes the
 * proxy route and dispatch each while holding few streams open. node:http2 keeps nghttp2's own
 * limit on received RST_STREAM frames (a burst of 1,000, then 33 a second: GOAWAY with
 * INTERNAL_ERROR), which lets 1,000 such requests through. On top of it each connection has a
 * bucket of streams its client may cancel before their response is complete — twice the
 * concurrent streams, refilled at RESET_REFILL_PER_SEC — and once it is empty the connection gets
 * GOAWAY with ENHANCE_YOUR_CALM and closes. A browser cancels at most the streams it has open
 * when it navigates away, so twice that never stops one.
 */
import { constants, createServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { RouteSpec } from '../../core/index.ts';
import { Cluster } from '../upstream/endpoints.ts';
import { filterResponseHeaders, isHopByHop } from '../http1/headers.ts';
import type { ExchangeContext } from './exchange.ts';
import { BodyGuard, UndiciExchange, type GeneralRequestLine } from './general.ts';
import type { ClientInfo } from '../listen/listeners.ts';
import type { Reply } from './replies.ts';
import type { Protocol } from '../metrics.ts';
import { UpstreamError } from '../errors.ts';

/** H2Host is what a worker lends HTTP/2 connections. */
export interface H2Host extends ExchangeContext {
  readonly maxHeaderBytes: number;
  readonly clientKeepAliveTimeoutMs: number;
}

/** Retry-After of the 503 to a client over its connection limit, as fast-path.ts's. */
const CLIENT_LIMIT_RETRY_AFTER_SEC = 1;
/** Streams a connection's bucket of client cancellations refills per second. */
const RESET_REFILL_PER_SEC = 20;
const kExchange = Symbol('vane.h2exchange');

/** H2Connection is one client's HTTP/2 session and what the proxy counts of it. */
class H2Connection {
  readonly session: ServerHttp2Session;
  readonly client: ClientInfo;
  /** Streams open now: a connection times out idle only without any. */
  open = 0;
  private readonly host: H2Host;
  private readonly resetBurst: number;
  private resetTokens: number;
  private resetAtMs = performance.now();

  constructor(host: H2Host, session: ServerHttp2Session, client: ClientInfo, resetBurst: number) {
    this.host = host;
    this.session = session;
    this.client = client;
    this.resetBurst = resetBurst;
    this.resetTokens = resetBurst;
  }

  /** cancelled: the client reset a stream before its response was complete (rapid reset's move). */
  cancelled(): void {
    if (this.session.destroyed) return;
    const now = performance.now();
    this.resetTokens = Math.min(this.resetBurst, this.resetTokens + ((now - this.resetAtMs) * RESET_REFILL_PER_SEC) / 1000);
    this.resetAtMs = now;
    if (--this.resetTokens >= 0) return;
    this.host.metrics.http2RapidResetCloses++;
    // The error only carries the code into GOAWAY: the session's 'error' is ignored.
    this.session.destroy(new Error('client reset too many streams'), constants.NGHTTP2_ENHANCE_YOUR_CALM);
  }
}

/** H2Front is a worker's node:http2 server: it takes client connections and runs an exchange per stream. */
export class H2Front {
  private readonly host: H2Host;
  private readonly server: Http2Server;
  private readonly connections = new Set<H2Connection>();
  private readonly resetBurst: number;
  /** The ClientInfo of the socket being handed over: node:http2 makes its session synchronously. */
  private incoming: ClientInfo | null = null;

  constructor(host: H2Host, maxConcurrentStreams: number) {
    this.host = host;
    this.resetBurst = 2 * maxConcurrentStreams;
    this.server = createServer({
      settings: { maxConcurrentStreams, maxHeaderListSize: host.maxHeaderBytes, enablePush: false },
    });
    this.server.on('session', (session: ServerHttp2Session) => this.onSession(session));
  }

  /** serve runs HTTP/2 on a client connection (TLS that chose h2, or a plain one that sent the preface). */
  serve(socket: Duplex, client: ClientInfo): void {
    // node:http2 reads a net.Socket's handle directly: bytes already read and put back (the
    // preface, when the fast path read it without shared reads) would be lost.
    const handle = (socket as { _handle?: unknown })._handle;
    const conn = handle !== undefined && handle !== null && socket.readableLength > 0 ? new Replayed(socket as Socket) : socket;
    this.incoming = client;
    try {
      this.server.emit('connection', conn);
    } finally {
      this.incoming = null;
    }
  }

  /** drain sends every connection GOAWAY: streams in flight finish, no new ones start. */
  drain(): void {
    for (const c of this.connections) if (!c.session.closed) c.session.close();
  }

  private onSession(session: ServerHttp2Session): void {
    const client = this.incoming;
    if (client === null) { session.destroy(); return; }
    const host = this.host;
    const conn = new H2Connection(host, session, client, this.resetBurst);
    this.connections.add(conn);
    session.on('error', ignore);
    session.once('close', () => this.connections.delete(conn));
    session.setTimeout(host.clientKeepAliveTimeoutMs, () => { if (conn.open === 0) session.close(); });
    session.on('stream', (stream: ServerHttp2Stream, _headers: IncomingHttpHeaders, _flags: number, raw: string[]) => {
      conn.open++;
      new H2Exchange(host, conn, stream, raw).start();
    });
    if (host.draining) session.close();
  }
}

function ignore(): void {}

/** Replayed is a socket, the bytes read from it but not consumed first, as a stream node:http2 reads through. */
class Replayed extends Duplex {
  readonly _parent: Socket;
  private readonly socket: Socket;

  constructor(socket: Socket) {
    super({ allowHalfOpen: true });
    this.socket = socket;
    this._parent = socket;
    socket.pause();
    for (let b = socket.read() as Buffer | null; b !== null; b = socket.read() as Buffer | null) this.push(b);
    socket.on('data', (d: Buffer) => { if (!this.push(d)) socket.pause(); });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  override _read(): void { if (this.socket.isPaused()) this.socket.resume(); }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.socket.write(chunk, encoding, callback);
  }

  override _final(callback: (err?: Error | null) => void): void { this.socket.end(callback); }

  override _destroy(err: Error | null, callback: (err: Error | null) => void): void {
    this.socket.destroy();
    callback(err);
  }
}

/** H2Request is a stream's headers as the exchange reads them, or why they are refused. */
interface H2Request { line: GeneralRequestLine; invalid: string | null; expectContinue: boolean }

/**
 * h2Request turns a stream's raw headers into the request line and HTTP/1.1 headers an exchange
 * reads: pseudo-headers out, `:authority` as Host (first), cookies joined.
 */
function h2Request(raw: readonly string[]): H2Request {
  let method = '';
  let path = '';
  let authority: string | undefined;
  let cookie: string | null = null;
  let expectContinue = false;
  const hosts: string[] = [];
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 58) {
      // :scheme is not read: X-Forwarded-Proto is the listener's, as on HTTP/1.1.
      if (name === ':method') method = value;
      else if (name === ':path') path = value;
      else if (name === ':authority') authority = value;
      continue;
    }
    if (name === 'host') hosts.push(value);
    else if (name === 'cookie') cookie = cookie === null ? value : `${cookie}; ${value}`;
    else {
      if (name === 'expect') expectContinue = value.toLowerCase() === '100-continue';
      headers.push(name, value);
    }
  }
  let invalid: string | null = null;
  if (authority !== undefined) {
    if (hosts.some((h) => h !== authority)) invalid = 'Host header differs from :authority';
    headers.unshift('host', authority);
  } else {
    for (let i = hosts.length - 1; i >= 0; i--) headers.unshift('host', hosts[i]!);
    if (hosts.length === 0) invalid = 'no :authority and no Host header';
  }
  if (cookie !== null) headers.push('cookie', cookie);
  if (method === 'CONNECT') invalid = 'CONNECT is not served over HTTP/2';
  else if (!originForm(path)) invalid = 'malformed :path';
  return { line: { method, url: path, authority: null, rawHeaders: headers, httpVersionMinor: 1 }, invalid, expectContinue };
}

/** originForm: a path of visible ASCII starting with "/", what the fast path's parser takes as a target. */
function originForm(path: string): boolean {
  if (path.charCodeAt(0) !== 47) return false;
  for (let i = 1; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/** h2Trailers keeps the upstream's trailers HTTP/2 may carry. */
function h2Trailers(trailers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in trailers) {
    const v = trailers[name];
    if (v === undefined || isHopByHop(name) || name === 'content-length' || name === 'host') continue;
    out[name] = v;
  }
  return out;
}

/** H2Exchange is one HTTP/2 stream, proxied to an HTTP/1.1 upstream through undici. */
class H2Exchange extends UndiciExchange {
  protected override protocol: Protocol = 'h2';
  private readonly stream: ServerHttp2Stream;
  private readonly conn: H2Connection;
  private readonly invalid: string | null;
  private readonly expectContinue: boolean;
  private body: BodyGuard | null = null;
  private status = 0;
  /** Trailers for the response, once the upstream's have come (`wantTrailers` sends them). */
  private trailers: Record<string, string | string[]> = {};

  constructor(ctx: H2Host, conn: H2Connection, stream: ServerHttp2Stream, raw: readonly string[]) {
    const r = h2Request(raw);
    super(ctx, r.line, conn.client);
    this.stats = ctx.unroutedH2;
    this.stream = stream;
    this.conn = conn;
    this.invalid = r.invalid;
    this.expectContinue = r.expectContinue;
  }

  start(): void {
    this.ctx.begin();
    const stream = this.stream;
    (stream as unknown as Record<symbol, H2Exchange>)[kExchange] = this;
    stream.on('error', ignore);
    stream.once('close', onStreamClose);
    if (this.client.overLimit) {
      // As on HTTP/1.1 (fast-path.ts): one 503, then the connection ends (GOAWAY after it).
      this.fail(503, 'too many connections from this client address', CLIENT_LIMIT_RETRY_AFTER_SEC);
      this.conn.session.close();
      return;
    }
    if (this.invalid !== null) { this.fail(400, this.invalid); return; }
    if (this.answerLocally(this.prepareRaw(!stream.endAfterHeaders))) return;
    if (this.hasBody) {
      const c = this.ctx;
      this.body = new BodyGuard(stream, this.chunked ? this.decision!.route!.maxBodyBytes : 0, c.clientBodyTimeoutMs, c.clientBodyTotalTimeoutMs);
      this.body.on('error', (err: Error) => this.bodyFailed(err));
      if (this.expectContinue) stream.additionalHeaders({ ':status': 100 });
    }
    this.attempt(null);
  }

  protected override dispatchOptions(route: RouteSpec): Dispatcher.DispatchOptions {
    const t = route.timeouts;
    return { path: this.decision!.path, method: this.method, headers: this.headers, body: this.body, headersTimeout: t.readMs, bodyTimeout: t.readMs };
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode < 200) return;
    if (this.clientGone) { Cluster.succeeded(this.endpoint!); controller.abort(new Error('client went away')); return; }
    const flat: string[] = [];
    filterResponseHeaders(controller.rawHeaders as Buffer[], flat);
    const out = [':status', String(statusCode)];
    let length = false;
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i]!.toLowerCase();
      if (name === 'content-length') length = true;
      out.push(name, flat[i + 1]!);
    }
    if (this.setCookie !== null) out.push('set-cookie', this.setCookie);
    if (this.hsts !== null) out.push('strict-transport-security', this.hsts);
    // Only a response without a declared length (chunked) can end with trailers.
    const trailers = !length && this.method !== 'HEAD' && statusCode !== 204 && statusCode !== 304;
    try {
      this.stream.respond(out, { waitForTrailers: trailers });
    } catch (err) {
      // node:http2 refuses what HTTP/2 cannot carry (a repeated single-value header, say): 502.
      controller.abort(new UpstreamError('UND_ERR_RESPONSE', `upstream response not valid in HTTP/2: ${(err as Error).message}`));
      return;
    }
    if (trailers) this.stream.once('wantTrailers', onWantTrailers);
    this.responseStarted();
    this.status = statusCode;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.stream.write(chunk)) {
      controller.pause();
      this.stream.once('drain', onStreamDrain);
    }
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.trailers = h2Trailers(trailers);
    this.endStream();
    this.responseEnded(this.status);
  }

  /** endStream ends the response; a request body still coming is stopped without error (RFC 9113 §8.1). */
  private endStream(body?: string): void {
    const stream = this.stream;
    if (body === undefined || this.method === 'HEAD') stream.end(); else stream.end(body);
    if (this.bodyUnread()) stream.close(constants.NGHTTP2_NO_ERROR);
  }

  /** sendTrailers answers `wantTrailers`; trailers HTTP/2 refuses leave the response without any. */
  sendTrailers(): void {
    try {
      this.stream.sendTrailers(this.trailers);
    } catch {
      if (!this.stream.destroyed) this.stream.close(constants.NGHTTP2_NO_ERROR);
    }
  }

  protected override abortResponse(): void {
    this.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
  }

  protected override bodyUnread(): boolean { return this.hasBody && !this.stream.readableEnded; }

  /** sendReply answers on the stream; `close` is the connection's in HTTP/1.1, which HTTP/2 ends with GOAWAY instead. */
  protected override sendReply(r: Reply): void {
    const stream = this.stream;
    if (!stream.destroyed && !stream.headersSent) {
      const out = [':status', String(r.status)];
      const h = r.headers;
      for (let i = 0; i < h.length; i += 2) if (h[i] !== 'connection') out.push(h[i]!, h[i + 1]!);
      stream.respond(out);
      this.endStream(r.body);
    }
    this.finish(r.status);
  }

  /** streamClosed runs when the stream closes; before the exchange is done, the client cancelled it. */
  streamClosed(): void {
    this.conn.open--;
    if (this.done) return;
    this.clientGone = true;
    this.conn.cancelled();
    if (this.controller !== null) this.controller.abort(new Error('client went away'));
  }

  resume(): void { this.controller?.resume(); }
}

function exchangeOf(stream: ServerHttp2Stream): H2Exchange {
  return (stream as unknown as Record<symbol, H2Exchange>)[kExchange]!;
}

function onStreamClose(this: ServerHttp2Stream): void { exchangeOf(this).streamClosed(); }
function onStreamDrain(this: ServerHttp2Stream): void { exchangeOf(this).resume(); }
function onWantTrailers(this: ServerHttp2Stream): void { exchangeOf(this).sendTrailers(); }
