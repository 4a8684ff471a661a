/**
 * Router: a worker's routing state. Each update builds a new RoutingState — the route table
 * via core's updateRouteTable (only changed virtual hosts re-indexed), clusters only for
 * changed backends and endpoints — and swaps it in by reference. A request reads the state
 * once when it starts, so in-flight requests finish on the table they began with.
 */
import {
  buildRouteTable, updateRouteTable, endpointsName,
  type HashedResource, type RouteTable, type BackendSpec, type EndpointsSpec, type ClientAuthSpec, type HstsSpec,
} from '../../core/index.ts';
import type { WireDelta } from './source.ts';
import { buildCluster, type Cluster, type Endpoints } from '../upstream/endpoints.ts';
import { UpstreamTlsProfiles } from '../upstream/tls.ts';
import type { HstsDefaults } from '../options.ts';

export class RoutingState {
  readonly table: RouteTable;
  readonly clusters: ReadonlyMap<string, Cluster>;
  /** Virtual host names with TLS pass-through, so listeners skip SNI peeking when there are none. */
  readonly passthrough: ReadonlySet<string>;
  /** Virtual hosts that ask TLS clients for certificates, by name: listeners peek at SNI while there are any. */
  readonly clientAuth: ReadonlyMap<string, ClientAuthSpec>;
  /** Virtual hosts with TLS, by name: what their Ingress says of HSTS (null: nothing). */
  readonly tlsHosts: ReadonlyMap<string, HstsSpec | null>;
  /** Strict-Transport-Security values by virtual host, made on a host's first HTTPS request. */
  private readonly hsts = new Map<string, string | null>();
  readonly generation: number;
  readonly root: string;
  /** TLS profiles of routes with HTTPS of their own, against this state's Secrets. */
  readonly tls: UpstreamTlsProfiles;

  constructor(table: RouteTable, clusters: ReadonlyMap<string, Cluster>, passthrough: ReadonlySet<string>, clientAuth: ReadonlyMap<string, ClientAuthSpec>,
    tlsHosts: ReadonlyMap<string, HstsSpec | null>, generation: number, root: string, tls: UpstreamTlsProfiles) {
    this.tls = tls;
    this.tlsHosts = tlsHosts;
    this.clientAuth = clientAuth;
    this.table = table;
    this.clusters = clusters;
    this.passthrough = passthrough;
    this.generation = generation;
    this.root = root;
  }

  /** hstsHeader is the Strict-Transport-Security value for an HTTPS request to vhost, or null: none (no TLS, or turned off). */
  hstsHeader(vhost: string, defaults: HstsDefaults | undefined): string | null {
    let value = this.hsts.get(vhost);
    if (value !== undefined) return value;
    value = null;
    const own = this.tlsHosts.get(vhost);
    if (own !== undefined) {
      const h = { enabled: false, maxAgeSec: 0, includeSubDomains: false, preload: false, ...defaults, ...own };
      if (h.enabled) value = `max-age=${h.maxAgeSec}${h.includeSubDomains ? '; includeSubDomains' : ''}${h.preload ? '; preload' : ''}`;
    }
    this.hsts.set(vhost, value);
    return value;
  }
}

export interface AppliedUpdate {
  state: RoutingState;
  /** Secret resource names upserted or removed, for the TLS store. */
  secrets: string[];
}

function backendOf(name: string): string | null {
  if (name.startsWith('backend/')) return name;
  if (name.startsWith('endpoints/')) return `backend/${name.slice('endpoints/'.length)}`;
  return null;
}

export class Router {
  private resources = new Map<string, HashedResource>();
  state: RoutingState | null = null;
  private readonly endpoints: Endpoints;

  constructor(endpoints: Endpoints) { this.endpoints = endpoints; }

  get resourceMap(): ReadonlyMap<string, HashedResource> { return this.resources; }

  /** apply builds and installs the state after a delta; it returns what else must follow. */
  apply(delta: WireDelta): AppliedUpdate {
    const prev = this.state;
    const full = delta.full || prev === null;
    const next = full ? new Map<string, HashedResource>() : new Map(this.resources);
    const changed: string[] = [];
    if (!full) for (const name of delta.removals) { next.delete(name); changed.push(name); }
    for (const r of delta.upserts) { next.set(r.resource.name, r); changed.push(r.resource.name); }

    const table = full ? buildRouteTable(next) : updateRouteTable(prev!.table, next, changed);

    const clusters = full ? new Map<string, Cluster>() : new Map(prev!.clusters);
    const passthrough = full ? new Set<string>() : new Set(prev!.passthrough);
    const clientAuth = full ? new Map<string, ClientAuthSpec>() : new Map(prev!.clientAuth);
    const tlsHosts = full ? new Map<string, HstsSpec | null>() : new Map(prev!.tlsHosts);
    const secrets: string[] = [];
    const backends = new Set<string>();
    if (full) {
      for (const [name, r] of next) {
        if (r.resource.type === 'backend') backends.add(name);
        if (r.resource.type === 'secret') secrets.push(name);
        if (r.resource.type === 'vhost' && r.resource.spec.passthrough) passthrough.add(name);
        if (r.resource.type === 'vhost' && r.resource.spec.clientAuth) clientAuth.set(name, r.resource.spec.clientAuth);
        if (r.resource.type === 'vhost' && r.resource.spec.tls) tlsHosts.set(name, r.resource.spec.tls.hsts ?? null);
      }
      if (prev) for (const name of prev.clusters.keys()) backends.add(name);
      for (const name of this.resources.keys()) if (name.startsWith('secret/')) secrets.push(name);
    } else {
      for (const name of changed) {
        const b = backendOf(name);
        if (b) backends.add(b);
        else if (name.startsWith('secret/')) secrets.push(name);
        else if (name.startsWith('vhost/')) {
          const r = next.get(name);
          if (r?.resource.type === 'vhost' && r.resource.spec.passthrough) passthrough.add(name); else passthrough.delete(name);
          if (r?.resource.type === 'vhost' && r.resource.spec.clientAuth) clientAuth.set(name, r.resource.spec.clientAuth); else clientAuth.delete(name);
          if (r?.resource.type === 'vhost' && r.resource.spec.tls) tlsHosts.set(name, r.resource.spec.tls.hsts ?? null); else tlsHosts.delete(name);
        }
      }
    }
    for (const name of backends) {
      const old = prev?.clusters.get(name);
      const b = next.get(name);
      if (b?.resource.type === 'backend') {
        const e = next.get(endpointsName(name));
        const cluster = buildCluster(name, b.resource.spec as BackendSpec, e?.resource.type === 'endpoints' ? e.resource.spec as EndpointsSpec : undefined, this.endpoints);
        clusters.set(name, cluster);
      } else {
        clusters.delete(name);
      }
      // Released after the new cluster acquired its endpoints, so shared pools stay open.
      if (old) for (const ep of old.all) this.endpoints.release(ep);
    }

    this.resources = next;
    this.state = new RoutingState(table, clusters, passthrough, clientAuth, tlsHosts, delta.generation, delta.root, new UpstreamTlsProfiles(next));
    return { state: this.state, secrets };
  }
}
