import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeObject } from '../../../core/index.ts';
import {
  reviewAdmission, MemoryObjectCache, MAX_LISTED_PROBLEMS, MAX_WARNINGS, MAX_WARNING_CHARS,
  type AdmissionResponse, type ObjectCache, type ReviewOptions,
} from '../../../webhook/index.ts';
import { reviewBody, webhookFixtures, type ReviewInput } from './helpers.ts';

const canary = (spec: Record<string, unknown> = {}, meta: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: 'vane.dev/v1alpha1',
  kind: 'Canary',
  metadata: { name: 'checkout', namespace: 'shop', ...meta },
  spec: { ingressRef: { name: 'shop' }, service: 'checkout', canaryService: { name: 'checkout-v2', port: { number: 80 } }, ...spec },
} as KubeObject);

const ingress = (annotations: Record<string, string> = {}, spec: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: { name: 'web', namespace: 'shop', annotations },
  spec: {
    ingressClassName: 'vane',
    rules: [{ host: 'shop.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }],
    ...spec,
  },
} as KubeObject);

const service = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { ports: [{ port: 80 }] } } as KubeObject);

const cluster = (): MemoryObjectCache => new MemoryObjectCache([
  service('checkout'), service('checkout-v2'), service('web'),
  { ...ingress({}, { rules: [{ host: 'shop.example.com', http: { paths: [{ path: '/checkout', pathType: 'Prefix', backend: { service: { name: 'checkout', port: { number: 80 } } } }] } }] }), metadata: { name: 'shop', namespace: 'shop' } } as KubeObject,
]);

function run(input: ReviewInput, options: ReviewOptions = {}): { http: number; response: AdmissionResponse } {
  const out = reviewAdmission(reviewBody(input), options);
  assert.equal(out.review.apiVersion, 'admission.k8s.io/v1');
  assert.equal(out.review.kind, 'AdmissionReview');
  return { http: out.httpStatus, response: out.review.response };
}

test('a TLS Secret counts by existence and type: the webhook never judges key material, even when its cache holds some', () => {
  const tls = { ingressClassName: 'vane', tls: [{ hosts: ['shop.example.com'], secretName: 'shop-tls' }] };
  const secret = (type: string, data?: Record<string, string>): KubeObject => ({ apiVersion: 'v1', kind: 'Secret', type, metadata: { name: 'shop-tls', namespace: 'shop' }, ...(data ? { data } : {}) } as KubeObject);
  const warnings = (extra: KubeObject[]) => run({ object: ingress({}, tls) }, { cache: new MemoryObjectCache([service('web'), ...extra]) }).response.warnings ?? [];
  assert.match(warnings([]).join('\n'), /^spec\.tls\[0\]\.secretName: Secret shop\/shop-tls: Secret not found/);
  assert.match(warnings([secret('Opaque')]).join('\n'), /want kubernetes\.io\/tls/);
  // What `--watch-cluster` caches: metadata and the type its field selector guarantees.
  assert.deepEqual(warnings([secret('kubernetes.io/tls')]), []);
  // A malformed pair (e.g. from --from-files) is the operator's TLSSecretInvalid condition, not a webhook warning.
  const garbage = Buffer.from('not a certificate').toString('base64');
  assert.deepEqual(warnings([secret('kubernetes.io/tls', { 'tls.crt': garbage, 'tls.key': garbage })]), []);
});

test('denial lists every problem as `field.path: message`, in one message, with causes and the uid', () => {
  const { http, response } = run({
    uid: 'uid-deny',
    object: canary({ canaryService: { name: 'checkout' }, traffic: { header: { name: 'X-Beta', regex: '(?=x)' } } }),
  }, { cache: cluster() });
  assert.equal(http, 200);
  assert.equal(response.uid, 'uid-deny');
  assert.equal(response.allowed, false);
  assert.equal(response.status?.code, 403);
  const fields = response.status!.details!.causes.map((c) => c.field).sort();
  assert.deepEqual(fields, ['spec.canaryService.name', 'spec.traffic.header.regex']);
  for (const cause of response.status!.details!.causes) assert.ok(response.status!.message.includes(`${cause.field}: ${cause.message}`));
  assert.match(response.status!.message, /^spec\.[\w.[\]]+: /);
});

