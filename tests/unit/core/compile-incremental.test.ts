import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Compiler, compile, canonicalJson, hashValue, kindOf, objectKey, type KubeObject, type CompileResult } from '../../../core/index.ts';
import { compileUserRegex, MAX_HOST_PROGRAM_SIZE } from '../../../core/regex.ts';
import { ingress, ingressClass, service, externalService, slice, tlsSecret, canary } from '../../support/objects.ts';
import { selfSigned } from '../../support/tls.ts';

const certA = selfSigned('a.test');
const certB = selfSigned('b.test');

const hosts = ['a.test', 'b.test', '*.w.test', undefined];
const services = ['s0', 's1', 's2', 's3'];
const paths = ['/', '/x', '/x/y', '/z'];

const ingressArb = fc.record({
  name: fc.constantFrom('i0', 'i1', 'i2', 'i3'),
  created: fc.constantFrom('2024-01-01T00:00:00Z', '2024-02-01T00:00:00Z', ''),
  className: fc.constantFrom<string | null>('vane', 'other', null),
  rules: fc.array(fc.record({
    host: fc.constantFrom(...hosts),
    paths: fc.array(fc.record({ path: fc.constantFrom(...paths), pathType: fc.constantFrom('Prefix', 'Exact', 'Bogus'), service: fc.constantFrom(...services), port: fc.constantFrom<number | string>(80, 'http') }), { minLength: 1, maxLength: 3 }),
  }), { maxLength: 3 }),
  tls: fc.option(fc.array(fc.record({ hosts: fc.subarray(['a.test', 'b.test']), secretName: fc.constantFrom('tls-a', 'tls-b', 'tls-missing') }), { maxLength: 2 }), { nil: undefined }),
  defaultBackend: fc.option(fc.record({ service: fc.constantFrom(...services) }), { nil: undefined }),
  annotations: fc.option(fc.constantFrom<Record<string, string>>({ 'vane.dev/ssl-redirect': 'false' }, { 'vane.dev/rewrite-target': '/' }, { 'vane.dev/read-timeout': 'x' }), { nil: undefined }),
}).map((s) => ingress({ ...s, className: s.className, ...(s.tls ? { tls: s.tls } : {}), ...(s.defaultBackend ? { defaultBackend: s.defaultBackend } : {}), ...(s.annotations ? { annotations: s.annotations } : {}) }));

const serviceArb = fc.tuple(fc.constantFrom(...services), fc.boolean()).map(([name, external]) =>
  external ? externalService(name, `${name}.example.net`) : service(name));

const sliceArb = fc.record({
  name: fc.constantFrom('e0', 'e1', 'e2'),
  service: fc.constantFrom(...services),
  ips: fc.array(fc.record({ ip: fc.constantFrom('192.0.2.1', '192.0.2.2', '192.0.2.3'), ready: fc.boolean() }), { maxLength: 3 }),
}).map((s) => slice(s.name, s.service, s.ips.map((e) => ({ ip: e.ip, ready: e.ready }))));

const secretArb = fc.tuple(fc.constantFrom('tls-a', 'tls-b'), fc.constantFrom('good-a', 'good-b', 'mismatched')).map(([name, kind]) =>
  kind === 'good-a' ? tlsSecret(name, certA.cert, certA.key) : kind === 'good-b' ? tlsSecret(name, certB.cert, certB.key) : tlsSecret(name, certA.cert, certB.key));

const canaryArb = fc.record({
  name: fc.constantFrom('c0', 'c1'),
  ingress: fc.constantFrom('i0', 'i1'),
  service: fc.constantFrom(...services),
  target: fc.constantFrom(...services),
  weight: fc.integer({ min: 0, max: 100 }),
  phase: fc.constantFrom(undefined, 'Progressing', 'Failed'),
}).map((c) => canary(c.name, { ingressRef: { name: c.ingress }, service: c.service, canaryService: { name: c.target }, traffic: { weight: c.weight, header: { name: 'X-Canary' } } },
  c.phase ? { status: { phase: c.phase, weight: c.weight } } : {}));

const classArb = fc.tuple(fc.constantFrom('vane', 'other', 'dflt'), fc.constantFrom('vane.dev/ingress-controller', 'k8s.io/ingress-nginx'), fc.boolean())
  .map(([name, controller, isDefault]) => ingressClass(name, controller, isDefault));

type Op = { set: KubeObject } | { del: KubeObject };
const objectArb = fc.oneof(ingressArb, serviceArb, sliceArb, secretArb, canaryArb, classArb);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: objectArb.map((o) => ({ set: o })) },
  { weight: 1, arbitrary: objectArb.map((o) => ({ del: o })) },
);

function fingerprint(r: CompileResult): string {
  return canonicalJson({
    root: r.root,
    resources: [...r.resources.values()].map((x) => x.resource).sort((a, b) => (a.name < b.name ? -1 : 1)),
    statuses: [...r.statuses.entries()].sort(([a], [b]) => (a < b ? -1 : 1)),
  });
}

