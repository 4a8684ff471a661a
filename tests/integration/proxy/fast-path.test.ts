/**
 * The fast path (raw sockets, proxy/http1) against real upstreams, including raw ones that
 * answer in ways node:http servers never do: chunked bodies with trailers, close-delimited
 * bodies, interim 1xx responses, malformed heads, keep-alive connections closed under the
 * proxy's feet. Where a connection moves to node:http, the handoff metric says so.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest, Agent, type IncomingMessage } from 'node:http';
import { connect, createServer as createNetServer, type Server as NetServer, type Socket, type AddressInfo } from 'node:net';
import {
  startUpstream, echo, runProxy, tempDir, writeManifests, ingress, service, INGRESS_CLASS, get, raw, metric,
  type Upstream, type RunningProxy, type Echo,
} from './harness.ts';
import { eventually } from '../../support/wait.ts';

interface RawUpstream { port: number; requests: number; server: NetServer; close(): Promise<void> }

/** rawUpstream answers each request head it reads with `answer(socket, head, nth request on this connection)`. */
async function rawUpstream(answer: (socket: Socket, head: string, nth: number) => void): Promise<RawUpstream> {
  const up: RawUpstream = { port: 0, requests: 0, server: createNetServer(), close: () => new Promise((r) => { up.server.close(() => r()); }) };
  const sockets = new Set<Socket>();
  up.server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buf = '';
    let nth = 0;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      buf += d;
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        up.requests++;
        answer(socket, head, ++nth);
      }
    });
  });
  await new Promise<void>((r) => up.server.listen(0, '127.0.0.1', () => r()));
  up.port = (up.server.address() as AddressInfo).port;
  const close = up.close;
  up.close = () => { for (const s of sockets) s.destroy(); return close(); };
  return up;
}

let dir: { dir: string; remove(): Promise<void> };
let app: Upstream;
let trailers: Upstream;
let early: Upstream;
let sink: Upstream;
let closeDelimited: RawUpstream;
let hints: RawUpstream;
let malformed: RawUpstream;
let stale: RawUpstream;
let heads: RawUpstream;
let split: RawUpstream;
let hold: RawUpstream;
let proxy: RunningProxy;
const BIG = randomBytes(4 * 1024 * 1024);

