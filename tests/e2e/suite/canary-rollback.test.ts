/**
 * A canary whose backend answers 500 is rolled back on the real API server within
 * threshold × interval: phase Failed with its condition and a Warning Event, weight 0, and
 * every canary rule off — afterwards not even `X-Canary: always` reaches it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eSkip, netnsSkip } from '../harness/index.ts';
import { canaryFile, condition, NAME, everySecond } from './canary-support.ts';

const skip = e2eSkip || netnsSkip;
const CANARY = `${NAME}-v2`;
const INTERVAL_MS = 10_000;
const THRESHOLD = 2;
/** Statistics reach the operator every 5 s, so a check may see its last seconds one interval late. */
const REPORTING_SLACK_MS = 6_000;
const world = canaryFile(import.meta.url, skip);


test('500s from the canary: rolled back within threshold × interval, Event and Failed condition, then header always stays on stable', { skip, timeout: 120_000 }, async (t) => {
  await world().canary.fail(500, 1);
  const traffic = everySecond(90_000, () => world().send(40));
  try {
    await world().apply({
      ingressRef: { name: 'shop' }, service: NAME, canaryService: { name: CANARY },
      traffic: { header: { name: 'X-Canary' }, cookie: { name: 'canary' } },
      analysis: { interval: '10s', stepWeights: [20, 50], threshold: THRESHOLD, minRequests: 20, metrics: [{ name: 'success-rate', min: 95 }] },
    });
    const started = await world().until('the first step', (c) => c.status?.weight === 20);
    const firstStep = Date.parse(started.status!.intervalStart!);
    const failed = await world().until('the rollback', (c) => c.status?.phase === 'Failed', 60_000);
    const rolledBackAfter = Date.parse(failed.status!.lastCheckTime!) - firstStep;
    t.diagnostic(`rolled back ${rolledBackAfter} ms after the first step`);
    assert.ok(rolledBackAfter <= THRESHOLD * INTERVAL_MS + REPORTING_SLACK_MS, `rolled back after ${rolledBackAfter} ms`);
    assert.equal(failed.status?.weight, 0);
    assert.equal(failed.status?.failedChecks, THRESHOLD);
    assert.deepEqual([condition(failed, 'Failed').status, condition(failed, 'Failed').reason], ['True', 'ThresholdReached']);
    assert.equal(condition(failed, 'Promoted').status, 'False');

    const events = await world().events();
    const rollback = events.find((e) => e.reason === 'ThresholdReached');
    assert.ok(rollback, JSON.stringify(events));
    assert.equal(rollback.type, 'Warning');
    assert.match(rollback.message, /rolled back: 2 failed checks \(threshold 2\); last: success-rate: 0% of \d+ requests succeeded \(min 95%\)/);
    assert.equal(events.filter((e) => e.reason === 'CheckFailed').length, 1);

    await world().until('the fleet to serve the rollback', (c) => c.status?.proxies?.converged === 2 && condition(c, 'Ready').status === 'True');
  } finally {
    await traffic.stop();
  }
  const forced = await world().send(60, { headers: { 'x-canary': 'always' } });
  assert.deepEqual(forced.byBackend, { [NAME]: 60 }, 'X-Canary: always no longer reaches the canary');
  const cookie = await world().send(60, { headers: { cookie: 'canary=always' } });
  assert.deepEqual(cookie.byBackend, { [NAME]: 60 }, 'nor does the cookie');
  const plain = await world().send(200);
  assert.deepEqual(plain.byBackend, { [NAME]: 200 });
});
