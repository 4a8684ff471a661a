/** lib/certs: certificates, the rotation plan on a fake clock, the manager, the JSON patch of caBundle. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import jsonpatch from 'fast-json-patch';
import { ApiException, type V1ValidatingWebhookConfiguration } from '@kubernetes/client-node';
import {
  createCertificate, generateKeyPair, privateKeyPem, splitPemCertificates, planRotation, policyOf, CertManager, MemoryCertStore,
  CertError, isCertError, type CertBundle, type CaBundleTarget, type CertPolicy,
} from '../../../lib/certs/index.ts';
import { caBundlePatch, KubeSecretStore, KubeWebhookCaBundle } from '../../../lib/certs/kube.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2030, 0, 1);

const short: Partial<CertPolicy> = {
  caValidityMs: 100 * DAY, caRenewBeforeMs: 30 * DAY, servingValidityMs: 20 * DAY, servingRenewBeforeMs: 5 * DAY, caSettleMs: HOUR,
};
const policy = policyOf({ commonName: 'vane-webhook', dnsNames: ['vane-webhook.vane-system.svc'], ipAddresses: ['127.0.0.1', '::1'], ...short });

function issuedBy(certPem: string, caPem: string): boolean {
  const cert = new X509Certificate(certPem);
  const ca = new X509Certificate(caPem);
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

function trusted(certPem: string, bundlePem: string): boolean {
  return splitPemCertificates(bundlePem).some((ca) => issuedBy(certPem, ca));
}

test('a CA and a serving certificate that Node verifies, with the SANs, key usages and validity asked for', () => {
  const caKey = generateKeyPair();
  const caPem = createCertificate({ commonName: 'test CA', organization: 'vane', publicKey: caKey.publicKey, notBefore: new Date(T0), notAfter: new Date(Date.UTC(2060, 0, 1)), isCA: true }, caKey);
  const ca = new X509Certificate(caPem);
  assert.equal(ca.ca, true);
  assert.equal(ca.subject, 'O=vane\nCN=test CA');
  assert.equal(new Date(ca.validTo).getUTCFullYear(), 2060, 'GeneralizedTime from 2050 on');
  assert.ok(ca.checkIssued(ca) && ca.verify(ca.publicKey), 'self-signed');

  const leafKey = generateKeyPair();
  const leafPem = createCertificate({
    commonName: 'vane-webhook', publicKey: leafKey.publicKey, notBefore: new Date(T0), notAfter: new Date(T0 + DAY), isCA: false,
    dnsNames: ['vane-webhook.vane-system.svc'], ipAddresses: ['127.0.0.1', '2001:db8::1', '::ffff:10.0.0.1'],
  }, { certificate: ca, privateKey: caKey.privateKey });
  const leaf = new X509Certificate(leafPem);
  assert.equal(leaf.ca, false);
  assert.equal(leaf.issuer, ca.subject);
  assert.ok(issuedBy(leafPem, caPem));
  assert.ok(leaf.checkPrivateKey(leafKey.privateKey));
  assert.equal(leaf.checkHost('vane-webhook.vane-system.svc'), 'vane-webhook.vane-system.svc');
  assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(leaf.checkIP('2001:db8::1'), '2001:db8::1');
  assert.equal(leaf.checkIP('10.0.0.1'), undefined);
  assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1']);
  assert.equal(Date.parse(leaf.validTo), T0 + DAY);
  assert.match(privateKeyPem(leafKey.privateKey), /^-----BEGIN PRIVATE KEY-----/);
});

test('certificate requests that cannot be encoded are refused', () => {
  const k = generateKeyPair();
  const base = { commonName: 'x', publicKey: k.publicKey, notBefore: new Date(T0), notAfter: new Date(T0 + DAY), isCA: true };
  assert.throws(() => createCertificate({ ...base, notAfter: new Date(T0) }, k), /notAfter/);
  assert.throws(() => createCertificate({ ...base, commonName: '' }, k), /commonName/);
  assert.throws(() => createCertificate({ ...base, isCA: false, ipAddresses: ['300.1.1.1'] }, k), /IP address/);
  assert.throws(() => createCertificate({ ...base, isCA: false, dnsNames: ['a b'] }, k), /DNS name/);
});

test('policies that cannot work are refused when built', () => {
  assert.throws(() => policyOf({ commonName: 'x' }), (e) => isCertError(e, 'EINVALID'));
  assert.throws(() => policyOf({ commonName: 'x', dnsNames: ['a'], servingRenewBeforeMs: 100 * DAY }), /servingRenewBeforeMs/);
  assert.throws(() => policyOf({ commonName: 'x', dnsNames: ['a'], caRenewBeforeMs: DAY, servingRenewBeforeMs: 2 * DAY, servingValidityMs: 3 * DAY }), /caRenewBeforeMs must be greater/);
  assert.throws(() => policyOf({ commonName: 'x', ipAddresses: ['not-an-ip'] }), /not an IP/);
});

test('plan: bootstrap, then nothing to do while fresh; renewal before expiry; new names', () => {
  const first = planRotation({ stored: null, now: T0, policy, published: null });
  assert.ok(first.next);
  assert.match(first.reasons[0]!, /^no certificates stored/);
  const b = first.next;
  assert.equal(splitPemCertificates(b.caBundlePem).length, 1);
  assert.ok(issuedBy(b.certPem, b.caBundlePem));

  assert.equal(planRotation({ stored: b, now: T0 + DAY, policy, published: b.caBundlePem }).next, null);
  assert.equal(planRotation({ stored: b, now: T0 + 14 * DAY, policy, published: b.caBundlePem }).next, null, 'more than 5 days left');

  const renewed = planRotation({ stored: b, now: T0 + 15 * DAY + 1000, policy, published: b.caBundlePem });
  assert.ok(renewed.next);
  assert.match(renewed.reasons[0]!, /^serving certificate expires/);
  assert.equal(renewed.next.caBundlePem, b.caBundlePem, 'the CA stays');
  assert.notEqual(renewed.next.certPem, b.certPem);

  const renamed = planRotation({ stored: b, now: T0 + DAY, policy: { ...policy, dnsNames: ['webhook.example'] }, published: b.caBundlePem });
  assert.match(renamed.reasons[0]!, /names differ/);
  assert.equal(new X509Certificate(renamed.next!.certPem).checkHost('webhook.example'), 'webhook.example');
});

test('plan: unusable stored material is replaced, whatever it is', () => {
  const good = planRotation({ stored: null, now: T0, policy, published: null }).next!;
  const other = planRotation({ stored: null, now: T0, policy, published: null }).next!;
  const broken: CertBundle[] = [
    { caBundlePem: 'garbage', caKeyPem: 'garbage', certPem: 'x', keyPem: 'y' },
    { ...good, caKeyPem: other.caKeyPem },
  ];
  for (const stored of broken) {
    const plan = planRotation({ stored, now: T0, policy, published: null });
    assert.match(plan.reasons[0]!, /unusable/);
    assert.ok(issuedBy(plan.next!.certPem, plan.next!.caBundlePem));
  }
  const wrongLeaf = planRotation({ stored: { ...good, keyPem: other.keyPem }, now: T0, policy, published: good.caBundlePem });
  assert.match(wrongLeaf.reasons[0]!, /tls\.key does not belong/);
  assert.equal(wrongLeaf.next!.caBundlePem, good.caBundlePem, 'a bad serving pair keeps the CA');
  const foreignLeaf = planRotation({ stored: { ...good, certPem: other.certPem, keyPem: other.keyPem }, now: T0, policy, published: good.caBundlePem });
  assert.match(foreignLeaf.reasons[0]!, /not signed by a CA in the bundle/);
});

/** A target that holds what it was last given, like a ValidatingWebhookConfiguration's caBundle. */
class RecordingTarget implements CaBundleTarget {
  bundle: string | null = null;
  failing = false;
  syncs = 0;
  async sync(pem: string): Promise<boolean> {
    if (this.failing) throw new CertError('EAPI', 'API server unavailable');
    this.syncs++;
    const changed = pem !== this.bundle;
    this.bundle = pem;
    return changed;
  }
  describe(): string { return 'recording'; }
}

