/**
 * Upstreams: per endpoint, the fast path's pool (plain HTTP, proxy/http1) and an undici Pool
 * for the general path (keep-alive, no pipelining — more connections instead), both created
 * on first use and shared by every backend that lists the endpoint; a Cluster per backend picks an
 * endpoint (round-robin or least-request by power of two choices) and applies passive
 * outlier ejection.
 *
 * Outlier ejection: `consecutiveFailures` connect failures in a row eject an endpoint for
 * `baseEjectionMs`, doubled for each further ejection in a row (capped at `maxEjectionMs`);
 * one successful request resets both. At most `maxEjectionPercent` of a backend's endpoints
 * are ejected at once, so a lone endpoint is never ejected; when every candidate is
 * ejected the cluster still picks one (panic mode) rather than answer 503.
 */
import { Pool } from 'undici';
import type { BackendSpec, EndpointsSpec } from '../../core/index.ts';
import type { OutlierOptions } from '../options.ts';
import { UpstreamPool } from './pool.ts';
import { connectorFor, type UpstreamTlsProfile } from './tls.ts';

export interface PoolSettings {
  connections: number;
  keepAliveMs: number;
  /** Requests that may wait once every connection is taken (each path's own pool). */
  queue: number;
  queueTimeoutMs: number;
  /** The worker's count of requests waiting for a connection, on either path. */
  waiting: { count: number };
}

/** Endpoint is one upstream address; its outlier state is shared by every backend that lists it. */
export class Endpoint {
  readonly key: string;
  readonly origin: string;
  readonly address: string;
  readonly port: number;
  /** Its Service port says HTTPS: only the general path (undici) reaches it. */
  readonly tls: boolean;
  /** undici Pools by connect timeout, and for routes with their own TLS by profile slot. */
  private readonly pools = new Map<string, { key: string; pool: Pool }>();
  private readonly fastPools = new Map<number, UpstreamPool>();
  private readonly settings: PoolSettings;
  refs = 0;
  inflight = 0;
  /** Requests dispatched to the undici Pools and not started yet: their queue, which undici leaves unbounded. */
  undiciWaiting = 0;
  consecutiveFailures = 0;
  /** Ejections in a row, for the back-off. */
  ejections = 0;
  ejectedUntil = 0;
  closed = false;

  constructor(key: string, origin: string, address: string, port: number, settings: PoolSettings) {
    this.key = key;
    this.origin = origin;
    this.address = address;
    this.port = port;
    this.tls = origin.startsWith('https:');
    this.settings = settings;
  }

  get queueLimit(): number { return this.settings.queue; }
  get queueTimeoutMs(): number { return this.settings.queueTimeoutMs; }

  /** undiciQueued counts a request into (+1) or out of (-1) the undici Pools' queue. */
  undiciQueued(delta: 1 | -1): void {
    this.undiciWaiting += delta;
    this.settings.waiting.count += delta;
  }

  /** fastPool returns the fast path's pool for a connect timeout (plain HTTP endpoints only). */
  fastPool(connectMs: number): UpstreamPool {
    let p = this.fastPools.get(connectMs);
    if (!p) {
      p = new UpstreamPool(this.address, this.port, { ...this.settings, connectMs });
      // A retry of an exchange that began before the endpoint was removed finds it refusing.
      if (this.closed) p.close(); else this.fastPools.set(connectMs, p);
    }
    return p;
  }

  /**
   * pool returns the Pool for a connect timeout and a route's TLS profile (null: the Service
   * port decides); routes rarely differ, so there is usually one. A profile whose key material
   * changed (a rotated Secret) replaces its slot's Pool, which finishes what it has in flight.
   */
  pool(connectMs: number, profile: UpstreamTlsProfile | null = null): Pool {
    const slot = profile === null ? String(connectMs) : `${connectMs} ${profile.slot}`;
    const key = profile === null ? '' : profile.key;
    const held = this.pools.get(slot);
    if (held !== undefined && held.key === key) return held.pool;
    if (held !== undefined) held.pool.close().catch(() => undefined);
    const pool = new Pool(profile === null ? this.origin : this.tlsOrigin, {
      connections: this.settings.connections,
      pipelining: 1,
      keepAliveTimeout: this.settings.keepAliveMs,
      keepAliveMaxTimeout: this.settings.keepAliveMs,
      // Without vane.dev/backend-tls-*, HTTPS is not verified (as with ingress-nginx): status warns.
      connect: profile !== null ? connectorFor(profile, connectMs) : this.tls ? { timeout: connectMs, rejectUnauthorized: false } : { timeout: connectMs },
    });
    this.pools.set(slot, { key, pool });
    return pool;
  }

  private get tlsOrigin(): string {
    return `https://${this.address.includes(':') ? `[${this.address}]` : this.address}:${this.port}`;
  }

  close(): void {
    this.closed = true;
    for (const p of this.pools.values()) p.pool.close().catch(() => undefined);
    this.pools.clear();
    for (const p of this.fastPools.values()) p.close();
    this.fastPools.clear();
  }

