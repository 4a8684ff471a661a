/**
 * Plain-HTTP/1.1 upstream connections for the fast path: one pool per endpoint and worker
 * (keep-alive, no pipelining, at most `connections` sockets, then a FIFO queue), a strict
 * response parser, and nothing on the request path that allocates beyond the bytes it moves.
 *
 * Errors carry the codes undici uses for the same cases, so the exchange treats both upstream
 * paths alike: UND_ERR_CONNECT_TIMEOUT, UND_ERR_HEADERS_TIMEOUT (no response head within the
 * read timeout), UND_ERR_BODY_TIMEOUT (silence mid-body), UND_ERR_SOCKET (closed or reset
 * early), UND_ERR_RESPONSE (malformed response), and the socket's own (ECONNREFUSED, …).
 *
 * The queue is bounded twice, so that a few slow requests holding every connection (a client
 * trickling its body, a slow upstream) cost the others a quick 503 rather than an endless
 * wait: at most `queue` exchanges wait once every connection is taken (EVANE_QUEUE_FULL), and
 * none waits longer than `queueTimeoutMs` (EVANE_QUEUE_TIMEOUT), on the worker's coarse clock.
 */
import { connect, type Socket } from 'node:net';
import { idleSweeper, type IdleWatched } from '../idle.ts';
import { UpstreamError } from '../errors.ts';
import { ChunkScanner, INCOMPLETE, MALFORMED, parseResponseHead, type ResponseHead } from '../http1/response-head.ts';

/** MAX_RESPONSE_HEAD is the largest upstream response head accepted (nginx's large buffers: 4 × 8 KiB, doubled). */
const MAX_RESPONSE_HEAD = 65_536;
/** Read buffer per upstream connection: larger reads mean fewer syscalls on big bodies. */
const READ_BUFFER_BYTES = 32_768;

export interface UpstreamSettings {
  connections: number;
  keepAliveMs: number;
  connectMs: number;
  /** Exchanges that may wait once every connection is taken. */
  queue: number;
  queueTimeoutMs: number;
  /** Shared by every pool of the worker (both paths'): the requests waiting for a connection now. */
  waiting: { count: number };
}

/** UpstreamExchange is what a pooled connection reports to, one request at a time. */
export interface UpstreamExchange {
  /** A connection is ready: the exchange writes its request with `send`. */
  onUpstream(conn: UpstreamConnection): void;
  onResponseHead(head: ResponseHead): void;
  /**
   * Body bytes, framing included for chunked bodies (relayed as they are). The chunk is a view
   * of the connection's read buffer, valid only during the call: copy what outlives it.
   */
  onResponseData(chunk: Buffer): void;
  onResponseEnd(): void;
  /** `sent`: the request had been written; `reused`: on a connection that served before. */
  onUpstreamError(err: Error, sent: boolean, reused: boolean): void;
}

/** UpstreamConnection is one keep-alive socket to an endpoint. */
export class UpstreamConnection implements IdleWatched {
  readonly socket: Socket;
  active = false;
  idleLimitMs = 0;
  idleDeadline = 0;
  private readonly readBuf: Buffer;
  private readonly pool: UpstreamPool;
  private user: UpstreamExchange | null = null;
  private buf: Buffer | null = null;
  private head: ResponseHead | null = null;
  private remaining = 0;
  private chunks: ChunkScanner | null = null;
  private noBody = false;
  private sent = false;
  private requestDone = false;
  private readMs = 0;
  connected = false;
  /** Requests this connection answered; above 0 it came from the idle list. */
  served = 0;
  private dead = false;

