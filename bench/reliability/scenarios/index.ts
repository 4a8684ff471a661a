/** The reliability scenarios of issue 18, in the order; each returns one row of the table. */
import type { Result } from '../report.ts';
import type { World } from '../world.ts';
import type { Scale } from './scale.ts';
import { changes } from './changes.ts';
import { rolling } from './rolling.ts';
import { leaderPartition, operatorKills } from './operators.ts';
import { lastKnownGood } from './lkg.ts';
import { endpointDeath } from './endpoint.ts';
import { canaryRollback } from './canary.ts';
import { abuse } from './abuse.ts';
import { hostile } from './hostile.ts';

export { SHORT, LONG, type Scale } from './scale.ts';

export interface Scenario { id: string; name: string; run(w: World, s: Scale): Promise<Result> }

export const SCENARIOS: Scenario[] = [
  { id: '1', name: 'route and canary changes', run: changes },
  { id: '2', name: 'rolling restart of every proxy', run: rolling },
  { id: '3a', name: 'operator leader SIGKILLed, restarted', run: operatorKills },
  { id: '3b', name: 'operator leader partitioned', run: leaderPartition },
  { id: '4', name: 'proxies restarted, operators down', run: lastKnownGood },
  { id: '5', name: 'backend endpoint dies', run: endpointDeath },
  { id: '6', name: 'slow clients, bodies, backends; flood', run: abuse },
  { id: '7', name: 'hostile HTTP and stream input', run: hostile },
  { id: '8', name: 'canary rollback', run: canaryRollback },
];

/** runScenario runs one scenario; a scenario that throws, or leaves a process of the world dead, fails its row instead of the run. */
export async function runScenario(sc: Scenario, w: World, s: Scale): Promise<Result> {
  let r: Result;
  try {
    r = await sc.run(w, s);
  } catch (err) {
    r = { id: sc.id, name: sc.name, requests: 0, durationMs: 0, faults: '-', failed: 0, problems: [(err as Error).stack ?? String(err)], notes: [] };
  }
  r.problems.push(...w.exited());
  return r;
}
