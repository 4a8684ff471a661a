/**
 * The client-address trust model: PROXY protocol v1/v2 on a listener, read only from
 * --proxy-protocol-peers and held to its grammar; X-Forwarded-* and the other client claims
 * (Forwarded, X-Original-URL, …) believed only from --trusted-proxies; Upgrade: h2c never
 * passed on. Each on the fast path and on the general path (node:http), to which a chunked
 * request moves its connection.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import {
  startUpstream, runProxy, tempDir, writeManifests, ingress, service, INGRESS_CLASS, raw, metric,
  type Upstream, type RunningProxy, type Echo,
} from './harness.ts';

let dir: { dir: string; remove(): Promise<void> };
let app: Upstream;
let proxy: RunningProxy;
/** A proxy for which 127.0.0.1, where the tests connect from, is not a PROXY protocol peer. */
let notPeer: RunningProxy;

before(async () => {
  dir = await tempDir();
  app = await startUpstream('app');
  await writeManifests(dir.dir, 'all.json', [INGRESS_CLASS, ingress({ name: 'app', host: 'app.test', paths: [{ path: '/', service: 'app' }] }), ...service('app', [{ port: app.port }])]);
  proxy = await runProxy(dir.dir, ['--proxy-protocol', 'http', '--proxy-protocol-peers', '127.0.0.1', '--trusted-proxies', '10.0.0.0/8, 2001:db8::/32']);
  notPeer = await runProxy(dir.dir, ['--proxy-protocol', 'http', '--proxy-protocol-peers', '10.0.0.0/8,192.0.2.0/24']);
});

after(async () => {
  await proxy?.stop();
  await notPeer?.stop();
  await app?.close();
  await dir?.remove();
});

const SPOOF = 'X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: front.test\r\nX-Forwarded-Port: 443\r\n';

function request(extra = '', close = true): string {
  return `GET /fwd HTTP/1.1\r\nHost: app.test\r\n${extra}${close ? 'Connection: close\r\n' : ''}\r\n`;
}

function echoes(response: string): Echo[] {
  return [...response.matchAll(/\r\n\r\n(\{.*?\})(?=HTTP\/1\.1|$)/gs)].map((m) => JSON.parse(m[1]!) as Echo);
}

function v2(family: 'ipv4' | 'ipv6', source: number[], destPort: number): Buffer {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const addrLen = family === 'ipv4' ? 12 : 36;
  const head = Buffer.from([0x21, family === 'ipv4' ? 0x11 : 0x21, 0, addrLen]);
  const body = Buffer.alloc(addrLen);
  const size = family === 'ipv4' ? 4 : 16;
  Buffer.from(source).copy(body, 0);
  body.writeUInt16BE(51000, size * 2);
  body.writeUInt16BE(destPort, size * 2 + 2);
  return Buffer.concat([sig, head, body]);
}

test('with PROXY protocol on the plain listener, it still reads into the shared buffer', async () => {
  assert.equal(await metric(proxy.admin, 'vane_proxy_fast_path_shared_reads_workers'), 1);
});

test('PROXY v1 from an untrusted client: its address is used and its forwarding headers are replaced', async () => {
  const [e] = echoes(await raw(proxy.http, `PROXY TCP4 203.0.113.7 192.0.2.1 50000 80\r\n${request(SPOOF)}`));
  assert.equal(e!.headers['x-forwarded-for'], '203.0.113.7');
  assert.equal(e!.headers['x-real-ip'], '203.0.113.7');
  assert.equal(e!.headers['x-forwarded-proto'], 'http');
  assert.equal(e!.headers['x-forwarded-host'], 'app.test');
  assert.equal(e!.headers['x-forwarded-port'], '80', 'the port the client connected to, from the PROXY header');
});

test('PROXY v1 from a trusted proxy: the chain is kept and extended', async () => {
  const [e] = echoes(await raw(proxy.http, `PROXY TCP4 10.1.2.3 192.0.2.1 50000 443\r\n${request(SPOOF)}`));
  assert.equal(e!.headers['x-forwarded-for'], '1.1.1.1, 10.1.2.3');
  assert.equal(e!.headers['x-forwarded-proto'], 'https');
  assert.equal(e!.headers['x-forwarded-host'], 'front.test');
  assert.equal(e!.headers['x-forwarded-port'], '443');
});

