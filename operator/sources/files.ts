/** FileObjectSource: objects from a directory of manifests, watched (lib/manifest-watch.ts). */
import { ManifestWatcher } from '../../lib/manifest-watch.ts';
import type { Logger } from '../../lib/log.ts';
import type { ObjectSink, ObjectSource } from './source.ts';

export class FileObjectSource implements ObjectSource {
  private readonly watcher: ManifestWatcher;
  private readonly logger: Logger;
  private readonly dir: string;

  constructor(dir: string, logger: Logger) {
    this.dir = dir;
    this.logger = logger;
    this.watcher = new ManifestWatcher({ dir, onError: (err) => logger.error({ dir, err: err.message }, 'reading manifests failed') });
  }

  start(sink: ObjectSink): Promise<void> {
    return this.watcher.start((changes) => {
      for (const e of changes.errors) this.logger.error({ file: e.file }, `${e.file}: ${e.message}`);
      for (const obj of changes.set) sink.set(obj);
      for (const d of changes.deleted) sink.delete(d.kind, d.key);
    });
  }

  close(): Promise<void> { return this.watcher.close(); }

  toString(): string { return `files:${this.dir}`; }
}
