/**
 * The HTTP/1.1 behaviour users expect, against real upstreams: routing, headers, bodies,
 * keep-alive, errors with request ids, request smuggling rejections, WebSocket upgrades.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest, Agent } from 'node:http';
import { WebSocketServer, WebSocket } from 'ws';
import {
  startUpstream, echo, runProxy, tempDir, writeManifests, ingress, service, INGRESS_CLASS, get, raw, freePort, metric,
  type Upstream, type RunningProxy, type Echo,
} from './harness.ts';

const BIG_BYTES = 4 * 1024 * 1024;
let dir: { dir: string; remove(): Promise<void> };
let app: Upstream;
let slow: Upstream;
let sink: Upstream;
let wsUp: Upstream;
let wss: WebSocketServer;
let proxy: RunningProxy;

before(async () => {
  dir = await tempDir();
  app = await startUpstream('app', (req, res, up) => {
    if (req.url !== '/big') { echo(req, res, up); return; }
    const chunk = Buffer.alloc(64 * 1024, 120);
    let left = BIG_BYTES / chunk.length;
    const pump = () => { while (left > 0) { left--; if (!res.write(chunk)) { res.once('drain', pump); return; } } res.end(); };
    pump();
  });
  slow = await startUpstream('slow', (_req, res) => { setTimeout(() => res.end('late'), 1_500).unref(); });
  sink = await startUpstream('sink', (req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => { hash.update(c); bytes += c.length; });
    req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex'), te: req.headers['transfer-encoding'] ?? null })));
  });
  wsUp = await startUpstream('ws', (_req, res) => { res.statusCode = 426; res.end('upgrade required'); });
  wss = new WebSocketServer({ noServer: true });
  wsUp.server.on('upgrade', (req, socket, head) => {
    if (req.url === '/ws/deny') { socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nno way'); return; }
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m) => ws.send(`echo:${m.toString()}:${req.headers['x-forwarded-for']}`)));
  });
  const dead = await freePort();
  await writeManifests(dir.dir, 'all.json', [
    INGRESS_CLASS,
    ingress({ name: 'app', host: 'app.test', paths: [{ path: '/', service: 'app' }, { path: '/sink', service: 'sink' }, { path: '/ws', service: 'ws' }, { path: '/empty', service: 'empty' }, { path: '/dead', service: 'dead' }] }),
    ingress({ name: 'slow', host: 'slow.test', paths: [{ path: '/', service: 'slow' }], annotations: { 'vane.dev/read-timeout': '300ms' } }),
    ingress({ name: 'small', host: 'small.test', paths: [{ path: '/', service: 'sink' }], annotations: { 'vane.dev/proxy-body-size': '1k' } }),
    ingress({ name: 'rewrite', host: 'rw.test', paths: [{ path: '/api', service: 'app' }], annotations: { 'vane.dev/rewrite-target': '/v2' } }),
    ...service('app', [{ port: app.port }]),
    ...service('slow', [{ port: slow.port }]),
    ...service('sink', [{ port: sink.port }]),
    ...service('ws', [{ port: wsUp.port }]),
    ...service('empty', [{ port: app.port, ready: false, serving: false }]),
    ...service('dead', [{ port: dead }]),
  ]);
  proxy = await runProxy(dir.dir, ['--max-header-bytes', '4k']);
});

after(async () => {
  await proxy?.stop();
  wss?.close();
  await Promise.all([app, slow, sink, wsUp].map((u) => u?.close()));
  await dir?.remove();
});

function echoOf(body: string): Echo { return JSON.parse(body) as Echo; }

test('routes by host and path; Host is passed through and the upstream gets the normalised path', async () => {
  const r = await get(proxy.http, '/a/./b/../c//d?x=1&y=%2F', { host: 'App.Test:80' });
  assert.equal(r.status, 200);
  const e = echoOf(r.body);
  assert.equal(e.name, 'app');
  assert.equal(e.url, '/a/c/d?x=1&y=%2F');
  assert.equal(e.headers.host, 'App.Test:80');
  const enc = echoOf((await get(proxy.http, '/a%2Fb/%2e%2e/c', { host: 'app.test' })).body);
  assert.equal(enc.url, '/c', '%2e%2e is a dot segment, so it removes a%2Fb (one segment: %2F is not a separator)');
});

test('rewrite-target replaces the matched prefix', async () => {
  const e = echoOf((await get(proxy.http, '/api/users?id=7', { host: 'rw.test' })).body);
  assert.equal(e.url, '/v2/users?id=7');
});

test('404 for unknown hosts, with a plain-text body and the request id', async () => {
  const r = await get(proxy.http, '/', { host: 'nobody.test' });
  assert.equal(r.status, 404);
  assert.match(r.headers['content-type'] as string, /^text\/plain/);
  const id = r.headers['x-request-id'] as string;
  assert.ok(id && r.body.includes(id));
});

test('X-Request-Id is kept when present and generated otherwise', async () => {
  assert.equal(echoOf((await get(proxy.http, '/', { host: 'app.test', 'x-request-id': 'abc-123' })).body).headers['x-request-id'], 'abc-123');
  const ids = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const generated = echoOf((await get(proxy.http, '/', { host: 'app.test' })).body).headers['x-request-id'] as string;
    assert.match(generated, /^[0-9a-f]{32}$/, 'the shape of ingress-nginx\'s $request_id');
    ids.add(generated);
  }
  assert.equal(ids.size, 20, 'each request has its own id');
});

test('hop-by-hop headers and those named in Connection are removed; forwarding headers are set', async () => {
  const r = await raw(proxy.http, 'GET /h HTTP/1.1\r\nHost: app.test\r\nConnection: close, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Kept: yes\r\n'
    + 'X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n\r\n');
  const e = echoOf(r.slice(r.indexOf('\r\n\r\n') + 4));
  assert.equal(e.headers['x-secret-hop'], undefined);
  assert.equal(e.headers['keep-alive'], undefined);
  assert.equal(e.headers.te, undefined);
  assert.equal(e.headers['x-kept'], 'yes');
  assert.equal(e.headers['x-forwarded-for'], '127.0.0.1', 'an untrusted client cannot inject X-Forwarded-For');
  assert.equal(e.headers['x-forwarded-proto'], 'http');
  assert.equal(e.headers['x-forwarded-host'], 'app.test');
  assert.equal(e.headers['x-forwarded-port'], String(proxy.http));
});

test('a Connection header that names Host or Content-Length cannot strip them: the body and the next request stay apart', async () => {
  const r = await raw(proxy.http, 'POST /first HTTP/1.1\r\nHost: app.test\r\nConnection: Content-Length, Host\r\nContent-Length: 5\r\n\r\nhello'
    + 'GET /second HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n');
  const bodies = r.split('HTTP/1.1 ').slice(1).map((resp) => echoOf(resp.slice(resp.indexOf('\r\n\r\n') + 4)));
  assert.deepEqual(bodies.map((e) => [e.method, e.url, e.headers.host, e.bodyBytes]), [['POST', '/first', 'app.test', 5], ['GET', '/second', 'app.test', 0]]);
});

test('keep-alive on both sides: one client connection, pooled upstream connections', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const before = app.connections;
  const sockets = new Set<unknown>();
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: proxy.http, path: '/ka', headers: { host: 'app.test' }, agent }, (res) => {
        sockets.add(res.socket);
        res.resume();
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end();
    });
  }
  agent.destroy();
  assert.equal(sockets.size, 1, 'the client connection was reused');
  assert.ok(app.connections - before <= 1, `upstream connections opened: ${app.connections - before}`);
});

test('large bodies stream both ways: a chunked 8 MiB upload arrives intact', async () => {
  const payload = randomBytes(8 * 1024 * 1024);
  const result = await new Promise<string>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxy.http, path: '/sink', method: 'POST', headers: { host: 'app.test', 'transfer-encoding': 'chunked' }, agent: false }, (res) => {
      let d = '';
      res.on('data', (c: Buffer) => { d += c; });
      res.on('end', () => resolve(d));
    });
    req.on('error', reject);
    for (let i = 0; i < payload.length; i += 256 * 1024) req.write(payload.subarray(i, i + 256 * 1024));
    req.end();
  });
  const got = JSON.parse(result) as { bytes: number; sha256: string; te: string | null };
  assert.equal(got.bytes, payload.length);
  assert.equal(got.sha256, createHash('sha256').update(payload).digest('hex'));
  assert.equal(got.te, 'chunked');

  const big = await new Promise<number>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxy.http, path: '/big', headers: { host: 'app.test' }, agent: false }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => { n += c.length; });
      res.on('end', () => resolve(n));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(big, BIG_BYTES);
});

test('Expect: 100-continue gets 100 before the body, and 413 instead when the body is too large', async () => {
  const continued = await raw(proxy.http, 'POST /sink HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n', 1_000);
  assert.match(continued, /^HTTP\/1\.1 100 Continue\r\n/);
  const refused = await raw(proxy.http, 'POST / HTTP/1.1\r\nHost: small.test\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n');
  assert.match(refused, /^HTTP\/1\.1 413 /);
  assert.doesNotMatch(refused, /100 Continue/);
});

test('413 for bodies over the route limit, declared or chunked', async () => {
  const declared = await get(proxy.http, '/', { host: 'small.test', 'content-length': '2000' }, 'POST', 'x'.repeat(2000));
  assert.equal(declared.status, 413);
  assert.match(declared.body, /request id: /);
  const chunked = await raw(proxy.http, `POST / HTTP/1.1\r\nHost: small.test\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n${'y'.repeat(0x800)}\r\n0\r\n\r\n`);
  assert.match(chunked, /^HTTP\/1\.1 413 /);
  const fits = await get(proxy.http, '/', { host: 'small.test' }, 'POST', 'z'.repeat(1000));
  assert.equal(fits.status, 200);
});

test('431 for oversized headers, 400 for malformed requests', async () => {
  const big = await raw(proxy.http, `GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`);
  assert.match(big, /^HTTP\/1\.1 431 /);
  const bad = await raw(proxy.http, 'GET / HTTP/1.1\r\nHost: app.test\r\nBad Header: x\r\n\r\n');
  assert.match(bad, /^HTTP\/1\.1 400 /);
  const path = await raw(proxy.http, 'GET /a%zz HTTP/1.1\r\nHost: app.test\r\n\r\n');
  assert.match(path, /^HTTP\/1\.1 400 /);
});

test('request smuggling attempts are rejected and never forwarded', async () => {
  const before = sink.requests;
  const attempts = {
    'Content-Length with Transfer-Encoding': 'POST /sink HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n',
    'duplicate Content-Length': 'POST /sink HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd',
    'Transfer-Encoding not ending in chunked': 'POST /sink HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
    'obfuscated Transfer-Encoding': 'POST /sink HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
    'Transfer-Encoding on HTTP/1.0': 'POST /sink HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'two Host headers': 'GET /sink HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n',
    'bare LF line endings': 'POST /sink HTTP/1.1\nHost: app.test\nContent-Length: 1\n\nx',
  };
  // Each attempt is followed, in the same write, by a request the refusal must never let through.
  const follower = 'GET /sink/follower HTTP/1.1\r\nHost: app.test\r\n\r\n';
  for (const [name, text] of Object.entries(attempts)) {
    const r = await raw(proxy.http, text + follower);
    assert.match(r, /^HTTP\/1\.1 400 /, name);
    assert.equal((r.match(/HTTP\/1\.1 /g) ?? []).length, 1, `${name}: exactly one response`);
  }
  assert.equal(sink.requests, before, 'nothing reached the upstream');
});

test('503 without ready endpoints, 502 when the upstream refuses, 504 on read timeout', async () => {
  const none = await get(proxy.http, '/empty', { host: 'app.test' });
  assert.equal(none.status, 503);
  assert.match(none.body, /no ready endpoints/);
  const refused = await get(proxy.http, '/dead', { host: 'app.test' });
  assert.equal(refused.status, 502);
  assert.ok(refused.body.includes(refused.headers['x-request-id'] as string));
  const started = Date.now();
  const late = await get(proxy.http, '/', { host: 'slow.test' });
  assert.equal(late.status, 504);
  assert.ok(Date.now() - started < 1_400, 'the read timeout of the annotation applied');
});

test('WebSocket upgrades are proxied end to end; a refused upgrade is passed back', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${proxy.http}/ws/chat`, { headers: { host: 'app.test' } });
  const reply = await new Promise<string>((resolve, reject) => {
    ws.once('open', () => ws.send('hello'));
    ws.once('message', (m) => resolve(m.toString()));
    ws.once('error', reject);
  });
  assert.equal(reply, 'echo:hello:127.0.0.1');
  ws.close();
  const denied = await raw(proxy.http, 'GET /ws/deny HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
  assert.match(denied, /^HTTP\/1\.1 403 /);
  assert.match(denied, /no way$/);
});

test('admin port: /healthz and /readyz', async () => {
  const health = await get(proxy.admin, '/healthz');
  assert.equal(health.status, 200);
  const ready = await get(proxy.admin, '/readyz');
  assert.equal(ready.status, 200);
  const body = JSON.parse(ready.body) as { ready: boolean; generation: number; workers: { ready: boolean }[] };
  assert.equal(body.ready, true);
  assert.equal(body.generation, 1);
  assert.deepEqual(body.workers.map((w) => w.ready), [true]);
});

test('request metrics carry ingress, service and status class', async () => {
  await get(proxy.http, '/m', { host: 'app.test' });
  assert.ok(await metric(proxy.admin, 'vane_proxy_requests_total', { ingress: 'default/app', service: 'default/app:80', code: '2xx' }) >= 1);
  assert.ok(await metric(proxy.admin, 'vane_proxy_requests_total', { ingress: 'default/app', service: 'default/empty:80', code: '5xx' }) >= 1);
  assert.ok(await metric(proxy.admin, 'vane_proxy_upstream_connect_errors_total', { service: 'default/dead:80' }) >= 1);
  assert.ok(await metric(proxy.admin, 'vane_proxy_request_duration_seconds_count', { ingress: 'default/app' }) >= 1);
  assert.equal(await metric(proxy.admin, 'vane_proxy_routing_generation'), 1);
});
