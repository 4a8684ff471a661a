/**
 * ProxyOptions: everything `vane proxy` can be told, checked once when the proxy starts
 * (never halfway through a request). Defaults are what a platform team would run.
 */
import { BlockList, isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { ProxyError } from './errors.ts';

export interface OutlierOptions {
  /** Consecutive connect failures that eject an endpoint. */
  consecutiveFailures: number;
  /** First ejection time; each further ejection in a row doubles it. */
  baseEjectionMs: number;
  maxEjectionMs: number;
  /** At most this share of a backend's endpoints is ejected at once (a lone endpoint never is). */
  maxEjectionPercent: number;
}

/** HstsDefaults: Strict-Transport-Security on TLS hosts whose Ingress says nothing (--hsts-*). */
export interface HstsDefaults { enabled: boolean; maxAgeSec: number; includeSubDomains: boolean; preload: boolean }

/** TlsPolicy: what every TLS handshake on the HTTPS listener allows (--tls-*); null: OpenSSL's and Node's defaults. */
export interface TlsPolicy { minVersion: 'TLSv1.2' | 'TLSv1.3'; ciphers: string | null; curves: string | null }

export interface ProxyOptions {
  httpPort: number;
  httpsPort: number;
  adminPort: number;
  /** Address the traffic listeners bind to. */
  host: string;
  adminHost: string;
  workers: number;
  /** CIDRs whose forwarding headers (X-Forwarded-*) are believed. */
  trustedProxies: string[];
  proxyProtocol: { http: boolean; https: boolean };
  /**
   * CIDRs of the load balancers that send PROXY protocol headers: on a listener with
   * proxyProtocol, their connections must start with one and others' are plain (their address is
   * the socket's). Not trustedProxies: an address whose X-Forwarded-For is believed need not be
   * one that may claim any client address at all, and in a cluster the load balancer often shares
   * a range with clients.
   */
  proxyProtocolPeers: string[];
  /** `namespace/name` of the TLS Secret to use when no certificate matches. */
  defaultSslCertificate: string | null;
  /** How long readiness fails before listeners close, so load balancers stop sending. */
  shutdownDelayMs: number;
  /** Longest wait for in-flight requests once listeners are closed. */
  drainTimeoutMs: number;
  /** Port written into 308 redirects to HTTPS (the Service port, not the container port). */
  httpsRedirectPort: number;
  maxHeaderBytes: number;
  /** Time a client has to send a complete request head (slow-loris bound). */
  clientHeaderTimeoutMs: number;
  /** Longest silence between two reads of a request body while the proxy reads it (nginx's client_body_timeout). */
  clientBodyTimeoutMs: number;
  /** Time a client has to send a whole request body once its head is read; 0: no limit. */
  clientBodyTotalTimeoutMs: number;
  /** Connections at once from one untrusted client address, per worker; 0: no limit. */
  maxConnectionsPerClient: number;
  clientKeepAliveTimeoutMs: number;
  /** Connections per upstream endpoint and worker. */
  upstreamConnections: number;
  upstreamKeepAliveMs: number;
  /** Requests that may wait for a busy endpoint's connection, per endpoint and worker; more get 503. */
  upstreamQueue: number;
  /** Longest wait for an upstream connection; then 503. */
  upstreamQueueTimeoutMs: number;
  /** Extra attempts for idempotent requests whose upstream connection failed. */
  retries: number;
  outlier: OutlierOptions;
  /** Label request metrics by route path too (off: 10k Ingresses must not mean millions of series). */
  metricsPerPath: boolean;
  /** Offer HTTP/2 by ALPN on the HTTPS listener (next to HTTP/1.1). */
  http2: boolean;
  /**
   * Serve HTTP/2 with prior knowledge (h2c) on the plain listener. Off by default: in a cluster a
   * plain port sits behind load balancers that speak HTTP/1.1, and h2c from a client is rare.
   */
  h2c: boolean;
  /** SETTINGS_MAX_CONCURRENT_STREAMS offered to HTTP/2 clients: streams open at once per connection. */
  http2MaxConcurrentStreams: number;
  hsts: HstsDefaults;
  tls: TlsPolicy;
}

export const DEFAULT_OPTIONS: ProxyOptions = {
  httpPort: 8080,
  httpsPort: 8443,
  adminPort: 9901,
  host: '0.0.0.0',
  adminHost: '0.0.0.0',
  workers: 1,
  trustedProxies: [],
  proxyProtocol: { http: false, https: false },
  proxyProtocolPeers: [],
  defaultSslCertificate: null,
  shutdownDelayMs: 5_000,
  drainTimeoutMs: 30_000,
  httpsRedirectPort: 443,
  maxHeaderBytes: 16 * 1024,
  clientHeaderTimeoutMs: 30_000,
  clientBodyTimeoutMs: 60_000,
  clientBodyTotalTimeoutMs: 300_000,
  maxConnectionsPerClient: 0,
  clientKeepAliveTimeoutMs: 75_000,
  upstreamConnections: 256,
  upstreamKeepAliveMs: 60_000,
  upstreamQueue: 1024,
  upstreamQueueTimeoutMs: 10_000,
  retries: 2,
  outlier: { consecutiveFailures: 3, baseEjectionMs: 10_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 },
  metricsPerPath: false,
  http2: true,
  h2c: false,
  http2MaxConcurrentStreams: 100,
  // ingress-nginx's default max-age; includeSubDomains stays off, as it reaches hosts this proxy may not serve.
  hsts: { enabled: true, maxAgeSec: 31_536_000, includeSubDomains: false, preload: false },
  tls: { minVersion: 'TLSv1.2', ciphers: null, curves: null },
};

function port(name: string, value: number, allowZero: boolean): void {
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1) || value > 65535) {
    throw new ProxyError('EOPTION', `${name} must be a port number${allowZero ? ' (0: any free port)' : ''}, got ${value}`);
  }
}

