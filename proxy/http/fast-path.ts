/**
 * The fast path: plain HTTP/1.1 requests on raw sockets, parsed by proxy/http1 and sent to
 * plain-HTTP upstreams through its pools, without node:http's request and response objects.
 * It carries nearly all traffic; the general path (node:http with undici, in general.ts)
 * keeps everything else. A connection starts here and moves to node:http for good at the
 * first request the fast path does not take — chunked or Expect bodies, Upgrade, HTTP/1.0,
 * anything its strict parser is unsure of, an HTTPS backend — with the request's bytes
 * handed over untouched, so the general path sees exactly what the client sent.
 *
 * Both paths share routing, header rewriting, the request lifecycle (pick, dispatch, retry,
 * reply), outlier ejection and metrics (Exchange). A client connection runs one exchange at a
 * time; pipelined requests wait in its buffer (bounded: reading pauses) until the response
 * before them is complete.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { newRequestId } from './request-id.ts';
import type { RouteSpec } from '../../core/index.ts';
import type { Endpoint } from '../upstream/endpoints.ts';
import { Exchange, type ExchangeContext, type Prepared } from './exchange.ts';
import { headerLines } from '../listen/client-cert.ts';
import type { ClientInfo } from '../listen/listeners.ts';
import { closingErrorBytes, replyBytes, type Reply } from './replies.ts';
import { HANDOFF, INCOMPLETE, parseRequestHead, type RequestHead } from '../http1/request-head.ts';
import type { ResponseHead } from '../http1/response-head.ts';
import type { UpstreamConnection, UpstreamExchange, UpstreamPool } from '../upstream/pool.ts';
import { idleSweeper, type IdleWatched } from '../idle.ts';
import { HandedOffSocket, setReadSink, type ReadSink } from '../listen/shared-reads.ts';

/** FastPathHost is what a worker lends the fast path's connections. */
export interface FastPathHost extends ExchangeContext {
  readonly maxHeaderBytes: number;
  readonly clientHeaderTimeoutMs: number;
  readonly clientKeepAliveTimeoutMs: number;
  /** --h2c: a connection that starts with the HTTP/2 preface goes to node:http2. */
  readonly h2c: boolean;
  /** handoff gives a connection, its unread bytes put back, to node:http (node:http2 for 'h2c'). */
  handoff(socket: Socket | HandedOffSocket, reason: HandoffReason): void;
  connectionClosed(conn: ClientConnection): void;
}

export type HandoffReason = 'request' | 'tls-backend' | 'h2c';

/** The HTTP/2 connection preface (RFC 9113 §3.4); the parser hands it over as a request it does not take. */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** h2Preface: `buf` starts with (as much as it holds of) the HTTP/2 preface. */
function h2Preface(buf: Buffer): boolean {
  const n = Math.min(buf.length, H2_PREFACE.length);
  return buf.compare(H2_PREFACE, 0, n, 0, n) === 0;
}

/** Retry-After of the 503 to a client over its connection limit: once one of its others is done. */
const CLIENT_LIMIT_RETRY_AFTER_SEC = 1;

/** Below this size a response head and its first body bytes go out in one buffer (one write). */
const COALESCE_BYTES = 16_384;

/** kept is `bytes` safe to hold past the current read: a copy when they are a borrowed view. */
function kept(bytes: Buffer, borrowed: boolean): Buffer {
  return borrowed ? Buffer.from(bytes) : bytes;
}

/** ClientConnection is one client socket while the fast path owns it. */
export class ClientConnection implements IdleWatched, ReadSink {
  readonly socket: Socket;
  active = false;
  idleLimitMs = 0;
  idleDeadline = 0;
  private readonly host: FastPathHost;
  private readonly client: ClientInfo;
  /** Bytes read and not yet consumed: a partial head, or pipelined requests. */
  private buf: Buffer | null = null;
  private exchange: FastExchange | null = null;
  /** Request body bytes still to come from the client for the current exchange. */
  private bodyLeft = 0;
  private headTimer: NodeJS.Timeout | null = null;
  /** Bounds the whole body of the current exchange (set only when it did not come with its head). */
  private bodyTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private halfClosed = false;
  /** Reads come from a shared buffer (onRead), not 'data' events: see listen/shared-reads.ts. */
  private readonly sharedReads: boolean;
  /**
   * forwarding holds the forwarding header lines of an untrusted client's requests, made by the
   * first: prepare derives them from the connection alone, so they are the same for all.
   */
  forwarding: string | null = null;
  private readonly onDataBound = (d: Buffer) => this.onData(d);
  private readonly onEndBound = () => this.onEnd();
  private readonly onCloseBound = () => this.onClose();

