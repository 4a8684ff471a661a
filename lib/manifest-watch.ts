/**
 * ManifestWatcher is file mode's one manifest pipeline, for the proxy (`vane proxy
 * --from-files`) and the operator (`vane operator --from-files`, `vane up`). It watches files
 * and directories, coalesces bursts of events (lib/coalesce.ts), reads and parses each
 * changed file on its own (lib/manifests.ts), and hands on object-level changes — the shape
 * a Kubernetes watch gives — so a compiler fed from it rebuilds only what an edit reaches.
 *
 * The policy, one for both components:
 * - Objects that parse go on to the compiler, valid or not. It drops an invalid object's
 *   routes with a problem (its status; ProblemLog logs it) and applies the rest, exactly as
 *   for objects from the API server.
 * - A file that cannot be taken as a whole — unreadable, over the size limit, malformed YAML
 *   or JSON, an alias bomb, nested too deep — is logged with its problem, and the objects it
 *   last gave keep applying until it is fixed or removed: a half-saved edit must not take
 *   routes down ("the last good configuration keeps serving"). A file bad since the start
 *   gives nothing. Other files keep applying meanwhile.
 * - A removed file's objects are deleted; a directory that cannot be listed keeps its
 *   files' objects, since what it holds is unknown, not gone.
 * - An object defined in two files is taken from the first in path order; the other copy
 *   is dropped with a problem naming both files.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { dirname, sep } from 'node:path';
import { clip, kindOf, objectKey, type KubeObject, type ObjectKind } from '../core/index.ts';
import { Coalescer, type CoalesceOptions } from './coalesce.ts';
import { listManifestFiles, readManifest, parseManifestText, fileProblemLine, NO_MANIFESTS, type ManifestError } from './manifests.ts';
import type { Logger } from './log.ts';

export interface ObjectChanges {
  /** Objects added or changed since the last changes. */
  set: KubeObject[];
  deleted: { kind: ObjectKind; key: string }[];
  /** The file each current object comes from, by `Kind/key`. */
  files: ReadonlyMap<string, string>;
}

export interface ManifestWatcherOptions extends Partial<Pick<CoalesceOptions, 'quietMs' | 'maxHoldMs'>> {
  /** Files or directories, as `kubectl apply -f` takes them. */
  paths: string[];
  logger: Logger;
}

interface Item { kind: ObjectKind; key: string; id: string; object: KubeObject; text: string }

interface FileEntry {
  /** Hash of the text last read ('' when it could not be read), so an unchanged file is not parsed again. */
  hash: string;
  /** The objects of its last good version. */
  items: Item[];
  /** Why its current text is not applied; null when it is. */
  problems: ManifestError[] | null;
}

function itemsOf(objects: KubeObject[]): Item[] {
  const items: Item[] = [];
  for (const object of objects) {
    const kind = kindOf(object);
    if (!kind) continue;
    const key = objectKey(kind, object);
    items.push({ kind, key, id: `${kind}/${key}`, object, text: JSON.stringify(object) });
  }
  return items;
}

export class ManifestWatcher {
  private readonly paths: string[];
  private readonly logger: Logger;
  private readonly coalescer: Coalescer;
  private readonly entries = new Map<string, FileEntry>();
  /** What the consumer holds, by `Kind/key`. */
  private readonly known = new Map<string, Item>();
  private readonly watchers = new Map<string, FSWatcher>();
  private logged = new Set<string>();
  private onChanges: ((changes: ObjectChanges) => void) | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(options: ManifestWatcherOptions) {
    this.paths = options.paths;
    this.logger = options.logger;
    this.coalescer = new Coalescer(options, () => this.kick());
  }

  /** start reads the paths once (resolving after the first onChanges) and then watches them. */
  async start(onChanges: (changes: ObjectChanges) => void): Promise<void> {
    this.onChanges = onChanges;
    this.running = this.cycle();
    await this.running;
    this.running = null;
    if (this.again && !this.closed) { this.again = false; this.kick(); }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.coalescer.close();
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    await this.running;
  }

