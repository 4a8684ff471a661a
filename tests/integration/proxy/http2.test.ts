/**
 * HTTP/2 to clients (issue 19): ALPN h2 and http/1.1 on the HTTPS port, routing and canary
 * selection identical over both protocols, the translation both ways (`:authority`, cookies,
 * hop-by-hop headers, trailers), request bodies streamed with flow control, the limits (header
 * list, concurrent streams, rapid reset, body and idle timeouts) and h2c only when enabled. Real
 * node:http2 clients (and raw HTTP/2 frames where a client library would be too polite) against a
 * real `vane proxy`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect, constants, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connect as netConnect, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { selfSignedCertificate } from '../../../proxy/index.ts';
import {
  startUpstream, runProxy, tempDir, writeManifests, ingress, service, tlsSecret, INGRESS_CLASS, get, metric, echo,
  type Upstream, type RunningProxy, type Echo,
} from './harness.ts';
import { eventually } from '../../support/wait.ts';

const certA = selfSignedCertificate({ commonName: 'a.test', altNames: ['a.test', 'b.test'] });

let dir: { dir: string; remove(): Promise<void> };
let ups: Upstream[] = [];
let stable: Upstream;
let canary: Upstream;
let other: Upstream;
let special: Upstream;
/** The sink's first request body is read only once this resolves (flow control test). */
let releaseSink: () => void = () => undefined;
let sinkGate: Promise<void> = Promise.resolve();
let proxy: RunningProxy;

function canaryObject(traffic: object): object {
  return {
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary',
    metadata: { name: 'shop', namespace: 'default', creationTimestamp: '2024-01-01T00:00:00Z' },
    spec: { ingressRef: { name: 'a' }, service: 'stable', canaryService: { name: 'canary', port: { number: 80 } }, traffic },
  };
}

before(async () => {
  dir = await tempDir();
  stable = await startUpstream('stable');
  canary = await startUpstream('canary');
  other = await startUpstream('other');
  special = await startUpstream('special', (req, res, up) => {
    const path = req.url!;
    if (path.startsWith('/slow')) return; // answers never: streams stay open until the client or the proxy ends them
    if (path.startsWith('/delay')) { setTimeout(() => res.end('late'), 1_000); return; }
    if (path.startsWith('/trailers')) {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('part one, ');
      res.addTrailers({ 'x-checksum': 'abc123', 'x-status-detail': 'fine' });
      res.end('part two');
      return;
    }
    if (path.startsWith('/hop')) {
      // Hop-by-hop headers an HTTP/2 response must not carry (and one that Connection names).
      res.writeHead(200, { connection: 'x-dropped', 'x-dropped': 'yes', 'keep-alive': 'timeout=5', 'x-kept': 'yes', 'content-length': '2' });
      res.end('ok');
      return;
    }
    if (path.startsWith('/upload')) {
      const hash = createHash('sha256');
      let bytes = 0;
      void sinkGate.then(() => {
        req.on('data', (c: Buffer) => { bytes += c.length; hash.update(c); });
        req.on('end', () => { res.setHeader('x-upstream', up.name); res.end(JSON.stringify({ bytes, sha256: hash.digest('hex'), te: req.headers['transfer-encoding'] ?? null })); });
      });
      return;
    }
    echo(req, res, up);
  });
  ups = [stable, canary, other, special];
  await writeManifests(dir.dir, 'all.json', [
    INGRESS_CLASS,
    ingress({ name: 'a', host: 'a.test', paths: [{ path: '/', service: 'stable' }], tls: [{ hosts: ['a.test'], secretName: 'cert-a' }] }),
    ingress({ name: 'special', host: 'a.test', paths: ['/slow', '/delay', '/trailers', '/hop', '/upload'].map((p) => ({ path: p, service: 'special' })), tls: [{ hosts: ['a.test'], secretName: 'cert-a' }] }),
    ingress({ name: 'b', host: 'b.test', paths: [{ path: '/', service: 'other' }], tls: [{ hosts: ['b.test'], secretName: 'cert-a' }] }),
    ingress({ name: 'plain', host: 'plain.test', paths: [{ path: '/', service: 'other' }] }),
    canaryObject({ weight: 30, header: { name: 'X-Canary' }, cookie: { name: 'canary' } }),
    tlsSecret('cert-a', certA),
    ...service('stable', [{ port: stable.port }]),
    ...service('canary', [{ port: canary.port }]),
    ...service('other', [{ port: other.port }]),
    ...service('special', [{ port: special.port }]),
  ]);
  // 12 KiB: below node:http2's own default (16 KiB), so the limit seen is the proxy's.
  proxy = await runProxy(dir.dir, ['--client-body-timeout', '2s', '--max-header-bytes', '12k']);
});