before(async () => {
  dir = await tempDir();
  app = await startUpstream('app', (req, res, up) => {
    if (!req.url!.startsWith('/big')) { echo(req, res, up); return; }
    // Random bytes, so that a byte relayed from the wrong place cannot go unnoticed.
    if (req.url === '/big-length') res.setHeader('content-length', BIG.length);
    let at = 0;
    const pump = () => {
      while (at < BIG.length) {
        const piece = BIG.subarray(at, at + 48 * 1024);
        at += piece.length;
        if (!res.write(piece)) { res.once('drain', pump); return; }
      }
      res.end();
    };
    pump();
  });
  trailers = await startUpstream('trailers', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
    res.write('first,');
    setImmediate(() => { res.write('second'); res.addTrailers({ 'x-checksum': 'abc123' }); res.end(); });
  });
  // Answers before reading the body, as servers do when they refuse an upload.
  early = await startUpstream('early', (_req, res) => { res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' }); res.end('too big for me'); });
  sink = await startUpstream('sink', (req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => { hash.update(c); bytes += c.length; });
    // Not reading for a while fills the socket buffers, so the proxy's writes queue.
    if (req.url!.includes('stall')) { req.pause(); setTimeout(() => req.resume(), 300); }
    req.on('end', () => {
      const reply = () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex'), te: req.headers['transfer-encoding'] ?? null }));
      if (req.url!.includes('slow')) setTimeout(reply, 300); else reply();
    });
  });
  closeDelimited = await rawUpstream((s) => { s.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nthe body ends when the connection does'); });
  hints = await rawUpstream((s) => { s.write('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal'); });
  malformed = await rawUpstream((s) => { s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok'); });
  // Keep-alive in words only: every connection is dropped when a second request arrives on it.
  stale = await rawUpstream((s, _head, nth) => {
    if (nth > 1) { s.destroy(); return; }
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh');
  });
  heads = await rawUpstream((s, head) => {
    s.write(head.startsWith('HEAD ') ? 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n' : 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget');
  });
  // A head in two pieces, then (each in a later read of the proxy's) a body longer than the head.
  split = await rawUpstream((s) => {
    s.write('HTTP/1.1 200 Fine Thanks\r\nX-Head-');
    setTimeout(() => {
      s.write('Marker: the head kept its own bytes\r\nContent-Length: 3000\r\n\r\n');
      setTimeout(() => s.write('z'.repeat(3000)), 30);
    }, 30);
  });
  // Answers after 1.5 s: a request to it holds the endpoint's only connection meanwhile.
  hold = await rawUpstream((s) => { setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld'), 1_500); });
  await writeManifests(dir.dir, 'hold.json', service('hold', [{ port: hold.port }]));
  await writeManifests(dir.dir, 'all.json', [
    INGRESS_CLASS,
    ingress({ name: 'app', host: 'app.test', paths: [
      { path: '/trailers', service: 'trailers' }, { path: '/early', service: 'early' }, { path: '/sink', service: 'sink' },
      { path: '/close-delimited', service: 'close-delimited' }, { path: '/hints', service: 'hints' }, { path: '/malformed', service: 'malformed' },
      { path: '/stale', service: 'stale' }, { path: '/head', service: 'heads' }, { path: '/split', service: 'split' }, { path: '/hold', service: 'hold' }, { path: '/', service: 'app' },
    ] }),
    ...service('app', [{ port: app.port }]),
    ...service('trailers', [{ port: trailers.port }]),
    ...service('early', [{ port: early.port }]),
    ...service('sink', [{ port: sink.port }]),
    ...service('close-delimited', [{ port: closeDelimited.port }]),
    ...service('hints', [{ port: hints.port }]),
    ...service('malformed', [{ port: malformed.port }]),
    ...service('stale', [{ port: stale.port }]),
    ...service('heads', [{ port: heads.port }]),
    ...service('split', [{ port: split.port }]),
  ]);
  // One upstream connection per endpoint, so that requests queue for it.
  proxy = await runProxy(dir.dir, ['--client-header-timeout', '500ms', '--upstream-connections', '1']);
});

after(async () => {
  await proxy?.stop();
  await Promise.all([app, trailers, early, sink].map((u) => u?.close()));
  await Promise.all([closeDelimited, hints, malformed, stale, heads, split, hold].map((u) => u?.close()));
  await dir?.remove();
});

const handoffs = (reason: string) => metric(proxy.admin, 'vane_proxy_fast_path_handoffs_total', { reason });

interface Got { status: number; headers: IncomingMessage['headers']; trailers: IncomingMessage['trailers']; body: Buffer; reused: boolean }

function send(agent: Agent, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | Buffer[]): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxy.http, method, path, agent, headers: { host: 'app.test', ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, trailers: res.trailers, body: Buffer.concat(parts), reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (Array.isArray(body)) { for (const b of body) req.write(b); req.end(); } else req.end(body);
  });
}

test('a keep-alive connection leaves the fast path at a chunked request and keeps working', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const before = await handoffs('request');
  const first = await send(agent, 'GET', '/one');
  assert.equal(first.status, 200);
  assert.equal(await handoffs('request'), before, 'a plain GET stays on the fast path');
  const payload = randomBytes(200_000);
  const chunked = await send(agent, 'POST', '/sink', { 'transfer-encoding': 'chunked' }, [payload.subarray(0, 1000), payload.subarray(1000)]);
  const got = JSON.parse(chunked.body.toString()) as { bytes: number; sha256: string };
  assert.equal(got.bytes, payload.length);
  assert.equal(got.sha256, createHash('sha256').update(payload).digest('hex'));
  const third = await send(agent, 'GET', '/three');
  assert.equal(third.status, 200);
  assert.equal((JSON.parse(third.body.toString()) as Echo).url, '/three');
  assert.ok(chunked.reused && third.reused, 'the same client connection served all three');
  assert.equal(await handoffs('request'), before + 1, 'the connection moved once, at the chunked request');
  agent.destroy();
});

test('a Content-Length upload of 8 MiB streams through the fast path intact', async () => {
  const before = await handoffs('request');
  const payload = randomBytes(8 * 1024 * 1024);
  const agent = new Agent({ keepAlive: false });
  const parts: Buffer[] = [];
  for (let i = 0; i < payload.length; i += 300_000) parts.push(payload.subarray(i, i + 300_000));
  const r = await send(agent, 'POST', '/sink', { 'content-length': String(payload.length) }, parts);
  const got = JSON.parse(r.body.toString()) as { bytes: number; sha256: string; te: string | null };
  assert.equal(got.bytes, payload.length);
  assert.equal(got.sha256, createHash('sha256').update(payload).digest('hex'));
  assert.equal(got.te, null, 'the length, not chunked framing, went upstream');
  assert.equal(await handoffs('request'), before);
});

test('an upload that waits for a busy upstream connection flows once it gets one', async () => {
  const agent = new Agent({ keepAlive: false });
  const seen = sink.requests;
  const busy = send(agent, 'GET', '/sink/slow');
  await eventually('the slow request to hold the only upstream connection', () => sink.requests > seen);
  const payload = randomBytes(256 * 1024);
  const upload = new Promise<Got>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxy.http, method: 'POST', path: '/sink', agent, headers: { host: 'app.test', 'content-length': String(payload.length) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, trailers: res.trailers, body: Buffer.concat(parts), reused: false }));
    });
    req.on('error', reject);
    // The body keeps coming, in pieces small enough to be written upstream at once, while the
    // request waits in the pool's queue.
    let at = 0;
    const more = () => {
      req.write(payload.subarray(at, at + 4096));
      at += 4096;
      if (at < payload.length) setTimeout(more, 5); else req.end();
    };
    more();
  });
  assert.equal((await busy).status, 200);
  const r = await upload;
  const got = JSON.parse(r.body.toString()) as { bytes: number; sha256: string };
  assert.equal(got.bytes, payload.length);
  assert.equal(got.sha256, createHash('sha256').update(payload).digest('hex'));
});