  private kick(): void {
    if (this.closed) return;
    if (this.running) { this.again = true; return; }
    this.running = this.cycle()
      .catch((err: Error) => this.logger.error({ paths: this.paths, err: err.message }, 'reading manifests failed; what was applied keeps applying'))
      .finally(() => {
        this.running = null;
        if (this.again && !this.closed) { this.again = false; this.kick(); }
      });
  }

  private async cycle(): Promise<void> {
    const { changes, dirs } = await this.read();
    if (this.closed) return;
    this.syncWatchers(dirs);
    this.onChanges?.(changes);
  }

  /** syncWatchers watches every directory read (and the one holding each path named directly). */
  private syncWatchers(dirs: Set<string>): void {
    for (const [path, w] of this.watchers) if (!dirs.has(path)) { w.close(); this.watchers.delete(path); }
    for (const path of dirs) {
      if (this.watchers.has(path)) continue;
      try {
        const w = watch(path, () => this.coalescer.changed());
        // A removed directory's watcher fails; the next read finds whether it came back.
        w.on('error', () => { w.close(); this.watchers.delete(path); this.coalescer.changed(); });
        this.watchers.set(path, w);
      } catch (err) {
        this.logger.error({ dir: path, err: (err as Error).message }, `${path}: cannot watch: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
  }

  private async read(): Promise<{ changes: ObjectChanges; dirs: Set<string> }> {
    const listing = await listManifestFiles(this.paths);
    const problems: ManifestError[] = [...listing.errors];
    const dirs = new Set(listing.dirs);
    for (const p of this.paths) if (!listing.dirs.includes(p)) dirs.add(dirname(p));

    const unknown = (file: string) => listing.unlisted.some((p) => file === p || file.startsWith(p + sep));
    const order = [...listing.files];
    const listed = new Set(listing.files);
    for (const file of this.entries.keys()) {
      if (listed.has(file)) continue;
      if (unknown(file)) order.push(file); else this.entries.delete(file);
    }

    for (const file of listing.files) {
      const read = await readManifest(file);
      if ('gone' in read) { this.entries.delete(file); continue; }
      const previous = this.entries.get(file);
      if ('error' in read) { this.entries.set(file, { hash: '', items: previous?.items ?? [], problems: [read.error] }); continue; }
      const hash = createHash('sha256').update(read.text).digest('base64');
      if (previous?.hash === hash) continue;
      const parsed = parseManifestText(read.text, file);
      this.entries.set(file, parsed.errors.length > 0
        ? { hash, items: previous?.items ?? [], problems: parsed.errors }
        : { hash, items: itemsOf(parsed.objects.map((o) => o.object)), problems: null });
    }

    const files = new Map<string, string>();
    const current = new Map<string, Item>();
    for (const file of order) {
      const entry = this.entries.get(file);
      if (!entry) continue;
      if (entry.problems) {
        problems.push(...entry.problems);
        problems.push({ file, message: entry.items.length > 0 ? `not applied; the ${entry.items.length} object(s) of its last good version keep applying` : 'not applied' });
      }
      for (const item of entry.items) {
        const first = files.get(item.id);
        if (first !== undefined) { problems.push({ file, message: `${item.kind} ${clip(item.key)}: also defined in ${first}; this copy is ignored` }); continue; }
        files.set(item.id, file);
        current.set(item.id, item);
      }
    }
    if (listing.files.length === 0 && listing.errors.length === 0) problems.push({ file: this.paths.join(', '), message: NO_MANIFESTS });

    const set: KubeObject[] = [];
    for (const [id, item] of current) {
      if (this.known.get(id)?.text === item.text) continue;
      this.known.set(id, item);
      set.push(item.object);
    }
    const deleted: { kind: ObjectKind; key: string }[] = [];
    for (const [id, item] of this.known) {
      if (current.has(id)) continue;
      this.known.delete(id);
      deleted.push({ kind: item.kind, key: item.key });
    }
    this.logProblems(problems);
    return { changes: { set, deleted, files }, dirs };
  }

  /** logProblems logs each file problem once, when it appears, not on every read while it stays. */
  private logProblems(problems: ManifestError[]): void {
    const now = new Set<string>();
    for (const p of problems) {
      const line = fileProblemLine(p);
      if (now.has(line)) continue;
      now.add(line);
      if (!this.logged.has(line)) this.logger.error({ file: p.file }, line);
    }
    this.logged = now;
  }
}
