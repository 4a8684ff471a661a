/**
 * 3. Operator faults under load, in two parts (each its own row and test): 3a, the leader
 * SIGKILLed and restarted (twice); 3b, the leader partitioned from the API server (a black
 * hole: nothing refused, nothing answered). Zero
 * failed requests; never two replicas serving the stream at once (each replica's leader
 * metric and connected proxies, sampled); after each fault a change reaches every proxy.
 */
import { eventually } from '../../../tests/support/wait.ts';
import { startLoad } from '../load.ts';
import { failureProblems, type Result } from '../report.ts';
import { get, metric, type World } from '../world.ts';
import type { Scale } from './scale.ts';

interface Watch { samples: number; overlaps: string[]; stop(): Promise<void> }

/** watchStreamServers samples every replica every 100 ms: is it leading, does it hold proxies. */
function watchStreamServers(w: World): Watch {
  const watch: Watch = { samples: 0, overlaps: [], stop: async () => { running = false; await loop; } };
  let running = true;
  const loop = (async () => {
    while (running) {
      const seen = await Promise.all(w.operators.map(async (op) => {
        if (!op.process) return { op: op.identity, leader: false, proxies: 0 };
        const leader = (await metric(op.adminPort, 'vane_operator_leader').catch(() => 0)) === 1;
        const fleet = await get(op.adminPort, '/fleet').then((r) => JSON.parse(r.body) as { connected?: unknown[] }).catch(() => ({ connected: [] }));
        return { op: op.identity, leader, proxies: fleet.connected?.length ?? 0 };
      }));
      watch.samples++;
      const serving = seen.filter((x) => x.leader || x.proxies > 0);
      if (serving.length > 1 && watch.overlaps.length < 5) watch.overlaps.push(`${new Date().toISOString()}: ${JSON.stringify(serving)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return watch;
}

async function operatorFaults(w: World, s: Scale, part: '3a' | '3b'): Promise<Result> {
  const load = startLoad({ balancer: w.balancer, rate: s.rate, concurrency: s.concurrency, maxMs: 30 * 60_000, maxRequests: 5_000_000, next: w.mainRequest, check: w.checkMain });
  const watch = watchStreamServers(w);
  const problems: string[] = [];
  const notes: string[] = [];
  const faults: string[] = [];
  const leads = (op: (typeof w.operators)[number]) => async () => (await metric(op.adminPort, 'vane_operator_leader')) === 1;
  try {
    for (let k = 0; k < (part === '3a' ? s.operatorKills : 0); k++) {
      const leader = await w.leader();
      const other = w.operators.find((o) => o !== leader)!;
      load.mark(`SIGKILL to ${leader.identity}`);
      const t = Date.now();
      await leader.kill();
      await eventually(`${other.identity} to take over`, leads(other), 40_000);
      const takeover = Date.now() - t;
      await leader.start();
      await w.change('route');
      const propagation = await w.converge();
      faults.push(`SIGKILL ${leader.identity}`);
      notes.push(`SIGKILL ${leader.identity}: ${other.identity} led after ${takeover} ms (lease 15 s); a change then reached every proxy in ${propagation} ms`);
    }
    if (part === '3b') {
      const leader = await w.leader();
      const other = w.operators.find((o) => o !== leader)!;
      load.mark(`partition of ${leader.identity}`);
      const t = Date.now();
      leader.relay.partition();
      await eventually(`${leader.identity} to step down`, async () => !(await leads(leader)()), 30_000);
      const stepDown = Date.now() - t;
      await eventually(`${other.identity} to take over`, leads(other), 40_000);
      const takeover = Date.now() - t;
      await w.change('route');
      const propagation = await w.converge();
      leader.relay.heal();
      load.mark(`healed ${leader.identity}`);
      await w.change('canary');
      await w.converge();
      if (await leads(leader)()) problems.push(`${leader.identity} leads again after the partition healed, though ${other.identity} renews`);
      faults.push(`partition ${leader.identity}`);
      notes.push(`partition of ${leader.identity} from the API server: it stopped leading after ${stepDown} ms, ${other.identity} led after ${takeover} ms; a change then reached every proxy in ${propagation} ms`);
    }
  } catch (err) {
    problems.push((err as Error).message);
  }
  const stats = await load.stop();
  await watch.stop();
  problems.push(...failureProblems('load on the main host', stats));
  if (watch.overlaps.length > 0) problems.push(`two replicas served the stream at once: ${watch.overlaps.join(' | ')}`);
  notes.push(`stream servers sampled ${watch.samples} times (every 100 ms): ${watch.overlaps.length === 0 ? 'never more than one' : 'overlaps above'}`);
  return {
    id: part, name: part === '3a' ? 'operator leader SIGKILLed, restarted' : 'operator leader partitioned', requests: stats.requests, durationMs: stats.durationMs,
    faults: faults.join(', '), failed: stats.failed, problems, notes,
  };
}

export const operatorKills = (w: World, s: Scale): Promise<Result> => operatorFaults(w, s, '3a');
export const leaderPartition = (w: World, s: Scale): Promise<Result> => operatorFaults(w, s, '3b');