  constructor(host: FastPathHost, socket: Socket, client: ClientInfo) {
    this.host = host;
    this.socket = socket;
    this.client = client;
    this.sharedReads = setReadSink(socket, this);
    if (!this.sharedReads) socket.on('data', this.onDataBound);
    socket.on('end', this.onEndBound);
    socket.on('close', this.onCloseBound);
    idleSweeper.watch(this, host.clientHeaderTimeoutMs);
  }

  /** idle: no exchange and nothing buffered, so closing loses nothing. */
  get idle(): boolean { return this.exchange === null && this.buf === null; }

  /** closeIfIdle ends an idle keep-alive connection (draining). */
  closeIfIdle(): void {
    if (this.idle) this.socket.end();
  }

  write(data: Buffer | string): boolean {
    this.active = true;
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  private onData(d: Buffer): void { this.take(d, false); }

  /** received takes bytes another reader got first (a PROXY protocol preamble's reader). */
  received(bytes: Buffer): void { this.take(bytes, false); }

  /** onRead takes a view of the shared read buffer (valid during the call only). */
  onRead(bytes: Buffer): boolean {
    this.take(bytes, true);
    return true;
  }

  /** take handles bytes from the client; `borrowed`: they must be copied to outlive the call. */
  private take(d: Buffer, borrowed: boolean): void {
    this.active = true;
    if (this.exchange !== null) {
      if (this.bodyLeft > 0) {
        const take = Math.min(this.bodyLeft, d.length);
        this.bodyLeft -= take;
        if (this.bodyLeft === 0) this.clearBodyTimer();
        this.exchange.clientBody(kept(take === d.length ? d : d.subarray(0, take), borrowed), this.bodyLeft === 0);
        if (take === d.length) return;
        d = d.subarray(take);
      }
      this.stash(kept(d, borrowed));
      return;
    }
    if (this.buf === null) this.next(d, borrowed);
    else this.next(Buffer.concat([this.buf, d]), false);
  }

  /** stash keeps bytes that arrive during an exchange (a pipelined request), within bounds. */
  private stash(d: Buffer): void {
    this.buf = this.buf === null ? d : Buffer.concat([this.buf, d]);
    if (this.buf.length > this.host.maxHeaderBytes) this.socket.pause();
  }

  /**
   * next starts the exchange for the head at the start of `buf`, the bytes not consumed yet, if
   * it is complete; what is left of them is kept (copied when `borrowed`).
   */
  private next(buf: Buffer, borrowed: boolean): void {
    this.buf = null;
    if (this.closing) return;
    const head = parseRequestHead(buf, this.host.maxHeaderBytes, this.client.trusted);
    if (head === INCOMPLETE) {
      this.buf = kept(buf, borrowed);
      this.headTimer ??= setTimeout(() => this.headTimedOut(), this.host.clientHeaderTimeoutMs);
      return;
    }
    if (this.client.overLimit) { this.refuse(); return; }
    if (head === HANDOFF) { this.buf = kept(buf, borrowed); this.handoff(this.host.h2c && h2Preface(buf) ? 'h2c' : 'request'); return; }
    const exchange = new FastExchange(this.host, this, head, this.client);
    if (!exchange.route()) { this.buf = kept(buf, borrowed); this.handoff('tls-backend'); return; }
    if (this.headTimer !== null) { clearTimeout(this.headTimer); this.headTimer = null; }
    // The idle limit stays watched during the exchange and is ignored then; exchangeDone
    // starts the keep-alive limit.
    this.exchange = exchange;
    const length = head.contentLength > 0 ? head.contentLength : 0;
    const after = buf.length - head.size;
    const bodyNow = Math.min(length, after);
    this.bodyLeft = length - bodyNow;
    if (this.bodyLeft > 0) this.watchBody();
    const rest = head.size + bodyNow;
    if (rest < buf.length) this.buf = kept(buf.subarray(rest), borrowed);
    const body = bodyNow > 0 ? buf.subarray(head.size, rest) : null;
    exchange.start(body === null ? null : kept(body, borrowed));
  }

  /**
   * watchBody bounds a body still to come, before the exchange starts (which may end it at
   * once): the idle limit becomes the body's (between reads), and a timer bounds the whole. An
   * upstream connection the request holds is then held for at most that long, however slowly
   * the client sends.
   */
  private watchBody(): void {
    idleSweeper.watch(this, this.host.clientBodyTimeoutMs);
    const totalMs = this.host.clientBodyTotalTimeoutMs;
    if (totalMs > 0) this.bodyTimer = setTimeout(() => this.bodyTimedOut(`request body not received within ${totalMs} ms`), totalMs);
  }

  private clearBodyTimer(): void {
    if (this.bodyTimer !== null) { clearTimeout(this.bodyTimer); this.bodyTimer = null; }
  }

  private bodyTimedOut(detail: string): void {
    this.bodyTimer = null;
    if (this.exchange !== null && this.bodyLeft > 0) this.exchange.bodyTimedOut(detail);
  }

  /** exchangeDone: the response is complete; the connection takes the next request or closes. */
  exchangeDone(close: boolean): void {
    this.exchange = null;
    // Also bounds a closing connection whose client never finishes reading.
    idleSweeper.watch(this, this.host.clientKeepAliveTimeoutMs);
    if (close || this.bodyLeft > 0 || this.halfClosed || this.host.draining) {
      this.closing = true;
      this.socket.end();
      return;
    }
    if (this.socket.isPaused()) this.socket.resume();
    if (this.buf !== null) this.next(this.buf, false);
  }

  /** bodyPending: the client has not sent the whole body (its connection cannot be reused). */
  get bodyPending(): boolean { return this.bodyLeft > 0; }

  pause(): void { this.socket.pause(); }

  resume(): void {
    this.socket.resume();
    // The body's idle limit counts from when the proxy reads again.
    if (this.bodyLeft > 0 && this.exchange !== null) idleSweeper.watch(this, this.host.clientBodyTimeoutMs);
  }

  /**
   * idleTimedOut: the socket was silent. A partial head gets 408, an idle connection just
   * closes, a body the client stopped sending gets 408; silence while the proxy itself does not
   * read (back-pressure, or waiting for an upstream connection) does not count.
   */
  idleTimedOut(): void {
    if (this.exchange !== null) {
      if (this.bodyLeft === 0) return;
      if (this.socket.isPaused()) { idleSweeper.watch(this, this.host.clientBodyTimeoutMs); return; }
      this.exchange.bodyTimedOut(`no request body bytes for ${this.host.clientBodyTimeoutMs} ms`);
      return;
    }
    if (this.buf !== null) this.headTimedOut(); else this.socket.destroy();
  }

  /** refuse answers the first request of a client over --max-connections-per-client, and closes. */
  private refuse(): void {
    if (this.headTimer !== null) { clearTimeout(this.headTimer); this.headTimer = null; }
    this.host.unrouted.record(503, 0);
    this.closing = true;
    this.socket.end(closingErrorBytes(503, newRequestId(), 'too many connections from this client address', CLIENT_LIMIT_RETRY_AFTER_SEC));
  }

  private headTimedOut(): void {
    if (this.headTimer !== null) { clearTimeout(this.headTimer); this.headTimer = null; }
    if (this.exchange !== null || this.closing) return;
    this.host.unrouted.record(408, 0);
    this.closing = true;
    this.socket.end(closingErrorBytes(408, newRequestId(), 'request head not received in time'));
  }

  private onEnd(): void {
    this.halfClosed = true;
    if (this.exchange === null) { this.closing = true; this.socket.end(); return; }
    // The client stopped sending mid-body: the request can never complete.
    if (this.bodyLeft > 0) this.socket.destroy();
  }

  private onClose(): void {
    idleSweeper.unwatch(this);
    if (this.headTimer !== null) { clearTimeout(this.headTimer); this.headTimer = null; }
    this.clearBodyTimer();
    const ex = this.exchange;
    this.exchange = null;
    ex?.clientClosed();
    this.host.connectionClosed(this);
  }

  private detach(): void {
    const s = this.socket;
    s.off('data', this.onDataBound);
    s.off('end', this.onEndBound);
    s.off('close', this.onCloseBound);
    idleSweeper.unwatch(this);
    if (this.headTimer !== null) { clearTimeout(this.headTimer); this.headTimer = null; }
  }

  /** handoff moves the connection to node:http, the unread bytes first. */
  private handoff(reason: HandoffReason): void {
    this.detach();
    const s = this.socket;
    if (this.sharedReads) {
      const stream = new HandedOffSocket(s, this.buf);
      this.buf = null;
      this.host.connectionClosed(this);
      this.host.handoff(stream, reason);
      return;
    }
    s.pause();
    if (this.buf !== null) s.unshift(this.buf);
    this.buf = null;
    this.host.connectionClosed(this);
    this.host.handoff(s, reason);
    s.resume();
  }
}

/** FastExchange is one request on the fast path. */
export class FastExchange extends Exchange implements UpstreamExchange {
  private readonly conn: ClientConnection;
  private readonly head: RequestHead;
  private prepared: Prepared | null = null;
  private pool: UpstreamPool | null = null;
  private upstream: UpstreamConnection | null = null;
  /** Body bytes that arrived before an upstream connection was ready. */
  private pendingBody: Buffer[] | null = null;
  private bodyComplete = true;
  private response: ResponseHead | null = null;
  private extraHeaders = '';
  private status = 0;
  private closeAfter = false;
  private staleRetried = false;
  /** Drain listeners, made the first time a side is slow (most exchanges never need them). */
  private onClientDrainBound: (() => void) | null = null;
  private onUpstreamDrainBound: (() => void) | null = null;

