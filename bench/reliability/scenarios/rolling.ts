/**
 * 2. Rolling restart of every proxy behind the load-balancer model: SIGTERM (readiness fails,
 * requests keep coming for the balancer's lag, then the drain), a new process on the same
 * ports and state, back in rotation once ready. Zero failed requests.
 */
import { eventually } from '../../../tests/support/wait.ts';
import { startLoad, type Check } from '../load.ts';
import { failureProblems, percentile, type Result } from '../report.ts';
import type { World } from '../world.ts';
import type { Scale } from './scale.ts';

export async function rolling(w: World, s: Scale): Promise<Result> {
  let leaving: { name: string; at: number } | null = null;
  let sentAfterUnready = 0;
  const check: Check = (r, sent, ctx) => {
    if (leaving && ctx.proxy === leaving.name && ctx.sentAt > leaving.at) sentAfterUnready++;
    return w.checkMain(r, sent, ctx);
  };
  const load = startLoad({ balancer: w.balancer, rate: s.rate, concurrency: s.concurrency, maxMs: 30 * 60_000, maxRequests: 5_000_000, next: w.mainRequest, check });
  const problems: string[] = [];
  const restarts: number[] = [];
  try {
    for (let round = 0; round < s.restartRounds; round++) {
      for (const p of w.proxies) {
        const t = Date.now();
        leaving = { name: p.target.name, at: t };
        load.mark(`SIGTERM to ${p.target.name}`);
        await p.stop();
        leaving = null;
        await p.start();
        await eventually(`the balancer to send to ${p.target.name} again`, () => w.balancer.rotation().includes(p.target.name));
        restarts.push(Date.now() - t);
      }
    }
  } catch (err) {
    problems.push((err as Error).message);
  }
  const stats = await load.stop();
  problems.push(...failureProblems('load through the balancer', stats));
  if (sentAfterUnready === 0) problems.push('the balancer never sent to a proxy after it turned unready: the scenario did not test what it claims');
  return {
    id: '2', name: 'rolling restart of every proxy', requests: stats.requests, durationMs: stats.durationMs,
    faults: `${restarts.length} proxy restarts (SIGTERM)`, failed: stats.failed, problems,
    notes: [`balancer lag ${w.o.lbLagMs} ms after it sees a proxy unready (health check every ${w.o.lbPollMs} ms), --shutdown-delay ${w.o.shutdownDelayMs} ms; ${sentAfterUnready} requests sent to proxies after their SIGTERM; SIGTERM → back in rotation: p50 ${percentile(restarts, 50)} ms, max ${Math.max(0, ...restarts)} ms`],
  };
}
