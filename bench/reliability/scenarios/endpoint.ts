/**
 * 5. A backend endpoint dies mid-load (SIGKILL and its network gone, still listed in the
 * EndpointSlice): idempotent requests sent after the death are retried elsewhere and none
 * fails; each proxy that met it ejects it; later the slice replaces it with a new pod, as a
 * controller would. What remains is reported: requests in flight at the death, and POSTs
 * (never retried, by design) that met the dead endpoint before its ejection.
 */
import { eventually } from '../../../tests/support/wait.ts';
import { startLoad, type Check, type Sent } from '../load.ts';
import { seconds, type Result } from '../report.ts';
import { metric, POOL, type World } from '../world.ts';
import type { Scale } from './scale.ts';

const AFTER = 'GET sent after the death';

export async function endpointDeath(w: World, s: Scale): Promise<Result> {
  let members = [...POOL];
  let deathAt = Infinity;
  const next = (i: number): Sent => (i % 4 === 3
    ? { method: 'POST', path: '/order', host: w.hosts.pool, body: JSON.stringify({ order: i }) }
    : { method: 'GET', path: '/item', host: w.hosts.pool });
  const check: Check = (r, sent, ctx) => {
    if (r.status === 200 && r.backend && w.backends.has(r.backend)) return null;
    const what = r.error ?? `status ${r.status}`;
    if (sent.method !== 'GET') return `POST (not retried): ${what}`;
    return ctx.sentAt < deathAt ? `GET in flight at the death: ${what}` : `${AFTER}: ${what}`;
  };
  const ejections = async () => (await Promise.all(w.proxies.map((p) => metric(p.target.admin, 'vane_proxy_outlier_ejections_total')))).reduce((a, b) => a + b, 0);
  const ejectedBefore = await ejections();
  const load = startLoad({ balancer: w.balancer, rate: s.rate, concurrency: s.concurrency, maxMs: 30 * 60_000, maxRequests: 5_000_000, next, check });
  const problems: string[] = [];
  const notes: string[] = [];
  let deaths = 0;
  try {
    for (let k = 0; k < s.endpointDeaths; k++) {
      await new Promise((r) => setTimeout(r, s.holdMs / 2));
      const victim = members[k % members.length]!;
      load.mark(`death of ${victim}`);
      deathAt = Date.now();
      w.killBackend(victim);
      deaths++;
      // The controller's view lags the death: the slice keeps the dead address while load runs.
      await new Promise((r) => setTimeout(r, s.holdMs / 2));
      const replacement = `rel-pool-r${k}`;
      await w.addBackend(replacement);
      members = members.map((m) => (m === victim ? replacement : m));
      load.mark(`${victim} replaced by ${replacement}`);
      await w.apply(w.service('pool', members));
      await eventually(`${replacement} to serve`, () => (load.stats.byBackend[replacement] ?? 0) > 0, 30_000);
    }
    await new Promise((r) => setTimeout(r, s.holdMs / 2));
  } catch (err) {
    problems.push((err as Error).message);
  }
  const stats = await load.stop();
  const ejected = (await ejections()) - ejectedBefore;
  const after = Object.entries(stats.failures).filter(([k]) => k.startsWith(AFTER));
  const afterCount = after.reduce((n, [, v]) => n + v, 0);
  if (afterCount > 0) problems.push(`${afterCount} idempotent requests sent after a death failed ${JSON.stringify(Object.fromEntries(after))}; first: ${stats.examples.join(' | ')}`);
  if (ejected < deaths) problems.push(`${ejected} outlier ejections for ${deaths} deaths`);
  const remains = Object.entries(stats.failures).filter(([k]) => !k.startsWith(AFTER));
  notes.push(`${ejected} outlier ejections (proxies × deaths); dead endpoint kept in the slice for ${seconds(s.holdMs / 2)} each time; answers by backend ${JSON.stringify(stats.byBackend)}`);
  notes.push(remains.length === 0 ? 'what remains: nothing failed' : `what remains (by design: not retried): ${JSON.stringify(Object.fromEntries(remains))}`);
  return {
    id: '5', name: 'backend endpoint dies', requests: stats.requests, durationMs: stats.durationMs,
    faults: `${deaths} endpoint deaths (SIGKILL + network gone)`, failed: stats.failed,
    failedDetail: `${afterCount} idempotent after a death`, problems, notes,
  };
}
