/**
 * Resource-level deltas between resource sets, as in Envoy's delta xDS: a delta names the
 * resources to upsert (whole) and the names to remove. A delta can be computed against a
 * peer's (name, hash) list alone, so an operator with no history can bring any proxy up to
 * date by sending only the difference.
 */
import type { HashedResource, ResourceMap } from './resources.ts';
import { RootAccumulator, hashValue } from './canonical.ts';
import { COMPILER_VERSION } from './compile.ts';

export interface Delta {
  upserts: HashedResource[];
  removals: string[];
}

function byName(a: HashedResource, b: HashedResource): number {
  return a.resource.name < b.resource.name ? -1 : a.resource.name > b.resource.name ? 1 : 0;
}

/** deltaFromHashes is the delta that takes a peer holding `peer` (name → hash) to `target`. */
export function deltaFromHashes(peer: ReadonlyMap<string, string>, target: ResourceMap): Delta {
  const upserts: HashedResource[] = [];
  const removals: string[] = [];
  for (const [name, r] of target) if (peer.get(name) !== r.hash) upserts.push(r);
  for (const name of peer.keys()) if (!target.has(name)) removals.push(name);
  return { upserts: upserts.sort(byName), removals: removals.sort() };
}

/** hashesOf lists name → hash of a resource set, what a proxy's hello carries. */
export function hashesOf(resources: ResourceMap): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, r] of resources) out.set(name, r.hash);
  return out;
}

export function diff(from: ResourceMap, to: ResourceMap): Delta {
  return deltaFromHashes(hashesOf(from), to);
}

/** rootOf computes the root hash of a resource set from scratch. */
export function rootOf(resources: ResourceMap): string {
  const acc = new RootAccumulator(COMPILER_VERSION);
  for (const [name, r] of resources) acc.add(name, r.hash);
  return acc.root();
}

/** apply returns a new resource set: `from` with the delta applied. */
export function apply(from: ResourceMap, delta: Delta): Map<string, HashedResource> {
  const out = new Map(from);
  for (const name of delta.removals) out.delete(name);
  for (const r of delta.upserts) out.set(r.resource.name, r);
  return out;
}

export type ApplyResult = { ok: true; root: string } | { ok: false; reason: string };

/**
 * ResourceSet is a receiver's copy of the resources: it applies deltas in O(changed),
 * re-hashing every upserted resource (a corrupted one is caught here) and keeping the root
 * up to date incrementally. A delta that fails verification leaves the set unchanged.
 */
export class ResourceSet {
  private readonly map = new Map<string, HashedResource>();
  private acc = new RootAccumulator(COMPILER_VERSION);

  get resources(): ResourceMap { return this.map; }
  get root(): string { return this.acc.root(); }
  get size(): number { return this.map.size; }

  /** applyDelta verifies each upsert's hash and the resulting root against expectedRoot. */
  applyDelta(delta: Delta, expectedRoot: string): ApplyResult {
    for (const r of delta.upserts) {
      if (!r || typeof r !== 'object' || !r.resource || typeof r.resource.name !== 'string') return { ok: false, reason: 'malformed resource in delta' };
      if (hashValue(r.resource) !== r.hash) return { ok: false, reason: `resource ${r.resource.name}: content does not match its hash` };
    }
    const acc = this.acc.clone();
    const removed = new Set(delta.removals);
    for (const name of removed) {
      const old = this.map.get(name);
      if (old) acc.remove(name, old.hash);
    }
    const seen = new Set<string>();
    for (const r of delta.upserts) {
      const name = r.resource.name;
      if (seen.has(name)) return { ok: false, reason: `resource ${name} appears twice in delta` };
      seen.add(name);
      const old = removed.has(name) ? undefined : this.map.get(name);
      if (old) acc.remove(name, old.hash);
      acc.add(name, r.hash);
    }
    const root = acc.root();
    if (root !== expectedRoot) return { ok: false, reason: `root mismatch after applying delta: have ${root.slice(0, 12)}, want ${expectedRoot.slice(0, 12)}` };
    for (const name of removed) this.map.delete(name);
    for (const r of delta.upserts) this.map.set(r.resource.name, r);
    this.acc = acc;
    return { ok: true, root };
  }

  /** replaceAll loads a full set (a resync) with the same verification. */
  replaceAll(resources: HashedResource[], expectedRoot: string): ApplyResult {
    const removals = [...this.map.keys()];
    return this.applyDelta({ upserts: resources, removals }, expectedRoot);
  }
}
