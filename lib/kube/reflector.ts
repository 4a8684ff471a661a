/**
 * Reflector: list+watch of one resource type into a cache by uid, as client-go's reflector
 * and kubernetes-fluent-client's Watcher do it, and never throwing into its caller:
 *
 * - list, deliver what changed since the cache (by resourceVersion) and what disappeared,
 *   then watch from the list's resourceVersion;
 * - a watch the server ends (timeoutSeconds) or that goes silent past the idle bound is
 *   resumed from the last resourceVersion seen (events and bookmarks move it);
 * - 410 Gone (as an answer or an ERROR event) lists again: nothing is lost, the relist
 *   delivers every change and deletion the watch missed;
 * - a failed list or watch is retried with jittered exponential back-off (a watch from the
 *   last resourceVersion, which answers 410 if that is too old by then); a missing API
 *   (404: a CRD not installed yet) is retried the same way until it appears;
 * - a full relist every relistMs ±20%, jittered so replicas do not relist in step;
 * - close() ends the watch and clears every timer.
 */
import type { Logger } from '../log.ts';
import { isKubeError } from './errors.ts';
import type { Kube } from './client.ts';
import type { ResourceType } from './resources.ts';
import { watch, type WatchEnd, type WatchHandle } from './watch.ts';

export interface ReflectedObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export interface ReflectorOptions<T extends ReflectedObject> {
  type: ResourceType;
  logger: Logger;
  namespace?: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** List and watch PartialObjectMetadata only. */
  metadataOnly?: boolean;
  /** Mean period of the full relist (default 5 min); each reflector adds up to ±20% jitter. */
  relistMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** A watch silent this long is cut and resumed (default 90 s: bookmarks come about every minute). */
  idleTimeoutMs?: number;
  /** The server ends each watch after this long (default: 5–10 min, drawn per watch). */
  watchTimeoutSeconds?: number;
  /** Each object listed or watched, before it is cached and delivered (strip managedFields, keep metadata only, …). */
  transform?: (obj: T) => T;
  /** An object appeared or changed (by resourceVersion). */
  onUpsert: (obj: T) => void;
  /** An object is gone: from a DELETED event, or missing from a relist (then only apiVersion, kind and metadata name/namespace/uid). */
  onDelete: (obj: T) => void;
}

interface Cached { name: string; namespace: string | undefined; rv: string }

export class Reflector<T extends ReflectedObject = ReflectedObject> {
  private readonly kube: Kube;
  private readonly o: ReflectorOptions<T> & Required<Pick<ReflectorOptions<T>, 'relistMs' | 'initialBackoffMs' | 'maxBackoffMs' | 'idleTimeoutMs'>>;
  private readonly cache = new Map<string, Cached>();
  private resourceVersion = '';
  private current: WatchHandle | null = null;
  private listing: AbortController | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private relistTimer: NodeJS.Timeout | null = null;
  private backoffMs: number;
  private closed = false;
  private started = false;
  private listedOnce!: () => void;
  /** Resolves after the first complete list was delivered (or the API turned out to be missing). */
  readonly listed: Promise<void>;
  /** Counters for tests and metrics: lists done, watches started, 410s seen. */
  readonly stats = { lists: 0, watches: 0, gone: 0 };

  constructor(kube: Kube, options: ReflectorOptions<T>) {
    this.kube = kube;
    this.o = { relistMs: 300_000, initialBackoffMs: 500, maxBackoffMs: 30_000, idleTimeoutMs: 90_000, ...options };
    this.backoffMs = this.o.initialBackoffMs;
    this.listed = new Promise((resolve) => { this.listedOnce = resolve; });
  }

  get kind(): string { return this.o.type.kind; }

  /** lastResourceVersion is where the next watch starts. */
  get lastResourceVersion(): string { return this.resourceVersion; }

  /** size is the number of objects cached. */
  get size(): number { return this.cache.size; }

  start(): void {
    if (this.started) return;
    this.started = true;
    void this.relist();
  }

  close(): void {
    this.closed = true;
    this.current?.close();
    this.current = null;
    this.listing?.abort();
    for (const t of [this.retryTimer, this.relistTimer]) if (t) clearTimeout(t);
    this.retryTimer = this.relistTimer = null;
  }

  private uidOf(obj: T): string {
    const m = obj.metadata ?? {};
    return m.uid ?? `${m.namespace ?? ''}/${m.name ?? ''}`;
  }

