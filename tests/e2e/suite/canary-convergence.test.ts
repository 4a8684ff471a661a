/**
 * A step advances only once every expected proxy serves the current weight: with three
 * ready proxy pods in the proxy Service and only two proxies running, passing checks hold
 * the canary at its first step, naming the straggler; once it starts and ACKs, the run moves on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eSkip, netnsSkip } from '../harness/index.ts';
import { canaryFile, condition, NAME, everySecond } from './canary-support.ts';

const skip = e2eSkip || netnsSkip;
const world = canaryFile(import.meta.url, skip, { expected: 3, running: 2 });


test('passing checks hold the step while an expected proxy has not ACKed; it advances once that proxy serves', { skip, timeout: 150_000 }, async () => {
  const traffic = everySecond(120_000, () => world().send(10, { via: [0, 1], headers: { 'x-canary': 'always' } }));
  try {
    await world().apply({
      ingressRef: { name: 'shop' }, service: NAME, canaryService: { name: `${NAME}-v2` },
      traffic: { header: { name: 'X-Canary' } },
      analysis: { interval: '10s', stepWeights: [10, 30], threshold: 2, minRequests: 20, metrics: [{ name: 'success-rate', min: 99 }] },
    });
    const first = await world().until('the first step', (c) => c.status?.weight === 10 && c.status?.proxies?.converged === 2);
    assert.equal(first.status?.proxies?.summary, '2/3');
    assert.deepEqual([condition(first, 'Ready').status, condition(first, 'Ready').reason], ['False', 'ProxiesNotConverged']);
    assert.match(condition(first, 'Ready').message ?? '', /2\/3 proxies converged; waiting for vane-proxy-2/);

    const held = await world().until('a passing check held for the straggler', (c) => condition(c, 'Progressing').reason === 'WaitingForProxies', 40_000);
    assert.equal(held.status?.weight, 10);
    assert.ok(held.status?.lastChecks?.every((x) => x.result === 'Pass'), JSON.stringify(held.status?.lastChecks));
    assert.match(condition(held, 'Progressing').message ?? '', /check passed, step held at weight 10: 2\/3 proxies converged; waiting for vane-proxy-2/);
    const checkedAt = held.status?.lastCheckTime;
    await world().until('another check', (c) => c.status?.lastCheckTime !== checkedAt, 20_000);
    assert.equal((await world().get()).status?.weight, 10, 'still held one interval later');
    const events = await world().events();
    assert.equal(events.filter((e) => e.reason === 'WaitingForProxies').length, 1, 'one Event when the hold starts');

    await world().startProxy(2);
    const advanced = await world().until('the next step once every proxy serves', (c) => c.status?.weight === 30, 40_000);
    assert.equal(advanced.status?.step, 2);
    await world().until('the whole fleet on weight 30', (c) => c.status?.proxies?.summary === '3/3' && condition(c, 'Ready').status === 'True');
  } finally {
    await traffic.stop();
  }
});