  constructor(ctx: FastPathHost, conn: ClientConnection, head: RequestHead, client: ClientInfo) {
    super(ctx, head, client);
    this.conn = conn;
    this.head = head;
  }

  /**
   * route runs routing and header rewriting; false when the request belongs to the general
   * path (a backend spoken to over TLS), which then starts over from the same bytes.
   */
  route(): boolean {
    this.prepared = this.prepare(this.head);
    if (this.prepared.kind !== 'forward') return true;
    return !this.cluster!.candidates[0]!.tls && this.upstreamTls === null;
  }

  start(body: Buffer | null): void {
    this.ctx.begin();
    this.bodyComplete = !this.conn.bodyPending;
    if (this.answerLocally(this.prepared!)) return;
    if (body !== null) this.pendingBody = [body];
    this.attempt(null);
  }

  /** send asks the endpoint's pool for a connection (onUpstream); `fresh`: a new one, not an idle one. */
  protected override send(ep: Endpoint, route: RouteSpec, fresh = false): void {
    this.pool = ep.fastPool(route.timeouts.connectMs);
    this.pool.acquire(this, route.timeouts.readMs, fresh);
  }

  // ---- upstream ---------------------------------------------------------------------

  onUpstream(conn: UpstreamConnection): void {
    if (this.clientGone) { conn.giveBack(); return; }
    this.upstream = conn;
    // The client's own request line (when the path is unchanged) and header lines, then the
    // forwarding headers (an untrusted client's are its connection's, made once). Few parts:
    // V8 flattens the concatenation at the write, one node at a time.
    const path = this.decision!.path;
    const forwarding = this.client.trusted ? this.forwardingLines() : (this.conn.forwarding ??= this.forwardingLines());
    const head = (path === this.target ? this.head.requestLine : this.method + ' ' + path + ' HTTP/1.1\r\n') + this.head.forwardLines
      + forwarding + 'x-request-id: ' + this.requestId + '\r\nx-forwarded-host: ' + this.forwardedHost!
      + (this.clientCertHeaders === null ? '\r\n\r\n' : '\r\n' + headerLines(this.clientCertHeaders) + '\r\n');
    this.requestSent = true;
    const noBody = this.method === 'HEAD';
    const pending = this.pendingBody;
    this.pendingBody = null;
    if (pending === null) {
      conn.send(head, this.bodyComplete, noBody);
    } else {
      conn.socket.cork();
      conn.send(head, false, noBody);
      for (let i = 0; i < pending.length; i++) conn.write(pending[i]!, this.bodyComplete && i === pending.length - 1);
      conn.socket.uncork();
    }
    if (this.bodyComplete) return;
    // Body bytes that came before the connection paused the client; the rest flows now.
    if (conn.socket.writableNeedDrain) this.waitUpstreamDrain(); else this.conn.resume();
  }