  constructor(pool: UpstreamPool, address: string, port: number, connectMs: number) {
    this.pool = pool;
    // Reads land in one buffer per connection (onread) rather than a new one per read, and skip
    // the Readable machinery: upstream reads are half of a proxy's reads.
    const readBuf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    this.readBuf = readBuf;
    this.socket = connect({ host: address, port, noDelay: true, onread: { buffer: readBuf, callback: (n: number) => { this.onData(readBuf.subarray(0, n)); return true; } } });
    idleSweeper.watch(this, connectMs);
    this.socket.on('connect', () => this.onConnect());
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.fail(new UpstreamError('UND_ERR_SOCKET', 'upstream closed the connection')));
  }

  /** park sets the idle limit of a connection back in the pool. */
  park(keepAliveMs: number): void { idleSweeper.watch(this, keepAliveMs); }

  private onConnect(): void {
    this.connected = true;
    this.pool.connected(this);
  }

  /** assign hands the connection to an exchange. */
  assign(user: UpstreamExchange, readMs: number): void {
    this.user = user;
    this.readMs = readMs;
    this.head = null;
    this.sent = false;
    this.requestDone = false;
    this.chunks = null;
    idleSweeper.watch(this, readMs);
    user.onUpstream(this);
  }

  /** send writes the request head (and whatever body bytes are at hand); `noBody`: a HEAD request. */
  send(data: string | Buffer, complete: boolean, noBody: boolean): boolean {
    this.sent = true;
    this.noBody = noBody;
    this.requestDone = complete;
    this.active = true;
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  /** write sends more request body; `complete` marks its last bytes. */
  write(chunk: Buffer, complete: boolean): boolean {
    if (complete) this.requestDone = true;
    this.active = true;
    return this.socket.write(chunk);
  }

  pause(): void { this.socket.pause(); }
  resume(): void { this.socket.resume(); }

  private onData(d: Buffer): void {
    this.active = true;
    const user = this.user;
    if (user === null) { this.destroy(); return; }
    if (this.head === null) {
      const buf = this.buf === null ? d : Buffer.concat([this.buf, d]);
      const h = parseResponseHead(buf, MAX_RESPONSE_HEAD, this.noBody);
      if (h === INCOMPLETE) { this.buf = buf.buffer === this.readBuf.buffer ? Buffer.from(buf) : buf; return; }
      this.buf = null;
      if (h === MALFORMED) { this.fail(new UpstreamError('UND_ERR_RESPONSE', 'malformed response from upstream')); return; }
      // 1xx interim responses (103 Early Hints and the like) are not relayed.
      if (h.status < 200) {
        if (buf.length > h.size) this.onData(buf.subarray(h.size));
        return;
      }
      this.head = h;
      if (h.framing === 'length') this.remaining = h.length;
      else if (h.framing === 'chunked') this.chunks = new ChunkScanner();
      user.onResponseHead(h);
      if (this.user !== user) return;
      if (h.framing === 'none' || (h.framing === 'length' && h.length === 0)) { this.complete(buf.length > h.size); return; }
      if (buf.length > h.size) this.body(buf.subarray(h.size));
      // The exchange keeps the head until body bytes come: it must not point into the read buffer.
      else h.own();
      return;
    }
    this.body(d);
  }

  private body(d: Buffer): void {
    const h = this.head!;
    const user = this.user!;
    if (h.framing === 'length') {
      if (d.length < this.remaining) { this.remaining -= d.length; user.onResponseData(d); return; }
      const extra = d.length > this.remaining;
      user.onResponseData(extra ? d.subarray(0, this.remaining) : d);
      this.remaining = 0;
      if (this.user === user) this.complete(extra);
      return;
    }
    if (h.framing === 'chunked') {
      const end = this.chunks!.scan(d, 0);
      if (end === -2) { this.fail(new UpstreamError('UND_ERR_RESPONSE', 'malformed chunked body from upstream')); return; }
      if (end === -1) { user.onResponseData(d); return; }
      user.onResponseData(end < d.length ? d.subarray(0, end) : d);
      if (this.user === user) this.complete(end < d.length);
      return;
    }
    user.onResponseData(d);
  }

  /** complete ends the response; `trailing`: the upstream sent bytes past it (never reuse then). */
  private complete(trailing: boolean): void {
    const user = this.user!;
    const reusable = this.head!.reusable && this.requestDone && !trailing;
    this.user = null;
    this.served++;
    // The exchange may have paused reading for back-pressure; a pooled connection must read.
    if (this.socket.isPaused()) this.socket.resume();
    if (reusable) this.pool.release(this);
    else this.destroy();
    user.onResponseEnd();
  }

  idleTimedOut(): void {
    if (!this.connected) { this.fail(new UpstreamError('UND_ERR_CONNECT_TIMEOUT', 'connecting to upstream timed out')); return; }
    if (this.user === null) { this.destroy(); return; }
    this.fail(this.head === null
      ? new UpstreamError('UND_ERR_HEADERS_TIMEOUT', `no response head within ${this.readMs} ms`)
      : new UpstreamError('UND_ERR_BODY_TIMEOUT', `upstream silent for ${this.readMs} ms`));
  }

  /** fail ends the connection; the exchange on it, if any, learns why. */
  private fail(err: Error): void {
    if (this.dead) return;
    const user = this.user;
    // A close-delimited body ends when the upstream closes.
    if (user !== null && this.head?.framing === 'close' && (err as { code?: string }).code === 'UND_ERR_SOCKET') {
      this.user = null;
      this.destroy();
      user.onResponseEnd();
      return;
    }
    this.user = null;
    this.destroy();
    if (user !== null) user.onUpstreamError(err, this.sent, this.served > 0);
    else if (!this.connected) this.pool.connectFailed(err);
  }

  /** giveBack returns an unused connection (its exchange no longer needs it) to the pool. */
  giveBack(): void {
    this.user = null;
    this.pool.release(this);
  }

  /** abort drops the connection mid-exchange (the client went away): it is never reused. */
  abort(): void {
    this.user = null;
    this.destroy();
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    idleSweeper.unwatch(this);
    this.socket.destroy();
    this.pool.removed(this);
  }
}

