/**
 * Where the canary controller's writes go. In a cluster (KubeCanaryStore): JSON patches of
 * the Canary's status subresource, its finalizers and the Ingress, and Events — every one
 * through the operator's StatusWriter, so they share its lease fence and rate limit. In file
 * mode (OverlayCanaryStore): overlays, so compile() sees the new status with no API server,
 * and Events become log lines.
 */
import { namespaceOf, type Canary, type CanaryStatus, type Ingress, type KubeObject } from '../../core/index.ts';
import type { StatusWriter } from '../status.ts';
import type { Logger } from '../../lib/log.ts';
import { RESOURCES, apiMessageOf, apiStatusOf, isKubeError, kubeOf, recordEvent, type Kube, type KubeConfig } from '../../lib/kube/index.ts';
import { applyPatch, statusPatch, type PatchOp } from './patches.ts';

export type WriteOutcome<T> =
  | { ok: true; object: T }
  /** conflict: a `test` failed or the object changed (read it again); gone: deleted; dropped: not written (not the leader). */
  | { ok: false; reason: 'conflict' | 'gone' | 'dropped' | 'error'; message: string };

export interface CanaryStore {
  /** True where finalizers exist (an API server stores the object); file mode has none. */
  readonly finalizers: boolean;
  writeStatus(canary: Canary, status: CanaryStatus): Promise<WriteOutcome<Canary>>;
  patchCanary(canary: Canary, ops: PatchOp[]): Promise<WriteOutcome<Canary>>;
  patchIngress(ingress: Ingress, ops: PatchOp[]): Promise<WriteOutcome<Ingress>>;
  /** read fetches the object as stored now, after a conflict; null when it is gone. */
  read(canary: Canary): Promise<Canary | null>;
  event(canary: Canary, type: 'Normal' | 'Warning', reason: string, message: string): void;
  /** restore gives an object from a source that stores no status (files) the status last written for it. */
  restore?(canary: Canary): Canary;
  /** forget drops what the store keeps for a Canary that is gone. */
  forget?(key: string): void;
}

const COMPONENT = 'vane-canary-controller';

function failure(err: unknown): { ok: false; reason: 'conflict' | 'gone' | 'dropped' | 'error'; message: string } {
  const code = apiStatusOf(err);
  const message = apiMessageOf(err);
  // The lease was lost between the queue's check and the send.
  if (isKubeError(err, 'EFENCED')) return { ok: false, reason: 'dropped', message };
  // A failed JSON patch `test` answers 422 (Invalid) on most servers, 409 elsewhere.
  if (code === 409 || code === 422) return { ok: false, reason: 'conflict', message };
  if (code === 404) return { ok: false, reason: 'gone', message };
  return { ok: false, reason: 'error', message: code ? `HTTP ${code}: ${message}` : message };
}

function id(obj: KubeObject): string {
  return `${namespaceOf(obj)}/${obj.metadata?.name ?? ''}`;
}

function ref(obj: KubeObject): { namespace: string; name: string } {
  return { namespace: namespaceOf(obj), name: obj.metadata?.name ?? '' };
}

export interface KubeCanaryStoreOptions {
  writer: StatusWriter;
  isLeader: () => boolean;
  logger: Logger;
}

export class KubeCanaryStore implements CanaryStore {
  readonly finalizers = true;
  private readonly kube: Kube;
  private readonly o: KubeCanaryStoreOptions;

  constructor(kube: KubeConfig | Kube, options: KubeCanaryStoreOptions) {
    this.kube = kubeOf(kube);
    this.o = options;
  }

  /** fence: the lease check lib/kube repeats right before each write is sent. */
  private readonly fence = (): boolean => this.o.isLeader();

  /** fenced runs one API write through the StatusWriter, re-checking the lease before it runs and again before it is sent. */
  private async fenced<T>(key: string, write: () => Promise<T>): Promise<WriteOutcome<T>> {
    let outcome: WriteOutcome<T> = { ok: false, reason: 'dropped', message: 'not the leader' };
    const ran = await this.o.writer.submit(key, async () => {
      if (!this.o.isLeader()) return;
      try {
        outcome = { ok: true, object: await write() };
      } catch (err) {
        outcome = failure(err);
      }
    });
    return ran ? outcome : { ok: false, reason: 'dropped', message: 'not written: not the leader, or shutting down' };
  }

  writeStatus(canary: Canary, status: CanaryStatus): Promise<WriteOutcome<Canary>> {
    const body = statusPatch(canary, status);
    return this.fenced(`canary-status ${id(canary)}`, () => this.kube.patchStatus<Canary>(RESOURCES.Canary, ref(canary), body, { fence: this.fence }));
  }

