/**
 * Fuzzing the admission path end to end (body text → AdmissionReview response): 10,000+
 * mutated and random Canaries, Ingresses and raw bodies. Whatever comes in: no throw, no
 * unhandled rejection, a well-formed review, the uid echoed whenever the body carries one,
 * and every denial names at least one field path.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { KubeObject } from '../../../core/index.ts';
import { loadManifests } from '../../../lib/manifests.ts';
import { reviewAdmission, MemoryObjectCache, type ReviewOutcome } from '../../../webhook/index.ts';
import { review, webhookFixtures, ROOT } from './helpers.ts';

const stray: unknown[] = [];
const onStray = (err: unknown) => { stray.push(err); };
process.on('unhandledRejection', onStray);
process.on('uncaughtException', onStray);
after(() => {
  process.off('unhandledRejection', onStray);
  process.off('uncaughtException', onStray);
});

const fixtures = webhookFixtures();
const examples = (await loadManifests([`${ROOT}examples`])).objects.map((o) => o.object);
const clusterObjects = [...examples, ...fixtures.flatMap((f) => f.context)];
const cache = new MemoryObjectCache(clusterObjects);
const bases: KubeObject[] = [...fixtures.map((f) => f.subject), ...examples].filter((o) => o.kind === 'Canary' || o.kind === 'Ingress');

/** A field path starts at a root of the object or of the review; what follows may quote user keys verbatim. */
const FIELD_PATH = /^(metadata|spec|kind|apiVersion|request|body)([.[]|$)/;
let denials = 0;
let reviews = 0;

/** check holds one outcome to the invariants every response must meet. */
function check(outcome: ReviewOutcome, uid: string | null): void {
  reviews++;
  const { review: r, httpStatus } = outcome;
  assert.ok(httpStatus === 200 || httpStatus === 400);
  assert.equal(r.apiVersion, 'admission.k8s.io/v1');
  assert.equal(r.kind, 'AdmissionReview');
  assert.equal(typeof r.response.allowed, 'boolean');
  if (uid !== null) {
    assert.equal(r.response.uid, uid);
    assert.equal(httpStatus, 200);
  }
  JSON.stringify(r);
  // reviewAdmission turns a throw from validate() into a denial; the fuzz must see it as the bug it is.
  assert.ok(!outcome.summary.note?.startsWith('internal error'), outcome.summary.note);
  if (!r.response.allowed) {
    denials++;
    const causes = r.response.status?.details?.causes ?? [];
    assert.ok(causes.length > 0, 'a denial has causes');
    for (const c of causes) assert.match(c.field, FIELD_PATH, `cause field ${JSON.stringify(c.field)}`);
    const first = causes[0]!;
    assert.ok(r.response.status!.message.startsWith(`${first.field}: `), r.response.status!.message);
    assert.ok(!/[\u0000-\u001f]/.test(r.response.status!.message));
  }
  for (const w of r.response.warnings ?? []) assert.ok(!/[\u0000-\u001f]/.test(w) && w.length <= 256);
}

const weird = fc.oneof(
  fc.jsonValue(),
  fc.constantFrom('', ' ', '__proto__', 'constructor', 'toString', '-1', '1e400', 'a'.repeat(5000), '\u0000\r\n', '🦆', '(?=x)', '[a-z]{1000}'.repeat(5), '0s', '99999h', '64g', '65g'),
  fc.constantFrom(0, -1, 1.5, 1e308, -0, 65536, 101, Number.MAX_SAFE_INTEGER, null, true, false, [], {}),
  fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'name', 'regex', 'number', 'vane.dev/x', 'nginx.ingress.kubernetes.io/canary-x', 'vane.dev/server-snippet'), fc.jsonValue(), { maxKeys: 4 }),
);

/** paths lists every JSON pointer of value, as arrays of keys. */
function paths(value: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...prefix, i], out));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out);
  return out;
}

type Mutation = { op: 'set' | 'delete' | 'add'; pick: number; key: string; value: unknown };

function mutate(base: KubeObject, mutations: Mutation[]): unknown {
  let doc: unknown = structuredClone(base);
  for (const m of mutations) {
    const all = paths(doc);
    const path = all[m.pick % all.length]!;
    if (path.length === 0) { if (m.op === 'set') doc = m.value; continue; }
    let parent = doc as Record<string | number, unknown>;
    for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
    const last = path[path.length - 1]!;
    if (m.op === 'delete') {
      if (Array.isArray(parent)) parent.splice(Number(last), 1); else delete parent[last];
    } else if (m.op === 'set') {
      parent[last] = structuredClone(m.value);
    } else {
      const target = parent[last];
      if (Array.isArray(target)) target.push(structuredClone(m.value));
      else if (target && typeof target === 'object') Object.defineProperty(target, m.key, { value: structuredClone(m.value), enumerable: true, writable: true, configurable: true });
    }
  }
  return doc;
}

