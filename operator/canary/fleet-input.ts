/**
 * What step() needs to know about the fleet: how many expected proxies serve the routing
 * compiled from the status it was given. The current version counts only if its virtual
 * hosts carry this Canary's split as that status compiles (weight, rules; none once Failed)
 * — otherwise the proxies' ACKs are for an older weight and nobody has converged yet.
 */
import { parseCanary, type Canary, type CanarySplit, type FleetInput, type ResourceMap } from '../../core/index.ts';
import type { Fleet } from '../fleet.ts';
import type { RoutingVersion } from '../pipeline.ts';

const splitIndex = new WeakMap<ResourceMap, Map<string, CanarySplit[]>>();

/** splitsOf indexes a version's canary splits by Canary key, once per version. */
function splitsOf(resources: ResourceMap): Map<string, CanarySplit[]> {
  let index = splitIndex.get(resources);
  if (index) return index;
  index = new Map();
  for (const { resource } of resources.values()) {
    if (resource.type !== 'vhost') continue;
    for (const route of resource.spec.routes) {
      const split = route.canary;
      if (!split) continue;
      const list = index.get(split.canary) ?? [];
      list.push(split);
      index.set(split.canary, list);
    }
  }
  splitIndex.set(resources, index);
  return index;
}

function sameRule(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** carriesStatus: every split of this Canary in `resources` is what its status compiles to (no split when Failed or invalid). */
export function carriesStatus(resources: ResourceMap, canary: Canary): boolean {
  const frag = parseCanary(canary);
  const splits = splitsOf(resources).get(frag.key) ?? [];
  if (frag.failed || !frag.valid) return splits.length === 0;
  return splits.every((s) => s.weight === frag.weight && s.sticky === frag.sticky && sameRule(s.header, frag.header) && sameRule(s.cookie, frag.cookie));
}

/** fleetInput is step()'s `fleet` for a Canary whose status is the one it holds. */
export function fleetInput(fleet: Fleet, current: RoutingVersion | null, canary: Canary): FleetInput {
  if (current && carriesStatus(current.resources, canary)) {
    const c = fleet.convergence(current);
    return { expected: c.expected, converged: c.converged, stragglers: c.stragglers, generation: c.generation };
  }
  const names = fleet.expectedNames;
  return { expected: names.length, converged: 0, stragglers: names, generation: current?.generation ?? 0 };
}
