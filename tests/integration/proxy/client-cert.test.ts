/**
 * Client certificate authentication (issue #19): real TLS clients with certificates from a
 * test CA, another CA and an expired one, against `vane proxy` with vane.dev/auth-tls-*; what
 * the upstream learns (ssl-client-* headers, client copies stripped), the SNI-vs-Host
 * mismatch (421), plain HTTP (403) and session resumption across hosts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { X509Certificate } from 'node:crypto';
import { execFile } from 'node:child_process';
import { connect as h2connect } from 'node:http2';
import {
  startUpstream, runProxy, tempDir, writeManifests, ingress, service, tlsSecret, INGRESS_CLASS, get, type Upstream, type RunningProxy, type Echo,
} from './harness.ts';
import { testCa, type TestCert } from '../../support/tls.ts';

const serverCa = testCa('Serving CA');
const clientCa = testCa('Client CA');
const strangerCa = testCa('Stranger CA');
const alice = clientCa.issue(['alice'], { client: true });
const stranger = strangerCa.issue(['mallory'], { client: true });
const expired = clientCa.issue(['old-alice'], { client: true, expired: true });
const serving = serverCa.issue(['mtls.test', 'optional.test', 'open.test', 'plain.test']);

let dir: { dir: string; remove(): Promise<void> };
let app: Upstream;
let proxy: RunningProxy;

interface Answer { status: number; body: string; echo: Echo | null; reused: boolean }

/** call sends one request over a new TLS connection: SNI `servername`, Host `host`, client certificate `cert`. */
function call(servername: string | null, host: string, cert: TestCert | null, opts: { headers?: Record<string, string>; body?: string; session?: Buffer } = {}): Promise<Answer & { session?: Buffer }> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const req = httpsRequest({
      host: '127.0.0.1', port: proxy.https, path: '/who', method: opts.body === undefined ? 'GET' : 'POST', agent: false, rejectUnauthorized: false,
      ...(servername !== null ? { servername } : {}), ...(cert ? { cert: cert.cert, key: cert.key } : {}), ...(opts.session ? { session: opts.session } : {}),
      headers: { host, ...(opts.body !== undefined ? { 'transfer-encoding': 'chunked' } : {}), ...opts.headers },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => {
        const reused = (res.socket as unknown as { isSessionReused(): boolean }).isSessionReused();
        let echo: Echo | null = null;
        try { echo = JSON.parse(body) as Echo; } catch { echo = null; }
        resolve({ status: res.statusCode!, body, echo, reused, ...(session ? { session } : {}) });
      });
    });
    req.on('socket', (s) => s.on('session', (t: Buffer) => { session = t; }));
    req.on('error', reject);
    req.end(opts.body);
  });
}

before(async () => {
  dir = await tempDir();
  app = await startUpstream('app');
  const caSecret = { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'client-ca', namespace: 'default' },
    data: { 'ca.crt': Buffer.from(clientCa.cert).toString('base64'), 'tls.crt': '', 'tls.key': '' } };
  const host = (name: string, annotations: Record<string, string>) =>
    ingress({ name: name.split('.')[0]!, host: name, paths: [{ path: '/', service: 'app' }], tls: [{ hosts: [name], secretName: 'serving' }], annotations });
  await writeManifests(dir.dir, 'all.json', [
    INGRESS_CLASS, caSecret, tlsSecret('serving', { certificatePem: serving.cert, privateKeyPem: serving.key }),
    ...service('app', [{ port: app.port }]),
    host('mtls.test', { 'vane.dev/auth-tls-secret': 'client-ca', 'vane.dev/auth-tls-pass-certificate-to-upstream': 'true' }),
    host('optional.test', { 'vane.dev/auth-tls-secret': 'client-ca', 'vane.dev/auth-tls-verify-client': 'optional' }),
    host('plain.test', { 'vane.dev/auth-tls-secret': 'client-ca', 'vane.dev/ssl-redirect': 'false' }),
    host('open.test', {}),
  ]);
  proxy = await runProxy(dir.dir);
});

after(async () => {
  await proxy?.stop();
  await app?.close();
  await dir?.remove();
});

test('a certificate from the CA is verified and its subject, SAN, fingerprint and PEM reach the upstream, on both HTTP paths', async () => {
  for (const body of [undefined, 'chunked upload']) {
    const r = await call('mtls.test', 'mtls.test', alice, body === undefined ? {} : { body });
    assert.equal(r.status, 200, r.body);
    const h = r.echo!.headers;
    assert.equal(h['ssl-client-verify'], 'SUCCESS');
    assert.equal(h['ssl-client-subject-dn'], 'CN=alice');
    assert.equal(h['ssl-client-issuer-dn'], 'CN=Client CA');
    assert.equal(h['ssl-client-san'], 'DNS:alice');
    assert.equal(h['ssl-client-fingerprint-sha256'], new X509Certificate(alice.cert).fingerprint256.replaceAll(':', '').toLowerCase());
    assert.equal(new X509Certificate(decodeURIComponent(h['ssl-client-cert'] as string)).fingerprint256, new X509Certificate(alice.cert).fingerprint256);
  }
});