function positive(name: string, value: number, allowZero = false): void {
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) throw new ProxyError('EOPTION', `${name} must be a positive number, got ${value}`);
}

function count(name: string, value: number, allowZero: boolean): void {
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) throw new ProxyError('EOPTION', `${name} must be a whole number${allowZero ? ' (0 or more)' : ' above 0'}, got ${value}`);
}

/** addCidr adds `10.0.0.0/8`, `::1/128` or a bare address into a BlockList entry; `flag` names the option in errors. */
export function addCidr(list: BlockList, cidr: string, flag: string): void {
  const slash = cidr.indexOf('/');
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = isIP(address);
  if (family === 0) throw new ProxyError('EOPTION', `${flag}: "${cidr}" is not an IP address or CIDR`);
  const max = family === 4 ? 32 : 128;
  const bits = slash < 0 ? max : Number(cidr.slice(slash + 1));
  if (!Number.isInteger(bits) || bits < 0 || bits > max) throw new ProxyError('EOPTION', `${flag}: "${cidr}" has an invalid prefix length`);
  list.addSubnet(address, bits, family === 4 ? 'ipv4' : 'ipv6');
}

/** resolveOptions fills defaults and checks every value; it throws ProxyError on the first bad one. */
export function resolveOptions(partial: Partial<ProxyOptions>): ProxyOptions {
  const o: ProxyOptions = {
    ...DEFAULT_OPTIONS, ...partial, outlier: { ...DEFAULT_OPTIONS.outlier, ...partial.outlier },
    hsts: { ...DEFAULT_OPTIONS.hsts, ...partial.hsts }, tls: { ...DEFAULT_OPTIONS.tls, ...partial.tls },
  };
  port('--http-port', o.httpPort, true);
  port('--https-port', o.httpsPort, true);
  port('--admin-port', o.adminPort, true);
  port('--https-redirect-port', o.httpsRedirectPort, false);
  if (!Number.isInteger(o.workers) || o.workers < 1 || o.workers > 256) throw new ProxyError('EOPTION', `--workers must be from 1 to 256, got ${o.workers}`);
  addTrusted(o.trustedProxies);
  addTrusted(o.proxyProtocolPeers, '--proxy-protocol-peers');
  if ((o.proxyProtocol.http || o.proxyProtocol.https) && o.proxyProtocolPeers.length === 0) {
    throw new ProxyError('EOPTION', '--proxy-protocol needs --proxy-protocol-peers: the CIDRs of the load balancers that send the header');
  }
  if (o.defaultSslCertificate !== null && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(o.defaultSslCertificate)) {
    throw new ProxyError('EOPTION', `--default-ssl-certificate must be namespace/name, got "${o.defaultSslCertificate}"`);
  }
  positive('--shutdown-delay', o.shutdownDelayMs, true);
  positive('--drain-timeout', o.drainTimeoutMs);
  positive('--max-header-bytes', o.maxHeaderBytes);
  positive('--client-header-timeout', o.clientHeaderTimeoutMs);
  positive('--client-body-timeout', o.clientBodyTimeoutMs);
  positive('--client-body-total-timeout', o.clientBodyTotalTimeoutMs, true);
  count('--max-connections-per-client', o.maxConnectionsPerClient, true);
  positive('--client-keepalive-timeout', o.clientKeepAliveTimeoutMs);
  count('--upstream-connections', o.upstreamConnections, false);
  positive('--upstream-keepalive-timeout', o.upstreamKeepAliveMs);
  count('--upstream-queue', o.upstreamQueue, true);
  positive('--upstream-queue-timeout', o.upstreamQueueTimeoutMs);
  if (!Number.isInteger(o.retries) || o.retries < 0 || o.retries > 5) throw new ProxyError('EOPTION', `--retries must be from 0 to 5, got ${o.retries}`);
  positive('--outlier-consecutive-failures', o.outlier.consecutiveFailures);
  positive('--outlier-base-ejection', o.outlier.baseEjectionMs);
  positive('--outlier-max-ejection', o.outlier.maxEjectionMs);
  if (o.outlier.maxEjectionMs < o.outlier.baseEjectionMs) throw new ProxyError('EOPTION', '--outlier-max-ejection must not be below --outlier-base-ejection');
  if (!(o.outlier.maxEjectionPercent >= 0 && o.outlier.maxEjectionPercent <= 100)) throw new ProxyError('EOPTION', '--outlier-max-ejection-percent must be from 0 to 100');
  if (!Number.isInteger(o.http2MaxConcurrentStreams) || o.http2MaxConcurrentStreams < 1 || o.http2MaxConcurrentStreams > 10_000) {
    throw new ProxyError('EOPTION', `--http2-max-concurrent-streams must be from 1 to 10000, got ${o.http2MaxConcurrentStreams}`);
  }
  if (o.h2c && !o.http2) throw new ProxyError('EOPTION', '--h2c needs HTTP/2: drop --no-http2');
  if (!Number.isInteger(o.hsts.maxAgeSec) || o.hsts.maxAgeSec < 0 || o.hsts.maxAgeSec > 63_072_000) {
    throw new ProxyError('EOPTION', `--hsts-max-age must be whole seconds from 0 to 63072000 (two years), got ${o.hsts.maxAgeSec}`);
  }
  checkTlsPolicy(o.tls);
  return o;
}

