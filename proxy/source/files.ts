/**
 * FileSource: routing resources compiled from a directory of manifests, recompiled when
 * the directory changes. Bursts of file events are coalesced (applied after `debounceMs`
 * of quiet, never held off longer than `maxHoldoffMs`, as Contour does for watch events).
 *
 * A change that brings in new errors — unreadable or malformed files, or objects `vane
 * validate` would reject — is refused: the problems are logged with the very lines
 * `vane validate` prints and the last good resource set keeps serving. Errors already
 * present in the serving set do not block unrelated changes.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  Compiler, diff, kindOf, objectKey, formatProblem,
  type CompileOptions, type HashedResource, type ObjectKind, type KubeObject,
} from '../../core/index.ts';
import { loadManifests } from '../../lib/manifests.ts';
import type { Logger } from '../../lib/log.ts';
import type { RoutingSource, RoutingUpdate } from './source.ts';

export interface FileSourceOptions {
  dir: string;
  compile: CompileOptions;
  debounceMs: number;
  maxHoldoffMs: number;
  logger: Logger;
}

interface Known { kind: ObjectKind; key: string; text: string }

export class FileSource implements RoutingSource {
  private readonly options: FileSourceOptions;
  private readonly compiler: Compiler;
  /** What the compiler currently holds, by `Kind/namespace/name`, as canonical-enough JSON text. */
  private readonly known = new Map<string, Known>();
  private published: Map<string, HashedResource> | null = null;
  private publishedErrors = new Set<string>();
  private generation = 0;
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | null = null;
  private burstStartedAt = 0;
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;
  private onUpdate: ((update: RoutingUpdate) => void) | null = null;

  constructor(options: FileSourceOptions) {
    this.options = options;
    this.compiler = new Compiler(options.compile);
  }

  async start(onUpdate: (update: RoutingUpdate) => void): Promise<void> {
    this.onUpdate = onUpdate;
    await this.reload();
    if (this.closed) return;
    await this.syncWatchers();
  }

  /** syncWatchers watches every directory under dir (hidden ones excepted, as the loader skips them). */
  private async syncWatchers(): Promise<void> {
    const dirs = new Set([this.options.dir]);
    try {
      for (const e of await readdir(this.options.dir, { recursive: true, withFileTypes: true })) {
        const path = join(e.parentPath, e.name);
        if (e.isDirectory() && !path.slice(this.options.dir.length).split('/').some((part) => part.startsWith('.'))) dirs.add(path);
      }
    } catch (err) {
      this.options.logger.error({ dir: this.options.dir, err: (err as Error).message }, 'listing the manifest directory failed');
    }
    if (this.closed) return;
    for (const [path, w] of this.watchers) if (!dirs.has(path)) { w.close(); this.watchers.delete(path); }
    for (const path of dirs) {
      if (this.watchers.has(path)) continue;
      try {
        const w = watch(path, () => this.schedule());
        w.on('error', () => { w.close(); this.watchers.delete(path); });
        this.watchers.set(path, w);
      } catch (err) {
        this.options.logger.error({ dir: path, err: (err as Error).message }, 'watching a manifest directory failed');
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private schedule(): void {
    if (this.closed) return;
    const now = Date.now();
    if (!this.timer) this.burstStartedAt = now;
    else clearTimeout(this.timer);
    const holdoffLeft = this.options.maxHoldoffMs - (now - this.burstStartedAt);
    this.timer = setTimeout(() => { this.timer = null; this.kick(); }, Math.max(0, Math.min(this.options.debounceMs, holdoffLeft)));
  }

  private kick(): void {
    if (this.running) { this.again = true; return; }
    this.running = this.reload()
      .then(() => this.syncWatchers())
      .catch((err: Error) => this.options.logger.error({ dir: this.options.dir, err: err.message }, 'reloading manifests failed; the last good routing keeps serving'))
      .finally(() => {
        this.running = null;
        if (this.again && !this.closed) { this.again = false; this.kick(); }
      });
  }

  /** reload reads the directory, feeds the compiler what changed and publishes a good result. */
  private async reload(): Promise<void> {
    const manifests = await loadManifests([this.options.dir]);
    const fileOf = new Map<string, string>();
    const seen = new Set<string>();
    for (const { object, file } of manifests.objects) {
      const kind = kindOf(object);
      if (!kind) continue;
      const key = objectKey(kind, object);
      const id = `${kind}/${key}`;
      seen.add(id);
      fileOf.set(id, file);
      const text = JSON.stringify(object);
      if (this.known.get(id)?.text === text) continue;
      this.known.set(id, { kind, key, text });
      this.compiler.set(object as KubeObject);
    }
    for (const [id, k] of this.known) {
      if (seen.has(id)) continue;
      this.known.delete(id);
      this.compiler.delete(k.kind, k.key);
    }
    const result = this.compiler.build();

    const errors = new Set<string>();
    const log = this.options.logger;
    for (const e of manifests.errors) errors.add(`${e.file}: ${e.message}`);
    if (manifests.files.length === 0 && manifests.errors.length === 0) errors.add(`no manifest files (.yaml, .yml, .json) under ${this.options.dir}`);
    for (const status of result.statuses.values()) {
      const file = fileOf.get(`${status.kind}/${status.key}`) ?? this.options.dir;
      const label = `${status.kind} ${status.key}`;
      for (const p of status.problems) {
        if (p.severity === 'error') errors.add(`${file}: ${label}: ${formatProblem(p)}`);
        else log.warn({ file, object: label, reason: p.reason }, `${file}: warning: ${label}: ${formatProblem(p)}`);
      }
    }
    const fresh = [...errors].filter((e) => !this.publishedErrors.has(e));
    for (const line of errors) log.error({ dir: this.options.dir }, line);
    if (this.published && fresh.length > 0) {
      log.error({ dir: this.options.dir, newErrors: fresh.length }, 'manifests have new errors; the last good routing keeps serving');
      return;
    }
    const delta = diff(this.published ?? new Map(), result.resources);
    if (this.published && delta.upserts.length === 0 && delta.removals.length === 0) { this.publishedErrors = errors; return; }
    this.published = new Map(result.resources);
    this.publishedErrors = errors;
    this.generation++;
    log.info({ generation: this.generation, root: result.root.slice(0, 12), upserts: delta.upserts.length, removals: delta.removals.length }, 'routing updated from files');
    this.onUpdate?.({
      resources: this.published,
      changed: { upserts: delta.upserts.map((r) => r.resource.name), removals: delta.removals },
      root: result.root,
      generation: this.generation,
    });
  }
}
