/**
 * ManifestWatcher turns a directory of manifests into object-level changes, the same shape
 * a Kubernetes watch gives: objects set (added or changed) and objects deleted, by kind and
 * key. Only objects whose content changed are reported, so a compiler fed from it rebuilds
 * only what an edit reaches. Bursts of file events are coalesced: applied after `quietMs`
 * of quiet, never held off longer than `maxHoldMs`.
 */
import { watch, type FSWatcher } from 'node:fs';
import { kindOf, objectKey, type KubeObject, type ObjectKind } from '../core/index.ts';
import { loadManifests, type ManifestError } from './manifests.ts';

export interface ObjectChanges {
  set: KubeObject[];
  deleted: { kind: ObjectKind; key: string }[];
  /** Unreadable or malformed files in this read of the directory. */
  errors: ManifestError[];
  /** The file each current object came from, by `Kind/key`. */
  files: ReadonlyMap<string, string>;
}

export interface ManifestWatcherOptions {
  dir: string;
  quietMs?: number;
  maxHoldMs?: number;
  onError?: (err: Error) => void;
}

export class ManifestWatcher {
  private readonly dir: string;
  private readonly quietMs: number;
  private readonly maxHoldMs: number;
  private readonly onError: (err: Error) => void;
  private readonly known = new Map<string, { kind: ObjectKind; key: string; text: string }>();
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private burstStartedAt = 0;
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(options: ManifestWatcherOptions) {
    this.dir = options.dir;
    this.quietMs = options.quietMs ?? 100;
    this.maxHoldMs = options.maxHoldMs ?? 500;
    this.onError = options.onError ?? (() => undefined);
  }

  /** start reads the directory once (resolving after the first onChanges) and then watches it. */
  async start(onChanges: (changes: ObjectChanges) => void): Promise<void> {
    await this.read(onChanges);
    if (this.closed) return;
    this.watcher = watch(this.dir, { recursive: true }, () => this.schedule(onChanges));
    this.watcher.on('error', (err) => this.onError(err));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private schedule(onChanges: (changes: ObjectChanges) => void): void {
    if (this.closed) return;
    const now = Date.now();
    if (!this.timer) this.burstStartedAt = now;
    else clearTimeout(this.timer);
    const holdLeft = this.maxHoldMs - (now - this.burstStartedAt);
    this.timer = setTimeout(() => { this.timer = null; this.kick(onChanges); }, Math.max(0, Math.min(this.quietMs, holdLeft)));
  }

  private kick(onChanges: (changes: ObjectChanges) => void): void {
    if (this.running) { this.again = true; return; }
    this.running = this.read(onChanges)
      .catch((err: Error) => this.onError(err))
      .finally(() => {
        this.running = null;
        if (this.again && !this.closed) { this.again = false; this.kick(onChanges); }
      });
  }

  private async read(onChanges: (changes: ObjectChanges) => void): Promise<void> {
    const manifests = await loadManifests([this.dir]);
    const set: KubeObject[] = [];
    const files = new Map<string, string>();
    for (const { object, file } of manifests.objects) {
      const kind = kindOf(object);
      if (!kind) continue;
      const key = objectKey(kind, object);
      const id = `${kind}/${key}`;
      files.set(id, file);
      const text = JSON.stringify(object);
      if (this.known.get(id)?.text === text) continue;
      this.known.set(id, { kind, key, text });
      set.push(object);
    }
    const deleted: { kind: ObjectKind; key: string }[] = [];
    for (const [id, k] of this.known) {
      if (files.has(id)) continue;
      this.known.delete(id);
      deleted.push({ kind: k.kind, key: k.key });
    }
    const errors = [...manifests.errors];
    if (manifests.files.length === 0 && manifests.errors.length === 0) errors.push({ file: this.dir, message: 'no manifest files (.yaml, .yml, .json) here' });
    onChanges({ set, deleted, errors, files });
  }
}
