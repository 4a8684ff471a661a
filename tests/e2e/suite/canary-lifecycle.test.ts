/**
 * End of life on the real API server: deleting a promoted (Hold) Canary never flips all
 * traffic back to the stable Service at once. The finalizer keeps it while it steps down
 * (100 → 50 → 0), each rung one interval with the stable side's checks passing, then the
 * finalizer is released and the Canary goes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eSkip, netnsSkip } from '../harness/index.ts';
import { canaryFile, converged, binomialOk, NAME, everySecond } from './canary-support.ts';
import { eventually } from '../../support/wait.ts';
import { FINALIZER } from '../../../core/index.ts';

const skip = e2eSkip || netnsSkip;
const CANARY = `${NAME}-v2`;
const world = canaryFile(import.meta.url, skip);


test('deleting a promoted canary steps traffic back one interval per rung, then the finalizer lets it go', { skip, timeout: 150_000 }, async (t) => {
  const traffic = everySecond(120_000, () => world().send(40));
  try {
    await world().apply({
      ingressRef: { name: 'shop' }, service: NAME, canaryService: { name: CANARY },
      analysis: { interval: '10s', stepWeights: [50], threshold: 2, minRequests: 20, metrics: [{ name: 'success-rate', min: 99 }] },
    });
    const promoted = await world().until('promotion', (c) => c.status?.phase === 'Promoted' && converged(c), 60_000);
    assert.deepEqual(promoted.metadata?.finalizers, [FINALIZER]);
    assert.deepEqual((await world().send(100)).byBackend, { [CANARY]: 100 });

    const deleted = await world().c.kubectl(['-n', world().ns, 'delete', 'canary', NAME, '--wait=false']);
    assert.equal(deleted.code, 0, deleted.stderr);
    const rung = await world().until('the first rung down', (c) => c.status?.phase === 'Retiring' && c.status?.weight === 50 && converged(c));
    assert.ok(rung.metadata?.deletionTimestamp, 'deletion waits on the finalizer');
    assert.deepEqual(rung.status?.retire, { fromWeight: 100, reason: 'Deleted', blocked: false });
    const half = await world().send(1000, { concurrency: 32 });
    const check = binomialOk(half.byBackend[CANARY] ?? 0, 1000, 0.5);
    t.diagnostic(`at the 50 rung: canary ${check.text}`);
    assert.ok(check.ok, `half the traffic stays on the canary while it steps down: ${check.text}`);

    const zero = await world().until('weight 0', (c) => c.status?.weight === 0, 30_000);
    const rungLasted = Date.parse(zero.status!.intervalStart!) - Date.parse(rung.status!.intervalStart!);
    assert.ok(rungLasted >= 10_000, `the 50 rung lasted one interval: ${rungLasted} ms`);
    assert.match(zero.status?.lastChecks?.[0]?.message ?? '', /requests succeeded/, 'the stable side was checked');
    await world().until('the fleet at weight 0', (c) => converged(c) && c.status?.proxies?.converged === 2);
    assert.deepEqual((await world().send(100)).byBackend, { [NAME]: 100 });

    await eventually('the finalizer to be released after a passing interval at 0',
      async () => (await world().c.api('GET', `/apis/vane.dev/v1alpha1/namespaces/${world().ns}/canaries/${NAME}`)).status === 404, 30_000, { intervalMs: 250 });
    const reasons = (await world().events()).map((e) => e.reason);
    assert.deepEqual(reasons.slice(reasons.indexOf('Promoted') + 1), ['Retiring', 'Retiring', 'Retired']);
  } finally {
    await traffic.stop();
  }
});