test('requests queued for an endpoint that leaves the routing are still served by it', { timeout: 20_000 }, async () => {
  const agent = new Agent({ keepAlive: false });
  const seen = hold.requests;
  const first = send(agent, 'GET', '/hold/first');
  await eventually('the first request to hold the only connection', () => hold.requests > seen);
  const queued = send(agent, 'GET', '/hold/queued');
  // The Service moves to another endpoint: the old one's pool closes with a request waiting.
  await writeManifests(dir.dir, 'hold.json', service('hold', [{ port: app.port }]));
  await eventually('the new endpoint to serve', async () => (await get(proxy.http, '/hold/probe', { host: 'app.test' })).headers['x-upstream'] === 'app');
  const bounded = <T>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the queued request was never answered')), 5_000))]);
  const [a, b] = await bounded(Promise.all([first, queued]));
  assert.equal(a.body.toString(), 'held');
  assert.equal(b.status, 200);
  assert.equal(b.body.toString(), 'held', 'served by the endpoint it queued for');
  await writeManifests(dir.dir, 'hold.json', service('hold', [{ port: hold.port }]));
});

test('4 MiB responses arrive byte for byte, chunked or with a length, to fast and to slow readers', async () => {
  const expected = createHash('sha256').update(BIG).digest('hex');
  for (const path of ['/big', '/big-length']) {
    for (const slow of [false, true]) {
      const got = await new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: proxy.http, path, headers: { host: 'app.test' }, agent: false }, (res) => {
          const hash = createHash('sha256');
          let bytes = 0;
          res.on('data', (c: Buffer) => {
            hash.update(c);
            bytes += c.length;
            // A slow reader makes the proxy pause the upstream, not buffer it.
            if (slow) { res.pause(); setTimeout(() => res.resume(), 1); }
          });
          res.on('end', () => resolve({ bytes, sha256: hash.digest('hex') }));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(got.bytes, BIG.length, `${path}, slow: ${slow}`);
      assert.equal(got.sha256, expected, `${path}, slow: ${slow}`);
    }
  }
});