test('on one keep-alive connection, a trusted proxy\'s requests each keep their own chain; an untrusted client\'s never carry one', async () => {
  const trusted = echoes(await raw(proxy.http, `PROXY TCP4 10.9.9.9 192.0.2.1 50000 443\r\n${request('X-Forwarded-For: 1.1.1.1\r\n', false)}`
    + `${request('X-Forwarded-For: 2.2.2.2\r\nX-Forwarded-Proto: https\r\n', false)}${request()}`));
  assert.deepEqual(trusted.map((e) => [e.headers['x-forwarded-for'], e.headers['x-forwarded-proto']]),
    [['1.1.1.1, 10.9.9.9', 'http'], ['2.2.2.2, 10.9.9.9', 'https'], ['10.9.9.9', 'http']]);
  const untrusted = echoes(await raw(proxy.http, `PROXY TCP4 203.0.113.8 192.0.2.1 50000 80\r\n${request('', false)}${request(SPOOF, false)}${request()}`));
  assert.deepEqual(untrusted.map((e) => [e.headers['x-forwarded-for'], e.headers['x-forwarded-proto'], e.headers['x-forwarded-host']]),
    [['203.0.113.8', 'http', 'app.test'], ['203.0.113.8', 'http', 'app.test'], ['203.0.113.8', 'http', 'app.test']]);
});

test('PROXY v2 (binary), IPv4 and IPv6, on a keep-alive connection', async () => {
  const four = echoes(await raw(proxy.http, Buffer.concat([v2('ipv4', [198, 51, 100, 9], 8080), Buffer.from(request('', false) + request())])));
  assert.equal(four.length, 2, 'two requests answered on one connection');
  for (const e of four) assert.equal(e.headers['x-forwarded-for'], '198.51.100.9');
  const six = echoes(await raw(proxy.http, Buffer.concat([v2('ipv6', [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7], 443), Buffer.from(request(SPOOF))])));
  assert.equal(six[0]!.headers['x-forwarded-for'], '1.1.1.1, 2001:db8::7', 'an IPv6 source inside a trusted CIDR');
});

test('a PROXY header split over reads, and a request after it in pieces of its own, are read whole', async () => {
  const pieces = ['PROXY TCP4 203.0.', '113.9 192.0.2.1 50000 80\r\nGET /fw', 'd HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n'];
  const got = await new Promise<string>((resolve, reject) => {
    const s = connect(proxy.http, '127.0.0.1');
    let data = '';
    s.on('data', (d: Buffer) => { data += d.toString('latin1'); });
    s.on('close', () => resolve(data));
    s.on('error', reject);
    // Written apart, so the proxy usually reads them apart (coalesced reads are covered above).
    const send = (i: number) => { if (i < pieces.length) s.write(pieces[i]!, () => setImmediate(() => send(i + 1))); };
    s.on('connect', () => send(0));
  });
  const [e] = echoes(got);
  assert.equal(e!.url, '/fwd');
  assert.equal(e!.headers['x-forwarded-for'], '203.0.113.9');
});

test('a connection without a valid PROXY header is closed unanswered', async () => {
  assert.equal(await raw(proxy.http, request()), '');
  assert.equal(await raw(proxy.http, `PROXY TCP4 nonsense\r\n${request()}`), '');
});

/** INJECTION is the PROXY v1 header whose source address carries a header line. */
const INJECTION = 'PROXY TCP4 1.2.3.4\nX-Injected:yes 192.0.2.1 5000 80\r\n';

/** generalRequest is request() as a chunked POST with an empty body: node:http parses it, not the fast path. */
function generalRequest(extra = '', close = true): string {
  return `POST /fwd HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n${extra}${close ? 'Connection: close\r\n' : ''}\r\n0\r\n\r\n`;
}

