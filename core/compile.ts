/**
 * compile(): Kubernetes objects → hashed routing resources + per-object statuses.
 *
 * The Compiler is the builder of Contour's internal/dag, made incremental. set() and
 * delete() only store the object and note it in Pending; build() then runs the stages, each
 * in its own file with its invariants at the top:
 *
 *   1. processors, one per input kind (compile/ingress-, canary-, secret-, service-processor.ts):
 *      changed objects → memoised per-object fragments, the indexes between objects
 *      (compile/store.ts), and the hosts, resources and statuses the change reaches;
 *   2. assembly (compile/assemble.ts): virtual hosts and the listener, then the secrets,
 *      backends and endpoints they refer to, into the snapshot (compile/snapshot.ts);
 *   3. statuses (compile/status.ts), which read what assembly found (host conflicts, TLS);
 *   4. the delta: what the snapshot's resources changed since the previous build().
 *
 * Each stage only adds work for the stages after it (compile/pending.ts), so one pass in
 * this order leaves nothing pending. A full compile is a fresh Compiler given every object;
 * the property test in tests/unit/core/compile-incremental.test.ts holds the incremental path
 * to exactly that.
 */
import { kindOf, objectKey, type KubeObject, type ObjectKind } from './objects.ts';
import type { HashedResource } from './resources.ts';
import { resolveOptions, type CompileOptions, type ResolvedOptions } from './compile/options.ts';
import { ObjectStore, Indexes } from './compile/store.ts';
import { Pending } from './compile/pending.ts';
import { Snapshot } from './compile/snapshot.ts';
import type { Processor, StageContext } from './compile/processor.ts';
import { IngressProcessor } from './compile/ingress-processor.ts';
import { CanaryProcessor } from './compile/canary-processor.ts';
import { SecretProcessor } from './compile/secret-processor.ts';
import { ServiceProcessor } from './compile/service-processor.ts';
import { Assembler } from './compile/assemble.ts';
import { StatusStage, type ObjectStatus } from './compile/status.ts';

export type { CompileOptions, ObjectStatus };

/** COMPILER_VERSION is part of the root hash: a compiler change is a content change. */
export const COMPILER_VERSION = 'vane-compiler/1';

export interface CompileResult {
  /** Every resource by name. A live, read-only view: the next build() changes it. */
  resources: ReadonlyMap<string, HashedResource>;
  root: string;
  /** Statuses of Vane's Ingresses and of every Canary, by `Kind/namespace/name`. Live view, as resources. */
  statuses: ReadonlyMap<string, ObjectStatus>;
  /** Names upserted and removed since the previous build(). */
  changed: { upserts: string[]; removals: string[] };
}

export class Compiler {
  private readonly context: StageContext & { options: ResolvedOptions };
  private readonly processors: readonly Processor[];
  private readonly snapshot = new Snapshot(COMPILER_VERSION);
  private readonly assembler: Assembler;
  private readonly status: StatusStage;

  constructor(options: CompileOptions = {}) {
    const context = { options: resolveOptions(options), store: new ObjectStore(), indexes: new Indexes(), pending: new Pending() };
    this.context = context;
    const ingresses = new IngressProcessor(context);
    const canaries = new CanaryProcessor(context, ingresses.vane);
    const secrets = new SecretProcessor(context);
    this.processors = [ingresses, canaries, secrets, new ServiceProcessor(context)];
    const fragments = {
      ingresses: ingresses.vane,
      canary: (key: string) => canaries.fragment(key),
      secretVerdict: (key: string) => secrets.verdict(key),
    };
    this.assembler = new Assembler(context, fragments, this.snapshot);
    this.status = new StatusStage(context, fragments, this.assembler.hostProblems);
  }

  /** set adds or replaces an object; objects of kinds compile() does not read are ignored. */
  set(obj: KubeObject): void {
    const kind = kindOf(obj);
    if (!kind) return;
    const key = objectKey(kind, obj);
    if (this.context.store.set(kind, key, obj)) this.note(kind, key);
  }

  /** delete removes an object by kind and key (`namespace/name`); unknown keys are a no-op. */
  delete(kind: ObjectKind, key: string): void {
    if (this.context.store.delete(kind, key)) this.note(kind, key);
  }

  private note(kind: ObjectKind, key: string): void {
    const { pending } = this.context;
    switch (kind) {
      case 'Ingress': pending.ingresses.add(key); break;
      case 'IngressClass': pending.classes = true; break;
      case 'Canary': pending.canaries.add(key); break;
      case 'Secret': pending.secrets.add(key); break;
      case 'Service': pending.services.add(key); break;
      case 'EndpointSlice': pending.slices.add(key); break;
    }
  }

  /** build brings resources and statuses up to date with every set()/delete() so far. */
  build(): CompileResult {
    for (const processor of this.processors) processor.run();
    this.assembler.run();
    this.status.run();
    return {
      resources: this.snapshot.resources,
      root: this.snapshot.root(),
      statuses: this.status.statuses,
      changed: this.snapshot.takeChanges(),
    };
  }
}

/** compile is the whole pipeline in one call: a fresh Compiler given every object. */
export function compile(objects: Iterable<KubeObject>, options: CompileOptions = {}): CompileResult {
  const compiler = new Compiler(options);
  for (const obj of objects) compiler.set(obj);
  const result = compiler.build();
  return { ...result, resources: new Map(result.resources), statuses: new Map(result.statuses) };
}
