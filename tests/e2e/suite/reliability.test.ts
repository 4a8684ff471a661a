/**
 * The reliability suite of issue 18, short scale: every scenario of bench/reliability on the
 * run's API server with real operators, proxies and backends in network namespaces, one test
 * each, asserting what the scenario promises (zero failed requests means zero). The same
 * scenarios run long with `npx node bench/reliability/run.ts`. The table is printed at the end.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { e2eSkip, netnsSkip } from '../harness/index.ts';
import { SCENARIOS, SHORT, runScenario } from '../../../bench/reliability/scenarios/index.ts';
import { World } from '../../../bench/reliability/world.ts';
import { table, type Result } from '../../../bench/reliability/report.ts';

const skip = e2eSkip || netnsSkip;
let world: World | undefined;
const results: Result[] = [];

before(async () => {
  if (skip) return;
  world = await World.create({ proxies: 2, lbPollMs: 500, lbLagMs: 3_000, shutdownDelayMs: 5_000, log: (line) => console.error(`[reliability] ${line}`) });
});

after(async () => {
  await world?.close();
  if (results.length > 0) console.log(`\nreliability suite, short scale\n\n${table(results)}\n`);
});

for (const s of SCENARIOS) {
  test(`${s.id}. ${s.name}`, { skip, timeout: 120_000 }, async (t) => {
    assert.ok(world, 'the world was built');
    const r = await runScenario(s, world, SHORT);
    results.push(r);
    t.diagnostic(`${r.requests} requests in ${r.durationMs} ms; faults: ${r.faults}; failed: ${r.failed}${r.failedDetail ? ` (${r.failedDetail})` : ''}`);
    for (const n of r.notes) t.diagnostic(n);
    assert.deepEqual(r.problems, []);
    assert.ok(r.requests >= 500, `load was held: ${r.requests} requests`);
  });
}
