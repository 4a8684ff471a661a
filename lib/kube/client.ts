/**
 * Kube: every request Vane makes to the API server goes through request(), which bounds it
 * (AbortSignal.timeout: a black-holed API server costs a lease renewal or a status write
 * seconds, never minutes), turns every failure into a KubeError with the server's Status, and
 * checks a fence, when given, right before the request is sent. On top: get, list, create,
 * replace, JSON/merge patches (fenced on the lease and on the resourceVersion), status
 * subresource patches, Events and delete (404 is success).
 *
 * Credentials, TLS and proxies are @kubernetes/client-node's KubeConfig: its
 * applySecurityAuthentication gives each request its headers (bearer tokens refreshed, exec and
 * OIDC plugins run) and its undici dispatcher; the request itself is undici's fetch, as the
 * library's own generated clients send it.
 */
import { RequestContext, type HttpMethod, type KubeConfig } from '@kubernetes/client-node';
import { fetch, type Dispatcher } from 'undici';
import { KubeError, type StatusBody } from './errors.ts';
import { pathOf, type ObjectRef, type ResourceType } from './resources.ts';
import type { PatchOp } from './patch.ts';

export const JSON_PATCH = 'application/json-patch+json';
export const MERGE_PATCH = 'application/merge-patch+json';
export const APPLY_PATCH = 'application/apply-patch+yaml';

/** Defaults: a plain call, a list (can be large), and a watch's connect and idle bounds. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_LIST_TIMEOUT_MS = 60_000;

export interface KubeOptions {
  /** Bound of every call that sets none itself (default 10 s). */
  requestTimeoutMs?: number;
  /** Bound of a list (default 60 s). */
  listTimeoutMs?: number;
}

/** Fence: true while this replica may write (it holds the lease); checked right before each fenced request is sent. */
export type Fence = () => boolean;

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  accept?: string;
  /** Overrides the client's bound for this call. */
  timeoutMs?: number;
  /** The caller's own cancellation (a closing reflector). */
  signal?: AbortSignal;
  /** When given and false right before sending, the request is not sent: KubeError EFENCED. */
  fence?: Fence;
}

export interface WriteOptions {
  fieldManager?: string;
  fence?: Fence;
  timeoutMs?: number;
}

export interface PatchOptions extends WriteOptions {
  /** `status` patches the status subresource. */
  subresource?: string;
}

export interface ListOptions {
  namespace?: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** Ask for PartialObjectMetadataList: names, labels, resourceVersions — never the objects' data. */
  metadataOnly?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** WritableObject: what create, replace and apply send — any object, named by its metadata (namespace, name). */
export type WritableObject = object;

function metaOf(obj: WritableObject): { namespace?: string; name?: string } {
  return (obj as { metadata?: { namespace?: string; name?: string } }).metadata ?? {};
}

export interface ListAnswer<T> { kind?: string; items: T[]; metadata?: { resourceVersion?: string; continue?: string } }

/**
 * Content types of metadata-only reads: a list answers as a PartialObjectMetadataList, each
 * watch event's object as a PartialObjectMetadata. No fallback to plain JSON: a server that
 * cannot answer so refuses (406) rather than sends whole objects.
 */
export const METADATA_LIST_ACCEPT = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
export const METADATA_WATCH_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';

/** Prepared is what a request needs from the KubeConfig: its URL, headers and dispatcher. */
export interface Prepared { url: URL; headers: Record<string, string>; dispatcher: Dispatcher | undefined }

/** describeCause turns a fetch failure's cause into a few words: ECONNREFUSED, certificate has expired, … */
function describeCause(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } } | null)?.cause;
  return cause?.code ?? cause?.message ?? (err as Error | null)?.message ?? String(err);
}

function parseStatus(text: string): StatusBody | undefined {
  try {
    const body = JSON.parse(text) as StatusBody;
    return body && typeof body === 'object' ? body : undefined;
  } catch {
    return undefined;
  }
}

/** httpError is the KubeError for a non-2xx answer, with the Status the server sent. */
export function httpError(method: string, path: string, status: number, text: string): KubeError {
  const body = parseStatus(text);
  const message = body?.message ?? text.slice(0, 200);
  return new KubeError('EHTTP', `${method} ${path}: HTTP ${status}${body?.reason ? ` ${body.reason}` : ''}: ${message}`, {
    status, ...(body?.reason ? { reason: body.reason } : {}), ...(body ? { body } : {}),
  });
}