  destroy(): Promise<unknown> {
    this.closed = true;
    const all = [...this.pools.values()].map((p) => p.pool.destroy().catch(() => undefined));
    this.pools.clear();
    for (const p of this.fastPools.values()) p.destroy();
    this.fastPools.clear();
    return Promise.all(all);
  }
}

/** Endpoints is a worker's registry of Endpoint objects, reference counted by clusters. */
export class Endpoints {
  private readonly byKey = new Map<string, Endpoint>();
  private readonly settings: PoolSettings;

  constructor(settings: PoolSettings) { this.settings = settings; }

  acquire(protocol: 'http' | 'https', address: string, port: number): Endpoint {
    const host = address.includes(':') ? `[${address}]` : address;
    const key = `${protocol}://${host}:${port}`;
    let ep = this.byKey.get(key);
    if (!ep) { ep = new Endpoint(key, key, address, port, this.settings); this.byKey.set(key, ep); }
    ep.refs++;
    return ep;
  }

  release(ep: Endpoint): void {
    if (--ep.refs > 0) return;
    this.byKey.delete(ep.key);
    ep.close();
  }

  get size(): number { return this.byKey.size; }

  async destroyAll(): Promise<void> {
    const all = [...this.byKey.values()];
    this.byKey.clear();
    await Promise.all(all.map((ep) => ep.destroy()));
  }
}

/** Cluster is one backend's endpoints in the shape the balancer needs. */
export class Cluster {
  readonly backend: string;
  /** `namespace/service:port`, the metrics label. */
  readonly service: string;
  /** Ready endpoints; when none is ready, those still serving while terminating. */
  readonly candidates: Endpoint[];
  readonly all: Endpoint[];
  private rr = 0;

  constructor(backend: string, candidates: Endpoint[], all: Endpoint[]) {
    this.backend = backend;
    this.service = backend.slice('backend/'.length);
    this.candidates = candidates;
    this.all = all;
    this.rr = candidates.length > 1 ? Math.floor(Math.random() * candidates.length) : 0;
  }

  /** pick chooses an endpoint, avoiding `avoid` (the one that just failed) when there is a choice. */
  pick(leastRequest: boolean, nowMs: number, avoid: Endpoint | null): Endpoint | null {
    const list = this.candidates;
    const n = list.length;
    if (n === 0) return null;
    if (n === 1) return list[0]!;
    if (leastRequest) {
      const a = list[(Math.random() * n) | 0]!;
      let b = list[(Math.random() * n) | 0]!;
      if (b === a) b = list[(list.indexOf(a) + 1) % n]!;
      const aOk = a.ejectedUntil <= nowMs && a !== avoid;
      const bOk = b.ejectedUntil <= nowMs && b !== avoid;
      if (aOk !== bOk) return aOk ? a : b;
      return a.inflight <= b.inflight ? a : b;
    }
    for (let i = 0; i < n; i++) {
      const ep = list[this.rr++ % n]!;
      if (ep.ejectedUntil <= nowMs && ep !== avoid) return ep;
    }
    const any = list[this.rr++ % n]!;
    return any === avoid ? list[this.rr++ % n]! : any;
  }

  /** ejectedNow counts candidates currently ejected. */
  ejectedNow(nowMs: number): number {
    let k = 0;
    for (const ep of this.candidates) if (ep.ejectedUntil > nowMs) k++;
    return k;
  }

  /** connectFailed records a failed connection; true when it ejected the endpoint. */
  connectFailed(ep: Endpoint, nowMs: number, o: OutlierOptions): boolean {
    ep.consecutiveFailures++;
    if (ep.consecutiveFailures < o.consecutiveFailures || ep.ejectedUntil > nowMs) return false;
    const cap = Math.floor((this.candidates.length * o.maxEjectionPercent) / 100);
    if (this.ejectedNow(nowMs) >= cap) return false;
    ep.ejections++;
    ep.consecutiveFailures = 0;
    ep.ejectedUntil = nowMs + Math.min(o.baseEjectionMs * 2 ** (ep.ejections - 1), o.maxEjectionMs);
    return true;
  }

  static succeeded(ep: Endpoint): void {
    ep.consecutiveFailures = 0;
    ep.ejections = 0;
  }
}

/** buildCluster turns a backend and its endpoints resource into a Cluster. */
export function buildCluster(name: string, backend: BackendSpec, endpoints: EndpointsSpec | undefined, registry: Endpoints): Cluster {
  if (backend.externalName) {
    const ep = registry.acquire(backend.protocol, backend.externalName, backend.externalPort ?? (typeof backend.port === 'number' ? backend.port : 80));
    return new Cluster(name, [ep], [ep]);
  }
  const all: Endpoint[] = [];
  const ready: Endpoint[] = [];
  const fallback: Endpoint[] = [];
  for (const a of endpoints?.addresses ?? []) {
    if (!a.ready && !(a.serving && a.terminating)) continue;
    const ep = registry.acquire(backend.protocol, a.address, a.port);
    all.push(ep);
    (a.ready ? ready : fallback).push(ep);
  }
  return new Cluster(name, ready.length > 0 ? ready : fallback, all);
}
