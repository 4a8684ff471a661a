/**
 * The snapshot: every resource by name with its hash, the root hash over them, and what
 * changed since the previous build. Assembly is its only writer (put, drop); build() reads
 * it and takes the changes once per build.
 *
 * Invariants:
 * - `root` is always the root of exactly the resources held (core/canonical.ts,
 *   RootAccumulator), updated in O(1) per put or drop.
 * - A resource's hash is SHA-256 of its canonical JSON. Assembly builds every resource with
 *   its keys already in canonical order, so put() hashes without re-sorting (hashOrdered);
 *   the incremental property test holds each hash to hashValue().
 * - For each name put or dropped since takeChanges(), the hash it had before the first such
 *   call is remembered (null: it did not exist), so a resource changed and changed back is no
 *   change.
 */
import type { Resource, HashedResource } from '../resources.ts';
import { hashOrdered, RootAccumulator } from '../canonical.ts';

export class Snapshot {
  readonly resources = new Map<string, HashedResource>();
  private readonly rootHash: RootAccumulator;
  private before = new Map<string, string | null>();

  constructor(compilerVersion: string) {
    this.rootHash = new RootAccumulator(compilerVersion);
  }

  root(): string {
    return this.rootHash.root();
  }

  /** put stores a resource built with its keys in canonical order. */
  put(input: Resource): void {
    const resource = { name: input.name, spec: input.spec, type: input.type } as Resource;
    const hash = hashOrdered(resource);
    const old = this.resources.get(resource.name);
    if (old?.hash === hash) return;
    if (!this.before.has(resource.name)) this.before.set(resource.name, old?.hash ?? null);
    if (old) this.rootHash.remove(resource.name, old.hash);
    this.rootHash.add(resource.name, hash);
    this.resources.set(resource.name, { resource, hash });
  }

  /** drop removes a resource; unknown names are a no-op. */
  drop(name: string): void {
    const old = this.resources.get(name);
    if (!old) return;
    if (!this.before.has(name)) this.before.set(name, old.hash);
    this.rootHash.remove(name, old.hash);
    this.resources.delete(name);
  }

  /** takeChanges lists, sorted, the names upserted and removed since the last call. */
  takeChanges(): { upserts: string[]; removals: string[] } {
    const upserts: string[] = [];
    const removals: string[] = [];
    for (const [name, hash] of this.before) {
      const now = this.resources.get(name);
      if (now && now.hash !== hash) upserts.push(name);
      else if (!now && hash !== null) removals.push(name);
    }
    this.before = new Map();
    return { upserts: upserts.sort(), removals: removals.sort() };
  }
}
