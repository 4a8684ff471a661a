/**
 * Promotion by `UpdateIngress` on the real API server: after the last step the operator
 * switches the Ingress backend to the canary Service with a JSON patch (as its own
 * ServiceAccount), the split goes away (Promoted, weight 0), every request still reaches the
 * new version, and deleting the Canary then moves nothing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { e2eSkip, netnsSkip } from '../harness/index.ts';
import { canaryWorld, condition, converged, eventually, NAME, type CanaryWorld } from './canary-support.ts';
import type { Ingress } from '../../../core/index.ts';

const skip = e2eSkip || netnsSkip;
const CANARY = `${NAME}-v2`;
let w: CanaryWorld;

before(async () => {
  if (skip) return;
  w = await canaryWorld(import.meta.url);
});

after(async () => { await w?.close(); });

test('UpdateIngress: the Ingress is patched to the canary Service, the split removed, and deletion moves nothing', { skip, timeout: 120_000 }, async () => {
  await w.apply({
    ingressRef: { name: 'shop' }, service: NAME, canaryService: { name: CANARY },
    analysis: { interval: '10s', stepWeights: [50] },
    promotion: { strategy: 'UpdateIngress' },
  });
  const promoted = await w.until('promotion through the Ingress', (c) => c.status?.phase === 'Promoted' && converged(c), 60_000);
  assert.equal(promoted.status?.weight, 0);
  assert.deepEqual([condition(promoted, 'Promoted').status, condition(promoted, 'Promoted').reason], ['True', 'IngressUpdated']);
  const ing = (await w.c.api<Ingress>('GET', `/apis/networking.k8s.io/v1/namespaces/${w.ns}/ingresses/shop`)).body;
  assert.equal(ing.spec?.rules?.[0]?.http?.paths?.[0]?.backend?.service?.name, CANARY);
  assert.deepEqual((await w.send(100)).byBackend, { [CANARY]: 100 });

  await w.c.kubectlOk(['-n', w.ns, 'delete', 'canary', NAME, '--timeout=30s']);
  assert.deepEqual((await w.send(100)).byBackend, { [CANARY]: 100 }, 'the Ingress names the new version: nothing flips back');
  const stepDowns = (await w.events()).filter((e) => e.reason === 'Retiring');
  assert.deepEqual(stepDowns, [], 'no step-down was needed');
  await eventually('the Canary gone', async () => (await w.c.api('GET', `/apis/vane.dev/v1alpha1/namespaces/${w.ns}/canaries/${NAME}`)).status === 404);
});
