/**
 * Stage 0 of the compiler: the object store and the indexes between objects.
 *
 * The store holds the raw objects the compiler was given, by kind and key, exactly as given:
 * nothing here parses or validates. The indexes answer "what does a change to X reach?"
 * without a scan, which is what makes a build cost in proportion to the change.
 *
 * Invariants:
 * - The store holds at most one object per kind and key (`namespace/name`, or `name` for an
 *   IngressClass), the last one set; a deleted object is gone.
 * - Every index is symmetric: `a ∈ to(b)` exactly while a relates to b (for a Relation, the
 *   last set(a, …) held b; for a ManyToOne, of(a) is b; for a ReverseIndex, its writer's
 *   forward side, recomputed from the object or name, holds b).
 *   None keeps an empty set, so a non-empty side means "related to something".
 * - The indexes are written only by the processors (core/compile/*-processor.ts) and by
 *   assembly (core/compile/assemble.ts), each for the relations it documents. A processor's
 *   relations reflect every stored object once the processors have run; assembly's (who
 *   refers to which backend and Secret) reflect the resources once assembly has run, and
 *   until then the previous build's, which is what tells a processor what a change reaches.
 * - Index entries are selections (core/selectors.ts): a superset of what a valid object
 *   uses. The stages that read them filter (a host's build skips an Ingress without a path
 *   on that host).
 */
import type { KubeObject, ObjectKind, IngressClass } from '../objects.ts';
import type { IngressClassLookup } from '../selectors.ts';

const NOTHING: ReadonlySet<string> = new Set();

/** ObjectStore keeps the raw objects by kind and key. */
export class ObjectStore {
  // One field per kind rather than a record indexed by kind: stages read these maps tens of
  // thousands of times per full compile, and a named field is the cheapest load there is.
  private readonly ingresses = new Map<string, KubeObject>();
  private readonly ingressClasses = new Map<string, KubeObject>();
  private readonly services = new Map<string, KubeObject>();
  private readonly slices = new Map<string, KubeObject>();
  private readonly secrets = new Map<string, KubeObject>();
  private readonly canaries = new Map<string, KubeObject>();

  /** classes looks IngressClasses up by name, for the class selector (core/selectors.ts). */
  readonly classes: IngressClassLookup = {
    get: (name) => this.ingressClasses.get(name) as IngressClass | undefined,
    all: () => this.ingressClasses.values() as Iterable<IngressClass>,
  };

  private mapOf(kind: ObjectKind): Map<string, KubeObject> {
    switch (kind) {
      case 'Ingress': return this.ingresses;
      case 'IngressClass': return this.ingressClasses;
      case 'Service': return this.services;
      case 'EndpointSlice': return this.slices;
      case 'Secret': return this.secrets;
      case 'Canary': return this.canaries;
    }
  }

  /** set stores obj and returns whether that changed anything (the same object again does not). */
  set(kind: ObjectKind, key: string, obj: KubeObject): boolean {
    const map = this.mapOf(kind);
    if (map.get(key) === obj) return false;
    map.set(key, obj);
    return true;
  }

  /** delete removes an object and returns whether there was one. */
  delete(kind: ObjectKind, key: string): boolean {
    return this.mapOf(kind).delete(key);
  }

  get<T extends KubeObject = KubeObject>(kind: ObjectKind, key: string): T | undefined {
    return this.mapOf(kind).get(key) as T | undefined;
  }

  has(kind: ObjectKind, key: string): boolean {
    return this.mapOf(kind).has(key);
  }

  keys(kind: ObjectKind): Iterable<string> {
    return this.mapOf(kind).keys();
  }
}

/**
 * Relation is a many-to-many index kept in both directions, for owners whose references are
 * rebuilt as a whole (a virtual host's backends): set() replaces a's side in one call and
 * reports each b gained or lost, which is how a change reaches exactly the resources it
 * must; to(b) lists what relates to b.
 */
export class Relation {
  private readonly forward = new Map<string, Set<string>>();
  private readonly backward = new Map<string, Set<string>>();

