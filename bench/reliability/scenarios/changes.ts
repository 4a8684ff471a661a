/**
 * 1. Route and canary changes under load: each change (alternately the main Ingress's rewrite
 * and its Canary's weight, 0 ↔ 100) is made through the API server and converges on every
 * proxy before the next; every answer must come from a state the proxy may have held.
 */
import { startLoad } from '../load.ts';
import { failureProblems, percentile, type Result } from '../report.ts';
import type { World } from '../world.ts';
import type { Scale } from './scale.ts';

export async function changes(w: World, s: Scale): Promise<Result> {
  const load = startLoad({ balancer: w.balancer, rate: s.rate, concurrency: s.concurrency, maxMs: 60 * 60_000, maxRequests: 5_000_000, next: w.mainRequest, check: w.checkMain });
  const converged: number[] = [];
  const counts = { route: 0, canary: 0 };
  const problems: string[] = [];
  try {
    for (let i = 0; i < s.changes; i++) {
      const kind = i % 2 === 0 ? 'route' : 'canary';
      const t = Date.now();
      await w.change(kind);
      await w.converge();
      converged.push(Date.now() - t);
      counts[kind]++;
    }
  } catch (err) {
    problems.push(`change ${counts.route + counts.canary + 1}: ${(err as Error).message}`);
  }
  const stats = await load.stop();
  problems.push(...failureProblems('load on the main host', stats));
  return {
    id: '1', name: 'route and canary changes', requests: stats.requests, durationMs: stats.durationMs,
    faults: `${counts.route} route + ${counts.canary} canary changes`, failed: stats.failed, problems,
    notes: [`change → every proxy serves it: p50 ${percentile(converged, 50)} ms, p99 ${percentile(converged, 99)} ms, max ${Math.max(0, ...converged)} ms; answers by backend ${JSON.stringify(stats.byBackend)}`],
  };
}