const arbMutation = fc.record({
  op: fc.constantFrom('set' as const, 'delete' as const, 'add' as const),
  pick: fc.nat(),
  key: fc.constantFrom('__proto__', 'constructor', 'extra', 'regex', 'value', 'snippet', 'vane.dev/read-timeout', 'vane.dev/__proto__', 'vane.dev/hasOwnProperty', 'nginx.ingress.kubernetes.io/server-snippet'),
  value: weird,
});

test('5,000 mutated Canaries and Ingresses: never a crash, every denial names a field', () => {
  fc.assert(fc.property(
    fc.nat(), fc.array(arbMutation, { minLength: 1, maxLength: 6 }), fc.constantFrom('CREATE', 'UPDATE'), fc.string({ minLength: 1, maxLength: 40 }),
    (i, mutations, operation, uid) => {
      const base = bases[i % bases.length]!;
      const object = mutate(base, mutations);
      const body = JSON.stringify(review({ uid, operation, object, ...(operation === 'UPDATE' ? { oldObject: base } : {}), kind: base.kind === 'Ingress' ? { group: 'networking.k8s.io', version: 'v1', kind: 'Ingress' } : { group: 'vane.dev', version: 'v1alpha1', kind: 'Canary' } }));
      check(reviewAdmission(body, { cache }), uid);
    },
  ), { numRuns: 5000 });
});

test('2,500 random objects of random kinds', () => {
  const kinds = fc.constantFrom(
    { group: 'vane.dev', version: 'v1alpha1', kind: 'Canary' }, { group: 'networking.k8s.io', version: 'v1', kind: 'Ingress' },
    { group: '', version: 'v1', kind: 'Pod' }, { group: 'vane.dev', version: 'v1', kind: 'Canary' }, { group: 'networking.k8s.io', version: 'v1beta1', kind: 'Ingress' },
  );
  const object = fc.record({
    apiVersion: fc.constantFrom('vane.dev/v1alpha1', 'networking.k8s.io/v1', 'v1', 'x'),
    kind: fc.constantFrom('Canary', 'Ingress', 'Service', 'Pod'),
    metadata: fc.oneof(fc.record({ name: fc.oneof(fc.string(), weird), namespace: fc.oneof(fc.string(), weird), annotations: fc.dictionary(fc.string(), fc.oneof(fc.string(), weird)) }, { requiredKeys: [] }), weird),
    spec: fc.oneof(fc.object({ maxDepth: 4 }), weird),
  }, { requiredKeys: [] });
  fc.assert(fc.property(kinds, fc.oneof(object, weird), fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT', ''), fc.string({ minLength: 1, maxLength: 40 }), (kind, obj, operation, uid) => {
    const body = JSON.stringify(review({ uid, operation, object: obj, kind }));
    check(reviewAdmission(body, { cache, defaultClass: true }), uid);
  }), { numRuns: 2500 });
});

test('2,500 raw bodies: garbage, truncations and splices of real reviews', () => {
  const real = bases.map((o) => JSON.stringify(review({ uid: 'raw-uid', object: o })));
  const raw = fc.oneof(
    fc.string({ maxLength: 2000 }),
    fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b).toString('utf8')),
    fc.tuple(fc.nat(), fc.nat()).map(([i, cut]) => { const s = real[i % real.length]!; return s.slice(0, cut % s.length); }),
    fc.tuple(fc.nat(), fc.nat(), fc.string({ maxLength: 20 })).map(([i, at, junk]) => { const s = real[i % real.length]!; const k = at % s.length; return s.slice(0, k) + junk + s.slice(k); }),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.jsonValue().map((v) => JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: v })),
  );
  fc.assert(fc.property(raw, (body) => {
    const outcome = reviewAdmission(body, { cache });
    let uid: string | null = null;
    try {
      const parsed = JSON.parse(body) as { apiVersion?: unknown; kind?: unknown; request?: { uid?: unknown } };
      if (parsed?.apiVersion === 'admission.k8s.io/v1' && parsed.kind === 'AdmissionReview' && typeof parsed.request?.uid === 'string' && parsed.request.uid !== '') uid = parsed.request.uid;
    } catch { /* not JSON: the uid is recovered when the head holds one */ }
    check(outcome, uid);
    if (uid === null && outcome.httpStatus === 200) assert.notEqual(outcome.review.response.uid, '');
  }), { numRuns: 2500 });
});

test('over 10,000 reviews ran, many of them denials, and nothing escaped', () => {
  assert.ok(reviews >= 10_000, `${reviews} reviews`);
  assert.ok(denials >= 1000, `${denials} denials`);
  assert.deepEqual(stray, []);
});
