/**
 * The webhook over real HTTPS on 127.0.0.1: a real TLS client that trusts only the CA
 * bundle lib/certs published, reviews, limits, probes, certificate rotation without a
 * restart, and garbage over the wire.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import fc from 'fast-check';
import type { KubeObject } from '../../../core/index.ts';
import { loadManifests } from '../../../lib/manifests.ts';
import { CertManager, MemoryCertStore, splitPemCertificates, type ServingCertificate } from '../../../lib/certs/index.ts';
import { startWebhookServer, MemoryObjectCache, type WebhookServer } from '../../../webhook/index.ts';
import { reviewBody, ROOT } from '../../unit/webhook/helpers.ts';
import { call } from './client.ts';
import { eventually } from '../../support/wait.ts';

const DAY = 86_400_000;
/** The certificates are bootstrapped 8 days ago, so that a CA renewal falls due now, on the real clock TLS clients check. */
let now = Date.now() - 8 * DAY;
let server: WebhookServer;
let manager: CertManager;
let serving: ServingCertificate;
let canary: KubeObject;
let cache: MemoryObjectCache;

before(async () => {
  const objects = (await loadManifests([`${ROOT}examples/quickstart`])).objects.map((o) => o.object);
  canary = objects.find((o) => o.kind === 'Canary')!;
  cache = new MemoryObjectCache(objects);
  manager = new CertManager({
    store: new MemoryCertStore(),
    clock: () => now,
    policy: {
      commonName: 'vane-webhook', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'],
      caValidityMs: 10 * DAY, caRenewBeforeMs: 3 * DAY, servingValidityMs: 9 * DAY, servingRenewBeforeMs: DAY / 2, caSettleMs: 0,
    },
    onChange: (s) => { serving = s; server?.setCertificate(s); },
  });
  serving = (await manager.reconcile()).serving;
  now = Date.now();
  server = await startWebhookServer({ host: '127.0.0.1', port: 0, tls: serving, cache, maxBodyBytes: 1024 * 1024 });
});

after(async () => {
  await server.close();
});

test('a review over HTTPS: denial with every field path, the uid echoed, server identity checked on the IP SAN', async () => {
  const bad = structuredClone(canary) as { spec: { canaryService: { name: string }; traffic: { header: unknown } } };
  bad.spec.canaryService.name = 'checkout';
  bad.spec.traffic.header = { name: 'X-Canary', regex: '(?<=x)y' };
  const reply = await call(server.port, { ca: serving.caBundlePem, body: reviewBody({ uid: 'e2e-uid-1', object: bad }) });
  assert.equal(reply.status, 200);
  const { response } = reply.json();
  assert.equal(response.uid, 'e2e-uid-1');
  assert.equal(response.allowed, false);
  assert.equal(response.status?.message.split('; ').length, 2);
  assert.match(response.status!.message, /^spec\.canaryService\.name: must differ from spec\.service/);
  assert.match(response.status!.message, /; spec\.traffic\.header\.regex: invalid regular expression \(RE2 syntax\)/);
});

test('warnings come back with an allowed review', async () => {
  const orphan = structuredClone(canary) as { spec: { ingressRef: { name: string } } };
  orphan.spec.ingressRef.name = 'not-there';
  const { response } = (await call(server.port, { ca: serving.caBundlePem, body: reviewBody({ uid: 'w', object: orphan }) })).json();
  assert.equal(response.allowed, true);
  assert.deepEqual(response.warnings, ['spec.ingressRef.name: Ingress shop/not-there not found; the canary routes nothing until it exists']);
});

test('the API server\'s keep-alive connection is reused across reviews', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: serving.caBundlePem });
  try {
    let reused = 0;
    for (let i = 0; i < 50; i++) {
      const reply = await call(server.port, { ca: serving.caBundlePem, agent, body: reviewBody({ uid: `k${i}`, object: canary }) });
      assert.equal(reply.json().response.uid, `k${i}`);
      if (reply.reusedSocket) reused++;
    }
    assert.equal(reused, 49);
  } finally {
    agent.destroy();
  }
});

test('a body over the limit is refused unparsed, uid recovered from its head, and the server carries on', async () => {
  const head = reviewBody({ uid: 'big-uid', object: canary }).slice(0, -2);
  const body = `${head},"padding":"${'x'.repeat(2 * 1024 * 1024)}"}}`;
  const reply = await call(server.port, { ca: serving.caBundlePem, body });
  assert.equal(reply.status, 200);
  const { response } = reply.json();
  assert.equal(response.uid, 'big-uid');
  assert.equal(response.allowed, false);
  assert.match(response.status!.message, /^request\.object: the AdmissionReview is \d+ bytes or more; the limit is 1048576/);
  assert.equal((await call(server.port, { ca: serving.caBundlePem, method: 'GET', path: '/healthz' })).status, 200);
});

