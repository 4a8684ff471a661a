/**
 * watch: one watch request, streamed line by line. Bounded at both ends: the answer's headers
 * must arrive within the connect bound (the client's request timeout), and once streaming, a
 * stream silent for idleTimeoutMs is cut ("idle") — the API server sends a BOOKMARK about every
 * minute to a watch that allows them, so silence past that means a dead connection that TCP
 * alone may take many minutes to notice. The server ends a watch by itself after
 * timeoutSeconds ("closed"). A 410 Gone, as an answer or an ERROR event, ends it as "gone":
 * the resourceVersion is too old and the caller must list again.
 */
import { fetch } from 'undici';
import { KubeError } from './errors.ts';
import { abortable, failure, httpError, METADATA_WATCH_ACCEPT, type Kube } from './client.ts';
import { pathOf, type ResourceType } from './resources.ts';

/** DEFAULT_IDLE_TIMEOUT_MS: 1.5× the API server's bookmark period. */
export const DEFAULT_IDLE_TIMEOUT_MS = 90_000;

export interface WatchOptions {
  namespace?: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** Where to start; '' starts at "now", which a reflector never does (it lists first). */
  resourceVersion: string;
  /** Events carry PartialObjectMetadata: no data, no spec. */
  metadataOnly?: boolean;
  /** The server ends the watch after this long (client-go draws 5–10 min). */
  timeoutSeconds?: number;
  idleTimeoutMs?: number;
  /** Bound until the answer's headers arrive (default: the client's request timeout). */
  connectTimeoutMs?: number;
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
  object: T;
}

export type WatchEnd =
  /** The server ended the stream (timeoutSeconds, or it shut down cleanly). */
  | { reason: 'closed' }
  /** Nothing arrived for idleTimeoutMs: the connection was cut here. */
  | { reason: 'idle' }
  /** 410: the resourceVersion is gone from the server's history; list again. */
  | { reason: 'gone'; message: string }
  /** Anything else: unreachable, timed out connecting, an HTTP error or an ERROR event. */
  | { reason: 'error'; error: KubeError };

export interface WatchHandle {
  /** close ends the watch; onEnd is not called after it. */
  close(): void;
}

export function watch<T>(kube: Kube, type: ResourceType, options: WatchOptions, onEvent: (event: WatchEvent<T>) => void, onEnd: (end: WatchEnd) => void): WatchHandle {
  const path = pathOf(type, options.namespace === undefined ? {} : { namespace: options.namespace });
  const connectTimeoutMs = options.connectTimeoutMs ?? kube.requestTimeoutMs;
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const controller = new AbortController();
  // Aborted only when the answer's headers (and, for an error, its body) took too long.
  const connectTimeout = new AbortController();
  const connectTimer = setTimeout(() => { connectTimeout.abort(new Error('connect timeout')); controller.abort(); }, connectTimeoutMs).unref();
  let idle = false;
  let closed = false;
  let ended = false;
  let idleTimer: NodeJS.Timeout | null = null;
  const armIdle = () => {
    if (idleTimer) idleTimer.refresh();
    else idleTimer = setTimeout(() => { idle = true; controller.abort(new Error('idle')); }, idleTimeoutMs).unref();
  };
  const end = (e: WatchEnd) => {
    clearTimeout(connectTimer);
    if (idleTimer) clearTimeout(idleTimer);
    if (ended || closed) return;
    ended = true;
    controller.abort();
    onEnd(e);
  };

  void (async () => {
    try {
      const prepared = await abortable(kube.prepare('GET', path, {
        watch: true,
        resourceVersion: options.resourceVersion || undefined,
        allowWatchBookmarks: true,
        fieldSelector: options.fieldSelector,
        labelSelector: options.labelSelector,
        timeoutSeconds: options.timeoutSeconds,
      }, options.metadataOnly ? METADATA_WATCH_ACCEPT : undefined), controller.signal);
      const response = await fetch(prepared.url, {
        method: 'GET', headers: prepared.headers, signal: controller.signal, ...(prepared.dispatcher ? { dispatcher: prepared.dispatcher } : {}),
      });
      if (response.status !== 200) {
        const text = await response.text();
        const error = httpError('WATCH', path, response.status, text);
        end(response.status === 410 ? { reason: 'gone', message: error.message } : { reason: 'error', error });
        return;
      }
      clearTimeout(connectTimer);
      armIdle();
      const decoder = new TextDecoder();
      let buffered = '';
      for await (const chunk of response.body ?? []) {
        if (closed || ended) return;
        armIdle();
        buffered += decoder.decode(chunk as Uint8Array, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (!line) continue;
          let event: { type?: string; object?: unknown };
          try { event = JSON.parse(line) as typeof event; } catch { continue; }
          if (event.type === 'ERROR') {
            const status = event.object as { code?: number; message?: string; reason?: string } | undefined;
            if (status?.code === 410) { end({ reason: 'gone', message: status.message ?? 'resourceVersion too old' }); return; }
            end({ reason: 'error', error: new KubeError('EHTTP', `WATCH ${path}: ${status?.reason ?? 'ERROR'}: ${status?.message ?? line.slice(0, 200)}`, { ...(status?.code ? { status: status.code } : {}), ...(status?.reason ? { reason: status.reason } : {}) }) });
            return;
          }
          if (event.type === 'ADDED' || event.type === 'MODIFIED' || event.type === 'DELETED' || event.type === 'BOOKMARK') {
            onEvent({ type: event.type, object: event.object as T });
            if (closed || ended) return;
          }
        }
      }
      end({ reason: 'closed' });
    } catch (err) {
      if (closed || ended) return;
      if (idle) { end({ reason: 'idle' }); return; }
      end({ reason: 'error', error: failure('WATCH', path, err, connectTimeout.signal, connectTimeoutMs) });
    }
  })();

  return {
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(connectTimer);
      if (idleTimer) clearTimeout(idleTimer);
      controller.abort();
    },
  };
}