/** UpstreamPool holds one endpoint's connections. */
export class UpstreamPool {
  private readonly address: string;
  private readonly port: number;
  private readonly settings: UpstreamSettings;
  private readonly idle: UpstreamConnection[] = [];
  private readonly connecting: UpstreamConnection[] = [];
  private readonly waiting: Waiter[] = [];
  private total = 0;
  private closed = false;

  constructor(address: string, port: number, settings: UpstreamSettings) {
    this.address = address;
    this.port = port;
    this.settings = settings;
  }

  /** acquire finds a connection for the exchange (now, or once one is free); `fresh` skips idle ones. */
  acquire(user: UpstreamExchange, readMs: number, fresh = false): void {
    if (this.closed) { user.onUpstreamError(new UpstreamError('UND_ERR_CLOSED', 'endpoint removed'), false, false); return; }
    if (!fresh) {
      const conn = this.idle.pop();
      if (conn !== undefined) { conn.assign(user, readMs); return; }
    }
    const opening = this.total < this.settings.connections;
    if (!opening && this.waiting.length - this.connecting.length >= this.settings.queue) {
      user.onUpstreamError(new UpstreamError('EVANE_QUEUE_FULL', `${this.settings.queue} requests already wait for a connection to ${this.address}:${this.port}`), false, false);
      return;
    }
    const w = new Waiter(this, user, readMs);
    this.waiting.push(w);
    this.settings.waiting.count++;
    idleSweeper.watch(w, this.settings.queueTimeoutMs);
    if (opening) this.open();
  }

  /** withdraw removes an exchange still waiting for a connection (its client went away). */
  withdraw(user: UpstreamExchange): void {
    const i = this.waiting.findIndex((w) => w.user === user);
    if (i < 0) return;
    idleSweeper.unwatch(this.waiting.splice(i, 1)[0]!);
    this.settings.waiting.count--;
  }

  /** expired fails a waiter whose deadline passed. */
  expired(w: Waiter): void {
    const i = this.waiting.indexOf(w);
    if (i < 0) return;
    this.waiting.splice(i, 1);
    this.settings.waiting.count--;
    w.user.onUpstreamError(new UpstreamError('EVANE_QUEUE_TIMEOUT', `no connection to ${this.address}:${this.port} within ${this.settings.queueTimeoutMs} ms`), false, false);
  }

  /** next takes the oldest waiter off the queue. */
  private next(): Waiter | undefined {
    const w = this.waiting.shift();
    if (w !== undefined) { idleSweeper.unwatch(w); this.settings.waiting.count--; }
    return w;
  }

  private open(): void {
    this.total++;
    this.connecting.push(new UpstreamConnection(this, this.address, this.port, this.settings.connectMs));
  }

  /** connected: a new connection is up; it serves the oldest waiting exchange. */
  connected(conn: UpstreamConnection): void {
    const i = this.connecting.indexOf(conn);
    if (i >= 0) this.connecting.splice(i, 1);
    this.release(conn);
  }

  /** connectFailed fails the oldest waiting exchange: each connection attempt was made for one. */
  connectFailed(err: Error): void {
    const w = this.next();
    if (w !== undefined) w.user.onUpstreamError(err, false, false);
  }

  release(conn: UpstreamConnection): void {
    // Exchanges that queued before the pool closed are still served, as undici's Pool does.
    const w = this.next();
    if (w !== undefined) { conn.assign(w.user, w.readMs); return; }
    if (this.closed) { conn.destroy(); return; }
    conn.park(this.settings.keepAliveMs);
    this.idle.push(conn);
  }

  removed(conn: UpstreamConnection): void {
    this.total--;
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    const j = this.connecting.indexOf(conn);
    if (j >= 0) this.connecting.splice(j, 1);
    if (this.waiting.length > this.connecting.length && this.total < this.settings.connections) this.open();
  }

  /** close refuses new exchanges and drops idle connections; busy and queued ones finish first. */
  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.destroy();
  }

  destroy(): void {
    this.closed = true;
    for (const c of [...this.idle, ...this.connecting]) c.destroy();
    for (const w of this.waiting.splice(0)) {
      idleSweeper.unwatch(w);
      this.settings.waiting.count--;
      w.user.onUpstreamError(new UpstreamError('UND_ERR_DESTROYED', 'endpoint removed'), false, false);
    }
  }
}

/** Waiter is an exchange waiting for a connection, with its deadline on the worker's coarse clock. */
class Waiter implements IdleWatched {
  readonly pool: UpstreamPool;
  readonly user: UpstreamExchange;
  readonly readMs: number;
  /** Never set: time in the queue counts whatever happens meanwhile. */
  active = false;
  idleLimitMs = 0;
  idleDeadline = 0;

  constructor(pool: UpstreamPool, user: UpstreamExchange, readMs: number) {
    this.pool = pool;
    this.user = user;
    this.readMs = readMs;
  }

  idleTimedOut(): void { this.pool.expired(this); }
}
