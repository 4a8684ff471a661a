/**
 * The fast path's queue for an upstream connection (proxy/upstream/pool.ts) against a real
 * upstream on 127.0.0.1 that takes connections and never answers: once every connection is
 * taken, at most `queue` exchanges wait, and none longer than `queueTimeoutMs` (issue 18: a
 * queued request used to wait forever, behind requests that never finish).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { UpstreamPool, type UpstreamConnection, type UpstreamExchange } from '../../../proxy/upstream/pool.ts';
import { IDLE_TICK_MS } from '../../../proxy/idle.ts';

let silent: Server;
let port = 0;
const sockets = new Set<Socket>();

before(async () => {
  silent = createServer((s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  port = (silent.address() as AddressInfo).port;
});

after(() => {
  for (const s of sockets) s.destroy();
  silent.close();
});

/** Exchange is a stand-in for an exchange: it records what the pool tells it. */
class Exchange implements UpstreamExchange {
  conn: UpstreamConnection | null = null;
  error: (Error & { code?: string }) | null = null;
  errorAtMs = 0;
  private readonly settled: Promise<void>;
  private settle!: () => void;
  constructor() { this.settled = new Promise((r) => { this.settle = r; }); }
  onUpstream(conn: UpstreamConnection): void {
    this.conn = conn;
    conn.send('GET / HTTP/1.1\r\nHost: silent\r\n\r\n', true, false);
    this.settle();
  }
  onResponseHead(): void { throw new Error('the upstream never answers'); }
  onResponseData(): void { throw new Error('the upstream never answers'); }
  onResponseEnd(): void { throw new Error('the upstream never answers'); }
  onUpstreamError(err: Error): void {
    this.error = err;
    this.errorAtMs = performance.now();
    this.settle();
  }
  /** outcome waits for a connection or an error, at most `ms`. */
  outcome(ms: number): Promise<'settled' | 'still waiting'> {
    return Promise.race([this.settled.then(() => 'settled' as const), new Promise<'still waiting'>((r) => setTimeout(() => r('still waiting'), ms))]);
  }
}

const READ_MS = 30_000;

test('with every connection taken, at most `queue` requests wait; the next fails at once with EVANE_QUEUE_FULL', async () => {
  const waiting = { count: 0 };
  const pool = new UpstreamPool('127.0.0.1', port, { connections: 1, keepAliveMs: 5_000, connectMs: 5_000, queue: 1, queueTimeoutMs: 30_000, waiting });
  try {
    const holder = new Exchange();
    pool.acquire(holder, READ_MS);
    assert.equal(await holder.outcome(2_000), 'settled');
    assert.ok(holder.conn, 'the first request holds the only connection');
    const queued = new Exchange();
    pool.acquire(queued, READ_MS);
    const refused = new Exchange();
    pool.acquire(refused, READ_MS);
    assert.equal(refused.error?.code, 'EVANE_QUEUE_FULL', 'refused before acquire returned');
    assert.match(refused.error.message, /1 requests already wait for a connection to 127\.0\.0\.1:\d+/);
    assert.equal(queued.error, null, 'the one in the queue keeps waiting');
    assert.equal(waiting.count, 1, 'the worker\'s gauge counts it');
    pool.withdraw(queued);
    assert.equal(waiting.count, 0);
    const next = new Exchange();
    pool.acquire(next, READ_MS);
    assert.equal(next.error, null, 'a withdrawn request frees its place in the queue');
  } finally {
    pool.destroy();
  }
});

test('a queued request waits at most `queueTimeoutMs`, then fails with EVANE_QUEUE_TIMEOUT', async () => {
  const timeoutMs = 300;
  const waiting = { count: 0 };
  const pool = new UpstreamPool('127.0.0.1', port, { connections: 1, keepAliveMs: 5_000, connectMs: 5_000, queue: 8, queueTimeoutMs: timeoutMs, waiting });
  try {
    const holder = new Exchange();
    pool.acquire(holder, READ_MS);
    assert.equal(await holder.outcome(2_000), 'settled');
    const started = performance.now();
    const queued = new Exchange();
    pool.acquire(queued, READ_MS);
    assert.equal(await queued.outcome(timeoutMs + 2_000), 'settled', 'the queued request is not left waiting');
    assert.equal(queued.error?.code, 'EVANE_QUEUE_TIMEOUT');
    const waited = queued.errorAtMs - started;
    assert.ok(waited >= timeoutMs && waited <= timeoutMs + 2 * IDLE_TICK_MS + 100, `waited ${waited.toFixed(0)} ms`);
    assert.equal(holder.error, null, 'the request holding the connection is not affected');
    assert.equal(waiting.count, 0);
  } finally {
    pool.destroy();
  }
});
