/**
 * Promotion by `UpdateIngress` on the real API server: after the last step the operator
 * switches the Ingress backend to the canary Service with a JSON patch (as its own
 * ServiceAccount), the split goes away (Promoted, weight 0), every request still reaches the
 * new version, and deleting the Canary then moves nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eSkip, netnsSkip } from '../harness/index.ts';
import { canaryFile, condition, converged, NAME } from './canary-support.ts';
import { eventually } from '../../support/wait.ts';
import type { Ingress } from '../../../core/index.ts';

const skip = e2eSkip || netnsSkip;
const CANARY = `${NAME}-v2`;
const world = canaryFile(import.meta.url, skip);


test('UpdateIngress: the Ingress is patched to the canary Service, the split removed, and deletion moves nothing', { skip, timeout: 120_000 }, async () => {
  await world().apply({
    ingressRef: { name: 'shop' }, service: NAME, canaryService: { name: CANARY },
    analysis: { interval: '10s', stepWeights: [50] },
    promotion: { strategy: 'UpdateIngress' },
  });
  const promoted = await world().until('promotion through the Ingress', (c) => c.status?.phase === 'Promoted' && converged(c), 60_000);
  assert.equal(promoted.status?.weight, 0);
  assert.deepEqual([condition(promoted, 'Promoted').status, condition(promoted, 'Promoted').reason], ['True', 'IngressUpdated']);
  const ing = (await world().c.api<Ingress>('GET', `/apis/networking.k8s.io/v1/namespaces/${world().ns}/ingresses/shop`)).body;
  assert.equal(ing.spec?.rules?.[0]?.http?.paths?.[0]?.backend?.service?.name, CANARY);
  assert.deepEqual((await world().send(100)).byBackend, { [CANARY]: 100 });

  await world().c.kubectlOk(['-n', world().ns, 'delete', 'canary', NAME, '--timeout=30s']);
  assert.deepEqual((await world().send(100)).byBackend, { [CANARY]: 100 }, 'the Ingress names the new version: nothing flips back');
  const stepDowns = (await world().events()).filter((e) => e.reason === 'Retiring');
  assert.deepEqual(stepDowns, [], 'no step-down was needed');
  await eventually('the Canary gone', async () => (await world().c.api('GET', `/apis/vane.dev/v1alpha1/namespaces/${world().ns}/canaries/${NAME}`)).status === 404, 30_000);
});
