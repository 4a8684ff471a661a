/**
 * KubeObjectSource: list+watch of every kind compile() reads, one Reflector per kind, into
 * an ObjectSink (the operator's pipeline, or the webhook's object cache). managedFields are
 * stripped (large, never read); Secrets are watched only with `type=kubernetes.io/tls`.
 *
 * Options narrow it for the admission webhook: `kinds` picks what is listed and watched, and
 * `secretsMetadataOnly` reads Secrets as PartialObjectMetadata, so the process never
 * receives a private key.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { kindOf, objectKey, type KubeObject, type ObjectKind } from '../../core/index.ts';
import type { Logger } from '../log.ts';
import { kubeOf, type Kube } from './client.ts';
import { Reflector } from './reflector.ts';
import { RESOURCES, apiVersionOf, type ResourceType } from './resources.ts';

export interface KindSpec {
  kind: ObjectKind;
  apiVersion: string;
  type: ResourceType;
  fieldSelector?: string;
}

function spec(kind: ObjectKind, type: ResourceType, fieldSelector?: string): KindSpec {
  return { kind, apiVersion: apiVersionOf(type), type, ...(fieldSelector ? { fieldSelector } : {}) };
}

export const WATCHED_KINDS: readonly KindSpec[] = [
  spec('IngressClass', RESOURCES.IngressClass),
  spec('Ingress', RESOURCES.Ingress),
  spec('Service', RESOURCES.Service),
  spec('EndpointSlice', RESOURCES.EndpointSlice),
  spec('Secret', RESOURCES.Secret, 'type=kubernetes.io/tls'),
  spec('Canary', RESOURCES.Canary),
];

/** ObjectSink: where a source delivers (the operator's pipeline, the webhook's MemoryObjectCache). */
export interface ObjectSink {
  set(obj: KubeObject): void;
  delete(kind: ObjectKind, key: string): void;
}

export interface KubeSourceOptions {
  logger: Logger;
  /** Mean period of the full relist; each reflector adds up to ±20% jitter. */
  relistMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** A watch silent this long is cut and resumed from its resourceVersion. */
  idleTimeoutMs?: number;
  /** Called for every event, after the sink (the operator's fleet tracking reads EndpointSlices here). */
  observe?: (kind: ObjectKind, obj: KubeObject, deleted: boolean) => void;
  /** The kinds to list and watch; default every kind compile() reads (WATCHED_KINDS). */
  kinds?: readonly ObjectKind[];
  /**
   * Read Secrets as metadata only: name, namespace, uid, labels, resourceVersion — never `data`,
   * and no annotations (kubectl's last-applied-configuration repeats a Secret's data). The
   * objects delivered carry `type: kubernetes.io/tls`, which the field selector guarantees. For
   * the admission webhook, which needs to know only that a TLS Secret exists; the operator,
   * which hands keys to proxies, reads them whole.
   */
  secretsMetadataOnly?: boolean;
}

/** What a metadata-only object keeps: identity, order and labels — no annotations, no managedFields. */
const KEPT_METADATA = ['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'labels'] as const;

/** selectedFields: the top-level fields an equality field selector (`type=kubernetes.io/tls`) guarantees. */
function selectedFields(selector: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const term of (selector ?? '').split(',')) {
    const m = /^([A-Za-z]+)==?([^=!]*)$/.exec(term.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

function strip(obj: KubeObject, spec: KindSpec, metadataOnly: boolean): KubeObject {
  if (metadataOnly) {
    const metadata: Record<string, unknown> = {};
    const source = (obj.metadata ?? {}) as Record<string, unknown>;
    for (const k of KEPT_METADATA) if (source[k] !== undefined) metadata[k] = source[k];
    return { ...selectedFields(spec.fieldSelector), apiVersion: spec.apiVersion, kind: spec.kind, metadata } as KubeObject;
  }
  const copy = { ...obj, apiVersion: obj.apiVersion ?? spec.apiVersion, kind: obj.kind ?? spec.kind } as KubeObject;
  if (copy.metadata && 'managedFields' in copy.metadata) {
    const { managedFields: _dropped, ...rest } = copy.metadata as Record<string, unknown>;
    copy.metadata = rest as KubeObject['metadata'];
  }
  return copy;
}

export class KubeObjectSource {
  private readonly kube: Kube;
  private readonly options: KubeSourceOptions;
  private reflectors: Reflector<KubeObject>[] = [];

  constructor(kube: KubeConfig | Kube, options: KubeSourceOptions) {
    this.kube = kubeOf(kube);
    this.options = options;
  }

  async start(sink: ObjectSink): Promise<void> {
    const { kinds, observe, logger } = this.options;
    this.reflectors = WATCHED_KINDS.filter((s) => !kinds || kinds.includes(s.kind)).map((s) => {
      const metadataOnly = s.kind === 'Secret' && this.options.secretsMetadataOnly === true;
      return new Reflector<KubeObject>(this.kube, {
        type: s.type,
        logger,
        metadataOnly,
        ...(s.fieldSelector ? { fieldSelector: s.fieldSelector } : {}),
        ...(this.options.relistMs !== undefined ? { relistMs: this.options.relistMs } : {}),
        ...(this.options.initialBackoffMs !== undefined ? { initialBackoffMs: this.options.initialBackoffMs } : {}),
        ...(this.options.maxBackoffMs !== undefined ? { maxBackoffMs: this.options.maxBackoffMs } : {}),
        ...(this.options.idleTimeoutMs !== undefined ? { idleTimeoutMs: this.options.idleTimeoutMs } : {}),
        transform: (obj) => strip(obj, s, metadataOnly),
        onUpsert: (obj) => {
          if (!kindOf(obj)) return;
          sink.set(obj);
          observe?.(s.kind, obj, false);
        },
        onDelete: (obj) => {
          sink.delete(s.kind, objectKey(s.kind, obj));
          observe?.(s.kind, obj, true);
        },
      });
    });
    for (const r of this.reflectors) r.start();
    await Promise.all(this.reflectors.map((r) => r.listed));
  }

  async close(): Promise<void> {
    for (const r of this.reflectors) r.close();
  }

  toString(): string { return `kubernetes:${this.kube.server || '?'}`; }
}