  /**
   * set makes a relate to exactly `bs` and takes ownership of that set (it is kept, not
   * copied: indexes are rewritten on every build of a host). onChange(b) runs for every b
   * gained or lost, after both directions are updated.
   */
  set(a: string, bs: Set<string>, onChange?: (b: string) => void): void {
    const before = this.forward.get(a);
    if (bs.size > 0) this.forward.set(a, bs);
    else this.forward.delete(a);
    if (before) {
      for (const b of before) {
        if (bs.has(b)) continue;
        removeFrom(this.backward, b, a);
        onChange?.(b);
      }
    }
    for (const b of bs) {
      if (before?.has(b)) continue;
      addTo(this.backward, b, a);
      onChange?.(b);
    }
  }

  /** to lists what relates to b. */
  to(b: string): ReadonlySet<string> {
    return this.backward.get(b) ?? NOTHING;
  }
}

/**
 * ReverseIndex keeps only the "what relates to b?" side of a relation. Its writer knows the
 * forward side without storing it (from the object it selected from, or from a resource
 * name), so there is no set per object: at 10k Ingresses and 20k backends those sets were
 * several megabytes the garbage collector walked on every full compile.
 */
export class ReverseIndex {
  private readonly byTarget = new Map<string, Set<string>>();

  /** add relates a to b. */
  add(a: string, b: string): void {
    addTo(this.byTarget, b, a);
  }

  /** remove unrelates a from b. */
  remove(a: string, b: string): void {
    removeFrom(this.byTarget, b, a);
  }

  /** to lists what relates to b. */
  to(b: string): ReadonlySet<string> {
    return this.byTarget.get(b) ?? NOTHING;
  }
}

/**
 * ManyToOne is a Relation where each a relates to at most one b (an EndpointSlice to its
 * Service), kept without a set per a: the compiler holds tens of thousands of these.
 */
export class ManyToOne {
  private readonly forward = new Map<string, string>();
  private readonly backward = new Map<string, Set<string>>();

  /** set makes a relate to b only, or to nothing when b is undefined. */
  set(a: string, b: string | undefined): void {
    const before = this.forward.get(a);
    if (before === b) return;
    if (before !== undefined) removeFrom(this.backward, before, a);
    if (b === undefined) { this.forward.delete(a); return; }
    this.forward.set(a, b);
    addTo(this.backward, b, a);
  }

  /** of is what a relates to. */
  of(a: string): string | undefined {
    return this.forward.get(a);
  }

  /** to lists what relates to b. */
  to(b: string): ReadonlySet<string> {
    return this.backward.get(b) ?? NOTHING;
  }
}

function addTo(map: Map<string, Set<string>>, key: string, value: string): void {
  let set = map.get(key);
  if (!set) { set = new Set(); map.set(key, set); }
  set.add(value);
}

function removeFrom(map: Map<string, Set<string>>, key: string, value: string): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}

/**
 * Indexes are the relations between objects the compiler keeps, each named by what it
 * answers. Keys are `namespace/name`; hosts are as Ingress rules write them, `*` for none.
 */
export class Indexes {
  /** Vane's Ingresses → the hosts their rules name (core/selectors.ts hostsOfIngress). Written by the Ingress processor. */
  readonly ingressHosts = new ReverseIndex();
  /** Vane's Ingresses → the Services they route to: their statuses say whether each exists. Ingress processor. */
  readonly ingressServices = new ReverseIndex();
  /** Canaries → the Ingress they split. Canary processor. */
  readonly canaryIngress = new ManyToOne();
  /** Canaries → their canary Service: their statuses say whether it exists. Canary processor. */
  readonly canaryServices = new ManyToOne();
  /** EndpointSlices → their Service (label kubernetes.io/service-name). Service processor. */
  readonly sliceService = new ManyToOne();
  /** Vane's Ingresses with a spec.defaultBackend: candidates for the listener's default route. Ingress processor. */
  readonly withDefaultBackend = new Set<string>();
  /** Vane's Ingresses with a host-less spec.tls entry naming a Secret: candidates for the default certificate. Ingress processor. */
  readonly withHostlessTls = new Set<string>();
  /** Owners (`vhost/…`, the listener) → the backend resources they route to. Assembly. */
  readonly backendUsers = new Relation();
  /** Owners → the Secret keys they read a certificate from. Assembly. */
  readonly secretUsers = new Relation();
  /** Backend resources in use → their Service key; `to(service)` is what a Service change reaches. Assembly. */
  readonly backendService = new ReverseIndex();
}