  private async relist(): Promise<void> {
    if (this.closed) return;
    this.current?.close();
    this.current = null;
    this.listing?.abort();
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = null; }
    const listing = new AbortController();
    this.listing = listing;
    let items: T[];
    let rv: string;
    try {
      const answer = await this.kube.list<T>(this.o.type, {
        ...(this.o.namespace !== undefined ? { namespace: this.o.namespace } : {}),
        ...(this.o.fieldSelector ? { fieldSelector: this.o.fieldSelector } : {}),
        ...(this.o.labelSelector ? { labelSelector: this.o.labelSelector } : {}),
        metadataOnly: this.o.metadataOnly === true,
        signal: listing.signal,
      });
      items = answer.items;
      rv = answer.metadata?.resourceVersion ?? '';
    } catch (err) {
      if (this.listing === listing) this.listing = null;
      if (listing.signal.aborted) return;
      this.fail('list', err, () => this.relist());
      return;
    }
    if (this.listing !== listing || this.closed) return;
    this.listing = null;
    this.stats.lists++;
    const seen = new Set<string>();
    for (const raw of items) {
      const obj = this.o.transform ? this.o.transform(raw) : raw;
      const uid = this.uidOf(obj);
      seen.add(uid);
      this.remember(uid, obj);
    }
    for (const [uid, entry] of this.cache) {
      if (seen.has(uid)) continue;
      this.cache.delete(uid);
      const { group, version, kind } = this.o.type;
      this.o.onDelete({
        apiVersion: group ? `${group}/${version}` : version, kind,
        metadata: { name: entry.name, ...(entry.namespace !== undefined ? { namespace: entry.namespace } : {}), ...(uid.includes('/') ? {} : { uid }) },
      } as T);
    }
    this.resourceVersion = rv;
    this.backoffMs = this.o.initialBackoffMs;
    this.listedOnce();
    this.scheduleRelist();
    this.startWatch();
  }

  /** remember caches obj and delivers it, unless the cache already holds this resourceVersion. */
  private remember(uid: string, obj: T): void {
    const rv = obj.metadata?.resourceVersion ?? '';
    if (rv && this.cache.get(uid)?.rv === rv) return;
    this.cache.set(uid, { name: obj.metadata?.name ?? '', namespace: obj.metadata?.namespace, rv });
    this.o.onUpsert(obj);
  }

  private scheduleRelist(): void {
    if (this.relistTimer) clearTimeout(this.relistTimer);
    const jitter = 0.8 + Math.random() * 0.4;
    this.relistTimer = setTimeout(() => { this.relistTimer = null; void this.relist(); }, Math.round(this.o.relistMs * jitter));
    this.relistTimer.unref();
  }

  private startWatch(): void {
    if (this.closed) return;
    this.current?.close();
    const startedAt = Date.now();
    let events = 0;
    this.stats.watches++;
    const timeoutSeconds = this.o.watchTimeoutSeconds ?? Math.round(300 * (1 + Math.random()));
    const handle: WatchHandle = watch<T>(this.kube, this.o.type, {
      resourceVersion: this.resourceVersion,
      ...(this.o.namespace !== undefined ? { namespace: this.o.namespace } : {}),
      ...(this.o.fieldSelector ? { fieldSelector: this.o.fieldSelector } : {}),
      ...(this.o.labelSelector ? { labelSelector: this.o.labelSelector } : {}),
      metadataOnly: this.o.metadataOnly === true,
      idleTimeoutMs: this.o.idleTimeoutMs,
      timeoutSeconds,
    }, (event) => {
      if (this.current !== handle) return;
      events++;
      this.backoffMs = this.o.initialBackoffMs;
      const rv = event.object?.metadata?.resourceVersion;
      if (rv) this.resourceVersion = rv;
      if (event.type === 'BOOKMARK') return;
      const obj = this.o.transform ? this.o.transform(event.object) : event.object;
      const uid = this.uidOf(obj);
      if (event.type === 'DELETED') {
        this.cache.delete(uid);
        this.o.onDelete(obj);
      } else {
        this.remember(uid, obj);
      }
    }, (end) => {
      if (this.current !== handle) return;
      this.current = null;
      this.onWatchEnd(end, Date.now() - startedAt, events);
    });
    this.current = handle;
  }

  private onWatchEnd(end: WatchEnd, livedMs: number, events: number): void {
    if (this.closed) return;
    switch (end.reason) {
      case 'gone':
        this.stats.gone++;
        this.o.logger.info({ kind: this.kind, resourceVersion: this.resourceVersion }, `the ${this.kind} watch is too old (410 Gone); listing again`);
        void this.relist();
        return;
      case 'idle':
        this.o.logger.debug({ kind: this.kind, idleMs: this.o.idleTimeoutMs }, `the ${this.kind} watch was silent; resuming it`);
        this.startWatch();
        return;
      case 'closed':
        // A stream that ends at once, again and again, is a failing server, not a timeout.
        if (events === 0 && livedMs < 1_000) { this.fail('watch', new Error('the watch ended at once'), () => this.startWatch()); return; }
        this.startWatch();
        return;
      case 'error':
        this.fail('watch', end.error, () => this.startWatch());
    }
  }

  private fail(what: 'list' | 'watch', err: unknown, retry: () => void): void {
    if (this.closed) return;
    const missing = isKubeError(err) && err.status === 404;
    this.o.logger.warn({ kind: this.kind, op: what, err: (err as Error)?.message ?? String(err), retryInMs: this.backoffMs },
      missing ? `the ${this.kind} API is not available yet; retrying` : `${what} of ${this.kind} failed; retrying`);
    if (missing) this.listedOnce();
    // A watch whose API vanished starts over with a list.
    const next = missing ? () => void this.relist() : retry;
    const delay = Math.round(this.backoffMs * (0.5 + Math.random() * 0.5));
    this.backoffMs = Math.min(this.o.maxBackoffMs, this.backoffMs * 2);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { this.retryTimer = null; next(); }, delay);
  }
}
