/**
 * What the per-kind processors share: the Processor shape (as Contour's internal/dag
 * processors: one per input kind, run in a fixed list by the builder), the context they
 * run in, and the memo of per-object fragments.
 *
 * Invariants:
 * - A fragment is a pure function of one object (parseIngress, parseCanary, the Secret
 *   check), memoised per object version: uid + resourceVersion when the API server set
 *   them, else the object's identity. So a fragment is recomputed only when its object is.
 * - A processor drains its own input set in Pending and only adds to later sets (resources,
 *   statuses). Where it changes a relation, it marks what the relation reached both before
 *   and after the change, so no processor relies on another having run first.
 */
import { memoKey, type KubeObject } from '../objects.ts';
import type { ResolvedOptions } from './options.ts';
import type { ObjectStore, Indexes } from './store.ts';
import type { Pending } from './pending.ts';

/** Processor turns the changed objects of one kind into fragments, index entries and pending work. */
export interface Processor {
  run(): void;
}

export interface StageContext {
  readonly options: ResolvedOptions;
  readonly store: ObjectStore;
  readonly indexes: Indexes;
  readonly pending: Pending;
}

/** FragmentMemo keeps one fragment per object key, for one version of the object. */
export class FragmentMemo<F, O extends KubeObject = KubeObject> {
  private readonly byKey = new Map<string, { version: unknown; fragment: F; source: O }>();

  /** of returns obj's fragment, computed by make only when obj is a version not seen under key. */
  of(key: string, obj: O, make: (obj: O) => F): F {
    const version = memoKey(obj) ?? obj;
    const hit = this.byKey.get(key);
    if (hit && hit.version === version) return hit.fragment;
    const fragment = make(obj);
    this.byKey.set(key, { version, fragment, source: obj });
    return fragment;
  }

  get(key: string): F | undefined {
    return this.byKey.get(key)?.fragment;
  }

  /** source is the object key's fragment was made from (an equal version when the memo hit). */
  source(key: string): O | undefined {
    return this.byKey.get(key)?.source;
  }

  delete(key: string): void {
    this.byKey.delete(key);
  }
}
