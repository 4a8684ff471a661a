/**
 * Where the canary controller's writes go. In a cluster (KubeCanaryStore): JSON patches of
 * the Canary's status subresource, its finalizers and the Ingress, and Events — every one
 * through the operator's StatusWriter, so they share its lease fence and rate limit. In file
 * mode (OverlayCanaryStore): overlays, so compile() sees the new status with no API server,
 * and Events become log lines.
 */
import { CoreV1Api, CustomObjectsApi, NetworkingV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { namespaceOf, type Canary, type CanaryStatus, type Ingress, type KubeObject } from '../../core/index.ts';
import { eventBody, type StatusWriter } from '../status.ts';
import type { Logger } from '../../lib/log.ts';
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

const GROUP = 'vane.dev';
const VERSION = 'v1alpha1';
const PLURAL = 'canaries';
const COMPONENT = 'vane-canary-controller';

function statusCodeOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown };
  return typeof e.code === 'number' ? e.code : typeof e.statusCode === 'number' ? e.statusCode : undefined;
}

function failure(err: unknown): { ok: false; reason: 'conflict' | 'gone' | 'error'; message: string } {
  const code = statusCodeOf(err);
  const body = (err as { body?: unknown }).body;
  let message = (err as Error).message ?? String(err);
  if (typeof body === 'string') {
    try { message = (JSON.parse(body) as { message?: string }).message ?? message; } catch { /* the raw message stays */ }
  }
  // A failed JSON patch `test` answers 422 (Invalid) on most servers, 409 elsewhere.
  if (code === 409 || code === 422) return { ok: false, reason: 'conflict', message };
  if (code === 404) return { ok: false, reason: 'gone', message };
  return { ok: false, reason: 'error', message: code ? `HTTP ${code}: ${message}` : message };
}

function id(obj: KubeObject): string {
  return `${namespaceOf(obj)}/${obj.metadata?.name ?? ''}`;
}

const JSON_PATCH = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

export interface KubeCanaryStoreOptions {
  writer: StatusWriter;
  isLeader: () => boolean;
  logger: Logger;
}

export class KubeCanaryStore implements CanaryStore {
  readonly finalizers = true;
  private readonly custom: CustomObjectsApi;
  private readonly net: NetworkingV1Api;
  private readonly core: CoreV1Api;
  private readonly o: KubeCanaryStoreOptions;

  constructor(kc: KubeConfig, options: KubeCanaryStoreOptions) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.net = kc.makeApiClient(NetworkingV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
    this.o = options;
  }

  /** fenced runs one API write through the StatusWriter, re-checking the lease right before it is sent. */
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
    return this.fenced(`canary-status ${id(canary)}`, async () => await this.custom.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, plural: PLURAL, namespace: namespaceOf(canary), name: canary.metadata?.name ?? '', body }, JSON_PATCH,
    ) as Canary);
  }

  patchCanary(canary: Canary, ops: PatchOp[]): Promise<WriteOutcome<Canary>> {
    return this.fenced(`canary-meta ${id(canary)}`, async () => await this.custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, plural: PLURAL, namespace: namespaceOf(canary), name: canary.metadata?.name ?? '', body: ops }, JSON_PATCH,
    ) as Canary);
  }

  patchIngress(ingress: Ingress, ops: PatchOp[]): Promise<WriteOutcome<Ingress>> {
    return this.fenced(`canary-ingress ${id(ingress)}`, async () => await this.net.patchNamespacedIngress(
      { namespace: namespaceOf(ingress), name: ingress.metadata?.name ?? '', body: ops }, JSON_PATCH,
    ) as Ingress);
  }

  async read(canary: Canary): Promise<Canary | null> {
    try {
      return await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: namespaceOf(canary), name: canary.metadata?.name ?? '' }) as Canary;
    } catch (err) {
      if (statusCodeOf(err) === 404) return null;
      throw err;
    }
  }

  event(canary: Canary, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const ns = namespaceOf(canary);
    const name = canary.metadata?.name ?? '';
    const text = message.slice(0, 1024);
    void this.fenced(`canary-event ${ns}/${name} ${reason} ${text}`, async () => {
      const involved = {
        apiVersion: canary.apiVersion ?? `${GROUP}/${VERSION}`, kind: 'Canary', name, namespace: ns,
        ...(canary.metadata?.uid ? { uid: canary.metadata.uid } : {}),
        ...(canary.metadata?.resourceVersion ? { resourceVersion: canary.metadata.resourceVersion } : {}),
      };
      await this.core.createNamespacedEvent({ namespace: ns, body: eventBody(involved, type, reason, text, COMPONENT) });
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