after(async () => {
  await proxy?.stop();
  await Promise.all(ups.map((u) => u.close()));
  await dir?.remove();
});

// ---- clients -----------------------------------------------------------------------------

function h2(port = proxy.https, servername = 'a.test'): ClientHttp2Session {
  const s = h2connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, servername });
  s.on('error', () => undefined);
  return s;
}

interface H2Reply { status: number; headers: IncomingHttpHeaders; trailers: IncomingHttpHeaders | null; body: string }

function h2request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let status = 0;
    let got: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | null = null;
    let data = '';
    req.on('response', (h) => { got = h; status = Number(h[':status']); });
    req.on('trailers', (t) => { trailers = t; });
    req.setEncoding('utf8');
    req.on('data', (c: string) => { data += c; });
    req.on('end', () => resolve({ status, headers: got, trailers, body: data }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

/** h1 is an HTTP/1.1 request over TLS to the same port. */
function h1(path: string, headers: Record<string, string>, servername = 'a.test'): Promise<{ status: number; headers: Record<string, unknown>; body: string; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    // node:https passes ALPNProtocols on to tls.connect; its types leave it out.
    const options = { host: '127.0.0.1', port: proxy.https, path, servername, rejectUnauthorized: false, agent: false, ALPNProtocols: ['http/1.1'], headers: { host: servername, ...headers } };
    const req = httpsRequest(options as RequestOptions, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: data, alpn: (res.socket as TLSSocket).alpnProtocol }));
    });
    req.on('error', reject);
    req.end();
  });
}

function alpn(protocols: string[]): Promise<string | false | null> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: proxy.https, servername: 'a.test', rejectUnauthorized: false, ALPNProtocols: protocols }, () => {
      const p = s.alpnProtocol;
      s.destroy();
      resolve(p);
    });
    s.on('error', reject);
  });
}

/** within is `p`, or 'timed out' after `ms`: a missing GOAWAY fails its test instead of hanging it. */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timed out'> {
  return Promise.race([p, new Promise<'timed out'>((r) => setTimeout(() => r('timed out'), ms).unref())]);
}

// ---- raw frames, for what node:http2's client will not do -----------------------------

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** hpack encodes headers as literals without indexing (RFC 7541 §6.2.2), names and values under 127 bytes. */
function hpack(headers: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [n, v] of headers) parts.push(Buffer.from([0, n.length]), Buffer.from(n, 'latin1'), Buffer.from([v.length]), Buffer.from(v, 'latin1'));
  return Buffer.concat(parts);
}

const HEADERS = 1;
const RST_STREAM = 3;
const GOAWAY = 7;
const END_STREAM = 1;
const END_HEADERS = 4;

interface RawFrame { type: number; flags: number; stream: number; payload: Buffer }

/** rawH2 opens a TLS connection that chose h2 and collects the frames the proxy sends. */
async function rawH2(): Promise<{ socket: TLSSocket; frames: RawFrame[]; closed: Promise<void> }> {
  const socket = tlsConnect({ host: '127.0.0.1', port: proxy.https, servername: 'a.test', rejectUnauthorized: false, ALPNProtocols: ['h2'] });
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', () => resolve()); socket.once('error', reject); });
  assert.equal(socket.alpnProtocol, 'h2');
  const frames: RawFrame[] = [];
  let buf = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const length = buf.readUIntBE(0, 3);
      if (buf.length < 9 + length) break;
      frames.push({ type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + length) });
      buf = buf.subarray(9 + length);
    }
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  socket.write(Buffer.concat([PREFACE, frame(4, 0, 0)]));
  return { socket, frames, closed };
}