const cases: { name: string; input: ReviewInput; cache?: ObjectCache; options?: ReviewOptions; allowed: boolean; warns?: string[]; denies?: string[] }[] = [
  { name: 'valid Canary in a complete cluster: allowed, no warnings', input: { object: canary() }, allowed: true, warns: [] },
  { name: 'Canary without an Ingress: allowed with a warning', input: { object: canary({ ingressRef: { name: 'missing' } }) }, allowed: true, warns: ['spec.ingressRef.name'] },
  { name: 'Canary whose canary Service is missing', input: { object: canary({ canaryService: { name: 'nope' } }) }, allowed: true, warns: ['spec.canaryService.name'] },
  { name: 'Canary regex that only backtracking engines know', input: { object: canary({ traffic: { header: { name: 'X', regex: '(a)\\1' } } }) }, allowed: false, denies: ['spec.traffic.header.regex'] },
  { name: 'Canary regex over the program size limit', input: { object: canary({ traffic: { header: { name: 'X', regex: '[a-z]{1000}'.repeat(5) } } }) }, allowed: false, denies: ['spec.traffic.header.regex'] },
  { name: 'Canary regex over the length limit', input: { object: canary({ traffic: { header: { name: 'X', regex: 'a'.repeat(1025) } } }) }, allowed: false, denies: ['spec.traffic.header.regex'] },
  { name: 'Canary steps that never reach maxWeight', input: { object: canary({ analysis: { stepWeight: 30, maxWeight: 100, metrics: [{ name: 'success-rate', min: 99 }] } }) }, allowed: false, denies: ['spec.analysis.maxWeight'] },
  { name: 'Ingress annotation out of range', input: { object: ingress({ 'vane.dev/connect-timeout': '10m' }) }, allowed: false, denies: ['metadata.annotations["vane.dev/connect-timeout"]'] },
  { name: 'Ingress configuration snippet', input: { object: ingress({ 'nginx.ingress.kubernetes.io/server-snippet': 'lua_code' }) }, allowed: false, denies: ['metadata.annotations["nginx.ingress.kubernetes.io/server-snippet"]'] },
  { name: 'Ingress snippet in any case under vane.dev/', input: { object: ingress({ 'vane.dev/Auth-SNIPPET-x': 'x' }) }, allowed: false, denies: ['metadata.annotations["vane.dev/Auth-SNIPPET-x"]'] },
  { name: 'Ingress with a misspelled Vane annotation: warned with a suggestion', input: { object: ingress({ 'vane.dev/load-balanse': 'round-robin' }) }, allowed: true, warns: ['metadata.annotations["vane.dev/load-balanse"]'] },
  { name: 'Ingress whose TLS Secret is missing', input: { object: ingress({}, { tls: [{ hosts: ['shop.example.com'], secretName: 'shop-tls' }] }) }, allowed: true, warns: ['spec.tls[0].secretName'] },
  { name: 'Ingress of another class is never judged', input: { object: ingress({ 'nginx.ingress.kubernetes.io/configuration-snippet': 'x' }, { ingressClassName: 'nginx' }) }, allowed: true, warns: [] },
  { name: 'class-less Ingress when no class is known and Vane is not declared the default', input: { object: ingress({ 'vane.dev/server-snippet': 'x' }, { ingressClassName: undefined }) }, allowed: true, warns: [] },
  { name: 'class-less Ingress with --default-class', input: { object: ingress({ 'vane.dev/server-snippet': 'x' }, { ingressClassName: undefined }) }, options: { defaultClass: true }, allowed: false, denies: ['metadata.annotations["vane.dev/server-snippet"]'] },
  {
    name: 'class-less Ingress when Vane\'s IngressClass is the cluster default',
    input: { object: ingress({ 'vane.dev/server-snippet': 'x' }, { ingressClassName: undefined }) },
    cache: new MemoryObjectCache([{ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'edge', annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' } }, spec: { controller: 'vane.dev/ingress-controller' } } as KubeObject]),
    allowed: false, denies: ['metadata.annotations["vane.dev/server-snippet"]'],
  },
  {
    name: 'Ingress naming another IngressClass whose controller is Vane\'s',
    input: { object: ingress({ 'vane.dev/server-snippet': 'x' }, { ingressClassName: 'internal' }) },
    cache: new MemoryObjectCache([{ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'internal' }, spec: { controller: 'vane.dev/ingress-controller' } } as KubeObject]),
    allowed: false, denies: ['metadata.annotations["vane.dev/server-snippet"]'],
  },
  { name: 'legacy kubernetes.io/ingress.class annotation', input: { object: ingress({ 'kubernetes.io/ingress.class': 'vane', 'vane.dev/server-snippet': 'x' }, { ingressClassName: undefined }) }, allowed: false, denies: ['metadata.annotations["vane.dev/server-snippet"]'] },
  { name: 'DELETE is not validated', input: { operation: 'DELETE', object: canary({ canaryService: { name: 'checkout' } }) }, allowed: true, warns: [] },
  { name: 'status subresource is not validated', input: { subResource: 'status', operation: 'UPDATE', object: canary({ canaryService: { name: 'checkout' } }) }, allowed: true, warns: [] },
  { name: 'a kind the webhook does not serve is refused with a pointer to the rules', input: { kind: { group: '', version: 'v1', kind: 'Pod' }, object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } } }, allowed: false, denies: ['request.kind'] },
  { name: 'an object that contradicts request.kind is refused', input: { kind: { group: 'vane.dev', version: 'v1alpha1', kind: 'Canary' }, object: ingress() }, allowed: false, denies: ['kind'] },
  { name: 'a missing object is refused', input: { object: null }, allowed: false, denies: ['request.object'] },
  { name: 'an object without metadata is refused', input: { object: { apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', spec: {} } }, allowed: false, denies: ['metadata'] },
];

for (const c of cases) {
  test(c.name, () => {
    const { response } = run(c.input, { cache: c.cache ?? cluster(), ...c.options });
    assert.equal(response.allowed, c.allowed, JSON.stringify(response));
    assert.equal(response.uid, 'a1b2c3d4-0000-4000-8000-000000000001');
    if (c.denies) assert.deepEqual(response.status!.details!.causes.map((x) => x.field), c.denies);
    if (c.warns) assert.deepEqual((response.warnings ?? []).map((w) => w.slice(0, w.indexOf(': '))), c.warns);
  });
}

test('an update that changes the validated fields is validated like a create', () => {
  const old = canary();
  const { response } = run({ operation: 'UPDATE', object: canary({ canaryService: { name: 'checkout' } }), oldObject: old }, { cache: cluster() });
  assert.equal(response.allowed, false);
});

test('an update that leaves a stored invalid object\'s spec alone (labels, finalizers) is let through, errors as warnings', () => {
  const bad = canary({ canaryService: { name: 'checkout' } });
  const relabelled = { ...bad, metadata: { ...bad.metadata, labels: { team: 'a' }, finalizers: ['vane.dev/canary'] } };
  const { response } = run({ operation: 'UPDATE', object: relabelled, oldObject: bad }, { cache: cluster() });
  assert.equal(response.allowed, true);
  assert.ok(response.warnings?.some((w) => w.startsWith('(unchanged, not enforced) spec.canaryService.name: ')), JSON.stringify(response.warnings));
});

test('an Ingress update that only changes an annotation is validated (annotations are validated fields)', () => {
  const old = ingress();
  const { response } = run({ operation: 'UPDATE', object: ingress({ 'vane.dev/read-timeout': '5h' }), oldObject: old }, { cache: cluster() });
  assert.equal(response.allowed, false);
});

test('an update of an object being deleted is let through (its finalizers must be removable)', () => {
  const bad = canary({ canaryService: { name: 'checkout' } }, { deletionTimestamp: '2025-01-01T00:00:00Z' });
  const { response } = run({ operation: 'UPDATE', object: bad, oldObject: canary() }, { cache: cluster() });
  assert.equal(response.allowed, true);
});

test('without a synced cache, cross-object warnings are left out rather than guessed', () => {
  const unsynced: ObjectCache = { get: () => undefined, list: () => [], synced: () => false };
  const { response } = run({ object: canary({ ingressRef: { name: 'missing' } }) }, { cache: unsynced });
  assert.equal(response.allowed, true);
  assert.equal(response.warnings, undefined);
  const denied = run({ object: canary({ canaryService: { name: 'checkout' } }) }, { cache: unsynced });
  assert.equal(denied.response.allowed, false);
});

test('long and numerous problems are capped, control characters never reach a header', () => {
  const annotations: Record<string, string> = {};
  for (let i = 0; i < 60; i++) annotations[`vane.dev/unknown-${i}`] = 'x';
  for (let i = 0; i < 40; i++) annotations[`vane.dev/snippet-${i}`] = 'x';
  annotations['vane.dev/load-balance'] = `evil\r\nX-Injected: 1${'y'.repeat(5000)}`;
  const { response } = run({ object: ingress(annotations) }, { cache: cluster() });
  assert.equal(response.allowed, false);
  const parts = response.status!.message.split('; ');
  assert.equal(parts.length, MAX_LISTED_PROBLEMS + 1);
  assert.match(parts[parts.length - 1]!, /^and 16 more problem\(s\)$/);
  assert.ok(!/[\r\n]/.test(response.status!.message));
  assert.equal(response.warnings!.length, MAX_WARNINGS + 1);
  for (const w of response.warnings!) assert.ok(w.length <= MAX_WARNING_CHARS && !/[\r\n]/.test(w));
});

test('malformed bodies: 400 without a uid to echo, a denial echoing the uid when one can be read', () => {
  const garbage = reviewAdmission('this is not json');
  assert.equal(garbage.httpStatus, 400);
  assert.equal(garbage.review.response.allowed, false);
  assert.match(garbage.review.response.status!.message, /^body: not JSON/);

  const truncated = reviewBody({ uid: 'uid-trunc', object: canary() }).slice(0, 300);
  const out = reviewAdmission(truncated);
  assert.equal(out.httpStatus, 200);
  assert.equal(out.review.response.uid, 'uid-trunc');
  assert.equal(out.review.response.allowed, false);

  for (const [body, field] of [
    ['[]', 'body'],
    ['{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u"}}', 'apiVersion'],
    ['{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}', 'request'],
    ['{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}', 'request.uid'],
  ] as const) {
    const r = reviewAdmission(body);
    assert.equal(r.review.response.allowed, false, body);
    assert.equal(r.review.response.status!.details!.causes[0]!.field, field, body);
  }
});

test('every fixture under tests/fixtures/webhook gets the verdict its header promises', () => {
  const fixtures = webhookFixtures();
  assert.ok(fixtures.length >= 15);
  for (const f of fixtures) {
    const { response } = run({ object: f.subject }, { cache: new MemoryObjectCache(f.context) });
    const label = `${f.file}: ${JSON.stringify(response)}`;
    if (f.expect.denied) {
      assert.equal(response.allowed, false, label);
      assert.ok(response.status!.details!.causes.some((c) => c.field === f.expect.denied), label);
      assert.ok(response.status!.message.startsWith(`${f.expect.denied}: `), label);
    }
    if (f.expect.warning) {
      assert.equal(response.allowed, true, label);
      assert.ok(response.warnings?.some((w) => w.startsWith(`${f.expect.warning}: `)), label);
    }
    if (f.expect.allowed || f.expect.skipped) {
      assert.equal(response.allowed, true, label);
      assert.equal(response.warnings, undefined, label);
    }
  }
});

test('MemoryObjectCache as the operator\'s sink: unsynced until marked, set and delete by objectKey', () => {
  const cache = new MemoryObjectCache([], { synced: false });
  cache.set(service('checkout'));
  const orphan = canary({ canaryService: { name: 'checkout-v2' } });
  assert.equal(run({ object: orphan }, { cache }).response.warnings, undefined, 'nothing guessed before the first full list');
  cache.markSynced();
  assert.deepEqual(run({ object: orphan }, { cache }).response.warnings?.map((w) => w.split(': ')[0]), ['spec.canaryService.name', 'spec.ingressRef.name']);
  cache.set(service('checkout-v2'));
  assert.deepEqual(run({ object: orphan }, { cache }).response.warnings?.map((w) => w.split(': ')[0]), ['spec.ingressRef.name']);
  cache.delete('Service', 'shop/checkout-v2');
  assert.equal(cache.get('Service', 'shop', 'checkout-v2'), undefined);
});

test('a hostile object where a string belongs (metadata.name {"toString": {}}) is denied with the field, not an internal error', () => {
  // String() on such an object throws ("Cannot convert object to primitive value"); the fuzz found it.
  const hostile = { toString: {} };
  const cases: [KubeObject, RegExp | null][] = [
    [canary({}, { name: hostile }), /metadata\.name/],
    [{ ...canary(), apiVersion: hostile } as unknown as KubeObject, /kind/],
    // The API server sets the namespace from the request; a non-string one reads as unset.
    [canary({}, { namespace: hostile }), null],
  ];
  for (const [object, denied] of cases) {
    const { http, response } = run({ object });
    assert.equal(http, 200);
    assert.doesNotMatch(response.status?.message ?? '', /internal error/);
    assert.equal(response.allowed, denied === null);
    if (denied) assert.match(response.status?.message ?? '', denied);
  }
});
