/**
 * The CRD is the one source of truth for the Canary's shape: the generated TypeScript must be
 * what the generator makes of it today, core's patterns, limits and defaults must be the
 * schema's, and core's validate() must reach the same verdict as the schema + CEL rules on
 * every fixture and on generated specs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import fc from 'fast-check';
import { generateCanaryTypes, canarySchema, CRD_PATH, GENERATED_PATH, type JSONSchema } from '../../../scripts/gen-canary-types.ts';
import {
  validate, withCanaryDefaults, durationMsOf, CANARY_PATTERNS, CANARY_LIMITS, BUILT_IN_METRICS, CANARY_DEFAULTS,
  type KubeObject, type CanarySpec,
} from '../../../core/index.ts';
import { applyDefaults, compileRule, eachSchema, validateAgainst } from './openapi.ts';

const crdText = readFileSync(CRD_PATH, 'utf8');
const root = canarySchema(crdText);
const specSchema = root.properties!.spec!;
const FIXTURES = fileURLToPath(new URL('../../fixtures/canaries/', import.meta.url));
const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));

function node(path: string): JSONSchema {
  let found: JSONSchema | undefined;
  eachSchema(root, '', (n, p) => { if (p === `.${path}`) found = n; });
  assert.ok(found, `no schema at ${path}`);
  return found;
}

function loadYaml(file: string): { object: KubeObject; expect: string | null }[] {
  const text = readFileSync(file, 'utf8');
  const expect = /^# expect: (\S+)$/m.exec(text)?.[1] ?? null;
  return text.split(/^---$/m).map((doc) => parse(doc) as KubeObject).filter((o) => o?.kind === 'Canary').map((object) => ({ object, expect }));
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

function crdErrors(obj: KubeObject): string[] {
  return validateAgainst(specSchema, (obj as { spec?: unknown }).spec, 'spec').map((e) => `${e.path}: ${e.message}`);
}

function coreErrors(obj: KubeObject): string[] {
  return validate(obj).errors.map((p) => `${p.field}: ${p.message}`);
}

test('core/canary-types.gen.ts is what the generator makes of the CRD', () => {
  assert.equal(readFileSync(GENERATED_PATH, 'utf8'), generateCanaryTypes(crdText),
    'out of date: run `node scripts/gen-canary-types.ts`');
});

test('the generated interfaces name every schema field (a new CRD field changes the file)', () => {
  const generated = readFileSync(GENERATED_PATH, 'utf8');
  eachSchema(root.properties!.spec!, 'spec', (_n, path) => {
    const field = path.split('.').pop()!.replace('[]', '');
    if (field !== '*' && path !== 'spec') assert.match(generated, new RegExp(`\\b${field}\\?:`), path);
  });
});

test('CRD: names, scope, status subresource and printer columns', () => {
  const crd = parse(crdText) as {
    metadata: { name: string }; spec: { group: string; scope: string; names: Record<string, unknown>;
      versions: { name: string; served: boolean; storage: boolean; subresources: Record<string, unknown>; additionalPrinterColumns: { name: string; jsonPath: string }[] }[] };
  };
  assert.equal(crd.metadata.name, 'canaries.vane.dev');
  assert.equal(crd.spec.scope, 'Namespaced');
  assert.deepEqual(crd.spec.names.shortNames, ['vcan']);
  assert.deepEqual(crd.spec.names.categories, ['vane']);
  const [v] = crd.spec.versions;
  assert.equal(v?.name, 'v1alpha1');
  assert.ok(v.served && v.storage);
  assert.deepEqual(v.subresources, { status: {} });
  const columns = Object.fromEntries(v.additionalPrinterColumns.map((c) => [c.name, c.jsonPath]));
  assert.deepEqual(columns, {
    Ingress: '.spec.ingressRef.name', Service: '.spec.service', Canary: '.spec.canaryService.name', Weight: '.status.weight',
    Step: '.status.step', Phase: '.status.phase', Proxies: '.status.proxies.summary', Age: '.metadata.creationTimestamp',
  });
  for (const c of v.additionalPrinterColumns.filter((c) => c.jsonPath.startsWith('.s'))) node(c.jsonPath.slice(1));
});

test('schema: every field has a type and a description, and every rule has bounded input', () => {
  eachSchema(specSchema, 'spec', (n, path) => {
    assert.ok(n.type, `${path} has no type`);
    assert.ok(typeof n.description === 'string' && n.description.length > 0 || path.endsWith('[]') && n.type !== 'object' || path.endsWith('.*'),
      `${path} has no description`);
    // The API server estimates CEL cost from these bounds and refuses unbounded rules.
    if (n.type === 'string' && n.enum === undefined) assert.ok(n.maxLength !== undefined, `${path} has no maxLength`);
    if (n.type === 'array') assert.ok(n.maxItems !== undefined, `${path} has no maxItems`);
    if (n.type === 'object' && !n.properties) assert.ok(n.maxProperties !== undefined, `${path} has no maxProperties`);
    for (const r of (n['x-kubernetes-validations'] ?? []) as { rule: string }[]) assert.doesNotThrow(() => compileRule(r.rule), `${path}: ${r.rule}`);
  });
  eachSchema(root.properties!.status!, 'status', (n, path) => {
    assert.ok(n.type, `${path} has no type`);
    assert.ok(n.description || path.endsWith('[]') && n.type !== 'object', `${path} has no description`);
  });
});

test('schema defaults are valid values and are the defaults core applies', () => {
  eachSchema(specSchema, 'spec', (n, path) => {
    if (n.default !== undefined) assert.deepEqual(validateAgainst(n, n.default, path), [], path);
  });
  const paths: string[] = [];
  eachSchema(specSchema, 'spec', (n, path) => { if (n.default !== undefined) paths.push(path); });
  assert.deepEqual(Object.keys(CANARY_DEFAULTS), paths);
  for (const { object } of yamlFiles(FIXTURES).flatMap(loadYaml)) {
    const spec = (object as { spec?: CanarySpec }).spec;
    assert.deepEqual(withCanaryDefaults(spec), applyDefaults(specSchema, structuredClone(spec)), object.metadata?.name);
  }
});

test("core's patterns and limits are the schema's", () => {
  const patterns: [string, string][] = [
    ['spec.ingressRef.name', CANARY_PATTERNS.dnsSubdomain],
    ['spec.service', CANARY_PATTERNS.dnsLabel],
    ['spec.canaryService.name', CANARY_PATTERNS.dnsLabel],
    ['spec.canaryService.port.name', CANARY_PATTERNS.dnsLabel],
    ['spec.traffic.header.name', CANARY_PATTERNS.httpToken],
    ['spec.traffic.cookie.name', CANARY_PATTERNS.httpToken],
    ['spec.analysis.interval', CANARY_PATTERNS.duration],
    ['spec.analysis.metrics[].name', CANARY_PATTERNS.dnsLabel],
    ['spec.analysis.metrics[].prometheus.address', CANARY_PATTERNS.url],
    ['spec.analysis.webhooks[].name', CANARY_PATTERNS.dnsLabel],
    ['spec.analysis.webhooks[].url', CANARY_PATTERNS.url],
    ['spec.analysis.webhooks[].timeout', CANARY_PATTERNS.duration],
  ];
  for (const [path, pattern] of patterns) assert.equal(node(path).pattern, pattern, path);
  assert.equal(node('spec.analysis.stepWeights').maxItems, CANARY_LIMITS.stepWeights);
  assert.equal(node('spec.analysis.metrics').maxItems, CANARY_LIMITS.metrics);
  assert.equal(node('spec.analysis.webhooks').maxItems, CANARY_LIMITS.webhooks);
  assert.equal(node('spec.analysis.threshold').maximum, CANARY_LIMITS.threshold);
  assert.equal(node('spec.analysis.minRequests').maximum, CANARY_LIMITS.minRequests);
  const rules = (n: JSONSchema): string => ((n['x-kubernetes-validations'] ?? []) as { rule: string }[]).map((r) => r.rule).join('\n');
  const ms = (d: string): number => durationMsOf(d)!;
  const bounds = (text: string): number[] => [...text.matchAll(/duration\('([^']+)'\)/g)].map((m) => ms(m[1]!));
  assert.deepEqual(bounds(rules(node('spec.analysis.interval'))), [...CANARY_LIMITS.intervalMs]);
  assert.deepEqual(bounds(rules(node('spec.analysis.webhooks[].timeout'))), [...CANARY_LIMITS.webhookTimeoutMs]);
  assert.match(rules(node('spec.analysis.metrics[]')), new RegExp(`\\[${BUILT_IN_METRICS.map((m) => `'${m}'`).join(', ')}\\]`));
});

const fixtures = yamlFiles(FIXTURES).flatMap((file) => loadYaml(file).map((f) => ({ ...f, file: file.slice(FIXTURES.length) })));

test('fixtures: valid ones pass the CRD and core; invalid ones fail both, at the field they name', () => {
  assert.ok(fixtures.filter((f) => f.file.startsWith('invalid/')).length >= 30);
  for (const { object, expect, file } of fixtures) {
    const crd = crdErrors(object);
    const core = coreErrors(object);
    if (file.startsWith('valid/')) {
      assert.deepEqual(crd, [], `${file}: CRD`);
      assert.deepEqual(core, [], `${file}: core`);
    } else if (file.startsWith('invalid/')) {
      assert.ok(expect, `${file} has no "# expect: field" line`);
      assert.ok(crd.some((e) => e.startsWith(expect)), `${file}: CRD errors ${JSON.stringify(crd)} do not name ${expect}`);
      assert.ok(core.some((e) => e.startsWith(expect)), `${file}: core errors ${JSON.stringify(core)} do not name ${expect}`);
    } else {
      // What only core can check (RE2 compilation): the admission webhook's job.
      assert.deepEqual(crd, [], `${file}: CRD`);
      assert.ok(expect && core.some((e) => e.startsWith(expect)), `${file}: core errors ${JSON.stringify(core)}`);
    }
  }
});

test('examples: every Canary under examples/ passes the CRD and core', () => {
  const examples = yamlFiles(EXAMPLES).flatMap((file) => loadYaml(file).map((f) => ({ ...f, file })));
  assert.ok(examples.length > 0);
  for (const { object, file } of examples) {
    assert.deepEqual(crdErrors(object), [], `${file}: CRD`);
    assert.deepEqual(coreErrors(object), [], `${file}: core`);
  }
});

/** Valid starting points: manual mode, and both ways of listing steps. */
const BASES: CanarySpec[] = [
  { ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web-v2' }, traffic: { weight: 10 } },
  {
    ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web-v2', port: { number: 8080 } },
    analysis: { interval: '30s', stepWeights: [5, 10, 50], metrics: [{ name: 'success-rate', min: 99 }], webhooks: [{ name: 'a', type: 'rollout', url: 'http://a/' }] },
  },
  { ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web-v2' }, analysis: { stepWeight: 10, maxWeight: 30, threshold: 2 } },
];

/** One change to a valid spec: a field set to a value near its bounds (valid or not), or removed. */
const arbMutation: fc.Arbitrary<[string, unknown]> = fc.oneof(
  fc.tuple(fc.constant('ingressRef.name'), fc.constantFrom('shop.public', 'Shop', '', 'a'.repeat(254), undefined)),
  fc.tuple(fc.constant('service'), fc.constantFrom('web-v1', 'Web', '-web', 'web-v2', undefined)),
  fc.tuple(fc.constant('canaryService.name'), fc.constantFrom('web', 'web_v2', 'c'.repeat(63), 'c'.repeat(64), undefined)),
  fc.tuple(fc.constant('canaryService.port'), fc.constantFrom({ number: 80 }, { number: 0 }, { number: 65536 }, { name: 'http' }, { name: 'a-very-long-port-name' }, { number: 80, name: 'http' }, {})),
  fc.tuple(fc.constant('revision'), fc.constantFrom('v1', '', 'x'.repeat(253), 'x'.repeat(254))),
  fc.tuple(fc.constant('traffic.weight'), fc.integer({ min: -2, max: 102 })),
  fc.tuple(fc.constant('traffic.header'), fc.constantFrom({ name: 'X-Canary' }, { name: 'X-Canary', value: 'a' }, { name: 'X-Canary', regex: '^b+$' }, { name: 'X-Canary', value: 'a', regex: 'b' }, { name: 'X Canary' }, { value: 'a' })),
  fc.tuple(fc.constant('traffic.cookie'), fc.constantFrom({ name: 'canary' }, { name: 'can ary' }, {})),
  fc.tuple(fc.constant('analysis'), fc.constantFrom(undefined, {}, { interval: '30s' }, { stepWeights: [50] })),
  fc.tuple(fc.constant('analysis.interval'), fc.constantFrom('9s', '10s', '9999ms', '10000ms', '1m30s', '24h', '24h1s', '30 s', '1.5m', '1d', '')),
  fc.tuple(fc.constant('analysis.stepWeights'), fc.oneof(fc.array(fc.integer({ min: -1, max: 101 }), { maxLength: 22 }), fc.constant(undefined))),
  fc.tuple(fc.constant('analysis.stepWeight'), fc.oneof(fc.integer({ min: 0, max: 101 }), fc.constant(undefined))),
  fc.tuple(fc.constant('analysis.maxWeight'), fc.oneof(fc.integer({ min: 0, max: 101 }), fc.constant(undefined))),
  fc.tuple(fc.constant('analysis.threshold'), fc.integer({ min: 0, max: 1001 })),
  fc.tuple(fc.constant('analysis.minRequests'), fc.constantFrom(0, 1, 100, 1_000_000_000, 1_000_000_001)),
  fc.tuple(fc.constant('analysis.metrics'), fc.array(fc.constantFrom(
    { name: 'success-rate', min: 99 }, { name: 'success-rate' }, { name: 'success-rate', min: 100 }, { name: 'success-rate', min: 101 }, { name: 'success-rate', min: -1 },
    { name: 'latency-p99', maxMs: 250 }, { name: 'latency-p50' }, { name: 'latency-p90', maxMs: 0 }, { name: 'latency-p75', maxMs: 1 },
    { name: 'errors', max: 1, prometheus: { query: 'sum(x)' } }, { name: 'errors', prometheus: { query: 'sum(x)' } },
    { name: 'errors', min: -5, prometheus: { query: ' ' } }, { name: 'errors', min: -5, prometheus: { query: 'up', address: 'http://p:9090' } }, { name: 'Bad', min: 1 },
  ), { maxLength: 3 })),
  fc.tuple(fc.constant('analysis.webhooks'), fc.array(fc.constantFrom(
    { name: 'a', type: 'rollout', url: 'http://a:1/' }, { name: 'b', type: 'confirm-promotion', url: 'https://b/', timeout: '60s' },
    { name: 'c', type: 'rollback', url: 'http://c/', timeout: '61s' }, { name: 'd', type: 'nope', url: 'http://d/' },
    { name: 'e', type: 'event', url: 'ftp://e/' }, { name: 'a', type: 'event', url: 'http://a2/', timeout: '500ms' },
    { name: 'f', type: 'pre-rollout', url: 'http://f/', timeout: '1s', metadata: { k: 'v' } }, { type: 'rollout', url: 'http://g/' },
  ), { maxLength: 3 })),
  fc.tuple(fc.constant('promotion'), fc.constantFrom({ strategy: 'Hold' }, { strategy: 'UpdateIngress' }, { strategy: 'Swap' }, {})),
);

function mutate(spec: CanarySpec, [path, value]: [string, unknown]): void {
  const keys = path.split('.');
  let at = spec as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) {
    if (typeof at[k] !== 'object' || at[k] === null) at[k] = {};
    at = at[k] as Record<string, unknown>;
  }
  if (value === undefined) delete at[keys.at(-1)!];
  else at[keys.at(-1)!] = structuredClone(value);
}

test('property: core and the CRD agree on specs one or two changes away from valid ones', () => {
  let valid = 0;
  let runs = 0;
  fc.assert(fc.property(fc.constantFrom(...BASES), fc.array(arbMutation, { minLength: 1, maxLength: 2 }), (base, mutations) => {
    const spec = structuredClone(base);
    for (const m of mutations) mutate(spec, m);
    const obj = { apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'c', namespace: 'shop' }, spec } as KubeObject;
    const crd = crdErrors(obj);
    const core = coreErrors(obj);
    runs += 1;
    if (core.length === 0) valid += 1;
    assert.equal(core.length === 0, crd.length === 0, `core ${JSON.stringify(core)} vs CRD ${JSON.stringify(crd)}`);
  }), { numRuns: 3000, seed: 8 });
  // Both verdicts must be well represented, or the property says little.
  assert.ok(valid > runs / 4 && valid < (runs * 3) / 4, `${valid}/${runs} valid`);
});