test('400 days of reconciles: the served certificate is always valid and always trusted by the published bundle', async () => {
  let now = T0;
  const target = new RecordingTarget();
  const store = new MemoryCertStore();
  const served: string[] = [];
  const manager = new CertManager({ store, targets: [target], policy: { ...policy }, clock: () => now, onChange: (s) => served.push(s.certPem) });
  const published = new Map<string, number>();
  let lastSigner: string | null = null;
  let signerMoves = 0;
  for (; now < T0 + 400 * DAY; now += 6 * HOUR) {
    const { serving } = await manager.reconcile();
    const day = (now - T0) / DAY;
    const leaf = new X509Certificate(serving.certPem);
    assert.ok(Date.parse(leaf.validFrom) <= now && now < Date.parse(leaf.validTo), `serving certificate valid on day ${day}`);
    const bundle = splitPemCertificates(target.bundle!);
    for (const ca of bundle) {
      if (!published.has(ca)) published.set(ca, now);
      assert.ok(now < Date.parse(new X509Certificate(ca).validTo), `no expired CA in the bundle on day ${day}`);
    }
    const signer = bundle.find((ca) => issuedBy(serving.certPem, ca));
    assert.ok(signer, `the published bundle trusts the served certificate on day ${day}`);
    if (lastSigner !== null && signer !== lastSigner) {
      signerMoves++;
      assert.ok(now - published.get(signer)! >= policy.caSettleMs, `a new CA signs only once published and settled (day ${day})`);
    }
    lastSigner = signer;
  }
  assert.ok(published.size >= 4, `${published.size} CAs in 400 days of 100-day CAs renewed 30 days early`);
  assert.equal(signerMoves, published.size - 1, 'the serving certificate moved to each new CA once');
  assert.ok(served.length >= 20, `serving certificate replaced ${served.length} times in 400 days of a 20-day certificate`);
  assert.ok(store.writes < 60, `${store.writes} writes: only when something was due`);
});

