/**
 * 8. A progressive canary whose backend answers 500: rolled back within threshold × interval,
 * and once every expected proxy acknowledged the rollback, no request reaches the canary —
 * not even one forcing it by header or cookie. The canary's own 500s before that are the
 * injected fault, counted apart; any other failure fails the scenario.
 */
import { eventually } from '../../../tests/support/wait.ts';
import type { Canary } from '../../../core/index.ts';
import { startLoad, type Check, type Sent } from '../load.ts';
import { failureProblems, type Result } from '../report.ts';
import { SHOP, SHOP_CANARY, type World } from '../world.ts';
import type { Scale } from './scale.ts';

const INTERVAL_MS = 10_000;
const THRESHOLD = 2;
/** Statistics reach the operator every 5 s, so a check may see its last seconds one interval late. */
const REPORTING_SLACK_MS = 6_000;

export async function canaryRollback(w: World, s: Scale): Promise<Result> {
  const path = `/apis/vane.dev/v1alpha1/namespaces/${w.ns}/canaries/shop`;
  const read = async (): Promise<Canary> => (await w.c.api<Canary>('GET', path)).body;
  const variants: [string, Record<string, string>][] = [['plain', {}], ['header', { 'x-canary': 'always' }], ['cookie', { cookie: 'canary=always' }]];
  const next = (i: number): Sent => ({ method: 'GET', path: '/cart', host: w.hosts.shop, headers: variants[i % 3]![1] });
  let ackAt = Infinity;
  let injected = 0;
  let forcedToCanaryBefore = 0;
  const check: Check = (r, sent, ctx) => {
    const forced = sent.headers?.['x-canary'] ? 'header' : sent.headers?.cookie ? 'cookie' : 'plain';
    if (r.backend === SHOP_CANARY) {
      if (ctx.sentAt >= ackAt) return `reached the canary after the rollback was acknowledged (${forced})`;
      if (forced !== 'plain') forcedToCanaryBefore++;
      if (r.status === 500) { injected++; return null; }
    }
    if (r.error) return r.error;
    return r.status === 200 && (r.backend === SHOP || r.backend === SHOP_CANARY) ? null : `status ${r.status} from ${r.backend}`;
  };
  const canaryBackend = w.backends.get(SHOP_CANARY)!;
  await canaryBackend.fail(500, 1);
  const load = startLoad({ balancer: w.balancer, rate: s.rate, concurrency: s.concurrency, maxMs: 10 * 60_000, maxRequests: 5_000_000, next, check });
  const problems: string[] = [];
  const notes: string[] = [];
  try {
    await w.apply([{ apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'shop', namespace: w.ns }, spec: {
      ingressRef: { name: 'shop' }, service: 'shop', canaryService: { name: 'shop-v2' },
      traffic: { header: { name: 'X-Canary' }, cookie: { name: 'canary' } },
      analysis: { interval: `${INTERVAL_MS / 1000}s`, stepWeights: [20, 50], threshold: THRESHOLD, minRequests: 20, metrics: [{ name: 'success-rate', min: 95 }] },
    } }]);
    const started = await eventually('the first step', async () => { const c = await read(); return c.status?.weight === 20 ? c : null; }, 30_000);
    load.mark('first step (weight 20)');
    const firstStep = Date.parse(started.status!.intervalStart!);
    const failed = await eventually('the rollback', async () => { const c = await read(); return c.status?.phase === 'Failed' ? c : null; }, 90_000);
    load.mark('rolled back');
    const rolledBackAfter = Date.parse(failed.status!.lastCheckTime!) - firstStep;
    if (rolledBackAfter > THRESHOLD * INTERVAL_MS + REPORTING_SLACK_MS) problems.push(`rolled back ${rolledBackAfter} ms after the first step (threshold ${THRESHOLD} × interval ${INTERVAL_MS} ms)`);
    const expected = w.proxies.length;
    await eventually('every expected proxy to acknowledge the rollback', async () => {
      const c = await read();
      const ready = c.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True';
      return c.status?.phase === 'Failed' && c.status.observedGeneration === c.metadata?.generation && ready
        && c.status.proxies?.expected === expected && c.status.proxies.converged === expected;
    }, 30_000);
    ackAt = Date.now();
    load.mark('rollback acknowledged by every expected proxy');
    notes.push(`rolled back ${rolledBackAfter} ms after the first step (threshold ${THRESHOLD} × interval ${INTERVAL_MS / 1000} s), acknowledged by all ${expected} proxies ${ackAt - Date.parse(failed.status!.lastCheckTime!)} ms after the check`);
    await new Promise((r) => setTimeout(r, s.holdMs));
  } catch (err) {
    problems.push((err as Error).message);
  }
  const stats = await load.stop();
  await canaryBackend.ok();
  await w.c.kubectl(['-n', w.ns, 'delete', 'canary', 'shop', '--wait=false']);
  problems.push(...failureProblems('load on the shop host', stats));
  if (forcedToCanaryBefore === 0) problems.push('no forced request reached the canary before the rollback: the header and cookie rules were never exercised');
  notes.push(`${injected} answers were the canary's injected 500s before the rollback; ${forcedToCanaryBefore} forced (header/cookie) requests reached it then, none after`);
  return {
    id: '8', name: 'canary rollback', requests: stats.requests, durationMs: stats.durationMs,
    faults: 'canary answers 500 (every request)', failed: stats.failed, failedDetail: `+${injected} injected 500s`, problems, notes,
  };
}