function requestHeaders(method: string, path: string): Buffer {
  return hpack([[':method', method], [':scheme', 'https'], [':authority', 'a.test'], [':path', path]]);
}

// ---- tests -------------------------------------------------------------------------------

test('ALPN: h2 and http/1.1 on the same port, h2 preferred', async () => {
  assert.equal(await alpn(['h2', 'http/1.1']), 'h2');
  assert.equal(await alpn(['http/1.1', 'h2']), 'h2');
  assert.equal(await alpn(['http/1.1']), 'http/1.1');
  const s = h2();
  try {
    const r = await h2request(s, { ':path': '/', ':authority': 'a.test', 'x-canary': 'never' });
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as Echo).name, 'stable');
  } finally { s.close(); }
  const r1 = await h1('/', { 'x-canary': 'never' });
  assert.equal(r1.alpn, 'http/1.1');
  assert.equal((JSON.parse(r1.body) as Echo).name, 'stable');
});

test('routing and canary selection are the same over HTTP/1.1 and HTTP/2', async () => {
  const fixtures: { path: string; host: string; headers: Record<string, string> }[] = [
    { path: '/', host: 'a.test', headers: { 'x-canary': 'always' } },
    { path: '/', host: 'a.test', headers: { 'x-canary': 'never' } },
    { path: '/', host: 'a.test', headers: { cookie: 'canary=always' } },
    { path: '/', host: 'a.test', headers: { cookie: 'canary=never' } },
    { path: '/x', host: 'a.test', headers: { cookie: 'vane_bucket=5' } },
    { path: '/x', host: 'a.test', headers: { cookie: 'vane_bucket=95' } },
    { path: '/y', host: 'a.test', headers: { cookie: 'theme=dark; vane_bucket=10.5' } },
    { path: '/any', host: 'b.test', headers: {} },
  ];
  const s1 = h2(proxy.https, 'a.test');
  const s2 = h2(proxy.https, 'b.test');
  const seen = new Set<string>();
  try {
    for (const f of fixtures) {
      const one = await h1(f.path, f.headers, f.host);
      const two = await h2request(f.host === 'a.test' ? s1 : s2, { ':path': f.path, ':authority': f.host, ...f.headers });
      const a = (JSON.parse(one.body) as Echo).name;
      const b = (JSON.parse(two.body) as Echo).name;
      assert.equal(b, a, `${f.host}${f.path} ${JSON.stringify(f.headers)}: HTTP/1.1 went to ${a}, HTTP/2 to ${b}`);
      seen.add(b);
    }
  } finally { s1.close(); s2.close(); }
  assert.deepEqual([...seen].sort(), ['canary', 'other', 'stable']);
});

test(':authority routes and becomes Host; a differing Host is 400; split cookies are joined', async () => {
  const s = h2(proxy.https, 'a.test');
  try {
    // The connection's SNI is a.test; :authority alone decides the route (connection reuse, RFC 9113 §9.1.1).
    const r = await h2request(s, { ':path': '/p?q=1', ':authority': 'b.test', cookie: ['a=1', 'b=2'] });
    assert.equal(r.status, 200);
    const e = JSON.parse(r.body) as Echo;
    assert.equal(e.name, 'other');
    assert.equal(e.url, '/p?q=1');
    assert.equal(e.headers.host, 'b.test');
    assert.equal(e.headers['x-forwarded-host'], 'b.test');
    assert.equal(e.headers['x-forwarded-proto'], 'https');
    assert.equal(e.rawHeaders.filter((n, i) => i % 2 === 0 && n.toLowerCase() === 'cookie').length, 1, 'one Cookie header upstream');
    assert.equal(e.headers.cookie, 'a=1; b=2');
    const bad = await h2request(s, { ':path': '/', ':authority': 'a.test', host: 'b.test' });
    assert.equal(bad.status, 400);
    assert.match(bad.body, /Host header differs from :authority/);
    // A cookie rule reads every crumb, wherever HTTP/2 split them.
    const c = await h2request(s, { ':path': '/', ':authority': 'a.test', cookie: ['theme=dark', 'canary=always'] });
    assert.equal((JSON.parse(c.body) as Echo).name, 'canary');
  } finally { s.close(); }
});