test('malformed bodies, wrong methods and unknown paths get clear answers', async () => {
  const garbage = await call(server.port, { ca: serving.caBundlePem, body: '{{{' });
  assert.equal(garbage.status, 400);
  assert.match(garbage.json().response.status!.message, /^body: not JSON/);
  assert.equal((await call(server.port, { ca: serving.caBundlePem, method: 'GET' })).status, 405);
  assert.equal((await call(server.port, { ca: serving.caBundlePem, method: 'GET', path: '/nope' })).status, 404);
});

test('/readyz follows setReady, for a shutdown that fails readiness first', async () => {
  assert.equal((await call(server.port, { ca: serving.caBundlePem, method: 'GET', path: '/readyz' })).status, 200);
  server.setReady(false);
  assert.equal((await call(server.port, { ca: serving.caBundlePem, method: 'GET', path: '/readyz' })).status, 503);
  server.setReady(true);
});

test('/metrics counts reviews by kind and verdict and exposes the certificate\'s expiry', async () => {
  const text = (await call(server.port, { ca: serving.caBundlePem, method: 'GET', path: '/metrics' })).body;
  assert.match(text, /vane_webhook_reviews_total\{kind="Canary",operation="CREATE",verdict="denied"\} [1-9]/);
  assert.match(text, /vane_webhook_reviews_total\{kind="Canary",operation="CREATE",verdict="allowed"\} [1-9]/);
  assert.match(text, /vane_webhook_review_duration_seconds_count\{kind="Canary"\} [1-9]/);
  const expiry = Number(/vane_webhook_certificate_expiry_timestamp_seconds (\d+)/.exec(text)?.[1]);
  assert.equal(expiry * 1000, serving.notAfter.getTime());
});

test('a client that does not trust Vane\'s CA cannot talk to the webhook', async () => {
  const stranger = (await new CertManager({ store: new MemoryCertStore(), policy: { commonName: 'x', ipAddresses: ['127.0.0.1'] } }).reconcile()).serving;
  await assert.rejects(call(server.port, { ca: stranger.caBundlePem, method: 'GET', path: '/healthz' }), /self[- ]signed|unable to verify|certificate/i);
  await assert.rejects(call(server.port, { ca: serving.caBundlePem, method: 'GET', path: '/healthz', servername: 'elsewhere.example' }), /altnames|ERR_TLS_CERT_ALTNAME_INVALID/i,
    'a name the certificate does not carry');
  assert.equal((await call(server.port, { ca: serving.caBundlePem, method: 'GET', path: '/healthz', servername: 'localhost' })).status, 200, 'a DNS SAN');
});

test('rotation without a restart: new connections get the new certificate; the published bundle trusts old and new', async () => {
  const before = await call(server.port, { ca: serving.caBundlePem, method: 'GET', path: '/healthz' });
  const oldBundle = serving.caBundlePem;
  const { rotated } = await manager.reconcile();
  assert.ok(rotated.some((r) => /added a new CA/.test(r)), rotated.join('; '));
  assert.equal(splitPemCertificates(serving.caBundlePem).length, 2, 'new CA first, old CA kept');
  assert.equal((await call(server.port, { ca: serving.caBundlePem, method: 'GET', path: '/healthz' })).fingerprint, before.fingerprint,
    'the serving certificate stays on the old CA until the new bundle is published');
  const second = await manager.reconcile();
  assert.ok(second.rotated.some((r) => /moves to it/.test(r)), second.rotated.join('; '));
  const after = await eventually('the new certificate on a new connection', async () => {
    const r = await call(server.port, { ca: serving.caBundlePem, method: 'GET', path: '/healthz' });
    return r.fingerprint !== before.fingerprint ? r : null;
  });
  assert.equal(after.status, 200);
  await assert.rejects(call(server.port, { ca: oldBundle, method: 'GET', path: '/healthz' }), /certificate|verify|self[- ]signed/i,
    'a client that never got the new bundle fails — which is why the bundle is published before the switch');
});

test('setCertificate refuses a key that is not the certificate\'s and keeps serving the old one', async () => {
  const other = (await new CertManager({ store: new MemoryCertStore(), policy: { commonName: 'x', ipAddresses: ['127.0.0.1'] } }).reconcile()).serving;
  assert.throws(() => server.setCertificate({ certPem: serving.certPem, keyPem: other.keyPem }), /does not belong/);
  assert.equal((await call(server.port, { ca: serving.caBundlePem, method: 'GET', path: '/healthz' })).status, 200);
});

test('300 random bodies over the wire: every one answered with JSON, and the server still serves', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: serving.caBundlePem });
  try {
    await fc.assert(fc.asyncProperty(
      fc.oneof(fc.string({ maxLength: 3000 }), fc.jsonValue().map((v) => JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: v }))),
      async (body) => {
        const reply = await call(server.port, { ca: serving.caBundlePem, agent, body });
        assert.ok(reply.status === 200 || reply.status === 400, `${reply.status}`);
        assert.equal(reply.json().kind, 'AdmissionReview');
      },
    ), { numRuns: 300 });
  } finally {
    agent.destroy();
  }
  assert.equal((await call(server.port, { ca: serving.caBundlePem, method: 'GET', path: '/healthz' })).status, 200);
});
