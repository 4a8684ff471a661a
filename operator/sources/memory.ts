/**
 * MemoryObjectSource: objects handed in by code — benchmarks and tests drive the operator
 * with it. It remembers the current objects, so an operator started on it later (a
 * restarted leader) sees the world as it is now.
 */
import { kindOf, objectKey, type KubeObject } from '../../core/index.ts';
import type { ObjectSink, ObjectSource } from './source.ts';

export class MemoryObjectSource implements ObjectSource {
  private sink: ObjectSink | null = null;
  private readonly objects = new Map<string, KubeObject>();

  constructor(initial: KubeObject[] = []) {
    for (const obj of initial) this.remember(obj);
  }

  async start(sink: ObjectSink): Promise<void> {
    this.sink = sink;
    for (const obj of this.objects.values()) sink.set(obj);
  }

  set(obj: KubeObject): void {
    this.remember(obj);
    this.sink?.set(obj);
  }

  delete(obj: KubeObject): void {
    const kind = kindOf(obj);
    if (!kind) return;
    const key = objectKey(kind, obj);
    this.objects.delete(`${kind}/${key}`);
    this.sink?.delete(kind, key);
  }

  async close(): Promise<void> { this.sink = null; }

  toString(): string { return 'memory'; }

  private remember(obj: KubeObject): void {
    const kind = kindOf(obj);
    if (kind) this.objects.set(`${kind}/${objectKey(kind, obj)}`, obj);
  }
}