test('a PROXY v1 header with a header line in its source address closes the connection, on the fast and the general path', async () => {
  const before = app.requests;
  assert.equal(await raw(proxy.http, INJECTION + request()), '', 'fast path');
  assert.equal(await raw(proxy.http, INJECTION + generalRequest()), '', 'general path');
  assert.equal(await raw(proxy.http, 'PROXY TCP4 1.2.3.4 192.0.2.1 0x1388 80\r\n' + request()), '', 'a port that Number() would have read');
  assert.equal(app.requests, before, 'nothing reached the upstream');
});

test('a connection from outside --proxy-protocol-peers is plain HTTP: its own address counts, and a PROXY header from it is a bad request', async () => {
  const [e] = echoes(await raw(notPeer.http, request(SPOOF)));
  assert.equal(e!.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(e!.headers['x-real-ip'], '127.0.0.1');
  const before = app.requests;
  for (const header of ['PROXY TCP4 203.0.113.7 192.0.2.1 50000 80\r\n', 'PROXY TCP4 10.1.2.3 192.0.2.1 50000 443\r\n', INJECTION]) {
    const answer = await raw(notPeer.http, header + request(SPOOF));
    assert.match(answer, /^HTTP\/1\.1 400 /, JSON.stringify(header));
    assert.doesNotMatch(answer, /203\.0\.113\.7|10\.1\.2\.3|X-Injected/);
  }
  assert.equal(app.requests, before, 'nothing reached the upstream');
});

/** CLAIMS are headers in which a client claims its address, scheme, host or the URL to serve. */
const CLAIMS = 'Forwarded: for=127.0.0.1;host=internal.test;proto=https\r\nX-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\n'
  + 'X-Forwarded-Prefix: /admin\r\nX-Forwarded-Scheme: https\r\nX-Forwarded-Ssl: on\r\nX-Client-IP: 127.0.0.1\r\nTrue-Client-IP: 127.0.0.1\r\n'
  + 'X-Original-Host: internal.test\r\nX-Kept: yes\r\n';
const CLAIM_NAMES = ['forwarded', 'x-original-url', 'x-rewrite-url', 'x-forwarded-prefix', 'x-forwarded-scheme', 'x-forwarded-ssl', 'x-client-ip', 'true-client-ip', 'x-original-host'];

test('Forwarded, X-Original-URL, X-Rewrite-URL and the other client claims are dropped from an untrusted client, kept from a trusted one, on both paths', async () => {
  const untrusted = 'PROXY TCP4 203.0.113.7 192.0.2.1 50000 80\r\n';
  const trusted = 'PROXY TCP4 10.1.2.3 192.0.2.1 50000 443\r\n';
  for (const [path, req] of [['fast', request], ['general', generalRequest]] as const) {
    const [e] = echoes(await raw(proxy.http, untrusted + req(CLAIMS)));
    assert.equal(e!.url, '/fwd', path);
    assert.equal(e!.headers['x-kept'], 'yes', path);
    for (const name of CLAIM_NAMES) assert.equal(e!.headers[name], undefined, `${path} path: ${name} from an untrusted client`);
    const [t] = echoes(await raw(proxy.http, trusted + req(CLAIMS)));
    assert.equal(t!.headers.forwarded, 'for=127.0.0.1;host=internal.test;proto=https', path);
    assert.equal(t!.headers['x-original-url'], '/admin', path);
    for (const name of CLAIM_NAMES) assert.notEqual(t!.headers[name], undefined, `${path} path: ${name} from a trusted proxy`);
  }
});

test('Upgrade: h2c is not passed on: the request is served as HTTP/1.1 and its connection closes after it', async () => {
  const h2c = 'GET /fwd HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n';
  const answer = await raw(proxy.http, `PROXY TCP4 203.0.113.7 192.0.2.1 50000 80\r\n${request('', false)}${h2c}${request()}`);
  const got = echoes(answer);
  assert.equal(got.length, 2, 'the request after the h2c one is not answered: its connection closed');
  const e = got[1]!;
  assert.equal(e.headers.upgrade, undefined);
  assert.equal(e.headers['http2-settings'], undefined);
  assert.doesNotMatch(String(e.headers.connection ?? ''), /upgrade/i);
  assert.match(answer.slice(answer.lastIndexOf('HTTP/1.1 ')), /^HTTP\/1\.1 200 [^]*\r\nConnection: close\r\n/i);
});
