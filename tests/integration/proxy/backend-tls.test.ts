/**
 * Backend TLS verified (issue #19): real HTTPS backends on 127.0.0.1 with certificates from
 * a test CA, reached through `vane proxy` with the vane.dev/backend-tls-* annotations. A good
 * chain and name pass; a wrong CA, a wrong name, an expired certificate, a missing CA Secret
 * and a backend demanding a client certificate the proxy lacks are refused (502), and the
 * backend sees the configured name as SNI, never the client's Host.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import {
  runProxy, tempDir, writeManifests, ingress, service, INGRESS_CLASS, get, metric, type RunningProxy,
} from './harness.ts';
import { testCa, type TestCert } from '../../support/tls.ts';
import { eventually } from '../../support/wait.ts';

const ca = testCa('Backend Test CA');
const otherCa = testCa('Some Other CA');
const clientCa = testCa('Backend Client CA');
const proxyClient = clientCa.issue(['vane-proxy'], { client: true });

interface Backend { server: HttpsServer; port: number; sni: string[]; clientCerts: string[] }

/** startBackend serves HTTPS with `pair`; with `requireClient` it refuses clients without a certificate from clientCa. */
async function startBackend(name: string, pair: TestCert, requireClient = false): Promise<Backend> {
  const b: Backend = { server: null as unknown as HttpsServer, port: 0, sni: [], clientCerts: [] };
  b.server = createHttpsServer({
    cert: pair.cert, key: pair.key,
    ...(requireClient ? { requestCert: true, rejectUnauthorized: true, ca: clientCa.cert } : {}),
  }, (req, res) => {
    const socket = req.socket as TLSSocket;
    b.sni.push(String(socket.servername));
    if (requireClient) b.clientCerts.push(String(socket.getPeerCertificate().subject?.CN ?? ''));
    res.setHeader('content-type', 'text/plain');
    res.end(`${name} over TLS`);
  });
  await new Promise<void>((r) => b.server.listen(0, '127.0.0.1', () => r()));
  b.port = (b.server.address() as AddressInfo).port;
  return b;
}

function secret(name: string, data: Record<string, string>): object {
  const encoded: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) encoded[k] = Buffer.from(v).toString('base64');
  return { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace: 'default' }, data: encoded };
}

let dir: { dir: string; remove(): Promise<void> };
let proxy: RunningProxy;
const backends: Record<string, Backend> = {};
let objects: object[];

before(async () => {
  dir = await tempDir();
  backends.good = await startBackend('good', ca.issue(['good.default.svc', 'backend.test']));
  backends.foreign = await startBackend('foreign', otherCa.issue(['foreign.default.svc']));
  backends.misnamed = await startBackend('misnamed', ca.issue(['someone-else.default.svc']));
  backends.expired = await startBackend('expired', ca.issue(['expired.default.svc'], { expired: true }));
  backends.mtls = await startBackend('mtls', ca.issue(['mtls.default.svc']), true);
  const route = (host: string, svc: string, annotations: Record<string, string>) =>
    ingress({ name: host.split('.')[0]!, host, paths: [{ path: '/', service: svc }], annotations });
  const verified = { 'vane.dev/backend-tls-secret': 'backend-ca' };
  objects = [
    INGRESS_CLASS,
    secret('backend-ca', { 'ca.crt': ca.cert, 'tls.crt': '', 'tls.key': '' }),
    secret('backend-mtls', { 'ca.crt': ca.cert, 'tls.crt': proxyClient.cert, 'tls.key': proxyClient.key }),
    ...Object.entries(backends).flatMap(([name, b]) => service(name, [{ port: b.port }])),
    route('good.test', 'good', verified),
    route('named.test', 'good', { ...verified, 'vane.dev/backend-tls-server-name': 'backend.test' }),
    route('wrongname.test', 'good', { ...verified, 'vane.dev/backend-tls-server-name': 'not-on-the-cert.test' }),
    route('foreign.test', 'foreign', verified),
    route('unverified.test', 'foreign', { 'vane.dev/backend-protocol': 'HTTPS' }),
    route('misnamed.test', 'misnamed', verified),
    route('expired.test', 'expired', verified),
    route('mtls.test', 'mtls', { 'vane.dev/backend-tls-secret': 'backend-mtls' }),
    route('nocert.test', 'mtls', verified),
    route('noca.test', 'good', { 'vane.dev/backend-tls-secret': 'not-there' }),
  ];
  await writeManifests(dir.dir, 'all.json', objects);
  proxy = await runProxy(dir.dir);
});

