/**
 * The routing resources compile() produces and the stream carries. Each has a stable name
 * (`<type>/<id>`) and is hashed on its own, so that a change touches only the resources it
 * must (an EndpointSlice change, for example, only `endpoints/…`). Secrets are a type of
 * their own so key material never appears in any other resource.
 */

export type PathMatchType = 'Exact' | 'Prefix' | 'Regex';

export interface HeaderRule {
  /** Lower-cased header name. */
  name: string;
  /** Exact, case-sensitive value; when set, `always`/`never` have no special meaning. */
  value?: string;
  /** RE2 syntax, unanchored unless the pattern anchors itself. */
  regex?: string;
}

/** CanarySplit is one Canary's claim on a stable route. */
export interface CanarySplit {
  /** `namespace/name` of the Canary. */
  canary: string;
  /** Backend resource name of the canary service. */
  backend: string;
  /** 0–100: share of requests (or of sticky buckets) that go to the canary. */
  weight: number;
  header?: HeaderRule;
  cookie?: { name: string };
  /** When true, a client keeps its side through a cookie holding its bucket. */
  sticky: boolean;
}

export interface RouteTimeouts {
  connectMs: number;
  readMs: number;
  idleMs: number;
}

export interface RouteSpec {
  /** `namespace/name` of the Ingress that owns this route. */
  ingress: string;
  path: string;
  match: PathMatchType;
  /** Backend resource name (`backend/ns/service:port`). */
  backend: string;
  /** Path the upstream receives instead of the matched path; `$n` refers to regex groups. */
  rewriteTarget?: string;
  loadBalance: 'round-robin' | 'least-request';
  timeouts: RouteTimeouts;
  /** Maximum request body in bytes; 0 means unlimited. */
  maxBodyBytes: number;
  canary?: CanarySplit;
  /** Present when the route's Ingress asks for HTTPS to the backend (vane.dev/backend-*). */
  upstreamTls?: UpstreamTlsSpec;
}

/**
 * UpstreamTlsSpec: HTTPS to a route's backend. The key material stays in the `secret/…`
 * resource named here; when verification is on and that resource is missing (or has no
 * `ca.crt`), the proxy refuses to connect rather than connect unverified.
 */
export interface UpstreamTlsSpec {
  /** `secret/<ns>/<name>`: its `ca.crt` verifies the backend, its key pair (if any) is the client certificate. */
  secret?: string;
  /** Sent as SNI and checked against the certificate; default `<service>.<namespace>.svc` (an ExternalName's name). */
  serverName?: string;
  /** Verify the chain and the name: against the Secret's ca.crt, or the system's CAs when no Secret is named. */
  verify: boolean;
}

/**
 * ClientAuthSpec: a host asks TLS clients for a certificate, verified against the `ca.crt` of
 * `secret`; the proxy passes what it verified upstream in `ssl-client-*` headers.
 */
export interface ClientAuthSpec {
  /** Most intermediate CAs allowed between the client's certificate and the CA. */
  depth: number;
  mode: 'on' | 'optional' | 'optional_no_ca';
  /** Pass the client's certificate (URL-encoded PEM) in `ssl-client-cert`. */
  passCertificate: boolean;
  /** `secret/<ns>/<name>`. */
  secret: string;
}

/** HstsSpec: what the host's Ingress says of Strict-Transport-Security; fields it leaves out come from the proxy's flags. */
export interface HstsSpec {
  enabled?: boolean;
  includeSubDomains?: boolean;
  maxAgeSec?: number;
  preload?: boolean;
}

export interface VirtualHostSpec {
  /** Client certificate authentication, from the oldest Ingress on the host that asks for it. */
  clientAuth?: ClientAuthSpec;
  /** Lower-case host, `*.example.com` for a wildcard, `*` for rules without host. */
  host: string;
  routes: RouteSpec[];
  /** Route for paths no rule matches, from the oldest contributing Ingress with a defaultBackend. */
  fallback?: RouteSpec;
  /** Present when the host serves HTTPS. `secret` null means: use the default certificate. */
  tls?: { hsts?: HstsSpec; secret: string | null; sslRedirect: boolean };
  /** TLS pass-through: connections for this SNI name are forwarded to the backend undecrypted. */
  passthrough?: { backend: string; ingress: string };
}

export interface BackendSpec {
  namespace: string;
  service: string;
  /** The Service port as the Ingress names it: a number or a port name. */
  port: number | string;
  /** Set for ExternalName Services: the proxy resolves this DNS name itself. */
  externalName?: string;
  /** The port to connect to for ExternalName backends. */
  externalPort?: number;
  /** `http` (default) or `https` from the Service port's appProtocol. */
  protocol: 'http' | 'https';
}

export interface EndpointAddress {
  address: string;
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  zone?: string;
}

export interface EndpointsSpec {
  backend: string;
  addresses: EndpointAddress[];
}

/**
 * SecretSpec holds PEM key material; it lives only in `secret/…` resources. The pair is
 * there when it is valid (a serving or client certificate), `caPem` when `ca.crt` is.
 */
export interface SecretSpec {
  caPem?: string;
  certificatePem?: string;
  privateKeyPem?: string;
}

export interface ListenerSpec {
  /** Secret resource name of the default certificate; null: the proxy's self-generated one. */
  defaultCertificate: string | null;
  /** Catch-all for requests no virtual host takes (oldest Ingress with a defaultBackend). */
  defaultRoute?: RouteSpec;
  mergeSlashes: boolean;
}

export type Resource =
  | { type: 'vhost'; name: string; spec: VirtualHostSpec }
  | { type: 'backend'; name: string; spec: BackendSpec }
  | { type: 'endpoints'; name: string; spec: EndpointsSpec }
  | { type: 'secret'; name: string; spec: SecretSpec }
  | { type: 'listener'; name: string; spec: ListenerSpec };

export type ResourceType = Resource['type'];

export interface HashedResource {
  resource: Resource;
  /** SHA-256 of the resource's canonical encoding (core/canonical.ts). */
  hash: string;
}

/** ResourceMap is a resource set by name. */
export type ResourceMap = ReadonlyMap<string, HashedResource>;

export const LISTENER_NAME = 'listener/default';

export function vhostName(host: string): string { return `vhost/${host}`; }
export function backendName(namespace: string, service: string, port: number | string): string {
  return `backend/${namespace}/${service}:${port}`;
}
export function endpointsName(backend: string): string { return `endpoints/${backend.slice('backend/'.length)}`; }
export function secretName(namespace: string, name: string): string { return `secret/${namespace}/${name}`; }
