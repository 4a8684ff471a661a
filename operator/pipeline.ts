/**
 * The operator's pipeline: object changes in, versions of the routing resources out.
 * Changes are coalesced by lib/coalesce.ts (a rebuild after `quietMs` of quiet, never held
 * off longer than `maxHoldMs`); each rebuild that changes any resource becomes a version
 * whose generation only grows — across restarts and leaders too, because it is at least
 * the wall clock in milliseconds and above every generation a proxy has reported.
 */
import { Compiler, type CompileOptions, type KubeObject, type ObjectKind, type ResourceMap, type ObjectStatus } from '../core/index.ts';
import { Coalescer } from '../lib/coalesce.ts';

export interface RoutingVersion {
  generation: number;
  root: string;
  /** This version's resources; never changes after publication. */
  resources: ResourceMap;
  /** Resource names changed since the previous version (all of them for the first). */
  changed: { upserts: string[]; removals: string[] };
  previousRoot: string | null;
  /** When the first object change folded into this version arrived (ms since epoch). */
  changeStartedAt: number;
  builtAt: number;
  compileMs: number;
}

export interface PipelineOptions {
  compile?: CompileOptions;
  quietMs?: number;
  maxHoldMs?: number;
  now?: () => number;
  onVersion: (version: RoutingVersion) => void;
  onStatuses?: (statuses: ReadonlyMap<string, ObjectStatus>) => void;
}

export class Pipeline {
  private readonly compiler: Compiler;
  private readonly options: Pick<Required<PipelineOptions>, 'now' | 'onVersion'> & Pick<PipelineOptions, 'onStatuses'>;
  private readonly coalescer: Coalescer;
  private lastVersion: RoutingVersion | null = null;
  private generationFloor = 0;

  constructor(options: PipelineOptions) {
    this.compiler = new Compiler(options.compile);
    this.options = { now: options.now ?? Date.now, onVersion: options.onVersion, onStatuses: options.onStatuses };
    this.coalescer = new Coalescer({
      ...(options.quietMs !== undefined ? { quietMs: options.quietMs } : {}),
      ...(options.maxHoldMs !== undefined ? { maxHoldMs: options.maxHoldMs } : {}),
      now: this.options.now,
    }, (since) => this.build(since));
  }

  get current(): RoutingVersion | null { return this.lastVersion; }

  set(obj: KubeObject): void { this.compiler.set(obj); this.coalescer.changed(); }
  delete(kind: ObjectKind, key: string): void { this.compiler.delete(kind, key); this.coalescer.changed(); }

  /**
   * reissueAbove publishes the current content again as a version above `generation`, which a
   * proxy holds: proxies refuse any version below theirs, so a proxy whose last leader's clock
   * ran ahead of this one's would otherwise refuse every version until a change came with a
   * generation above its own. Every later version is above it too; without a current version,
   * the first one will be.
   */
  reissueAbove(generation: number): void {
    this.generationFloor = Math.max(this.generationFloor, generation);
    const last = this.lastVersion;
    if (!last || last.generation > generation) return;
    const now = this.options.now();
    const version: RoutingVersion = {
      ...last, generation: this.nextGeneration(now), changed: { upserts: [], removals: [] }, previousRoot: last.root, changeStartedAt: now, builtAt: now, compileMs: 0,
    };
    this.lastVersion = version;
    this.options.onVersion(version);
  }

  /** flush builds now, without waiting for the quiet period. */
  flush(): RoutingVersion | null {
    return this.build(this.coalescer.take());
  }

  private build(burstStartedAt: number): RoutingVersion | null {
    const started = this.options.now();
    const changeStartedAt = burstStartedAt || started;
    const t0 = performance.now();
    const result = this.compiler.build();
    const compileMs = performance.now() - t0;
    this.options.onStatuses?.(result.statuses);
    const first = this.lastVersion === null;
    if (!first && result.changed.upserts.length === 0 && result.changed.removals.length === 0) return null;
    const version: RoutingVersion = {
      generation: this.nextGeneration(started),
      root: result.root,
      resources: new Map(result.resources),
      changed: first ? { upserts: [...result.resources.keys()].sort(), removals: [] } : result.changed,
      previousRoot: this.lastVersion?.root ?? null,
      changeStartedAt,
      builtAt: this.options.now(),
      compileMs,
    };
    this.lastVersion = version;
    this.options.onVersion(version);
    return version;
  }

  private nextGeneration(now: number): number {
    return Math.max(now, (this.lastVersion?.generation ?? 0) + 1, this.generationFloor + 1);
  }

  close(): void {
    this.coalescer.close();
  }
}
