/**
 * 4. Every proxy restarted while no operator runs: each comes back ready from its persisted
 * last-known-good state and serves the main host's latest routing, with zero failed requests;
 * once the operators return, a change converges again.
 */
import { eventually } from '../../../tests/support/wait.ts';
import { startLoad } from '../load.ts';
import { failureProblems, type Result } from '../report.ts';
import type { World } from '../world.ts';
import type { Scale } from './scale.ts';

export async function lastKnownGood(w: World, s: Scale): Promise<Result> {
  const want = w.state;
  let operatorsBack = false;
  const load = startLoad({
    balancer: w.balancer, rate: s.rate, concurrency: s.concurrency, maxMs: 30 * 60_000, maxRequests: 5_000_000, next: w.mainRequest,
    check: (r, sent, ctx) => {
      if (operatorsBack) return w.checkMain(r, sent, ctx);
      const got = w.stateOf(r);
      if (typeof got === 'string') return got;
      return got.rev === want.rev && got.weight === want.weight ? null : `not the last-known-good routing: rev ${got.rev} weight ${got.weight}`;
    },
  });
  const problems: string[] = [];
  let restarted = 0;
  try {
    load.mark('operators stopped');
    for (const op of w.operators) await op.stop();
    for (const p of w.proxies) {
      load.mark(`SIGTERM to ${p.target.name}`);
      await p.stop();
      await p.start();
      const served = p.process!.lines.some((l) => l.includes('serving last-known-good routing'));
      if (!served) problems.push(`${p.target.name} came back without saying it serves last-known-good state`);
      await eventually(`the balancer to send to ${p.target.name} again`, () => w.balancer.rotation().includes(p.target.name));
      restarted++;
    }
    // Held without any operator: what the restarted fleet serves is all it has.
    await new Promise((r) => setTimeout(r, s.holdMs));
    load.mark('operators started');
    operatorsBack = true;
    for (const op of w.operators) await op.start();
    await w.leader();
    await w.change('route');
    await w.converge();
  } catch (err) {
    problems.push((err as Error).message);
  }
  const stats = await load.stop();
  problems.push(...failureProblems('load on the main host', stats));
  return {
    id: '4', name: 'proxies restarted, operators down', requests: stats.requests, durationMs: stats.durationMs,
    faults: `operators stopped, ${restarted} proxy restarts`, failed: stats.failed, problems,
    notes: [`every restarted proxy served rev ${want.rev} weight ${want.weight} from its state directory until the operators returned`],
  };
}