test('replicas sharing one store converge on one bundle; the loser of the race adopts the winner\'s', async () => {
  const store = new MemoryCertStore();
  const slowStore = {
    read: async () => { await new Promise((r) => setTimeout(r, 5)); return store.read(); },
    create: (b: CertBundle) => store.create(b),
    replace: (b: CertBundle, v: string) => store.replace(b, v),
    describe: () => 'slow',
  };
  const managers = [0, 1, 2].map(() => new CertManager({ store: slowStore, policy: { ...policy }, clock: () => T0 }));
  const results = await Promise.all(managers.map((m) => m.reconcile()));
  assert.equal(store.writes, 1, 'one writer won');
  for (const r of results) assert.equal(r.serving.certPem, results[0]!.serving.certPem);
  assert.deepEqual(results.map((r) => r.rotated.length > 0).filter(Boolean).length, 1);
});

test('a failing target fails the pass but keeps the stored bundle; the next pass publishes it', async () => {
  const target = new RecordingTarget();
  target.failing = true;
  const store = new MemoryCertStore();
  const manager = new CertManager({ store, targets: [target], policy: { ...policy }, clock: () => T0 });
  await assert.rejects(manager.reconcile(), (e) => isCertError(e, 'EAPI'));
  assert.equal(store.writes, 1);
  assert.equal(manager.current(), null);
  target.failing = false;
  const { patched, rotated } = await manager.reconcile();
  assert.deepEqual(patched, ['recording']);
  assert.deepEqual(rotated, []);
  assert.equal(target.bundle, (await store.read())!.bundle!.caBundlePem);
});

test('start retries a failing bootstrap with backoff until it works; stop ends a bootstrap still retrying', async () => {
  const target = new RecordingTarget();
  target.failing = true;
  const manager = new CertManager({ store: new MemoryCertStore(), targets: [target], policy: { ...policy }, resyncMs: 60_000 });
  const started = manager.start();
  await new Promise((r) => setTimeout(r, 300));
  target.failing = false;
  const serving = await started;
  assert.ok(trusted(serving.certPem, target.bundle!));
  manager.stop();

  const never = new RecordingTarget();
  never.failing = true;
  const stuck = new CertManager({ store: new MemoryCertStore(), targets: [never], policy: { ...policy } });
  const attempt = stuck.start();
  setTimeout(() => stuck.stop(), 50);
  await assert.rejects(attempt, (e) => isCertError(e, 'EAPI'));
});

test('caBundlePatch: test-guarded RFC 6902 operations that set every webhook\'s caBundle, and nothing when in sync', () => {
  const config: Pick<V1ValidatingWebhookConfiguration, 'webhooks'> = {
    webhooks: [
      { name: 'canaries.vane.dev', clientConfig: { service: { name: 'vane-webhook', namespace: 'vane-system', path: '/validate' } }, admissionReviewVersions: ['v1'], sideEffects: 'None' },
      { name: 'ingresses.vane.dev', clientConfig: { service: { name: 'vane-webhook', namespace: 'vane-system' }, caBundle: 'c3RhbGU=' }, admissionReviewVersions: ['v1'], sideEffects: 'None' },
    ],
  };
  const pem = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  const ops = caBundlePatch(config, pem);
  assert.deepEqual(ops.filter((o) => o.op === 'test').map((o) => o.path), ['/webhooks/0/name', '/webhooks/1/name', '/webhooks/1/clientConfig/caBundle']);
  const patched = jsonpatch.applyPatch(structuredClone(config), ops, true, false).newDocument;
  for (const w of patched.webhooks!) assert.equal(w.clientConfig.caBundle, Buffer.from(pem).toString('base64'));
  assert.equal(patched.webhooks![0]!.clientConfig.service?.path, '/validate', 'the rest of clientConfig is untouched');
  assert.deepEqual(caBundlePatch(patched, pem), []);
  const reordered = { webhooks: [config.webhooks![1]!, config.webhooks![0]!] };
  assert.throws(() => jsonpatch.applyPatch(structuredClone(reordered), ops, true, false), /Test operation failed/, 'a reordered configuration fails the test, not the wrong webhook');
});

