/**
 * The host a request names, against a real proxy: a Host that RFC 9112/3986 do not allow gets
 * 400 and reaches no upstream (here a host-less route would take anything), the HTTPS redirect
 * never builds its Location from such a host, and absolute-form targets are routed by their
 * authority in Host's place. Each on the fast path and on the general path (node:http), to
 * which a chunked request moves its connection.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { selfSignedCertificate } from '../../../proxy/index.ts';
import {
  startUpstream, runProxy, tempDir, writeManifests, ingress, service, tlsSecret, INGRESS_CLASS, raw,
  type Upstream, type RunningProxy, type Echo,
} from './harness.ts';

let dir: { dir: string; remove(): Promise<void> };
let app: Upstream;
let proxy: RunningProxy;

before(async () => {
  dir = await tempDir();
  app = await startUpstream('app');
  const wild = selfSignedCertificate({ commonName: 'wild.test', altNames: ['*.wild.test'] });
  await writeManifests(dir.dir, 'all.json', [
    INGRESS_CLASS,
    ingress({ name: 'any', paths: [{ path: '/', service: 'app' }] }),
    ingress({ name: 'wild', host: '*.wild.test', paths: [{ path: '/', service: 'app' }], tls: [{ hosts: ['*.wild.test'], secretName: 'wild' }] }),
    tlsSecret('wild', wild),
    ...service('app', [{ port: app.port }]),
  ]);
  proxy = await runProxy(dir.dir, ['--https-redirect-port', '8443']);
});

after(async () => {
  await proxy?.stop();
  await app?.close();
  await dir?.remove();
});

/** Both paths: a GET the fast path parses, and a chunked POST that node:http parses. */
const PATHS = {
  fast: (target: string, headers: string) => `GET ${target} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`,
  general: (target: string, headers: string) => `POST ${target} HTTP/1.1\r\n${headers}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`,
};

function status(answer: string): number {
  return Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1] ?? 0);
}

function echo(answer: string): Echo {
  return JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as Echo;
}

test('a Host RFC 9112/3986 do not allow gets 400 and reaches no upstream, though a host-less route would take it', async () => {
  const hosts = ['<script>', 'a b', 'evil.com\\.app.test', 'evil%2ecom.app.test', 'a..b', 'app.test:8o', '[app.test]', 'user@app.test', ''];
  for (const [path, request] of Object.entries(PATHS)) {
    const before = app.requests;
    for (const host of hosts) {
      const answer = await raw(proxy.http, request('/x', `Host: ${host}\r\n`));
      assert.equal(status(answer), 400, `${path} path, Host ${JSON.stringify(host)}: ${answer.split('\r\n')[0]}`);
      assert.match(answer, /invalid Host header/);
    }
    assert.equal(app.requests, before, `${path} path: nothing reached the upstream`);
    assert.equal(status(await raw(proxy.http, request('/x', 'Host: app.test:8080\r\n'))), 200, `${path} path: a valid Host with a port`);
  }
});

test('an HTTP/1.1 request without Host gets 400 (node:http\'s requireHostHeader); an HTTP/1.0 one is routed without a host', async () => {
  assert.equal(status(await raw(proxy.http, 'GET /x HTTP/1.1\r\nConnection: close\r\n\r\n')), 400);
  assert.equal(status(await raw(proxy.http, 'GET /x HTTP/1.0\r\n\r\n')), 200);
});

test('the HTTPS redirect is never built from an invalid host (evil%2ecom\\.wild.test gets 400, not a Location)', async () => {
  for (const [path, request] of Object.entries(PATHS)) {
    const answer = await raw(proxy.http, request('/login?next=1', 'Host: evil%2ecom\\.wild.test\r\n'));
    assert.equal(status(answer), 400, `${path} path: ${answer.split('\r\n')[0]}`);
    assert.doesNotMatch(answer, /location:/i);
    const good = await raw(proxy.http, request('/login?next=1', 'Host: Shop.Wild.Test\r\n'));
    assert.equal(status(good), 308, path);
    assert.match(good, /\r\nlocation: https:\/\/shop\.wild\.test:8443\/login\?next=1\r\n/i, path);
  }
});

test('an absolute-form target is routed by its authority, which the upstream gets as Host, with the origin form', async () => {
  for (const [path, request] of Object.entries(PATHS)) {
    const e = echo(await raw(proxy.http, request('http://App.Test:8080/abs/../a?q=1', 'Host: other.test\r\n')));
    assert.equal(e.url, '/a?q=1', path);
    assert.equal(e.headers.host, 'App.Test:8080', path);
    assert.equal(e.headers['x-forwarded-host'], 'App.Test:8080', path);
    const redirect = await raw(proxy.http, request('http://shop.wild.test/x', 'Host: other.test\r\n'));
    assert.equal(status(redirect), 308, path);
    assert.match(redirect, /\r\nlocation: https:\/\/shop\.wild\.test:8443\/x\r\n/i, path);
  }
});

test('an absolute-form target with an invalid authority, userinfo or an invalid Host gets 400', async () => {
  for (const [path, request] of Object.entries(PATHS)) {
    const before = app.requests;
    for (const [target, host] of [['http://evil.com\\.wild.test/x', 'shop.wild.test'], ['http://user@shop.wild.test/x', 'shop.wild.test'], ['http://shop.wild.test/x', '<script>']]) {
      const answer = await raw(proxy.http, request(target!, `Host: ${host}\r\n`));
      assert.equal(status(answer), 400, `${path} path, ${target} with Host ${host}: ${answer.split('\r\n')[0]}`);
    }
    assert.equal(app.requests, before, `${path} path: nothing reached the upstream`);
  }
});