/** checkTlsPolicy tries the policy on a context, so OpenSSL's refusal is a start-up error naming the flag, not a failed handshake. */
function checkTlsPolicy(t: TlsPolicy): void {
  if (t.minVersion !== 'TLSv1.2' && t.minVersion !== 'TLSv1.3') throw new ProxyError('EOPTION', `--tls-min-version must be TLSv1.2 or TLSv1.3, got ${String(t.minVersion)}`);
  const attempts: [string, string | null, object][] = [['--tls-ciphers', t.ciphers, { ciphers: t.ciphers }], ['--tls-curves', t.curves, { ecdhCurve: t.curves }]];
  for (const [flag, value, options] of attempts) {
    if (value === null) continue;
    try {
      createSecureContext(options);
    } catch (err) {
      throw new ProxyError('EOPTION', `${flag}: OpenSSL refuses "${value}" (${(err as Error).message})`);
    }
  }
}

/** tlsPolicyOptions is the policy as node:tls options, for servers and every secure context. */
export function tlsPolicyOptions(t: TlsPolicy): { minVersion: 'TLSv1.2' | 'TLSv1.3'; ciphers?: string; ecdhCurve?: string } {
  return { minVersion: t.minVersion, ...(t.ciphers !== null ? { ciphers: t.ciphers } : {}), ...(t.curves !== null ? { ecdhCurve: t.curves } : {}) };
}

/** addTrusted builds the matcher for --trusted-proxies, or for the list of CIDRs `flag` names. */
export function addTrusted(cidrs: readonly string[], flag = '--trusted-proxies'): BlockList {
  const list = new BlockList();
  for (const c of cidrs) addCidr(list, c.trim(), flag);
  return list;
}