function apiError(code: number): ApiException<null> {
  return new ApiException(code, `HTTP ${code}`, null, {});
}

test('KubeSecretStore maps the API\'s answers to the store contract and keeps what others set on the Secret', async () => {
  const bundle = planRotation({ stored: null, now: T0, policy, published: null }).next!;
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  let replaced: unknown = null;
  const api = {
    readNamespacedSecret: async ({ name }: { name: string }) => {
      if (name === 'missing') throw apiError(404);
      if (name === 'empty') return { metadata: { resourceVersion: '7' }, type: 'kubernetes.io/tls', data: { 'tls.crt': '', 'tls.key': '' } };
      return {
        metadata: { name, resourceVersion: '42', labels: { 'helm.sh/chart': 'vane' }, annotations: { note: 'kept' } },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': b64(bundle.certPem), 'tls.key': b64(bundle.keyPem), 'ca.crt': b64(bundle.caBundlePem), 'ca.key': b64(bundle.caKeyPem), extra: 'eA==' },
      };
    },
    createNamespacedSecret: async () => { throw apiError(409); },
    replaceNamespacedSecret: async (req: { body: { metadata: { resourceVersion: string } } }) => {
      replaced = req.body;
      if (req.body.metadata.resourceVersion !== '42') throw apiError(409);
      return { ...req.body, metadata: { ...req.body.metadata, resourceVersion: '43' } };
    },
  };
  assert.equal(await new KubeSecretStore(api as never, 'ns', 'missing').read(), null);
  assert.deepEqual(await new KubeSecretStore(api as never, 'ns', 'empty').read(), { bundle: null, version: '7' });
  const store = new KubeSecretStore(api as never, 'ns', 'tls', { 'app.kubernetes.io/name': 'vane' });
  const read = await store.read();
  assert.deepEqual(read, { bundle, version: '42' });
  await assert.rejects(store.create(bundle), (e) => isCertError(e, 'EEXIST'));
  const written = await store.replace(bundle, '42');
  assert.equal(written.version, '43');
  const body = replaced as { type: string; metadata: { labels: Record<string, string>; annotations: Record<string, string> }; data: Record<string, string> };
  assert.equal(body.type, 'kubernetes.io/tls');
  assert.deepEqual(body.metadata.labels, { 'helm.sh/chart': 'vane', 'app.kubernetes.io/name': 'vane' });
  assert.deepEqual(body.metadata.annotations, { note: 'kept' });
  assert.equal(body.data.extra, 'eA==');
  await assert.rejects(store.replace(bundle, '41'), (e) => isCertError(e, 'ECONFLICT'));
});

test('KubeWebhookCaBundle: patch only when needed; a lost compare-and-swap is a conflict; a missing configuration says so', async () => {
  const pem = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  let stored = { webhooks: [{ name: 'canaries.vane.dev', clientConfig: {} as Record<string, unknown> }] };
  const patches: unknown[] = [];
  let conflict = false;
  const api = {
    readValidatingWebhookConfiguration: async ({ name }: { name: string }) => { if (name !== 'vane-webhook') throw apiError(404); return structuredClone(stored); },
    patchValidatingWebhookConfiguration: async ({ body }: { body: jsonpatch.Operation[] }) => {
      if (conflict) throw apiError(422);
      patches.push(body);
      stored = jsonpatch.applyPatch(stored, body, true, false).newDocument;
      return stored;
    },
  };
  const target = new KubeWebhookCaBundle(api as never, 'vane-webhook');
  assert.equal(await target.sync(pem), true);
  assert.equal(await target.sync(pem), false);
  assert.equal(patches.length, 1);
  conflict = true;
  await assert.rejects(target.sync(`${pem}${pem}`), (e) => isCertError(e, 'ECONFLICT'));
  await assert.rejects(new KubeWebhookCaBundle(api as never, 'other').sync(pem), (e) => isCertError(e, 'ENOTFOUND'));
});