test('incremental compile always equals a full compile of the same objects (property)', () => {
  fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 25 }), fc.integer({ min: 1, max: 5 }), (ops, buildEvery) => {
    const compiler = new Compiler();
    const live = new Map<string, KubeObject>();
    ops.forEach((op, i) => {
      const obj = 'set' in op ? op.set : op.del;
      const kind = kindOf(obj)!;
      const key = `${kind}/${objectKey(kind, obj)}`;
      if ('set' in op) { compiler.set(op.set); live.set(key, op.set); } else { compiler.delete(kind, objectKey(kind, obj)); live.delete(key); }
      if (i % buildEvery === 0 || i === ops.length - 1) {
        const built = compiler.build();
        for (const r of built.resources.values()) {
          assert.equal(r.hash, hashValue(r.resource), `${r.resource.name}: built in canonical key order, so its fast hash is the canonical one`);
        }
        const incremental = fingerprint(built);
        const full = fingerprint(compile([...live.values()]));
        assert.equal(incremental, full, `after op ${i}`);
      }
    });
  }), { numRuns: 300 });
});

test('changed lists exactly the resources whose hash differs from the previous build', () => {
  fc.assert(fc.property(fc.array(objectArb, { maxLength: 12 }), fc.array(opArb, { minLength: 1, maxLength: 6 }), (initial, ops) => {
    const compiler = new Compiler();
    for (const o of initial) compiler.set(o);
    const before = new Map([...compiler.build().resources].map(([n, r]) => [n, r.hash]));
    for (const op of ops) {
      if ('set' in op) compiler.set(op.set);
      else { const k = kindOf(op.del)!; compiler.delete(k, objectKey(k, op.del)); }
    }
    const after = compiler.build();
    const upserts = [...after.resources].filter(([n, r]) => before.get(n) !== r.hash).map(([n]) => n).sort();
    const removals = [...before.keys()].filter((n) => !after.resources.has(n)).sort();
    assert.deepEqual(after.changed, { upserts, removals });
  }), { numRuns: 200 });
});

/** REGEX_POOL: regex paths of 60 and 100 RE2 instructions; a few Ingresses drawing from it overflow a host's budget, some claiming the same path. */
const REGEX_POOL = Array.from({ length: 24 }, (_, k) => `/r${k}/` + 'a*'.repeat(k % 2 ? 45 : 26));

const regexIngressArb = fc.record({
  name: fc.constantFrom('i0', 'i1', 'i2', 'i3', 'i4', 'i5'),
  namespace: fc.constantFrom('ns0', 'ns1'),
  created: fc.constantFrom('2024-01-01T00:00:00Z', '2024-02-01T00:00:00Z', ''),
  host: fc.constantFrom('r.test', 'q.test'),
  regexes: fc.uniqueArray(fc.constantFrom(...REGEX_POOL), { minLength: 1, maxLength: 6 }),
  prefix: fc.boolean(),
}).map((s) => ingress({
  name: s.name, namespace: s.namespace, created: s.created, annotations: { 'vane.dev/use-regex': 'true' },
  rules: [{ host: s.host, paths: [
    ...s.regexes.map((path) => ({ path, pathType: 'ImplementationSpecific', service: 's0' })),
    ...(s.prefix ? [{ path: `/${s.name}`, pathType: 'Prefix', service: 's0' }] : []),
  ] }],
}));

test('with regex routes over a host\'s budget, incremental compile still equals a full compile, and no host exceeds the budget (property)', () => {
  const regexOps: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: regexIngressArb.map((o) => ({ set: o })) },
    { weight: 1, arbitrary: regexIngressArb.map((o) => ({ del: o })) },
  );
  let refusals = 0;
  fc.assert(fc.property(fc.array(regexOps, { minLength: 1, maxLength: 25 }), (ops) => {
    const compiler = new Compiler();
    const live = new Map<string, KubeObject>();
    for (const op of ops) {
      const obj = 'set' in op ? op.set : op.del;
      const key = objectKey('Ingress', obj);
      if ('set' in op) { compiler.set(op.set); live.set(key, op.set); } else { compiler.delete('Ingress', key); live.delete(key); }
      const built = compiler.build();
      assert.equal(fingerprint(built), fingerprint(compile([...live.values()])));
      for (const r of built.resources.values()) {
        if (r.resource.type !== 'vhost') continue;
        const spent = r.resource.spec.routes.filter((route) => route.match === 'Regex').reduce((sum, route) => sum + instructions(route.path), 0);
        assert.ok(spent <= MAX_HOST_PROGRAM_SIZE, `${r.resource.name}: ${spent} instructions`);
      }
      for (const s of built.statuses.values()) if (s.problems.some((p) => p.reason === 'RegexBudgetExceeded')) refusals++;
    }
  }), { numRuns: 150 });
  assert.ok(refusals > 0, 'some runs go over a budget');
});

function instructions(pattern: string): number {
  const compiled = compileUserRegex(pattern);
  assert.ok(compiled.ok);
  return compiled.regex.programSize();
}
