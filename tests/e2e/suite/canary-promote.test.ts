/**
 * A healthy progressive canary on the real API server: three 10-second steps judged on
 * statistics merged from two proxies (neither proxy alone serves minRequests in an
 * interval), promoted; `kubectl wait --for=condition=Promoted` returns; an Event per
 * transition; then every request reaches the canary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eSkip, netnsSkip } from '../harness/index.ts';
import { canaryFile, condition, NAME, everySecond } from './canary-support.ts';

const skip = e2eSkip || netnsSkip;
const CANARY = `${NAME}-v2`;
/** Canary requests each proxy serves per second: at most 3 × 15 s = 45 in any check window, below minRequests. */
const PER_PROXY_PER_SECOND = 3;
const MIN_REQUESTS = 50;
const world = canaryFile(import.meta.url, skip);


test('three healthy steps on merged fleet statistics, promoted; kubectl wait returns', { skip, timeout: 150_000 }, async (t) => {
  const traffic = everySecond(120_000, () => Promise.all([0, 1].map((i) => world().send(PER_PROXY_PER_SECOND, { via: [i], headers: { 'x-canary': 'always' } }))));
  const checks = new Map<string, string>();
  try {
    await world().apply({
      ingressRef: { name: 'shop' }, service: NAME, canaryService: { name: CANARY }, revision: 'v2',
      traffic: { header: { name: 'X-Canary' } },
      analysis: {
        interval: '10s', stepWeights: [20, 50, 80], threshold: 2, minRequests: MIN_REQUESTS,
        metrics: [{ name: 'success-rate', min: 99 }, { name: 'latency-p99', maxMs: 1000 }],
      },
    });
    const wait = world().c.kubectl(['-n', world().ns, 'wait', '--for=condition=Promoted', `canary/${NAME}`, '--timeout=120s'], { timeoutMs: 130_000 });
    await world().until('the second step', (c) => c.status?.weight === 50 && (c.status?.lastChecks?.length ?? 0) > 0, 60_000);
    const midway = await world().vane(['status', NAME]);
    assert.equal(midway.code, 0, midway.stderr);
    assert.match(midway.stdout, /^Weight:\s+50%\s+steps 20 \[50\] 80 → promote$/m);
    t.diagnostic(`kubectl vane status ${NAME}, midway:\n${midway.stdout}`);
    const promoted = await world().until('promotion', (c) => {
      for (const x of c.status?.lastChecks ?? []) if (x.name === 'success-rate' && x.result === 'Pass') checks.set(c.status?.lastCheckTime ?? '', x.message ?? '');
      return c.status?.phase === 'Promoted';
    }, 120_000);
    const waited = await wait;
    assert.equal(waited.code, 0, waited.stderr);
    assert.match(waited.stdout, /condition met/);
    assert.equal(promoted.status?.weight, 100);
    assert.equal(condition(promoted, 'Promoted').status, 'True');
    assert.deepEqual(promoted.status?.proxies && [promoted.status.proxies.converged, promoted.status.proxies.expected], [2, 2]);

    // Each pass judged more canary requests than one proxy can serve in a window: the fleet's statistics were merged.
    const judged = [...checks.values()].map((m) => Number(/of (\d+) requests/.exec(m)?.[1] ?? 0));
    t.diagnostic(`requests judged per passing check: ${judged.join(', ')}`);
    assert.ok(judged.length >= 3 && judged.every((n) => n >= MIN_REQUESTS), judged.join(', '));

    const reasons = (await world().events()).filter((e) => e.component === 'vane-canary-controller').map((e) => e.reason);
    assert.deepEqual(reasons.filter((r) => r !== 'NoData' && r !== 'WaitingForProxies'), ['Started', 'StepAdvanced', 'StepAdvanced', 'StepAdvanced', 'Promoting', 'Promoted']);
  } finally {
    await traffic.stop();
  }
  const after = await world().send(100);
  assert.deepEqual(after.byBackend, { [CANARY]: 100 }, 'promoted (Hold): every request reaches the canary');
  const table = await world().vane(['status']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, new RegExp(`^${NAME}\\s+Promoted\\s+100\\s+3/3\\s+pass, 0/2 failed\\s+2/2`, 'm'));
  t.diagnostic(`kubectl vane status:\n${table.stdout}`);
});