/** failure is the KubeError for a request that got no answer: timed out, aborted by its caller, or unreachable. */
export function failure(method: string, path: string, err: unknown, timeout: AbortSignal, timeoutMs: number, caller?: AbortSignal): KubeError {
  if (err instanceof KubeError) return err;
  if (timeout.aborted) return new KubeError('ETIMEOUT', `${method} ${path}: no answer within ${timeoutMs} ms`, { cause: err });
  if (caller?.aborted) return new KubeError('EABORTED', `${method} ${path}: cancelled`, { cause: err });
  return new KubeError('EUNREACHABLE', `${method} ${path}: cannot reach the API server (${describeCause(err)})`, { cause: err });
}

export class Kube {
  readonly kc: KubeConfig;
  readonly requestTimeoutMs: number;
  readonly listTimeoutMs: number;

  constructor(kc: KubeConfig, options: KubeOptions = {}) {
    this.kc = kc;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.listTimeoutMs = options.listTimeoutMs ?? DEFAULT_LIST_TIMEOUT_MS;
    if (!(this.requestTimeoutMs > 0) || !(this.listTimeoutMs > 0)) throw new RangeError('request and list timeouts must be positive');
  }

  /** server is the API server's URL, as the kubeconfig names it. */
  get server(): string {
    return this.kc.getCurrentCluster()?.server ?? '';
  }

  /** prepare resolves the URL and the credentials of one request (kubeconfig auth, TLS dispatcher). */
  async prepare(method: string, path: string, query: RequestOptions['query'] = {}, accept?: string): Promise<Prepared> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new KubeError('ECONFIG', 'the kubeconfig names no current cluster');
    const url = new URL(cluster.server.replace(/\/+$/, '') + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const context = new RequestContext(url.toString(), method as HttpMethod);
    await this.kc.applySecurityAuthentication(context);
    const headers = { ...context.getHeaders() };
    headers.Accept = accept ?? 'application/json';
    return { url, headers, dispatcher: context.getDispatcher() };
  }

