/**
 * The canary controller's pure parts: the JSON patches it sends (status, finalizers, the
 * Ingress switch), which version carries a Canary's status, Prometheus result parsing, and
 * file mode's overlay store keeping status across re-reads of the file.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { compile, FINALIZER, type Canary, type KubeObject } from '../../../core/index.ts';
import {
  statusPatch, addFinalizerPatch, removeFinalizerPatch, ingressSwitchPatch, ingressSwitched, applyPatch, carriesStatus, sampleOf, OverlayCanaryStore,
} from '../../../operator/canary/index.ts';
import { createLogger } from '../../../lib/log.ts';
import { ingress, service, slice, canary } from '../../support/objects.ts';

const spec = { ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web-v2' }, traffic: { header: { name: 'X-Canary' }, sticky: true } };

function stored(status?: Canary['status'], finalizers?: string[]): Canary {
  const c = canary('c', spec, status ? { status } : {});
  c.metadata = { ...c.metadata, resourceVersion: '7', ...(finalizers ? { finalizers } : {}) };
  return c;
}

describe('status patch', () => {
  test('a first status is one add, guarded by the resourceVersion', () => {
    const ops = statusPatch(stored(), { phase: 'Pending', weight: 0 });
    assert.deepEqual(ops, [
      { op: 'test', path: '/metadata/resourceVersion', value: '7' },
      { op: 'add', path: '/status', value: { phase: 'Pending', weight: 0 } },
    ]);
  });

  test('a later status patches only what changed, and fails on a newer object', () => {
    const before = stored({ phase: 'Progressing', weight: 10, step: 1 });
    const ops = statusPatch(before, { phase: 'Progressing', weight: 25, step: 2 });
    assert.deepEqual(ops.map((o) => o.path).sort(), ['/metadata/resourceVersion', '/status/step', '/status/weight']);
    assert.equal(applyPatch(before, ops)?.status?.weight, 25);
    const moved = { ...before, metadata: { ...before.metadata, resourceVersion: '8' } };
    assert.equal(applyPatch(moved, ops), null);
  });
});

describe('finalizer patches', () => {
  test('add to no list, add to a list, nothing when present', () => {
    assert.deepEqual(applyPatch(stored(), addFinalizerPatch(stored(), FINALIZER)!)?.metadata?.finalizers, [FINALIZER]);
    const other = stored(undefined, ['example.com/keep']);
    assert.deepEqual(applyPatch(other, addFinalizerPatch(other, FINALIZER)!)?.metadata?.finalizers, ['example.com/keep', FINALIZER]);
    assert.equal(addFinalizerPatch(stored(undefined, [FINALIZER]), FINALIZER), null);
  });

  test('remove takes out only ours, and fails if the list moved under it', () => {
    const c = stored(undefined, ['a/b', FINALIZER, 'c/d']);
    const ops = removeFinalizerPatch(c, FINALIZER)!;
    assert.deepEqual(applyPatch(c, ops)?.metadata?.finalizers, ['a/b', 'c/d']);
    const moved = stored(undefined, [FINALIZER, 'c/d']);
    assert.equal(applyPatch(moved, ops), null);
    assert.equal(removeFinalizerPatch(stored(), FINALIZER), null);
  });
});

describe('Ingress switch', () => {
  const ing = ingress({
    name: 'shop', defaultBackend: { service: 'web', port: 'http' },
    rules: [{ host: 'a.test', paths: [{ path: '/', service: 'web' }, { path: '/static', service: 'static' }] }, { host: 'b.test', paths: [{ path: '/', service: 'web', port: 8080 }] }],
  });

  test('every backend naming the stable Service is switched, each tested first; others are left alone', () => {
    const ops = ingressSwitchPatch(ing, 'web', 'web-v2', null)!;
    assert.equal(ops.filter((o) => o.op === 'test').length, 3);
    const out = applyPatch(ing, ops)!;
    assert.equal(out.spec?.defaultBackend?.service?.name, 'web-v2');
    assert.deepEqual(out.spec?.defaultBackend?.service?.port, { name: 'http' }, 'null port keeps each backend\'s port');
    assert.deepEqual(out.spec?.rules?.map((r) => r.http?.paths?.map((p) => p.backend?.service?.name)), [['web-v2', 'static'], ['web-v2']]);
    assert.ok(ingressSwitched(out, 'web', 'web-v2'));
    assert.ok(!ingressSwitched(ing, 'web', 'web-v2'));
  });

  test('a canary port replaces the port; a concurrent change makes the patch fail', () => {
    const out = applyPatch(ing, ingressSwitchPatch(ing, 'web', 'web-v2', 9090)!)!;
    assert.deepEqual(out.spec?.rules?.[1]?.http?.paths?.[0]?.backend?.service?.port, { number: 9090 });
    const edited = structuredClone(ing);
    edited.spec!.rules![0]!.http!.paths![0]!.backend!.service!.name = 'web-blue';
    assert.equal(applyPatch(edited, ingressSwitchPatch(ing, 'web', 'web-v2', null)!), null);
    assert.equal(ingressSwitchPatch(ing, 'nothing', 'web-v2', null), null);
  });
});

describe('carriesStatus', () => {
  const world: KubeObject[] = [
    service('web'), service('web-v2'), slice('web-1', 'web', [{ ip: '10.0.0.1' }]), slice('web-v2-1', 'web-v2', [{ ip: '10.0.0.2' }]),
    ingress({ name: 'shop', rules: [{ host: 'a.test', paths: [{ path: '/', service: 'web' }, { path: '/x', service: 'web' }] }] }),
  ];
  const resourcesWith = (status: Canary['status']) => compile([...world, canary('c', { ...spec, analysis: { stepWeights: [10, 50] } }, { status })]).resources;

  test('a version carries the status it was compiled from, and not another weight or phase', () => {
    const at10 = resourcesWith({ phase: 'Progressing', weight: 10 });
    const c10 = canary('c', { ...spec, analysis: { stepWeights: [10, 50] } }, { status: { phase: 'Progressing', weight: 10 } });
    const c50 = canary('c', { ...spec, analysis: { stepWeights: [10, 50] } }, { status: { phase: 'Progressing', weight: 50 } });
    const failed = canary('c', { ...spec, analysis: { stepWeights: [10, 50] } }, { status: { phase: 'Failed', weight: 0 } });
    assert.ok(carriesStatus(at10, c10));
    assert.ok(!carriesStatus(at10, c50));
    assert.ok(!carriesStatus(at10, failed), 'a Failed status needs the split gone');
    assert.ok(carriesStatus(resourcesWith({ phase: 'Failed', weight: 0 }), failed));
  });

  test('a change of the rules alone is not carried either', () => {
    const at10 = resourcesWith({ phase: 'Progressing', weight: 10 });
    const noHeader = canary('c', { ...spec, traffic: { sticky: true }, analysis: { stepWeights: [10, 50] } }, { status: { phase: 'Progressing', weight: 10 } });
    assert.ok(!carriesStatus(at10, noHeader));
  });
});

describe('Prometheus results', () => {
  const cases: { name: string; type: string; result: unknown; want: { value: number | null; error?: RegExp } }[] = [
    { name: 'first sample of a vector', type: 'vector', result: [{ metric: {}, value: [1, '0.25'] }, { metric: {}, value: [1, '9'] }], want: { value: 0.25 } },
    { name: 'a scalar', type: 'scalar', result: [1, '3'], want: { value: 3 } },
    { name: 'an empty vector is no data', type: 'vector', result: [], want: { value: null } },
    { name: 'NaN (an idle rate) is no data', type: 'vector', result: [{ value: [1, 'NaN'] }], want: { value: null } },
    { name: 'a range vector is an error', type: 'matrix', result: [], want: { value: null, error: /instant vector or a scalar/ } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = sampleOf(c.type, c.result);
      assert.equal(r.value, c.want.value);
      if (c.want.error) assert.match(r.error ?? '', c.want.error); else assert.equal(r.error, undefined);
    });
  }
});

describe('file mode store', () => {
  test('a Canary re-read from its file gets its status back, overlaid after the file version', async () => {
    const overlays: KubeObject[] = [];
    const store = new OverlayCanaryStore({ overlay: (o) => overlays.push(o), logger: createLogger('test', 'silent') });
    const fromFile = canary('c', spec);
    await store.writeStatus(fromFile, { phase: 'Progressing', weight: 25 });
    assert.equal((overlays.at(-1) as Canary).status?.weight, 25);
    const edited = canary('c', { ...spec, revision: '2' });
    const restored = store.restore(edited);
    assert.equal(restored.status?.weight, 25);
    assert.equal(restored.spec?.revision, '2');
    assert.equal(overlays.length, 1, 'not synchronously: the operator hands the file version to the compiler first');
    await Promise.resolve();
    assert.equal(overlays.length, 2);
    assert.equal((overlays[1] as Canary).spec?.revision, '2');
    store.forget('default/c');
    assert.equal(store.restore(edited).status, undefined);
  });
});