test('hop-by-hop headers are dropped both ways', async () => {
  const s = h2();
  try {
    const r = await h2request(s, { ':path': '/', ':authority': 'a.test', te: 'trailers', 'x-canary': 'never' });
    const e = JSON.parse(r.body) as Echo;
    assert.equal(e.headers.te, undefined);
    const hop = await h2request(s, { ':path': '/hop', ':authority': 'a.test' });
    assert.equal(hop.status, 200);
    assert.equal(hop.body, 'ok');
    assert.equal(hop.headers['x-kept'], 'yes');
    assert.equal(hop.headers['x-dropped'], undefined);
    assert.equal(hop.headers['keep-alive'], undefined);
    assert.equal(hop.headers.connection, undefined);
  } finally { s.close(); }
});

test('trailers of a chunked HTTP/1.1 upstream response reach the HTTP/2 client', async () => {
  const s = h2();
  try {
    const r = await h2request(s, { ':path': '/trailers', ':authority': 'a.test' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'part one, part two');
    assert.equal(r.trailers?.['x-checksum'], 'abc123');
    assert.equal(r.trailers?.['x-status-detail'], 'fine');
  } finally { s.close(); }
});

test('a large request body streams to the upstream with flow control', async () => {
  sinkGate = new Promise<void>((r) => { releaseSink = r; });
  const total = 32 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 7);
  const hash = createHash('sha256');
  const s = h2();
  try {
    const req = s.request({ ':method': 'POST', ':path': '/upload', ':authority': 'a.test' });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => { body += c; });
    const ended = new Promise<void>((resolve, reject) => { req.on('end', () => resolve()); req.on('error', reject); });
    let sent = 0;
    const writing = (async () => {
      while (sent < total) {
        const c = chunk.subarray(0, Math.min(chunk.length, total - sent));
        // Each chunk differs, so a byte lost or repeated changes the hash.
        c.writeUInt32BE(sent / chunk.length, 0);
        hash.update(c);
        sent += c.length;
        if (!req.write(Buffer.from(c))) await new Promise((r) => req.once('drain', r));
      }
      req.end();
    })();
    await new Promise((r) => setTimeout(r, 1_000));
    // The upstream reads nothing yet: windows and buffers hold a few MiB at most, not the body.
    const whilePaused = sent;
    assert.ok(whilePaused < 12 * 1024 * 1024, `${whilePaused} bytes went out while the upstream read nothing`);
    releaseSink();
    await writing;
    await ended;
    const got = JSON.parse(body) as { bytes: number; sha256: string; te: string | null };
    assert.equal(got.bytes, total);
    assert.equal(got.sha256, hash.digest('hex'));
    assert.equal(got.te, 'chunked', 'a body without content-length goes upstream chunked');
  } finally {
    releaseSink();
    sinkGate = Promise.resolve();
    s.close();
  }
});

test('a request body the client stops sending gets 408 (--client-body-timeout)', async () => {
  const s = h2();
  try {
    const req = s.request({ ':method': 'POST', ':path': '/', ':authority': 'a.test' });
    req.write('some of it');
    const reply = await new Promise<number>((resolve, reject) => {
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
    });
    assert.equal(reply, 408);
  } finally { s.close(); }
});

