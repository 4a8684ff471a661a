/**
 * Slow clients against `vane proxy` (issue 18, weakness 1): request bodies trickled or stopped
 * part way, more requests than an endpoint has connections, and one client opening many
 * connections. Each is bounded — by --client-body-timeout, --client-body-total-timeout,
 * --upstream-queue and its timeout, --max-connections-per-client — and the other requests
 * keep being served. Timeouts are short here; assertions allow for the worker's 100 ms clock.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer as createNetServer, type Server as NetServer, type Socket, type AddressInfo } from 'node:net';
import {
  startUpstream, echo, runProxy, tempDir, writeManifests, ingress, service, INGRESS_CLASS, get, metric,
  type Upstream, type RunningProxy,
} from './harness.ts';
import { eventually } from '../../support/wait.ts';

const BODY_IDLE_MS = 400;
const BODY_TOTAL_MS = 1_200;
const QUEUE_TIMEOUT_MS = 2_500;
/** Timeouts fire on the worker's 100 ms clock (at most 200 ms late); plus process scheduling. */
const LATE_MS = 700;

let dir: { dir: string; remove(): Promise<void> };
let app: Upstream;
/** Answers a request only when the test says so (release), holding its connection meanwhile. */
let held: { port: number; server: NetServer; waiting: Socket[]; requests: number; release(): void; close(): Promise<void> };
let proxy: RunningProxy;