test('no certificate, one from another CA, an expired one: 400, and the upstream never sees the request', async () => {
  const before = app.requests;
  for (const [why, cert] of [['none', null], ['untrusted', stranger], ['expired', expired]] as const) {
    const r = await call('mtls.test', 'mtls.test', cert);
    assert.equal(r.status, 400, `${why}: ${r.body}`);
    assert.match(r.body, why === 'none' ? /no required TLS client certificate/ : /not verified/, why);
  }
  assert.equal(app.requests, before);
});

test('client-supplied ssl-client-* headers are stripped; on a client-auth host only Vane\'s values arrive', async () => {
  const forged = { 'ssl-client-verify': 'SUCCESS', 'ssl-client-subject-dn': 'CN=admin', 'ssl-client-cert': 'forged' };
  const open = await call('open.test', 'open.test', null, { headers: forged });
  assert.equal(open.status, 200);
  for (const name of Object.keys(forged)) assert.equal(open.echo!.headers[name], undefined, name);
  const mtls = await call('optional.test', 'optional.test', alice, { headers: forged });
  assert.equal(mtls.echo!.headers['ssl-client-subject-dn'], 'CN=alice');
  assert.equal(mtls.echo!.headers['ssl-client-cert'], undefined, 'only with auth-tls-pass-certificate-to-upstream');
});

test('SNI of another host (or none) cannot reach a client-auth host through its Host header: 421', async () => {
  // '' sends no SNI at all (node:https would otherwise take the Host header's name).
  for (const sni of ['open.test', '']) {
    const r = await call(sni, 'mtls.test', alice);
    assert.equal(r.status, 421, `SNI ${sni}: ${r.body}`);
  }
  const viaOptional = await call('optional.test', 'mtls.test', alice);
  assert.equal(viaOptional.status, 421, 'another client-auth host\'s handshake does not count either');
});

test('plain HTTP to a client-auth host: 308 to HTTPS, or 403 where ssl-redirect is off', async () => {
  assert.equal((await get(proxy.http, '/', { host: 'mtls.test' })).status, 308);
  const plain = await get(proxy.http, '/', { host: 'plain.test' });
  assert.equal(plain.status, 403);
  assert.equal((await get(proxy.http, '/', { host: 'optional.test' })).status, 308);
});

test('optional: without a certificate the request passes with ssl-client-verify NONE; a bad one is still refused', async () => {
  const none = await call('optional.test', 'optional.test', null);
  assert.equal(none.status, 200);
  assert.equal(none.echo!.headers['ssl-client-verify'], 'NONE');
  assert.equal(none.echo!.headers['ssl-client-subject-dn'], undefined);
  assert.equal((await call('optional.test', 'optional.test', stranger)).status, 400);
});

test('no session is resumed into a client-auth host: a ticket from another host buys no way around the certificate', async () => {
  const first = await call('open.test', 'open.test', null);
  assert.ok(first.session, 'the open host issues tickets');
  const resumedOpen = await call('open.test', 'open.test', null, { session: first.session! });
  assert.equal(resumedOpen.reused, true, 'the open host resumes its own sessions');
  const r = await call('mtls.test', 'mtls.test', null, { session: first.session! });
  assert.equal(r.reused, false);
  assert.equal(r.status, 400);
  const withCert = await call('mtls.test', 'mtls.test', alice);
  const again = await call('mtls.test', 'mtls.test', alice, withCert.session ? { session: withCert.session } : {});
  assert.equal(again.reused, false, 'client-auth hosts always do a full handshake');
  assert.equal(again.status, 200);
});

test('the client-auth host asks for certificates from its CA only; other hosts ask for none (openssl s_client)', async () => {
  const handshake = (servername: string) => new Promise<string>((resolve) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${proxy.https}`, '-servername', servername], { timeout: 10_000 }, (_err, stdout) => resolve(stdout));
    child.stdin!.end();
  });
  assert.match(await handshake('mtls.test'), /Acceptable client certificate CA names\n.*CN\s?=\s?Client CA/);
  assert.match(await handshake('open.test'), /No client certificate CA names sent/);
});

test('HTTP/2 requests carry the same headers, and the same 421 for another host on the connection', async () => {
  const session = h2connect(`https://127.0.0.1:${proxy.https}`, { servername: 'mtls.test', cert: alice.cert, key: alice.key, rejectUnauthorized: false });
  const ask = (authority: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = session.request({ ':path': '/who', ':authority': authority });
    let body = '';
    let status = 0;
    req.setEncoding('utf8');
    req.on('response', (h) => { status = Number(h[':status']); });
    req.on('data', (c: string) => { body += c; });
    req.on('end', () => resolve({ status, body }));
    req.on('error', reject);
    req.end();
  });
  try {
    const r = await ask('mtls.test');
    assert.equal(r.status, 200, r.body);
    const echo = JSON.parse(r.body) as Echo;
    assert.equal(echo.headers['ssl-client-verify'], 'SUCCESS');
    assert.equal(echo.headers['ssl-client-subject-dn'], 'CN=alice');
    assert.equal((await ask('optional.test')).status, 421, 'connection coalescing onto another client-auth host');
  } finally {
    session.close();
  }
});