  /**
   * request sends one call and returns its parsed JSON answer. It is bounded by timeoutMs
   * (the client's default otherwise) from before the credentials are read until the last byte
   * of the answer; it throws KubeError: EHTTP (with status, reason and the Status body),
   * ETIMEOUT, EUNREACHABLE, EABORTED, EFENCED or EMALFORMED.
   */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    let text: string;
    let status: number;
    try {
      const prepared = await abortable(this.prepare(method, path, options.query, options.accept), signal);
      const headers = prepared.headers;
      let body: string | undefined;
      if (options.body !== undefined) {
        headers['Content-Type'] = options.contentType ?? 'application/json';
        body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
      }
      if (options.fence && !options.fence()) throw new KubeError('EFENCED', `${method} ${path}: not sent, this replica does not hold the lease`);
      const response = await fetch(prepared.url, { method, headers, body, signal, ...(prepared.dispatcher ? { dispatcher: prepared.dispatcher } : {}) });
      status = response.status;
      text = await response.text();
    } catch (err) {
      throw failure(method, path, err, timeout, timeoutMs, options.signal);
    }
    if (status < 200 || status > 299) throw httpError(method, path, status, text);
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new KubeError('EMALFORMED', `${method} ${path}: the answer is not JSON`, { cause: err });
    }
  }

  get<T>(type: ResourceType, ref: ObjectRef, options: { timeoutMs?: number } = {}): Promise<T> {
    return this.request<T>('GET', pathOf(type, ref), options);
  }

  /** getOrNull is get with 404 (the object, or its API, is missing) as null. */
  async getOrNull<T>(type: ResourceType, ref: ObjectRef, options: { timeoutMs?: number } = {}): Promise<T | null> {
    try {
      return await this.get<T>(type, ref, options);
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return null;
      throw err;
    }
  }

  async list<T>(type: ResourceType, options: ListOptions = {}): Promise<ListAnswer<T>> {
    const answer = await this.request<ListAnswer<T>>('GET', pathOf(type, options.namespace === undefined ? {} : { namespace: options.namespace }), {
      query: { fieldSelector: options.fieldSelector, labelSelector: options.labelSelector },
      timeoutMs: options.timeoutMs ?? this.listTimeoutMs,
      ...(options.metadataOnly ? { accept: METADATA_LIST_ACCEPT } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    // Never hand on what was not asked for: a whole SecretList here would hold private keys.
    if (options.metadataOnly && answer?.kind !== 'PartialObjectMetadataList') {
      throw new KubeError('EMALFORMED', `asked for PartialObjectMetadataList, got ${JSON.stringify(answer?.kind)}`);
    }
    return { ...answer, items: answer?.items ?? [] };
  }

  create<T = unknown>(type: ResourceType, obj: WritableObject, options: WriteOptions = {}): Promise<T> {
    const ns = metaOf(obj).namespace;
    return this.request<T>('POST', pathOf(type, type.namespaced ? { namespace: ns ?? 'default' } : {}), {
      body: obj, query: { fieldManager: options.fieldManager }, ...writeOptions(options),
    });
  }

  /** replace is a PUT: the object's resourceVersion makes it a compare-and-swap (409 when it changed). */
  replace<T = unknown>(type: ResourceType, obj: WritableObject, options: WriteOptions = {}): Promise<T> {
    return this.request<T>('PUT', pathOf(type, refOf(type, obj)), {
      body: obj, query: { fieldManager: options.fieldManager }, ...writeOptions(options),
    });
  }

  /** jsonPatch sends RFC 6902 operations (see fencedPatch for the resourceVersion `test`). */
  jsonPatch<T>(type: ResourceType, ref: ObjectRef, ops: readonly PatchOp[], options: PatchOptions = {}): Promise<T> {
    return this.request<T>('PATCH', pathOf(type, ref, options.subresource), {
      body: ops, contentType: JSON_PATCH, query: { fieldManager: options.fieldManager }, ...writeOptions(options),
    });
  }

  /** patchStatus is jsonPatch on the status subresource: only status changes, whatever ops say. */
  patchStatus<T>(type: ResourceType, ref: ObjectRef, ops: readonly PatchOp[], options: WriteOptions = {}): Promise<T> {
    return this.jsonPatch<T>(type, ref, ops, { ...options, subresource: 'status' });
  }

  mergePatch<T>(type: ResourceType, ref: ObjectRef, patch: unknown, options: PatchOptions = {}): Promise<T> {
    return this.request<T>('PATCH', pathOf(type, ref, options.subresource), {
      body: patch, contentType: MERGE_PATCH, query: { fieldManager: options.fieldManager }, ...writeOptions(options),
    });
  }

  /** apply is a server-side apply of obj owned by fieldManager (force takes fields from other managers). */
  apply<T = unknown>(type: ResourceType, obj: WritableObject, options: WriteOptions & { fieldManager: string; force?: boolean }): Promise<T> {
    return this.request<T>('PATCH', pathOf(type, refOf(type, obj)), {
      body: obj, contentType: APPLY_PATCH, query: { fieldManager: options.fieldManager, force: options.force }, ...writeOptions(options),
    });
  }

  /** delete removes an object; one already gone (404) is success. */
  async delete(type: ResourceType, ref: ObjectRef, options: WriteOptions = {}): Promise<void> {
    try {
      await this.request('DELETE', pathOf(type, ref), writeOptions(options));
    } catch (err) {
      if (!(err instanceof KubeError && err.status === 404)) throw err;
    }
  }
}

function writeOptions(options: WriteOptions): Pick<RequestOptions, 'fence' | 'timeoutMs'> {
  return { ...(options.fence ? { fence: options.fence } : {}), ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) };
}

function refOf(type: ResourceType, obj: WritableObject): ObjectRef {
  const meta = metaOf(obj);
  return { ...(type.namespaced ? { namespace: meta.namespace ?? 'default' } : {}), name: meta.name ?? '' };
}

/** abortable rejects with the signal's reason once it aborts, whatever p does (credential plugins may hang). */
export function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v); }, (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); });
  });
}

const clients = new WeakMap<KubeConfig, Kube>();

/** kubeOf is the one Kube of a KubeConfig (made on first use), or k itself: callers may pass either. */
export function kubeOf(k: KubeConfig | Kube): Kube {
  if (k instanceof Kube) return k;
  let kube = clients.get(k);
  if (!kube) { kube = new Kube(k); clients.set(k, kube); }
  return kube;
}
