/** ObjectSource: where the operator's objects come from — a directory, or the API server. */
import type { KubeObject, ObjectKind } from '../../core/index.ts';

export interface ObjectSink {
  set(obj: KubeObject): void;
  delete(kind: ObjectKind, key: string): void;
}

export interface ObjectSource {
  /** start delivers every current object, resolving once the first complete view was delivered. */
  start(sink: ObjectSink): Promise<void>;
  close(): Promise<void>;
  /** fileOf names the file an object came from, for its problems to name it too (file mode). */
  fileOf?(kind: ObjectKind, key: string): string | undefined;
}
