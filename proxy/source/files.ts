/**
 * FileSource: routing resources compiled from manifest files, recompiled as they change.
 * Watching, coalescing, parsing and the invalid-input policy are lib/manifest-watch.ts's,
 * shared with the operator's file source: an invalid object loses its routes with a logged
 * problem (the very line `vane validate` prints) and everything else applies; a file that
 * turns unparseable keeps its last good objects until it is fixed.
 */
import { Compiler, diff, type CompileOptions, type HashedResource } from '../../core/index.ts';
import { ManifestWatcher, type ObjectChanges } from '../../lib/manifest-watch.ts';
import { ProblemLog } from '../../lib/manifests.ts';
import type { Logger } from '../../lib/log.ts';
import type { RoutingSource, RoutingUpdate } from './source.ts';

export interface FileSourceOptions {
  /** Files or directories of manifests. */
  paths: string[];
  compile: CompileOptions;
  logger: Logger;
  quietMs?: number;
  maxHoldMs?: number;
}

export class FileSource implements RoutingSource {
  private readonly compiler: Compiler;
  private readonly watcher: ManifestWatcher;
  private readonly logger: Logger;
  private readonly problems: ProblemLog;
  private files: ReadonlyMap<string, string> = new Map();
  private published: Map<string, HashedResource> | null = null;
  private generation = 0;

  constructor(options: FileSourceOptions) {
    this.compiler = new Compiler(options.compile);
    this.logger = options.logger;
    this.watcher = new ManifestWatcher({
      paths: options.paths, logger: options.logger,
      ...(options.quietMs !== undefined ? { quietMs: options.quietMs } : {}),
      ...(options.maxHoldMs !== undefined ? { maxHoldMs: options.maxHoldMs } : {}),
    });
    this.problems = new ProblemLog(options.logger, (kind, key) => this.files.get(`${kind}/${key}`));
  }

  start(onUpdate: (update: RoutingUpdate) => void): Promise<void> {
    return this.watcher.start((changes) => this.apply(changes, onUpdate));
  }

  close(): Promise<void> { return this.watcher.close(); }

  /** apply feeds the compiler what changed and publishes the result when any resource differs. */
  private apply(changes: ObjectChanges, onUpdate: (update: RoutingUpdate) => void): void {
    this.files = changes.files;
    for (const obj of changes.set) this.compiler.set(obj);
    for (const d of changes.deleted) this.compiler.delete(d.kind, d.key);
    const result = this.compiler.build();
    this.problems.report(result.statuses);
    const delta = diff(this.published ?? new Map(), result.resources);
    if (this.published && delta.upserts.length === 0 && delta.removals.length === 0) return;
    this.published = new Map(result.resources);
    this.generation++;
    this.logger.info({ generation: this.generation, root: result.root.slice(0, 12), upserts: delta.upserts.length, removals: delta.removals.length }, 'routing updated from files');
    onUpdate({
      resources: this.published,
      changed: { upserts: delta.upserts.map((r) => r.resource.name), removals: delta.removals },
      root: result.root,
      generation: this.generation,
    });
  }
}
