/**
 * FileObjectSource: objects from manifest files, watched. Watching, coalescing, parsing and
 * the invalid-input policy are lib/manifest-watch.ts's, shared with the proxy's file mode.
 */
import { ManifestWatcher } from '../../lib/manifest-watch.ts';
import type { Logger } from '../../lib/log.ts';
import type { ObjectKind } from '../../core/index.ts';
import type { ObjectSink, ObjectSource } from './source.ts';

export class FileObjectSource implements ObjectSource {
  private readonly watcher: ManifestWatcher;
  private readonly paths: string[];
  private files: ReadonlyMap<string, string> = new Map();

  /** paths: files or directories of manifests. */
  constructor(paths: string[], logger: Logger) {
    this.paths = paths;
    this.watcher = new ManifestWatcher({ paths, logger });
  }

  start(sink: ObjectSink): Promise<void> {
    return this.watcher.start((changes) => {
      this.files = changes.files;
      for (const obj of changes.set) sink.set(obj);
      for (const d of changes.deleted) sink.delete(d.kind, d.key);
    });
  }

  fileOf(kind: ObjectKind, key: string): string | undefined { return this.files.get(`${kind}/${key}`); }

  close(): Promise<void> { return this.watcher.close(); }

  toString(): string { return `files:${this.paths.join(',')}`; }
}
