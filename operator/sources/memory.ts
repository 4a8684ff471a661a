/** MemoryObjectSource: objects handed in by code — benchmarks and tests drive the operator with it. */
import { kindOf, objectKey, type KubeObject, type ObjectKind } from '../../core/index.ts';
import type { ObjectSink, ObjectSource } from './source.ts';

export class MemoryObjectSource implements ObjectSource {
  private sink: ObjectSink | null = null;
  private readonly initial: KubeObject[];

  constructor(initial: KubeObject[] = []) {
    this.initial = initial;
  }

  async start(sink: ObjectSink): Promise<void> {
    this.sink = sink;
    for (const obj of this.initial) sink.set(obj);
  }

  set(obj: KubeObject): void { this.sink?.set(obj); }

  delete(obj: KubeObject): void {
    const kind: ObjectKind | null = kindOf(obj);
    if (kind) this.sink?.delete(kind, objectKey(kind, obj));
  }

  async close(): Promise<void> { this.sink = null; }

  toString(): string { return 'memory'; }
}