after(async () => {
  await proxy?.stop();
  for (const b of Object.values(backends)) { b.server.closeAllConnections(); await new Promise((r) => b.server.close(r)); }
  await dir?.remove();
});

test('a backend with a certificate from the configured CA is reached, with the Service name as SNI whatever the Host', async () => {
  const r = await get(proxy.http, '/', { host: 'good.test' });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.body, 'good over TLS');
  assert.equal(backends.good!.sni.at(-1), 'good.default.svc', 'SNI is <service>.<namespace>.svc, not the client\'s Host');
  const named = await get(proxy.http, '/', { host: 'named.test' });
  assert.equal(named.status, 200, named.body);
  assert.equal(backends.good!.sni.at(-1), 'backend.test', 'vane.dev/backend-tls-server-name is sent and verified');
});

test('wrong CA, wrong name, expired certificate: 502, never the backend\'s answer', async () => {
  for (const host of ['foreign.test', 'misnamed.test', 'wrongname.test', 'expired.test']) {
    const r = await get(proxy.http, '/', { host });
    assert.equal(r.status, 502, `${host}: ${r.status} ${r.body}`);
    assert.doesNotMatch(r.body, /over TLS/, host);
  }
});

test('without a CA, HTTPS is not verified (and status warns): the foreign certificate is accepted', async () => {
  const r = await get(proxy.http, '/', { host: 'unverified.test' });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.body, 'foreign over TLS');
});

test('a CA Secret that is missing fails closed: 502 without dialling the backend unverified', async () => {
  const before = backends.good!.sni.length;
  const r = await get(proxy.http, '/', { host: 'noca.test' });
  assert.equal(r.status, 502);
  assert.match(r.body, /cannot be verified/);
  assert.equal(backends.good!.sni.length, before, 'the backend was not reached');
});

test('mTLS to the backend: the Secret\'s key pair is the client certificate; without one the backend refuses', async () => {
  const r = await get(proxy.http, '/', { host: 'mtls.test' });
  assert.equal(r.status, 200, r.body);
  assert.equal(backends.mtls!.clientCerts.at(-1), 'vane-proxy');
  const none = await get(proxy.http, '/', { host: 'nocert.test' });
  assert.equal(none.status, 502, none.body);
});

test('the fast path hands a route with backend TLS to undici, the one upstream path that dials TLS', async () => {
  const before = await metric(proxy.admin, 'vane_proxy_fast_path_handoffs_total', { reason: 'tls-backend' });
  assert.equal((await get(proxy.http, '/', { host: 'good.test' })).status, 200);
  assert.equal(await metric(proxy.admin, 'vane_proxy_fast_path_handoffs_total', { reason: 'tls-backend' }), before + 1);
});

test('a rotated CA Secret replaces pooled connections: the old CA no longer vouches for anyone', async () => {
  assert.equal((await get(proxy.http, '/', { host: 'good.test' })).status, 200);
  const rotated = objects.map((o) => ((o as { metadata?: { name?: string } }).metadata?.name === 'backend-ca' && (o as { kind: string }).kind === 'Secret'
    ? secret('backend-ca', { 'ca.crt': otherCa.cert, 'tls.crt': '', 'tls.key': '' }) : o));
  await writeManifests(dir.dir, 'all.json', rotated);
  await eventually('the rotated CA to refuse the backend', async () => (await get(proxy.http, '/', { host: 'good.test' })).status === 502);
  assert.equal((await get(proxy.http, '/', { host: 'foreign.test' })).status, 200, 'the new CA verifies its own');
  for (const line of proxy.logs) assert.doesNotMatch(JSON.stringify(line), /BEGIN|PRIVATE KEY/, 'no key material in the logs');
});
