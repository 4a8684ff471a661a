/**
 * KubeObjectSource: list+watch of every kind compile() reads, through @kubernetes/client-node.
 *
 * One reflector per kind keeps a cache by uid (managedFields stripped — they are large and
 * never read), relists on 410 Gone and periodically (jittered, so replicas do not relist
 * in step), re-watches from the last resourceVersion after a dropped connection with
 * back-off, and turns every failure into a log line and a retry — never an exception in
 * the caller. Secrets are watched only with `type=kubernetes.io/tls`. A kind whose API is
 * missing (the Canary CRD not installed yet) is retried until it appears.
 *
 * Options narrow the same reflectors for the admission webhook: `kinds` picks what is listed
 * and watched, and `secretsMetadataOnly` reads Secrets as PartialObjectMetadata, so the
 * process never receives a private key (see metadataOnly below).
 */
import { HttpMethod, KubernetesObjectApi, RequestContext, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { fetch } from 'undici';
import { kindOf, objectKey, type KubeObject, type ObjectKind } from '../../core/index.ts';
import type { Logger } from '../../lib/log.ts';
import type { ObjectSink, ObjectSource } from './source.ts';

interface KindSpec {
  kind: ObjectKind;
  apiVersion: string;
  path: string;
  fieldSelector?: string;
}

export const WATCHED_KINDS: readonly KindSpec[] = [
  { kind: 'IngressClass', apiVersion: 'networking.k8s.io/v1', path: '/apis/networking.k8s.io/v1/ingressclasses' },
  { kind: 'Ingress', apiVersion: 'networking.k8s.io/v1', path: '/apis/networking.k8s.io/v1/ingresses' },
  { kind: 'Service', apiVersion: 'v1', path: '/api/v1/services' },
  { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', path: '/apis/discovery.k8s.io/v1/endpointslices' },
  { kind: 'Secret', apiVersion: 'v1', path: '/api/v1/secrets', fieldSelector: 'type=kubernetes.io/tls' },
  { kind: 'Canary', apiVersion: 'vane.dev/v1alpha1', path: '/apis/vane.dev/v1alpha1/canaries' },
];

export interface KubeSourceOptions {
  logger: Logger;
  /** Mean period of the full relist; each reflector adds up to ±20% jitter. */
  relistMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
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

/**
 * Content types of the metadata-only reads: the API server answers a list as a
 * PartialObjectMetadataList and each watch event's object as a PartialObjectMetadata. No
 * fallback to plain `application/json`: a server that cannot answer so refuses (406) rather
 * than sends whole objects.
 */
export const METADATA_LIST_ACCEPT = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
export const METADATA_WATCH_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';
const LIST_TIMEOUT_MS = 60_000;

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

/**
 * accepting wraps kc so that every request made through it asks for `accept`. The library's
 * Watch has no header parameter, but it (like the generated API) authenticates each request
 * by calling the KubeConfig's applySecurityAuthentication on it; the wrapper adds the header
 * there. Everything else — server, TLS, credentials and their refresh — is kc's own.
 */
function accepting(kc: KubeConfig, accept: string): KubeConfig {
  const wrapped = Object.create(kc) as KubeConfig;
  wrapped.applySecurityAuthentication = async (context: RequestContext) => {
    await kc.applySecurityAuthentication(context);
    context.setHeaderParam('Accept', accept);
  };
  return wrapped;
}

interface ListAnswer { items: KubernetesObject[]; metadata?: { resourceVersion?: string } }

/** listMetadata lists spec's kind as PartialObjectMetadata, with kc's credentials (the request Watch makes, without `watch`). */
async function listMetadata(kc: KubeConfig, spec: KindSpec): Promise<ListAnswer> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster in the kubeconfig');
  const url = new URL(cluster.server + spec.path);
  if (spec.fieldSelector) url.searchParams.set('fieldSelector', spec.fieldSelector);
  const context = new RequestContext(url.toString(), HttpMethod.GET);
  await accepting(kc, METADATA_LIST_ACCEPT).applySecurityAuthentication(context);
  const response = await fetch(url, {
    method: 'GET', headers: context.getHeaders(), dispatcher: context.getDispatcher(), signal: AbortSignal.timeout(LIST_TIMEOUT_MS),
  });
  const text = await response.text();
  if (response.status !== 200) {
    let message = text.slice(0, 200);
    try { message = (JSON.parse(text) as { message?: string }).message ?? message; } catch { /* not a Status */ }
    throw Object.assign(new Error(`HTTP ${response.status}: ${message}`), { statusCode: response.status });
  }
  const body = JSON.parse(text) as ListAnswer & { kind?: string };
  // Never cache what was not asked for: a whole SecretList here would hold private keys.
  if (body.kind !== 'PartialObjectMetadataList') throw new Error(`asked for PartialObjectMetadataList, got ${JSON.stringify(body.kind)}`);
  return { items: body.items ?? [], ...(body.metadata ? { metadata: body.metadata } : {}) };
}

function strip(obj: KubernetesObject, spec: KindSpec, metadataOnly: boolean): KubeObject {
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

class Reflector {
  private readonly spec: KindSpec;
  private readonly api: KubernetesObjectApi;
  private readonly watch: Watch;
  private readonly sink: ObjectSink;
  private readonly kc: KubeConfig;
  /** The objects are read as PartialObjectMetadata: list, watch and cache hold metadata only. */
  private readonly metadataOnly: boolean;
  private readonly options: Required<Omit<KubeSourceOptions, 'observe' | 'kinds' | 'secretsMetadataOnly'>> & Pick<KubeSourceOptions, 'observe'>;
  /** Cached objects by uid, with their key and resourceVersion. */
  private readonly cache = new Map<string, { key: string; rv: string }>();
  private resourceVersion = '';
  private abort: AbortController | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private relistTimer: NodeJS.Timeout | null = null;
  private backoffMs: number;
  private closed = false;
  private listedOnce!: () => void;
  readonly listed: Promise<void>;

  constructor(kc: KubeConfig, spec: KindSpec, sink: ObjectSink, options: KubeSourceOptions) {
    this.spec = spec;
    this.kc = kc;
    this.metadataOnly = spec.kind === 'Secret' && options.secretsMetadataOnly === true;
    this.api = KubernetesObjectApi.makeApiClient(kc);
    this.watch = new Watch(this.metadataOnly ? accepting(kc, METADATA_WATCH_ACCEPT) : kc);
    this.sink = sink;
    const { kinds: _kinds, secretsMetadataOnly: _metadataOnly, ...rest } = options;
    this.options = { relistMs: 300_000, initialBackoffMs: 500, maxBackoffMs: 30_000, ...rest };
    this.backoffMs = this.options.initialBackoffMs;
    this.listed = new Promise((resolve) => { this.listedOnce = resolve; });
  }

  start(): void { void this.relist(); }

  close(): void {
    this.closed = true;
    this.abort?.abort();
    for (const t of [this.retryTimer, this.relistTimer]) if (t) clearTimeout(t);
  }

  private emit(obj: KubeObject, deleted: boolean): void {
    const key = objectKey(this.spec.kind, obj);
    if (deleted) this.sink.delete(this.spec.kind, key);
    else this.sink.set(obj);
    this.options.observe?.(this.spec.kind, obj, deleted);
  }

  private async relist(): Promise<void> {
    if (this.closed) return;
    this.abort?.abort();
    this.abort = null;
    let list: ListAnswer;
    try {
      list = this.metadataOnly
        ? await listMetadata(this.kc, this.spec)
        : await this.api.list(this.spec.apiVersion, this.spec.kind, undefined, undefined, undefined, undefined, this.spec.fieldSelector);
    } catch (err) {
      this.fail('list', err);
      return;
    }
    if (this.closed) return;
    const seen = new Set<string>();
    for (const item of list.items) {
      const obj = strip(item, this.spec, this.metadataOnly);
      const uid = obj.metadata?.uid ?? objectKey(this.spec.kind, obj);
      seen.add(uid);
      const rv = obj.metadata?.resourceVersion ?? '';
      if (this.cache.get(uid)?.rv === rv) continue;
      this.cache.set(uid, { key: objectKey(this.spec.kind, obj), rv });
      this.emit(obj, false);
    }
    for (const [uid, entry] of this.cache) {
      if (seen.has(uid)) continue;
      this.cache.delete(uid);
      this.sink.delete(this.spec.kind, entry.key);
      this.options.observe?.(this.spec.kind, { apiVersion: this.spec.apiVersion, kind: this.spec.kind, metadata: keyMeta(entry.key) }, true);
    }
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
    this.listedOnce();
    this.scheduleRelist();
    await this.startWatch();
  }

  private scheduleRelist(): void {
    if (this.relistTimer) clearTimeout(this.relistTimer);
    const jitter = 0.8 + Math.random() * 0.4;
    this.relistTimer = setTimeout(() => { this.relistTimer = null; void this.relist(); }, Math.round(this.options.relistMs * jitter));
    this.relistTimer.unref();
  }

  private async startWatch(): Promise<void> {
    if (this.closed) return;
    const query: Record<string, string | boolean> = { resourceVersion: this.resourceVersion, allowWatchBookmarks: true };
    if (this.spec.fieldSelector) query.fieldSelector = this.spec.fieldSelector;
    try {
      this.abort = await this.watch.watch(this.spec.path, query, (phase, obj: KubernetesObject & { code?: number }) => this.onEvent(phase, obj), (err) => this.onDone(err));
    } catch (err) {
      this.fail('watch', err);
    }
  }

  private onEvent(phase: string, raw: KubernetesObject & { code?: number }): void {
    if (phase === 'ERROR') {
      if (raw.code === 410) this.resourceVersion = '';
      return;
    }
    if (raw.metadata?.resourceVersion) this.resourceVersion = raw.metadata.resourceVersion;
    if (phase === 'BOOKMARK') return;
    const obj = strip(raw, this.spec, this.metadataOnly);
    if (!kindOf(obj)) return;
    const uid = obj.metadata?.uid ?? objectKey(this.spec.kind, obj);
    if (phase === 'DELETED') {
      this.cache.delete(uid);
      this.emit(obj, true);
      return;
    }
    const rv = obj.metadata?.resourceVersion ?? '';
    if (this.cache.get(uid)?.rv === rv) return;
    this.cache.set(uid, { key: objectKey(this.spec.kind, obj), rv });
    this.emit(obj, false);
    this.backoffMs = this.options.initialBackoffMs;
  }

  private onDone(err: unknown): void {
    this.abort = null;
    if (this.closed) return;
    const code = (err as { statusCode?: number; code?: number } | null)?.statusCode ?? (err as { code?: number } | null)?.code;
    if (code === 410 || !this.resourceVersion) { void this.relist(); return; }
    if (err) { this.fail('watch', err); return; }
    void this.startWatch();
  }

  private fail(what: string, err: unknown): void {
    if (this.closed) return;
    const e = err as { message?: string; code?: number; statusCode?: number };
    const missing = e.code === 404 || e.statusCode === 404;
    this.options.logger.warn({ kind: this.spec.kind, op: what, err: e.message ?? String(err), retryInMs: this.backoffMs },
      missing ? `the ${this.spec.kind} API is not available yet; retrying` : `${what} of ${this.spec.kind} failed; retrying`);
    if (missing) this.listedOnce();
    const delay = Math.round(this.backoffMs * (0.5 + Math.random() * 0.5));
    this.backoffMs = Math.min(this.options.maxBackoffMs, this.backoffMs * 2);
    this.retryTimer = setTimeout(() => { this.retryTimer = null; void this.relist(); }, delay);
  }
}

function keyMeta(key: string): KubeObject['metadata'] {
  const slash = key.indexOf('/');
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export class KubeObjectSource implements ObjectSource {
  private readonly kc: KubeConfig;
  private readonly options: KubeSourceOptions;
  private reflectors: Reflector[] = [];

  constructor(kc: KubeConfig, options: KubeSourceOptions) {
    this.kc = kc;
    this.options = options;
  }

  async start(sink: ObjectSink): Promise<void> {
    const kinds = this.options.kinds;
    this.reflectors = WATCHED_KINDS.filter((spec) => !kinds || kinds.includes(spec.kind))
      .map((spec) => new Reflector(this.kc, spec, sink, this.options));
    for (const r of this.reflectors) r.start();
    await Promise.all(this.reflectors.map((r) => r.listed));
  }

  async close(): Promise<void> {
    for (const r of this.reflectors) r.close();
  }

  toString(): string { return `kubernetes:${this.kc.getCurrentCluster()?.server ?? '?'}`; }
}