before(async () => {
  dir = await tempDir();
  app = await startUpstream('app', echo);
  const waiting: Socket[] = [];
  const server = createNetServer((s) => {
    s.on('error', () => s.destroy());
    let buf = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      buf += d;
      while (buf.includes('\r\n\r\n')) { buf = buf.slice(buf.indexOf('\r\n\r\n') + 4); held.requests++; waiting.push(s); }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  held = {
    port: (server.address() as AddressInfo).port, server, waiting, requests: 0,
    release: () => { for (const s of waiting.splice(0)) s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld'); },
    close: () => new Promise((r) => { for (const s of waiting) s.destroy(); server.close(() => r()); }),
  };
  await writeManifests(dir.dir, 'all.json', [
    INGRESS_CLASS,
    ingress({ name: 'app', host: 'app.test', paths: [{ path: '/held', service: 'held' }, { path: '/', service: 'app' }] }),
    ...service('app', [{ port: app.port }]),
    ...service('held', [{ port: held.port }]),
  ]);
  proxy = await runProxy(dir.dir, [
    '--upstream-connections', '2', '--upstream-queue', '1', '--upstream-queue-timeout', `${QUEUE_TIMEOUT_MS}ms`,
    '--client-body-timeout', `${BODY_IDLE_MS}ms`, '--client-body-total-timeout', `${BODY_TOTAL_MS}ms`,
  ]);
});

after(async () => {
  await proxy?.stop();
  await app?.close();
  await held?.close();
  await dir?.remove();
});

interface Conversation { socket: Socket; received: () => string; closed: Promise<number> }

/** open starts a client connection to `port` that collects what the proxy sends and when it closes. */
function open(port: number): Conversation {
  const socket = connect(port, '127.0.0.1');
  let got = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => { got += d; });
  socket.on('error', () => undefined);
  return { socket, received: () => got, closed: new Promise((r) => socket.once('close', () => r(Date.now()))) };
}

/** trickle sends `head` and then one body byte every `everyMs` until the connection closes. */
function trickle(head: string, everyMs: number): Conversation & { started: number } {
  const c = open(proxy.http);
  c.socket.write(head);
  const timer = setInterval(() => { if (!c.socket.destroyed) c.socket.write('x'); }, everyMs);
  void c.closed.then(() => clearInterval(timer));
  return { ...c, started: Date.now() };
}

const within = (what: string, ms: number, from: number, at: number) => {
  assert.ok(at - from >= ms - 50 && at - from <= ms + LATE_MS, `${what} after ${at - from} ms, expected ${ms} ms`);
};

test('two clients trickling bodies no longer stall an endpoint with two connections: they get 408 within the total, the others are served', { timeout: 20_000 }, async () => {
  const before = app.requests;
  const slow = [0, 1].map(() => trickle('POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100000\r\n\r\n', 150));
  await eventually('both trickled requests to hold an upstream connection', () => app.requests >= before + 2, 5_000);
  const other = get(proxy.http, '/other', { host: 'app.test' });
  const closedAt = await Promise.all(slow.map((c) => c.closed));
  for (const [i, c] of slow.entries()) {
    const at = closedAt[i]!;
    assert.match(c.received(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.match(c.received(), /\r\nconnection: close\r\n/);
    assert.match(c.received(), new RegExp(`request body not received within ${BODY_TOTAL_MS} ms`));
    within('the trickling client got 408 and its connection closed', BODY_TOTAL_MS, c.started, at);
  }
  const r = await other;
  assert.equal(r.status, 200, 'the request queued behind them got a connection');
  assert.equal(JSON.parse(r.body).url, '/other');
});

test('a body that stops part way gets 408 after --client-body-timeout, on the fast path and on node:http', { timeout: 20_000 }, async () => {
  const cases = [
    // The fast path names the limit; node:http's path answers with the upstream request's end.
    { head: 'POST /stops HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\nabc', detail: `no request body bytes for ${BODY_IDLE_MS} ms` },
    { head: 'POST /stops HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n', detail: 'request body not received in time' },
  ];
  for (const { head, detail } of cases) {
    const c = open(proxy.http);
    const started = Date.now();
    c.socket.write(head);
    const closedAt = await c.closed;
    assert.match(c.received(), /^HTTP\/1\.1 408 Request Timeout\r\n/, head);
    assert.ok(c.received().includes(`408 Request Timeout: ${detail}\n`), c.received());
    within('the silent client got 408', BODY_IDLE_MS, started, closedAt);
  }
  assert.equal((await get(proxy.http, '/after', { host: 'app.test' })).status, 200, 'the upstream connections were given back');
});

test('a body sent steadily but slower than the idle limit between reads is not cut by it', { timeout: 20_000 }, async () => {
  // Spaced at half the idle limit, and all within the total (1,200 ms) with time to spare.
  const length = 4;
  const c = open(proxy.http);
  c.socket.write(`POST /steady HTTP/1.1\r\nHost: app.test\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`);
  for (let i = 0; i < length; i++) {
    await new Promise((r) => setTimeout(r, BODY_IDLE_MS / 2));
    c.socket.write('y');
  }
  await c.closed;
  assert.match(c.received(), /^HTTP\/1\.1 200 /);
  assert.match(c.received(), /"bodyBytes":4/);
});

test('with every connection of an endpoint taken, one request waits (--upstream-queue 1), the next gets 503 at once, and the waiting one 503 after --upstream-queue-timeout', { timeout: 20_000 }, async () => {
  const before = held.requests;
  const holding = [get(proxy.http, '/held/1', { host: 'app.test' }), get(proxy.http, '/held/2', { host: 'app.test' })];
  await eventually('two requests to hold both connections', () => held.requests >= before + 2, 5_000);
  const queuedAt = Date.now();
  const queued = get(proxy.http, '/held/queued', { host: 'app.test' });
  await eventually('the third request to wait in the queue', async () => (await metric(proxy.admin, 'vane_proxy_upstream_waiting_requests')) === 1, 2_000);
  const refusedAt = Date.now();
  const refused = await get(proxy.http, '/held/refused', { host: 'app.test' });
  assert.equal(refused.status, 503);
  assert.equal(refused.headers['retry-after'], '1');
  assert.match(refused.body, /upstream busy/);
  assert.ok(Date.now() - refusedAt < 500, `refused at once, not after ${Date.now() - refusedAt} ms`);
  const late = await queued;
  assert.equal(late.status, 503);
  assert.equal(late.headers['retry-after'], '1');
  within('the queued request got 503', QUEUE_TIMEOUT_MS, queuedAt, Date.now());
  assert.ok(await metric(proxy.admin, 'vane_proxy_upstream_queue_rejections_total', { service: 'default/held:80' }) >= 2);
  held.release();
  const answered = await Promise.all(holding);
  assert.deepEqual(answered.map((r) => r.body), ['held', 'held'], 'the requests holding the connections were never disturbed');
});

test('--max-connections-per-client: a client\'s connection over the limit gets 503 with Retry-After and is closed; once one closes, it may connect again', { timeout: 30_000 }, async () => {
  const limited = await runProxy(dir.dir, ['--max-connections-per-client', '2']);
  try {
    const first = [open(limited.http), open(limited.http)];
    for (const c of first) c.socket.write('GET /kept HTTP/1.1\r\nHost: app.test\r\n\r\n');
    await eventually('both connections to be answered', () => first.every((c) => c.received().includes('"url":"/kept"')), 5_000);
    const third = open(limited.http);
    third.socket.write('GET /third HTTP/1.1\r\nHost: app.test\r\n\r\n');
    await third.closed;
    assert.match(third.received(), /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(third.received(), /\r\nretry-after: 1\r\n/);
    assert.match(third.received(), /too many connections from this client address/);
    assert.equal(await metric(limited.admin, 'vane_proxy_client_limit_refusals_total'), 1);
    first[0]!.socket.destroy();
    await first[0]!.closed;
    await eventually('a new connection to be served once one of the others closed', async () => (await get(limited.http, '/again', { host: 'app.test' })).status === 200, 5_000);
    first[1]!.socket.destroy();
  } finally {
    await limited.stop();
  }
});