test('a header list over --max-header-bytes is refused; the proxy keeps serving', async () => {
  const s = h2();
  try {
    const ok = await h2request(s, { ':path': '/', ':authority': 'a.test', 'x-big': 'v'.repeat(8 * 1024) });
    assert.equal(ok.status, 200);
    const refused = await h2request(s, { ':path': '/', ':authority': 'a.test', 'x-big': 'v'.repeat(14 * 1024) })
      .then((r) => r.status, (err: Error & { code?: string }) => err.code ?? err.message);
    assert.equal(refused, 'ERR_HTTP2_STREAM_ERROR', 'the stream is reset');
  } finally { s.close(); }
  const s2 = h2();
  try {
    assert.equal((await h2request(s2, { ':path': '/', ':authority': 'a.test' })).status, 200);
  } finally { s2.close(); }
});

test('streams over SETTINGS_MAX_CONCURRENT_STREAMS (100) are refused', async () => {
  const { socket, frames } = await rawH2();
  try {
    const open: Buffer[] = [];
    // 101 requests whose bodies never come: each holds its stream open.
    for (let i = 0; i < 101; i++) open.push(frame(HEADERS, END_HEADERS, 1 + 2 * i, requestHeaders('POST', '/slow')));
    socket.write(Buffer.concat(open));
    const rst = await eventually('a RST_STREAM', () => frames.find((f) => f.type === RST_STREAM), 5_000);
    assert.equal(rst.stream, 201, 'the 101st stream is the one refused');
    assert.equal(rst.payload.readUInt32BE(0), constants.NGHTTP2_REFUSED_STREAM);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(frames.filter((f) => f.type === RST_STREAM).length, 1, 'the first 100 stay open');
    assert.equal(frames.filter((f) => f.type === GOAWAY).length, 0);
  } finally { socket.destroy(); }
});

test('rapid reset: a flood of opened and reset streams gets GOAWAY ENHANCE_YOUR_CALM; others are served', async () => {
  const before = await metric(proxy.admin, 'vane_proxy_http2_rapid_reset_closes_total');
  const { socket, frames, closed } = await rawH2();
  const cancel = Buffer.alloc(4);
  cancel.writeUInt32BE(constants.NGHTTP2_CANCEL);
  const deadline = Date.now() + 10_000;
  let pairs = 0;
  // At most 5,000 pairs (nghttp2's own limit would answer after 1,000 with INTERNAL_ERROR).
  while (pairs < 5_000 && !socket.destroyed && Date.now() < deadline && !frames.some((f) => f.type === GOAWAY)) {
    const batch: Buffer[] = [];
    for (let i = 0; i < 50; i++, pairs++) {
      const id = 1 + 2 * pairs;
      batch.push(frame(HEADERS, END_HEADERS | END_STREAM, id, requestHeaders('GET', '/slow')), frame(RST_STREAM, 0, id, cancel));
    }
    if (!socket.write(Buffer.concat(batch))) await new Promise((r) => socket.once('drain', r));
    await new Promise((r) => setImmediate(r));
  }
  await Promise.race([closed, new Promise((r) => setTimeout(r, 5_000))]);
  const goaway = frames.find((f) => f.type === GOAWAY);
  assert.ok(goaway, `GOAWAY after ${pairs} pairs sent`);
  assert.equal(goaway.payload.readUInt32BE(4), constants.NGHTTP2_ENHANCE_YOUR_CALM);
  // The last stream the proxy took: twice the concurrent streams (200) were let through, far below nghttp2's 1,000.
  const taken = ((goaway.payload.readUInt32BE(0) & 0x7fffffff) + 1) / 2;
  assert.ok(taken > 150 && taken < 400, `closed after ${taken} streams`);
  assert.ok(socket.destroyed || socket.readableEnded, 'the connection closed');
  socket.destroy();
  assert.equal(await metric(proxy.admin, 'vane_proxy_http2_rapid_reset_closes_total'), before + 1);
  const s = h2();
  try {
    assert.equal((await h2request(s, { ':path': '/', ':authority': 'a.test' })).status, 200);
  } finally { s.close(); }
  assert.equal((await h1('/', {})).status, 200);
});