  /**
   * forwardingLines are the forwarding headers but X-Request-Id and X-Forwarded-Host, from
   * prepare's values, as one flat string (join) rather than a concatenation to flatten.
   */
  private forwardingLines(): string {
    return ['x-forwarded-for: ', this.forwardedFor, '\r\nx-forwarded-proto: ', this.forwardedProto, '\r\nx-forwarded-port: ', this.forwardedPort,
      '\r\nx-real-ip: ', this.realIp, '\r\n'].join('');
  }

  /** clientBody takes request body bytes as they arrive; `last` marks the end of the body. */
  clientBody(chunk: Buffer, last: boolean): void {
    if (last) this.bodyComplete = true;
    if (this.responding || this.done) return;
    const up = this.upstream;
    if (up === null) {
      (this.pendingBody ??= []).push(chunk);
      // Before a connection is ready, hold at most one head's worth of body.
      if (!last) this.conn.pause();
      return;
    }
    if (!up.write(chunk, last) && !last) this.waitUpstreamDrain();
  }

  private waitUpstreamDrain(): void {
    this.conn.pause();
    this.upstream!.socket.once('drain', this.onUpstreamDrainBound ??= () => this.conn.resume());
  }

  onResponseHead(h: ResponseHead): void {
    this.responseStarted();
    this.status = h.status;
    let extra = '';
    if (this.setCookie !== null) extra += `set-cookie: ${this.setCookie}\r\n`;
    if (this.hsts !== null) extra += `strict-transport-security: ${this.hsts}\r\n`;
    this.closeAfter = this.head.close || h.framing === 'close' || !this.bodyComplete || this.ctx.draining;
    if (this.closeAfter) extra += 'connection: close\r\n';
    // The head goes out with the first body bytes (one write), or alone at the end.
    this.response = h;
    this.extraHeaders = extra;
    // A client still sending a body the upstream no longer reads would stall: stop reading it.
    if (!this.bodyComplete) this.conn.pause();
  }

