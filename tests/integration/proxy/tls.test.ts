/**
 * HTTPS: SNI certificates from kubernetes.io/tls Secrets, the default certificate (fake,
 * then configured), session resumption across workers, TLS pass-through and the 308
 * redirect from plain HTTP.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer, type TLSSocket, type PeerCertificate } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { selfSignedCertificate } from '../../../proxy/index.ts';
import {
  startUpstream, runProxy, tempDir, writeManifests, ingress, service, tlsSecret, INGRESS_CLASS, get, metric,
  type Upstream, type RunningProxy,
} from './harness.ts';
import { eventually } from '../../support/wait.ts';

const certA = selfSignedCertificate({ commonName: 'a.test' });
const certB = selfSignedCertificate({ commonName: 'b.test', altNames: ['b.test', '*.b.test'] });
const certDefault = selfSignedCertificate({ commonName: 'default.test' });
const certBackend = selfSignedCertificate({ commonName: 'pass.test' });

let dir: { dir: string; remove(): Promise<void> };
let app: Upstream;
let backend: TlsServer;
let proxy: RunningProxy;
let objects: object[];

function fingerprint(pem: string): string { return new X509Certificate(pem).fingerprint256; }

interface Hello { cert: PeerCertificate; reused: boolean; body: string; session: Buffer | undefined }

function hello(servername: string | undefined, session?: Buffer, path = '/'): Promise<Hello> {
  return new Promise((resolve, reject) => {
    const s: TLSSocket = tlsConnect({ host: '127.0.0.1', port: proxy.https, rejectUnauthorized: false, ...(servername ? { servername } : {}), ...(session ? { session } : {}) });
    let body = '';
    let ticket: Buffer | undefined;
    let cert: PeerCertificate | undefined;
    let reused = false;
    s.on('session', (t: Buffer) => { ticket = t; });
    s.once('secureConnect', () => {
      cert = s.getPeerCertificate();
      reused = s.isSessionReused();
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${servername ?? 'a.test'}\r\nConnection: close\r\n\r\n`);
    });
    s.setEncoding('utf8');
    s.on('data', (c: string) => { body += c; });
    s.on('error', reject);
    s.on('close', () => (cert ? resolve({ cert, reused, body, session: ticket }) : reject(new Error('no TLS handshake'))));
  });
}

before(async () => {
  dir = await tempDir();
  app = await startUpstream('app');
  backend = createTlsServer({ cert: certBackend.certificatePem, key: certBackend.privateKeyPem }, (s) => {
    s.end('HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\npassthrough ok');
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
  objects = [
    INGRESS_CLASS,
    ingress({ name: 'a', host: 'a.test', paths: [{ path: '/', service: 'app' }], tls: [{ hosts: ['a.test'], secretName: 'cert-a' }] }),
    ingress({ name: 'b', host: 'x.b.test', paths: [{ path: '/', service: 'app' }], tls: [{ hosts: ['x.b.test'], secretName: 'cert-b' }], annotations: { 'vane.dev/ssl-redirect': 'false' } }),
    ingress({ name: 'pass', host: 'pass.test', paths: [{ path: '/', service: 'backend' }], annotations: { 'vane.dev/ssl-passthrough': 'true' } }),
    tlsSecret('cert-a', certA),
    tlsSecret('cert-b', certB),
    ...service('app', [{ port: app.port }]),
    ...service('backend', [{ port: (backend.address() as AddressInfo).port }]),
  ];
  await writeManifests(dir.dir, 'all.json', objects);
  proxy = await runProxy(dir.dir, ['--workers', '2', '--default-ssl-certificate', 'default/cert-default', '--https-redirect-port', '8443']);
});

after(async () => {
  await proxy?.stop();
  await app?.close();
  await new Promise((r) => backend?.close(r));
  await dir?.remove();
});

test('SNI selects the certificate of the host (exact and wildcard-covered hosts)', async () => {
  const a = await hello('a.test');
  assert.equal(a.cert.fingerprint256, fingerprint(certA.certificatePem));
  assert.match(a.body, /^HTTP\/1\.1 200 /);
  assert.match(a.body, /"x-forwarded-proto":"https"/);
  const b = await hello('x.b.test');
  assert.equal(b.cert.fingerprint256, fingerprint(certB.certificatePem));
});

test('without a matching certificate the default applies: the fake one until the configured Secret exists', async () => {
  const fake = await hello('unknown.test');
  assert.equal(fake.cert.subject.CN, 'Vane Fake Certificate');
  const noSni = await hello(undefined);
  assert.equal(noSni.cert.subject.CN, 'Vane Fake Certificate');
  await writeManifests(dir.dir, 'all.json', [...objects, tlsSecret('cert-default', certDefault)]);
  await eventually('the configured default certificate', async () => (await hello('unknown.test')).cert.subject.CN === 'default.test');
  assert.equal((await hello(undefined)).cert.subject.CN, 'default.test', 'clients without SNI get it too');
  assert.equal((await hello('a.test')).cert.subject.CN, 'a.test');
});

test('TLS sessions resume on any worker (shared ticket keys)', async () => {
  const first = await hello('a.test');
  assert.ok(first.session, 'a session ticket was issued');
  for (let i = 0; i < 6; i++) {
    const again = await hello('a.test', first.session);
    assert.equal(again.reused, true, `connection ${i} resumed`);
  }
});

test('secure contexts are built per certificate, never per handshake', async () => {
  const before = await metric(proxy.admin, 'vane_proxy_tls_contexts_built_total');
  for (let i = 0; i < 8; i++) await hello(i % 2 ? 'a.test' : 'x.b.test');
  assert.equal(await metric(proxy.admin, 'vane_proxy_tls_contexts_built_total'), before);
});

test('pass-through hosts reach the backend undecrypted, with the backend\'s own certificate', async () => {
  const r = await hello('pass.test');
  assert.equal(r.cert.fingerprint256, fingerprint(certBackend.certificatePem));
  assert.match(r.body, /passthrough ok$/);
});

test('plain HTTP to a TLS host redirects with 308 unless ssl-redirect is off', async () => {
  const r = await get(proxy.http, '/cart?item=1', { host: 'a.test' });
  assert.equal(r.status, 308);
  assert.equal(r.headers.location, 'https://a.test:8443/cart?item=1');
  const off = await get(proxy.http, '/', { host: 'x.b.test' });
  assert.equal(off.status, 200);
});

test('HTTPS connections take the fast path and move to node:http at a chunked upload, on one TLS connection', async () => {
  const before = await metric(proxy.admin, 'vane_proxy_fast_path_handoffs_total', { reason: 'request' });
  const replies = await new Promise<string>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: proxy.https, servername: 'a.test', rejectUnauthorized: false }, () => {
      s.write('GET /fast HTTP/1.1\r\nHost: a.test\r\n\r\n');
    });
    let data = '';
    let step = 0;
    s.setEncoding('latin1');
    s.on('data', (c: string) => {
      data += c;
      // Each echo body is JSON ending in "}": send the next request once a reply is whole.
      const replies = data.split('HTTP/1.1 200 ').length - 1;
      if (replies === 1 && step === 0 && data.endsWith('}')) {
        step = 1;
        s.write('POST /chunked HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
      } else if (replies === 2 && step === 1 && data.endsWith('}')) {
        step = 2;
        s.write('GET /after HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
      }
    });
    s.on('close', () => resolve(data));
    s.on('error', reject);
    s.setTimeout(5_000, () => { s.destroy(); reject(new Error(`timed out after: ${data}`)); });
  });
  const urls = [...replies.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(urls, ['/fast', '/chunked', '/after']);
  assert.equal([...replies.matchAll(/"x-forwarded-proto":"https"/g)].length, 3, 'both paths know the client spoke TLS');
  assert.equal(await metric(proxy.admin, 'vane_proxy_fast_path_handoffs_total', { reason: 'request' }), before + 1);
});