test('request metrics are labelled with the client protocol', async () => {
  assert.ok(await metric(proxy.admin, 'vane_proxy_requests_total', { ingress: 'default/a', protocol: 'h2', code: '2xx' }) > 0);
  assert.ok(await metric(proxy.admin, 'vane_proxy_requests_total', { ingress: 'default/a', protocol: 'http/1.1', code: '2xx' }) > 0);
});

test('h2c: refused on the plain port by default; with --h2c, served next to HTTP/1.1, and idle connections close', async () => {
  const answer = await new Promise<string>((resolve) => {
    const sock: Socket = netConnect(proxy.http, '127.0.0.1', () => sock.write(Buffer.concat([PREFACE, frame(4, 0, 0)])));
    let data = '';
    sock.setEncoding('latin1');
    sock.on('data', (c: string) => { data += c; });
    sock.on('close', () => resolve(data));
    sock.on('error', () => undefined);
    sock.setTimeout(3_000, () => sock.destroy());
  });
  assert.match(answer, /^HTTP\/1\.1 400 /, 'without --h2c the preface is a malformed HTTP/1.1 request');

  const h2cProxy = await runProxy(dir.dir, ['--h2c', '--client-keepalive-timeout', '1s']);
  try {
    const s = h2connect(`http://127.0.0.1:${h2cProxy.http}`);
    s.on('error', () => undefined);
    const goaway = new Promise<number>((r) => s.once('goaway', (code: number) => r(code)));
    const r = await h2request(s, { ':path': '/', ':authority': 'a.test', ':scheme': 'http', 'x-canary': 'never' });
    // a.test has TLS: plain HTTP is redirected, as on HTTP/1.1.
    assert.equal(r.status, 308);
    const b = await h2request(s, { ':path': '/', ':authority': 'plain.test', ':scheme': 'http' });
    assert.equal(b.status, 200);
    assert.equal((JSON.parse(b.body) as Echo).headers['x-forwarded-proto'], 'http');
    const plain = await get(h2cProxy.http, '/', { host: 'plain.test' });
    assert.equal(plain.status, 200);
    assert.equal(await within(goaway, 4_000), constants.NGHTTP2_NO_ERROR, 'an idle h2c connection closes');
    s.destroy();
  } finally { await h2cProxy.stop(); }
});

test('--no-http2 offers only http/1.1', async () => {
  const p = await runProxy(dir.dir, ['--no-http2']);
  try {
    const got = await new Promise<string | false | null>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: p.https, servername: 'a.test', rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
        const proto = s.alpnProtocol;
        s.destroy();
        resolve(proto);
      });
      s.on('error', reject);
    });
    assert.equal(got, 'http/1.1');
  } finally { await p.stop(); }
});

test('draining sends GOAWAY: the stream in flight completes, the connection closes', async () => {
  const p = await runProxy(dir.dir);
  const s = h2(p.https);
  try {
    const goaway = new Promise<number>((r) => s.once('goaway', (code: number) => r(code)));
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    const inFlight = h2request(s, { ':path': '/delay', ':authority': 'a.test' });
    await new Promise((r) => setTimeout(r, 200));
    const exited = p.stop();
    assert.equal(await within(goaway, 5_000), constants.NGHTTP2_NO_ERROR);
    const r = await inFlight;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'late');
    await closed;
    assert.equal(await exited, 0);
  } finally { s.destroy(); await p.stop(); }
});

test('a client over --max-connections-per-client gets 503 and GOAWAY over HTTP/2 too', async () => {
  const p = await runProxy(dir.dir, ['--max-connections-per-client', '1']);
  const first = h2(p.https);
  let second: ClientHttp2Session | null = null;
  try {
    assert.equal((await h2request(first, { ':path': '/', ':authority': 'a.test' })).status, 200);
    const again = h2(p.https);
    second = again;
    const goaway = new Promise<number>((r) => again.once('goaway', (code: number) => r(code)));
    const r = await h2request(again, { ':path': '/', ':authority': 'a.test' });
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(await within(goaway, 5_000), constants.NGHTTP2_NO_ERROR);
  } finally { first.destroy(); second?.destroy(); await p.stop(); }
});
