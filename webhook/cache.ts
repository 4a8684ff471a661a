/**
 * ObjectCache: the cluster as the webhook sees it, for the verdicts that depend on other
 * objects (missing Services, conflicts). The operator's informer cache implements it in a
 * cluster; MemoryObjectCache is the in-process list for files and tests.
 */
import { kindOf, type KubeObject, type ObjectKind } from '../core/index.ts';

export interface ObjectCache {
  /** get returns one object; namespace is '' for cluster-scoped kinds (IngressClass). */
  get(kind: ObjectKind, namespace: string, name: string): KubeObject | undefined;
  /** list returns every object of a kind, or those of one namespace. */
  list(kind: ObjectKind, namespace?: string): Iterable<KubeObject>;
  /** synced is false while the cache is still loading: cross-object warnings are then left out rather than guessed. */
  synced?(): boolean;
}

function keyOf(kind: ObjectKind, namespace: string, name: string): string {
  return kind === 'IngressClass' ? name : `${namespace || 'default'}/${name}`;
}

/**
 * MemoryObjectCache holds objects by kind and key (`namespace/name`, or `name` for
 * IngressClass); objects of other kinds are ignored. Its set/delete are the operator's
 * ObjectSink, so a KubeObjectSource can fill it: start it with { synced: false } and call
 * markSynced() once the source has delivered its first full view.
 */
export class MemoryObjectCache implements ObjectCache {
  private readonly byKind = new Map<ObjectKind, Map<string, KubeObject>>();
  private ready: boolean;

  constructor(objects: Iterable<KubeObject> = [], options: { synced?: boolean } = {}) {
    for (const obj of objects) this.set(obj);
    this.ready = options.synced ?? true;
  }

  set(obj: KubeObject): void {
    const kind = kindOf(obj);
    const name = obj.metadata?.name;
    if (!kind || typeof name !== 'string') return;
    let map = this.byKind.get(kind);
    if (!map) { map = new Map(); this.byKind.set(kind, map); }
    map.set(keyOf(kind, obj.metadata?.namespace ?? '', name), obj);
  }

  /** delete removes an object by kind and key, as objectKey() spells it. */
  delete(kind: ObjectKind, key: string): void {
    this.byKind.get(kind)?.delete(key);
  }

  get(kind: ObjectKind, namespace: string, name: string): KubeObject | undefined {
    return this.byKind.get(kind)?.get(keyOf(kind, namespace, name));
  }

  *list(kind: ObjectKind, namespace?: string): Iterable<KubeObject> {
    for (const [key, obj] of this.byKind.get(kind) ?? []) {
      if (namespace === undefined || key.startsWith(`${namespace || 'default'}/`)) yield obj;
    }
  }

  synced(): boolean {
    return this.ready;
  }

  markSynced(): void {
    this.ready = true;
  }
}
