/** The reliability scenarios of issue 18, in the order; each returns one row of the table. */
import type { Result } from '../report.ts';
import type { World } from '../world.ts';
import type { Scale } from './scale.ts';
import { changes } from './changes.ts';

export { SHORT, LONG, type Scale } from './scale.ts';

export interface Scenario { id: number; name: string; run(w: World, s: Scale): Promise<Result> }

export const SCENARIOS: Scenario[] = [
  { id: 1, name: 'route and canary changes', run: changes },
];