  patchCanary(canary: Canary, ops: PatchOp[]): Promise<WriteOutcome<Canary>> {
    return this.fenced(`canary-meta ${id(canary)}`, () => this.kube.jsonPatch<Canary>(RESOURCES.Canary, ref(canary), ops, { fence: this.fence }));
  }

  patchIngress(ingress: Ingress, ops: PatchOp[]): Promise<WriteOutcome<Ingress>> {
    return this.fenced(`canary-ingress ${id(ingress)}`, () => this.kube.jsonPatch<Ingress>(RESOURCES.Ingress, ref(ingress), ops, { fence: this.fence }));
  }

  read(canary: Canary): Promise<Canary | null> {
    return this.kube.getOrNull<Canary>(RESOURCES.Canary, ref(canary));
  }

  event(canary: Canary, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const ns = namespaceOf(canary);
    const name = canary.metadata?.name ?? '';
    const text = message.slice(0, 1024);
    void this.fenced(`canary-event ${ns}/${name} ${reason} ${text}`, async () => {
      const involved = {
        apiVersion: canary.apiVersion ?? `${RESOURCES.Canary.group}/${RESOURCES.Canary.version}`, kind: 'Canary', name, namespace: ns,
        ...(canary.metadata?.uid ? { uid: canary.metadata.uid } : {}),
        ...(canary.metadata?.resourceVersion ? { resourceVersion: canary.metadata.resourceVersion } : {}),
      };
      await recordEvent(this.kube, involved, type, reason, text, COMPONENT, { fence: this.fence });
    }).then((outcome) => {
      if (!outcome.ok && outcome.reason !== 'dropped') this.o.logger.warn({ canary: `${ns}/${name}`, reason, err: outcome.message }, 'writing a Canary Event failed');
    });
  }
}

export interface OverlayCanaryStoreOptions {
  overlay: (obj: KubeObject) => void;
  logger: Logger;
  /** Called with every Event, for `vane up` to show progress. */
  onEvent?: (canary: string, type: 'Normal' | 'Warning', reason: string, message: string) => void;
}

/**
 * OverlayCanaryStore is file mode's store: nothing is written anywhere; compile sees
 * overlays. It keeps the last status written per Canary, because a file carries none: when
 * the file is read again, restore() puts the status back, and overlays it once the
 * operator has handed the file's version to the compiler (later in the same callback).
 */
export class OverlayCanaryStore implements CanaryStore {
  readonly finalizers = false;
  private readonly o: OverlayCanaryStoreOptions;
  private readonly latest = new Map<string, Canary>();

  constructor(options: OverlayCanaryStoreOptions) {
    this.o = options;
  }

  async writeStatus(canary: Canary, status: CanaryStatus): Promise<WriteOutcome<Canary>> {
    const next: Canary = { ...canary, status };
    this.latest.set(id(canary), next);
    this.o.overlay(next);
    return { ok: true, object: next };
  }

  restore(canary: Canary): Canary {
    const key = id(canary);
    const kept = this.latest.get(key);
    if (canary.status !== undefined || !kept?.status) return canary;
    const merged: Canary = { ...canary, status: kept.status };
    this.latest.set(key, merged);
    queueMicrotask(() => { const now = this.latest.get(key); if (now) this.o.overlay(now); });
    return merged;
  }

  forget(key: string): void {
    this.latest.delete(key);
  }

  async patchCanary(canary: Canary, ops: PatchOp[]): Promise<WriteOutcome<Canary>> {
    return this.patched(canary, ops);
  }

  /** patchIngress overlays the switched Ingress; editing its file again replaces the overlay. */
  async patchIngress(ingress: Ingress, ops: PatchOp[]): Promise<WriteOutcome<Ingress>> {
    return this.patched(ingress, ops);
  }

  async read(canary: Canary): Promise<Canary | null> {
    return this.latest.get(id(canary)) ?? canary;
  }

  event(canary: Canary, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const key = id(canary);
    if (type === 'Warning') this.o.logger.warn({ canary: key, reason }, message);
    else this.o.logger.info({ canary: key, reason }, message);
    this.o.onEvent?.(key, type, reason, message);
  }

  private patched<T extends KubeObject>(obj: T, ops: PatchOp[]): WriteOutcome<T> {
    const next = applyPatch(obj, ops);
    if (!next) return { ok: false, reason: 'conflict', message: 'the patch does not apply to the object as it is now' };
    this.o.overlay(next);
    return { ok: true, object: next };
  }
}
