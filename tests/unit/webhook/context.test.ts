/**
 * The webhook hands validate() only the cached objects that can change a verdict
 * (webhook/context.ts). On random clusters, that selection must give exactly the verdict
 * that validate() gives with every object — otherwise the webhook and the operator's
 * status would disagree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { validate, kindOf, type KubeObject } from '../../../core/index.ts';
import { contextFor, CONTEXT_KINDS, MemoryObjectCache, DEFAULT_CLASS_OPTIONS, type ClassOptions } from '../../../webhook/index.ts';

const NS = ['a', 'b'];
const HOSTS = ['x.example', 'y.example', '*.example', ''];
const SERVICES = ['s1', 's2', 's3'];
const PATHS = ['/', '/api', '/api/v1'];
const CLASSES = ['vane', 'other', 'internal', undefined];
const TIMES = ['2024-01-01T00:00:00Z', '2024-02-01T00:00:00Z', '2024-03-01T00:00:00Z', undefined];

const arbIngress = fc.record({
  ns: fc.constantFrom(...NS),
  name: fc.constantFrom('i1', 'i2', 'i3', 'i4'),
  cls: fc.constantFrom(...CLASSES),
  created: fc.constantFrom(...TIMES),
  rules: fc.array(fc.record({
    host: fc.constantFrom(...HOSTS),
    paths: fc.array(fc.record({ path: fc.constantFrom(...PATHS), type: fc.constantFrom('Prefix', 'Exact'), svc: fc.constantFrom(...SERVICES) }), { minLength: 1, maxLength: 3 }),
  }), { minLength: 0, maxLength: 3 }),
  defaultSvc: fc.option(fc.constantFrom(...SERVICES), { nil: undefined }),
  tls: fc.array(fc.record({ hosts: fc.subarray(['x.example', 'y.example']), secret: fc.option(fc.constantFrom('t1', 't2'), { nil: undefined }) }), { maxLength: 2 }),
}).map((g): KubeObject => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: { name: g.name, namespace: g.ns, ...(g.created ? { creationTimestamp: g.created } : {}) },
  spec: {
    ...(g.cls ? { ingressClassName: g.cls } : {}),
    ...(g.defaultSvc ? { defaultBackend: { service: { name: g.defaultSvc, port: { number: 80 } } } } : {}),
    rules: g.rules.map((r) => ({
      ...(r.host ? { host: r.host } : {}),
      http: { paths: r.paths.map((p) => ({ path: p.path, pathType: p.type, backend: { service: { name: p.svc, port: { number: 80 } } } })) },
    })),
    tls: g.tls.map((t) => ({ hosts: t.hosts, ...(t.secret ? { secretName: t.secret } : {}) })),
  },
} as KubeObject));

const arbCanary = fc.record({
  ns: fc.constantFrom(...NS),
  name: fc.constantFrom('c1', 'c2', 'c3'),
  created: fc.constantFrom(...TIMES),
  ingress: fc.constantFrom('i1', 'i2', 'i3', 'i4'),
  service: fc.constantFrom(...SERVICES),
  canary: fc.constantFrom(...SERVICES, 'v2'),
}).map((g): KubeObject => ({
  apiVersion: 'vane.dev/v1alpha1',
  kind: 'Canary',
  metadata: { name: g.name, namespace: g.ns, ...(g.created ? { creationTimestamp: g.created } : {}) },
  spec: { ingressRef: { name: g.ingress }, service: g.service, canaryService: { name: g.canary } },
} as KubeObject));

const arbService = fc.record({ ns: fc.constantFrom(...NS), name: fc.constantFrom(...SERVICES, 'v2') })
  .map((g): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: g.name, namespace: g.ns }, spec: { ports: [{ port: 80 }] } } as KubeObject));

const arbSecret = fc.record({ ns: fc.constantFrom(...NS), name: fc.constantFrom('t1', 't2') })
  .map((g): KubeObject => ({ apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: g.name, namespace: g.ns } } as KubeObject));

// No verdict reads EndpointSlices, so `--watch-cluster` does not watch them: they are in the
// cluster here and never in contextFor's selection, and the verdicts must still agree.
const arbSlice = fc.record({ ns: fc.constantFrom(...NS), svc: fc.constantFrom(...SERVICES), ready: fc.boolean() })
  .map((g): KubeObject => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: `${g.svc}-x`, namespace: g.ns, labels: { 'kubernetes.io/service-name': g.svc } },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080 }], endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: g.ready } }],
  } as KubeObject));

const arbClass = fc.record({ name: fc.constantFrom('vane', 'internal', 'other'), vane: fc.boolean(), isDefault: fc.boolean() })
  .map((g): KubeObject => ({
    apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass',
    metadata: { name: g.name, ...(g.isDefault ? { annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' } } : {}) },
    spec: { controller: g.vane ? 'vane.dev/ingress-controller' : 'example.com/other' },
  } as KubeObject));

const arbCluster = fc.tuple(
  fc.array(arbIngress, { maxLength: 8 }),
  fc.array(arbCanary, { maxLength: 5 }),
  fc.array(arbService, { maxLength: 6 }),
  fc.array(arbSecret, { maxLength: 3 }),
  fc.array(arbClass, { maxLength: 2 }),
  fc.array(arbSlice, { maxLength: 3 }),
).map((parts) => parts.flat());

function dedupe(objects: KubeObject[]): KubeObject[] {
  const byKey = new Map<string, KubeObject>();
  for (const o of objects) byKey.set(`${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`, o);
  return [...byKey.values()];
}

test('contextFor gives validate() the same verdict as every object in the cluster', () => {
  const options: ClassOptions = DEFAULT_CLASS_OPTIONS;
  let compared = 0;
  fc.assert(fc.property(arbCluster, (raw) => {
    const objects = dedupe(raw);
    const cache = new MemoryObjectCache(objects);
    for (const obj of objects) {
      const kind = kindOf(obj);
      if (kind !== 'Ingress' && kind !== 'Canary') continue;
      const compile = { ingressClass: options.ingressClass, controller: options.controller };
      const full = validate(obj, { objects, options: compile });
      const context = contextFor(kind, obj, cache, options);
      for (const o of context) assert.ok(CONTEXT_KINDS.includes(kindOf(o)!), `contextFor read a ${o.kind}, which --watch-cluster does not watch`);
      const selected = validate(obj, { objects: context, options: compile });
      assert.deepEqual(selected, full);
      compared++;
    }
  }), { numRuns: 400 });
  assert.ok(compared > 1000, `compared ${compared} verdicts`);
});

test('contextFor stays small: a Canary sees its Ingress, Service and sibling Canaries, not the cluster', () => {
  const objects: KubeObject[] = [];
  for (let i = 0; i < 500; i++) {
    objects.push({ apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'big' } } as KubeObject);
    objects.push({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: `i${i}`, namespace: 'big' }, spec: { ingressClassName: 'vane', rules: [{ host: `h${i}.example` }] } } as KubeObject);
  }
  const cache = new MemoryObjectCache(objects);
  const canary = { apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'c', namespace: 'big' }, spec: { ingressRef: { name: 'i7' }, service: 's7', canaryService: { name: 's8' } } } as KubeObject;
  assert.deepEqual(contextFor('Canary', canary, cache, DEFAULT_CLASS_OPTIONS).map((o) => o.metadata?.name), ['i7', 's8']);
  const ing = objects[3]!;
  assert.deepEqual(contextFor('Ingress', ing, cache, DEFAULT_CLASS_OPTIONS).map((o) => o.metadata?.name), ['i1']);
});
