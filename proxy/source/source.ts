/**
 * RoutingSource: where a proxy's routing resources come from. The file source compiles a
 * directory itself; the operator stream (a later mode) receives the same resources over
 * WebSocket. Everything downstream of this interface is shared by both.
 */
import type { HashedResource, ResourceMap } from '../../core/index.ts';

export interface RoutingUpdate {
  /** The complete resource set after this update: a read-only view, valid until the next update. */
  resources: ResourceMap;
  /** Names whose resources were upserted or removed relative to the previous update. */
  changed: { upserts: string[]; removals: string[] };
  /** Root hash of `resources` (core's RootAccumulator). */
  root: string;
  /** Only ever grows; a proxy never moves to a lower generation. */
  generation: number;
}

export interface RoutingSource {
  /**
   * start begins delivering updates; the first one is a full set. It resolves once that one
   * was delivered. onUpdate may return a promise that settles when the update is being
   * served; a source that acknowledges updates (the operator stream) waits for it.
   */
  start(onUpdate: (update: RoutingUpdate) => void | Promise<void>): Promise<void>;
  close(): Promise<void>;
}

/** WireDelta is what the primary sends a worker: only what changed, whole resources. */
export interface WireDelta {
  upserts: HashedResource[];
  removals: string[];
  root: string;
  generation: number;
  /** True for a full set: the worker drops everything it had. */
  full: boolean;
}

/** toWireDelta picks the upserted resources out of an update. */
export function toWireDelta(update: RoutingUpdate, full: boolean): WireDelta {
  const upserts: HashedResource[] = [];
  if (full) for (const r of update.resources.values()) upserts.push(r);
  else for (const name of update.changed.upserts) { const r = update.resources.get(name); if (r) upserts.push(r); }
  return { upserts, removals: full ? [] : update.changed.removals, root: update.root, generation: update.generation, full };
}