test('pipelined requests are answered in order on one connection', async () => {
  const r = await raw(proxy.http, 'GET /first HTTP/1.1\r\nHost: app.test\r\n\r\nGET /second HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n');
  const urls = [...r.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(urls, ['/first', '/second']);
  assert.equal(r.match(/HTTP\/1\.1 200 /g)?.length, 2);
});

test('chunked responses are relayed with their trailers, and the connection is reused', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const a = await send(agent, 'GET', '/trailers');
  assert.equal(a.status, 200);
  assert.equal(a.body.toString(), 'first,second');
  assert.equal(a.headers['transfer-encoding'], 'chunked');
  assert.equal(a.trailers['x-checksum'], 'abc123');
  const b = await send(agent, 'GET', '/trailers');
  assert.equal(b.body.toString(), 'first,second');
  assert.ok(b.reused);
  agent.destroy();
});

test('a close-delimited upstream body reaches the client whole, and that connection closes', async () => {
  const r = await raw(proxy.http, 'GET /close-delimited HTTP/1.1\r\nHost: app.test\r\n\r\n');
  assert.match(r, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(r, /\r\nconnection: close\r\n/i);
  assert.doesNotMatch(r, /content-length/i);
  assert.ok(r.endsWith('\r\n\r\nthe body ends when the connection does'), r);
});

test('a head that arrives before its body reaches the client intact', async () => {
  for (let i = 0; i < 3; i++) {
    const r = await raw(proxy.http, 'GET /split HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n');
    assert.ok(r.startsWith('HTTP/1.1 200 Fine Thanks\r\nX-Head-Marker: the head kept its own bytes\r\nContent-Length: 3000\r\n'), r.slice(0, 200));
    assert.ok(r.endsWith(`\r\n\r\n${'z'.repeat(3000)}`));
  }
});

test('interim 1xx responses are not relayed; the final response is', async () => {
  const r = await raw(proxy.http, 'GET /hints HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n');
  assert.doesNotMatch(r, /103/);
  assert.match(r, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(r.endsWith('final'));
});

test('a malformed upstream response head is a 502, never relayed', async () => {
  const r = await get(proxy.http, '/malformed', { host: 'app.test' });
  assert.equal(r.status, 502);
  assert.match(r.body, /upstream failed/);
});

test('HEAD gets the length without a body, and the connection carries on', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const h = await send(agent, 'HEAD', '/head');
  assert.equal(h.status, 200);
  assert.equal(h.body.length, 0);
  assert.equal(h.headers['content-length'], '1234');
  const g = await send(agent, 'GET', '/head');
  assert.equal(g.body.toString(), 'get');
  assert.ok(g.reused);
  agent.destroy();
});

test('a keep-alive upstream connection dropped on reuse: GET is retried on a new one, a POST with a body is not', async () => {
  const errorsBefore = await metric(proxy.admin, 'vane_proxy_upstream_connect_errors_total', { service: 'default/stale:80' });
  assert.equal((await get(proxy.http, '/stale', { host: 'app.test' })).body, 'fresh');
  const again = await get(proxy.http, '/stale', { host: 'app.test' });
  assert.equal(again.status, 200);
  assert.equal(again.body, 'fresh', 'answered on a new upstream connection');
  assert.equal(await metric(proxy.admin, 'vane_proxy_upstream_connect_errors_total', { service: 'default/stale:80' }), errorsBefore,
    'a stale pooled connection is not the endpoint failing');
  const post = await get(proxy.http, '/stale', { host: 'app.test', 'content-type': 'text/plain' }, 'POST', 'body');
  assert.equal(post.status, 502, 'a request with a body may have been processed: never replayed');
});

test('an upstream that answers before reading the upload: the client gets it and the connection closes', async () => {
  const r = await new Promise<string>((resolve, reject) => {
    const s = connect(proxy.http, '127.0.0.1', () => {
      s.write(`POST /early HTTP/1.1\r\nHost: app.test\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
      s.write(Buffer.alloc(64 * 1024, 1));
    });
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => { data += c; });
    s.on('close', () => resolve(data));
    s.on('error', () => resolve(data));
    s.setTimeout(5_000, () => { s.destroy(); reject(new Error(`no close; got: ${data}`)); });
  });
  assert.match(r, /^HTTP\/1\.1 413 /);
  assert.match(r, /\r\nconnection: close\r\n/i);
  assert.ok(r.endsWith('\r\n\r\ne\r\ntoo big for me\r\n0\r\n\r\n'), `the whole chunked response: ${r}`);
});

test('a client that half-closes after its request still gets the response', async () => {
  const r = await new Promise<string>((resolve, reject) => {
    const s = connect(proxy.http, '127.0.0.1', () => s.end('GET /half HTTP/1.1\r\nHost: app.test\r\n\r\n'));
    s.allowHalfOpen = true;
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => { data += c; });
    s.on('end', () => { s.destroy(); resolve(data); });
    s.on('error', reject);
    s.setTimeout(5_000, () => { s.destroy(); reject(new Error('timed out')); });
  });
  assert.match(r, /^HTTP\/1\.1 200 /);
  assert.match(r, /"url":"\/half"/);
});

test('a request head not complete within --client-header-timeout gets 408 and the connection closes', async () => {
  const started = Date.now();
  const r = await raw(proxy.http, 'GET /slow HTTP/1.1\r\nHost: app', 5_000);
  assert.match(r, /^HTTP\/1\.1 408 /);
  assert.ok(Date.now() - started >= 450, 'not before the timeout');
});

test('the fast path counts requests in the same metrics as the general path', async () => {
  const before = await metric(proxy.admin, 'vane_proxy_requests_total', { ingress: 'default/app', service: 'default/app:80', code: '2xx' });
  for (let i = 0; i < 5; i++) assert.equal((await get(proxy.http, '/counted', { host: 'app.test' })).status, 200);
  await eventually('the requests to be counted', async () =>
    (await metric(proxy.admin, 'vane_proxy_requests_total', { ingress: 'default/app', service: 'default/app:80', code: '2xx' })) >= before + 5);
});

test('idle keep-alive connections close after --client-keepalive-timeout and --upstream-keepalive-timeout, not before', async () => {
  const idle = await runProxy(dir.dir, ['--client-keepalive-timeout', '700ms', '--upstream-keepalive-timeout', '700ms']);
  try {
    const upstreamClosed = new Promise<number>((resolve) => { heads.server.once('connection', (s: Socket) => s.once('close', () => resolve(Date.now()))); });
    const client = connect(idle.http, '127.0.0.1');
    const clientClosed = new Promise<number>((resolve) => client.once('close', () => resolve(Date.now())));
    let got = '';
    const answered = new Promise<number>((resolve) => client.on('data', (d: Buffer) => { got += d.toString('latin1'); if (got.endsWith('\r\n\r\nget')) resolve(Date.now()); }));
    client.write('GET /head HTTP/1.1\r\nHost: app.test\r\n\r\n');
    const at = await answered;
    // The proxy wrote the response before the client read it: allow for that delivery.
    const [clientAt, upstreamAt] = await Promise.all([clientClosed, upstreamClosed]);
    assert.ok(clientAt - at >= 650 && clientAt - at < 3_000, `client connection closed ${clientAt - at} ms after the response`);
    assert.ok(upstreamAt - at >= 650 && upstreamAt - at < 3_000, `upstream connection closed ${upstreamAt - at} ms after the response`);
  } finally {
    await idle.stop();
  }
});

/** rawClient is a keep-alive client connection that collects what the proxy sends. */
function rawClient(): { socket: Socket; received: () => string; closed: Promise<void> } {
  const socket = connect(proxy.http, '127.0.0.1');
  let got = '';
  socket.on('data', (d: Buffer) => { got += d.toString('latin1'); });
  return { socket, received: () => got, closed: new Promise((r) => socket.once('close', () => r())) };
}

test('plain-HTTP reads share one buffer per worker, and bytes kept between reads survive other connections\' reads', async () => {
  assert.equal(await metric(proxy.admin, 'vane_proxy_fast_path_shared_reads_workers'), 1);
  // Traffic on other connections rewrites the shared read buffer while the bytes below wait.
  const churn = async () => { for (let i = 0; i < 30; i++) assert.equal((await get(proxy.http, `/churn/${'c'.repeat(i * 37)}`, { host: 'app.test' })).status, 200); };
  const agent = new Agent({ keepAlive: false });
  const seen = sink.requests;
  const busy = send(agent, 'GET', '/sink/slow');
  await eventually('the slow request to hold the only upstream connection', () => sink.requests > seen);

  // A body that came with its head, held while the request waits for the pool.
  const payload = randomBytes(3_000);
  const queued = rawClient();
  queued.socket.write(Buffer.concat([Buffer.from(`POST /sink HTTP/1.1\r\nHost: app.test\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n`), payload]));
  // A request pipelined after one that waits for the pool, in the same read.
  const pipelined = rawClient();
  pipelined.socket.write('GET /sink/p1 HTTP/1.1\r\nHost: app.test\r\n\r\nGET /second-of-two HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n');
  // A request that arrives in a later read while the one before it waits.
  const stashed = rawClient();
  stashed.socket.write('GET /sink/p2 HTTP/1.1\r\nHost: app.test\r\n\r\n');
  // A head that arrives in two reads.
  const split = rawClient();
  split.socket.write('GET /split-head HTTP/1.1\r\nHo');
  await churn();
  stashed.socket.write('GET /stashed HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n');
  await churn();
  split.socket.write('st: app.test\r\nX-Split: yes\r\nConnection: close\r\n\r\n');
  await churn();
  assert.equal((await busy).status, 200);
  await Promise.all([queued.closed, pipelined.closed, stashed.closed, split.closed]);

  const answer = JSON.parse(queued.received().slice(queued.received().indexOf('\r\n\r\n') + 4)) as { bytes: number; sha256: string };
  assert.equal(answer.bytes, payload.length);
  assert.equal(answer.sha256, createHash('sha256').update(payload).digest('hex'), 'the held body is the one sent');
  const urls = (text: string) => [...text.matchAll(/"url":"([^"]*)"/g)].map((m) => m[1]);
  assert.equal(pipelined.received().match(/HTTP\/1\.1 200 /g)?.length, 2, pipelined.received());
  assert.deepEqual(urls(pipelined.received()), ['/second-of-two']);
  assert.equal(stashed.received().match(/HTTP\/1\.1 200 /g)?.length, 2, stashed.received());
  assert.deepEqual(urls(stashed.received()), ['/stashed']);
  assert.deepEqual(urls(split.received()), ['/split-head']);
  assert.match(split.received(), /"x-split":"yes"/);

  // A body larger than the socket buffers, while other connections read: what waits to be
  // written upstream must not be a view of the shared buffer.
  const big = randomBytes(6 * 1024 * 1024);
  const upload = rawClient();
  upload.socket.write(`POST /sink/stall HTTP/1.1\r\nHost: app.test\r\nContent-Length: ${big.length}\r\nConnection: close\r\n\r\n`);
  upload.socket.write(big);
  // Uploads on other connections fill the whole shared buffer with their bytes.
  const bigChurn = async () => {
    for (let i = 0; i < 20; i++) assert.equal((await send(agent, 'POST', '/churn', {}, randomBytes(60_000))).status, 200);
  };
  await Promise.all([bigChurn(), bigChurn(), upload.closed]);
  const bigAnswer = JSON.parse(upload.received().slice(upload.received().indexOf('\r\n\r\n') + 4)) as { bytes: number; sha256: string };
  assert.equal(bigAnswer.bytes, big.length);
  assert.equal(bigAnswer.sha256, createHash('sha256').update(big).digest('hex'), 'the large body arrived intact');
});
