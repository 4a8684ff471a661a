/**
 * TLS to upstreams: a route's UpstreamTlsSpec and the Secret it names, resolved once per
 * routing state into a profile — the options every connection to that backend is dialled
 * with. undici's own connector would take the SNI name from each request's Host header; a
 * profile's connector always sends, and verifies, the configured name instead, so a client
 * cannot choose the name the backend's certificate is checked against.
 *
 * Verification fails closed: a route that verifies against a Secret which is missing or has
 * no `ca.crt` gets no profile at all (its requests are answered 502), never an unverified one.
 */
import { buildConnector } from 'undici';
import type { BackendSpec, HashedResource, RouteSpec, SecretSpec, UpstreamTlsSpec } from '../../core/index.ts';

/** UpstreamTlsProfile: what a connection to one backend over TLS is dialled with. */
export interface UpstreamTlsProfile {
  /** Same key, same options and key material: pools are shared by key and replaced when it changes. */
  readonly key: string;
  /** The pools a route's profile replaces when its Secret rotates: everything but the material. */
  readonly slot: string;
  readonly options: Readonly<{ servername: string; rejectUnauthorized: boolean; ca?: string; cert?: string; key?: string }>;
}

/** connectorFor builds undici's connector for a profile and connect timeout, pinned to the profile's name. */
export function connectorFor(profile: UpstreamTlsProfile, timeoutMs: number): buildConnector.connector {
  const base = buildConnector({ ...profile.options, timeout: timeoutMs });
  const servername = profile.options.servername;
  return (opts, callback) => base({ ...opts, servername }, callback);
}

/** defaultServerName is the name a backend's certificate carries when a cluster CA issued it for its Service. */
export function defaultServerName(backend: BackendSpec): string {
  return backend.externalName ?? `${backend.service}.${backend.namespace}.svc`;
}

/** UNVERIFIABLE: the route must verify, and what it verifies with is not there. */
export const UNVERIFIABLE = 'unverifiable';

/**
 * UpstreamTlsProfiles resolves profiles against one set of resources (a routing state's),
 * memoised per route and backend: the lookup runs on every request to a TLS route.
 */
export class UpstreamTlsProfiles {
  private readonly resources: ReadonlyMap<string, HashedResource>;
  private readonly memo = new WeakMap<RouteSpec, Map<string, UpstreamTlsProfile | typeof UNVERIFIABLE>>();

  constructor(resources: ReadonlyMap<string, HashedResource>) { this.resources = resources; }

  /** profile is the route's TLS profile towards `backend` (a resource name), or UNVERIFIABLE. */
  profile(route: RouteSpec, backend: string): UpstreamTlsProfile | typeof UNVERIFIABLE {
    let byBackend = this.memo.get(route);
    if (byBackend === undefined) { byBackend = new Map(); this.memo.set(route, byBackend); }
    let p = byBackend.get(backend);
    if (p === undefined) { p = this.resolve(route.upstreamTls!, backend); byBackend.set(backend, p); }
    return p;
  }

  private resolve(spec: UpstreamTlsSpec, backendName: string): UpstreamTlsProfile | typeof UNVERIFIABLE {
    const b = this.resources.get(backendName);
    if (b?.resource.type !== 'backend') return UNVERIFIABLE;
    const servername = spec.serverName ?? defaultServerName(b.resource.spec);
    let material: SecretSpec = {};
    let hash = '';
    if (spec.secret !== undefined) {
      const s = this.resources.get(spec.secret);
      if (s?.resource.type !== 'secret') return UNVERIFIABLE;
      material = s.resource.spec;
      hash = s.hash;
    }
    if (spec.verify && spec.secret !== undefined && material.caPem === undefined) return UNVERIFIABLE;
    const slot = `${spec.secret ?? ''} ${servername} ${spec.verify}`;
    return {
      key: `${slot} ${hash}`,
      slot,
      options: {
        servername,
        rejectUnauthorized: spec.verify,
        ...(spec.verify && material.caPem !== undefined ? { ca: material.caPem } : {}),
        ...(material.certificatePem !== undefined && material.privateKeyPem !== undefined ? { cert: material.certificatePem, key: material.privateKeyPem } : {}),
      },
    };
  }
}
