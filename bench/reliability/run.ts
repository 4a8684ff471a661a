/**
 * The reliability suite's runner (issue 18): builds the world on a real API server (the e2e
 * harness's; its own control plane when run outside the test runner), runs the scenarios and
 * prints the table.
 *
 *   npx node bench/reliability/run.ts [--scale long|short] [--only 1,3,8] [--proxies 3]
 *
 * Needs the e2e tools (VANE_K8S_BIN) and root for network namespaces, like the e2e tests.
 */
import { parseArgs } from 'node:util';
import { e2eSkip, netnsSkip } from '../../tests/e2e/harness/index.ts';
import { table, type Result } from './report.ts';
import { LONG, SCENARIOS, SHORT, runScenario } from './scenarios/index.ts';
import { World } from './world.ts';

const { values } = parseArgs({ options: {
  scale: { type: 'string', default: 'long' }, only: { type: 'string' }, proxies: { type: 'string' },
} });
const scale = values.scale === 'short' ? SHORT : LONG;
const only = values.only ? new Set(values.only.split(',')) : null;
const skip = e2eSkip || netnsSkip;
if (skip) {
  console.error(`cannot run: ${skip}`);
  process.exit(2);
}

const log = (line: string): void => console.error(`[reliability] ${line}`);
const world = await World.create({
  proxies: Number(values.proxies ?? (scale.name === 'long' ? 3 : 2)), lbPollMs: 500, lbLagMs: 3_000, shutdownDelayMs: 5_000, log,
});
const results: Result[] = [];
try {
  for (const s of SCENARIOS) {
    if (only && !only.has(s.id) && !only.has(s.id.replace(/[a-z]$/, ''))) continue;
    log(`scenario ${s.id}: ${s.name} (${scale.name})`);
    const r = await runScenario(s, world, scale);
    results.push(r);
    log(`scenario ${s.id}: ${r.problems.length === 0 ? 'pass' : 'FAIL'}, ${r.requests} requests, ${r.failed} failed`);
  }
} finally {
  await world.close();
}
console.log(`\nreliability suite, ${scale.name} scale, ${new Date().toISOString()}\n`);
console.log(table(results));
process.exit(results.every((r) => r.problems.length === 0) ? 0 : 1);