  /** takeHead is the client's response head, with `body` in the same buffer when it is small. */
  private takeHead(body: Buffer | null): Buffer {
    const h = this.response!;
    this.response = null;
    return h.clientHead(this.extraHeaders, h.hasReason ? '' : STATUS_CODES[h.status] ?? '', body);
  }

  onResponseData(chunk: Buffer): void {
    // The chunk lives in the upstream connection's read buffer: what is written is a copy
    // (the head's buffer, or Buffer.from), since the socket may keep it until it is flushed.
    let ok: boolean;
    if (this.response !== null) {
      if (chunk.length <= COALESCE_BYTES) {
        ok = this.conn.write(this.takeHead(chunk));
      } else {
        this.conn.socket.cork();
        this.conn.write(this.takeHead(null));
        ok = this.conn.write(Buffer.from(chunk));
        this.conn.socket.uncork();
      }
    } else {
      ok = this.conn.write(Buffer.from(chunk));
    }
    if (!ok) {
      this.upstream!.pause();
      this.conn.socket.once('drain', this.onClientDrainBound ??= () => this.upstream?.resume());
    }
  }

  onResponseEnd(): void {
    if (this.response !== null) this.conn.write(this.takeHead(null));
    this.upstream = null;
    this.responseEnded(this.status);
    this.conn.exchangeDone(this.closeAfter);
  }

  onUpstreamError(err: Error, sent: boolean, reused: boolean): void {
    this.upstream = null;
    // clientClosed has finished the exchange already.
    if (this.clientGone) return;
    this.requestSent = sent;
    // A keep-alive connection the upstream closed just as it was reused: try a new one once,
    // on the same endpoint and as the same attempt.
    if (!this.responding && reused && !this.staleRetried && this.replayable() && (err as { code?: string }).code === 'UND_ERR_SOCKET') {
      this.staleRetried = true;
      this.requestSent = false;
      this.send(this.endpoint!, this.decision!.route!, true);
      return;
    }
    this.upstreamError(err);
  }

  protected override abortResponse(): void { this.conn.socket.destroy(); }

  /**
   * bodyTimedOut: the client did not send the body in time. Before a response it gets 408 and
   * the upstream connection, holding a request that will never be complete, is dropped; once
   * the upstream answered (before reading the whole body), the body no longer matters.
   */
  bodyTimedOut(detail: string): void {
    if (this.done || this.responding) return;
    if (this.upstream !== null) { this.upstream.abort(); this.upstream = null; this.endpoint!.inflight--; }
    else if (this.pool !== null && this.endpoint !== null) { this.pool.withdraw(this); this.endpoint.inflight--; }
    this.fail(408, detail);
  }

  /** clientClosed: the client connection closed before the response was complete. */
  clientClosed(): void {
    if (this.done) return;
    this.clientGone = true;
    if (this.upstream !== null) { this.upstream.abort(); this.upstream = null; this.endpoint!.inflight--; }
    else if (this.pool !== null && this.endpoint !== null) { this.pool.withdraw(this); this.endpoint.inflight--; }
    this.finish(499);
  }

  // ---- proxy-made replies ------------------------------------------------------------

  protected override closesAfter(status: number): boolean { return this.head.close || super.closesAfter(status); }

  protected override bodyUnread(): boolean { return !this.bodyComplete; }

  protected override sendReply(r: Reply, close: boolean): void {
    this.conn.write(replyBytes(r));
    this.finish(r.status);
    this.conn.exchangeDone(close);
  }
}
