/**
 * Exchange: one proxied request, whichever path carries it — the fast path (fast-path.ts), the
 * general path or an upgrade (general.ts). It holds what they share: request inspection and
 * routing through core's match() (an Exchange is the MatchRequest core reads: header() and
 * cookie() are methods, so routing needs no per-request closures), and one request lifecycle:
 *
 *   prepare ─► answerLocally (404, 400, 413, 503, 308) ──────────────► reply
 *      └────► attempt: pick an endpoint ─► send (the path's transport)
 *                 ▲                          ├─► responseStarted … responseEnded
 *                 └── retry ◄── upstreamError ┴─► reply (502, 503, 504; 408, 413 for the body) or abort
 *
 * A path supplies only its transport: `send` (dispatch one attempt), `sendReply` (write a
 * reply from replies.ts), `abortResponse` (the upstream failed mid-response) and what ends its
 * connection (`closesAfter`).
 *
 * Retries: only idempotent requests without a body, only when the upstream connection failed
 * before the request was written, at most `retries` more times, on another endpoint when
 * there is one.
 */
import { performance } from 'node:perf_hooks';
import { newRequestId } from './request-id.ts';
import { match, type Decision, type MatchRequest, type RouteSpec } from '../../core/index.ts';
import type { RoutingState } from '../source/routing.ts';
import { Cluster, type Endpoint } from '../upstream/endpoints.ts';
import { UNVERIFIABLE, type UpstreamTlsProfile } from '../upstream/tls.ts';
import { judgeClientCertificate } from '../listen/client-cert.ts';
import type { Protocol, RequestStats, WorkerMetrics } from '../metrics.ts';
import type { HstsDefaults, OutlierOptions } from '../options.ts';
import type { HeaderFacts } from '../http1/headers.ts';
import { validHost } from '../http1/target.ts';
import type { ClientInfo } from '../listen/listeners.ts';
import { errorReply, redirectReply, upstreamFailure, type Reply } from './replies.ts';

/** ExchangeContext is what a worker lends every exchange. */
export interface ExchangeContext {
  readonly state: RoutingState | null;
  /** Absent: no HSTS unless a host's Ingress turns it on. */
  readonly hsts?: HstsDefaults;
  readonly metrics: WorkerMetrics;
  readonly outlier: OutlierOptions;
  readonly retries: number;
  readonly httpsRedirectPort: number;
  readonly draining: boolean;
  /** Longest silence between reads of a request body while the proxy reads it. */
  readonly clientBodyTimeoutMs: number;
  /** Time a client has to send a whole request body once its head is read; 0: no limit. */
  readonly clientBodyTotalTimeoutMs: number;
  routeStats(route: RouteSpec, service: string, protocol: Protocol): RequestStats;
  readonly unrouted: RequestStats;
  /** The stats of HTTP/2 requests answered before routing. */
  readonly unroutedH2: RequestStats;
  begin(): void;
  end(): void;
  /**
   * trackCanaryTunnel registers an upgraded connection to a canary backend, so that a
   * rollback (the split gone from the routing) closes it; it returns the unregister call.
   */
  trackCanaryTunnel(backend: string, close: () => void): () => void;
}

/** The sticky-canary cookie: the client's bucket in [0, 100), shared by every Canary. */
export const STICKY_COOKIE = 'vane_bucket';
const STICKY_MAX_AGE_SEC = 30 * 86_400;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'ETIMEDOUT', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED']);
/**
 * Retry-After of a 503 for an endpoint whose queue is full or too slow: soon, since connections
 * free up as requests end, and a retry may reach another proxy or endpoint.
 */
const BUSY_RETRY_AFTER_SEC = 1;

function validRequestId(v: string): boolean {
  if (v.length === 0 || v.length > 200) return false;
  for (let i = 0; i < v.length; i++) { const c = v.charCodeAt(i); if (c < 0x21 || c > 0x7e) return false; }
  return true;
}

/** RequestLine is what an exchange reads of a request head, from node:http or the fast path's parser. */
export interface RequestLine {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly httpVersionMinor: number;
}

export type Prepared = { kind: 'error'; status: number; detail: string; extra?: string[] } | { kind: 'redirect'; location: string } | { kind: 'forward' };
/** FORWARD is the one 'forward' answer, not an object per request. */
const FORWARD: Prepared = Object.freeze({ kind: 'forward' });

/** Exchange is one request's lifecycle; a path extends it with its transport. */
export abstract class Exchange implements MatchRequest {
  host: string | undefined = undefined;
  target: string;
  scheme: 'http' | 'https';
  bucket = 0;
  httpsPort: number;

  protected readonly ctx: ExchangeContext;
  protected readonly method: string;
  protected readonly request: RequestLine;
  protected readonly versionMinor: number;
  protected readonly client: ClientInfo;
  protected readonly startMs = performance.now();
  protected requestId = '';
  protected decision: Decision | null = null;
  protected cluster: Cluster | null = null;
  protected endpoint: Endpoint | null = null;
  /** The route's own HTTPS to its backend (vane.dev/backend-tls-*); null: the Service port decides. */
  protected upstreamTls: UpstreamTlsProfile | null = null;
  /** What the connection's client certificate proved, as `ssl-client-*` name/value pairs, on hosts that ask for one. */
  protected clientCertHeaders: string[] | null = null;
  /** Strict-Transport-Security for the response, on HTTPS requests to hosts with TLS. */
  protected hsts: string | null = null;
  protected stats: RequestStats;
  /** The forwarding headers' values the upstream gets (prepare). */
  protected forwardedFor = '';
  protected forwardedProto = '';
  protected forwardedPort = '';
  protected realIp = '';
  protected forwardedHost: string | null = null;
  /** The current attempt wrote (some of) the request upstream: it is no longer safe to retry. */
  protected requestSent = false;
  protected attempts = 0;
  /** Response bytes went to the client: a failure now can only cut the response short. */
  protected responding = false;
  protected done = false;
  protected clientGone = false;
  protected hasBody = false;
  protected chunked = false;
  protected contentLength = -1;
  protected setCookie: string | null = null;
  /** Every Cookie header's value, joined with "; " (RFC 6265 §5.4's one cookie string). */
  private cookies: string | null = null;
  private stickyFromCookie = false;
  protected upgradeProtocol: string | null = null;
  /** The client's protocol, for metrics; an HTTP/2 exchange sets its own. */
  protected protocol: Protocol = 'http/1.1';

  constructor(ctx: ExchangeContext, head: RequestLine, client: ClientInfo) {
    this.ctx = ctx;
    this.method = head.method;
    this.request = head;
    this.versionMinor = head.httpVersionMinor;
    this.client = client;
    this.target = head.url;
    this.scheme = client.scheme;
    this.httpsPort = ctx.httpsRedirectPort;
    this.stats = ctx.unrouted;
  }

  /** header is core's header lookup: first value by lower-case name. */
  header(name: string): string | undefined {
    const raw = this.request.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      if (n.length === name.length && n.toLowerCase() === name) return raw[i + 1];
    }
    return undefined;
  }

  /** cookie is core's cookie lookup over every Cookie header. */
  cookie(name: string): string | undefined {
    const v = this.cookies;
    if (v === null) return undefined;
    for (let from = 0; ;) {
      const at = v.indexOf(name, from);
      if (at < 0) return undefined;
      const end = at + name.length;
      const before = at === 0 ? 59 : v.charCodeAt(at - 1);
      if ((before === 59 || before === 32) && v.charCodeAt(end) === 61) {
        const stop = v.indexOf(';', end + 1);
        return v.slice(end + 1, stop < 0 ? v.length : stop).trim();
      }
      from = end;
    }
  }

  /** prepare checks the request's framing, sets the forwarding headers' values and routes it. */
  protected prepare(f: HeaderFacts): Prepared {
    this.host = f.host;
    this.contentLength = f.contentLength;
    this.chunked = f.chunked;
    this.upgradeProtocol = f.upgrade;
    this.cookies = f.cookies;
    this.requestId = f.requestId !== null && validRequestId(f.requestId) ? f.requestId : newRequestId();
    // Framing the parser let through but a proxy must not forward (RFC 9112 §6.1, §6.3).
    if (f.hosts > 1) return { kind: 'error', status: 400, detail: 'more than one Host header' };
    // RFC 9112 §3.2 (node:http and the fast path's parser answer an HTTP/1.1 request without one).
    if (f.host !== undefined && !validHost(f.host)) return { kind: 'error', status: 400, detail: 'invalid Host header' };
    if (f.lengths > 1) return { kind: 'error', status: 400, detail: 'more than one Content-Length header' };
    if (this.chunked && (f.lengths > 0 || this.versionMinor === 0)) return { kind: 'error', status: 400, detail: 'Transfer-Encoding with Content-Length or on HTTP/1.0' };
    this.hasBody = this.chunked || this.contentLength > 0;

    // Incoming forwarding headers count only from trusted proxies.
    const addr = this.client.address;
    if (this.client.trusted) {
      this.forwardedFor = f.forwardedFor !== null ? f.forwardedFor + ', ' + addr : addr;
      this.forwardedProto = f.forwardedProto ?? this.scheme;
      this.forwardedPort = f.forwardedPort ?? this.client.port;
      this.realIp = f.realIp ?? addr;
      this.forwardedHost = f.forwardedHost ?? f.host ?? null;
    } else {
      this.forwardedFor = addr;
      this.forwardedProto = this.scheme;
      this.forwardedPort = this.client.port;
      this.realIp = addr;
      this.forwardedHost = f.host ?? null;
    }

    if (this.cookies !== null) {
      const sticky = this.cookie(STICKY_COOKIE);
      const b = sticky === undefined ? NaN : Number(sticky);
      if (b >= 0 && b < 100) { this.bucket = b; this.stickyFromCookie = true; } else this.bucket = Math.random() * 100;
    } else {
      this.bucket = Math.random() * 100;
    }

    const state = this.ctx.state;
    if (state === null) return { kind: 'error', status: 503, detail: 'routing not loaded yet' };
    const d = match(state.table, this);
    this.decision = d;
    if (state.clientAuth.size > 0 && d.vhost !== null && d.result !== 'redirect') {
      const auth = state.clientAuth.get(d.vhost);
      if (auth !== undefined) {
        const verdict = judgeClientCertificate(auth, d.vhost, this.client.tlsHost, this.client.clientCert);
        if (!verdict.ok) return { kind: 'error', status: verdict.status, detail: verdict.detail };
        this.clientCertHeaders = verdict.headers;
      }
    }
    if (d.result === 'not-found') return { kind: 'error', status: 404, detail: 'no route for this host and path' };
    if (d.result === 'bad-request') return { kind: 'error', status: 400, detail: 'malformed request path' };
    if (d.result === 'uri-too-long') return { kind: 'error', status: 414, detail: 'path too long for this host\'s regex routes' };
    if (d.result === 'redirect') return { kind: 'redirect', location: d.location! };
    const route = d.route!;
    const backend = d.backend!;
    this.stats = this.ctx.routeStats(route, backend, this.protocol);
    if (route.maxBodyBytes > 0 && this.contentLength > route.maxBodyBytes) {
      return { kind: 'error', status: 413, detail: `request body larger than ${route.maxBodyBytes} bytes` };
    }
    const cluster = state.clusters.get(backend);
    if (cluster === undefined || cluster.candidates.length === 0) {
      return { kind: 'error', status: 503, detail: `no ready endpoints for service ${backend.slice('backend/'.length)}` };
    }
    this.cluster = cluster;
    if (route.upstreamTls !== undefined) {
      const tls = state.tls.profile(route, backend);
      if (tls === UNVERIFIABLE) return { kind: 'error', status: 502, detail: 'the backend cannot be verified: its CA Secret is missing or has no valid ca.crt' };
      this.upstreamTls = tls;
    }
    if (d.compiled?.canary?.spec.sticky && !this.stickyFromCookie) {
      this.setCookie = `${STICKY_COOKIE}=${this.bucket.toFixed(3)}; Path=/; Max-Age=${STICKY_MAX_AGE_SEC}; SameSite=Lax; HttpOnly`;
    }
    if (this.scheme === 'https' && state.tlsHosts.size > 0) this.hsts = state.hstsHeader(d.vhost!, this.ctx.hsts);
    return FORWARD;
  }

  /** replayable: an idempotent request without a body, safe to send again. */
  protected replayable(): boolean {
    return !this.hasBody && IDEMPOTENT.has(this.method);
  }

  // ---- the lifecycle ----------------------------------------------------------------

  /**
   * answerLocally answers what prepare decided needs no upstream (an error or a redirect);
   * false when the request is to be forwarded.
   */
  protected answerLocally(p: Prepared): boolean {
    if (p.kind === 'forward') return false;
    if (p.kind === 'error') this.fail(p.status, p.detail);
    else this.redirect(p.location);
    return true;
  }

  /** attempt picks an endpoint, not `avoid` (the one that just failed) when there is a choice, and sends the request to it. */
  protected attempt(avoid: Endpoint | null): void {
    const route = this.decision!.route!;
    // A first attempt's clock is the exchange's start, microseconds ago; a retry reads it anew.
    const ep = this.cluster!.pick(route.loadBalance === 'least-request', this.attempts === 0 ? this.startMs : performance.now(), avoid);
    if (ep === null) { this.fail(503, 'no ready endpoints'); return; }
    this.endpoint = ep;
    this.requestSent = false;
    this.attempts++;
    ep.inflight++;
    this.send(ep, route);
  }

  /** send dispatches one attempt to `ep` over the path's transport. */
  protected abstract send(ep: Endpoint, route: RouteSpec): void;

  /** responseStarted: the upstream answered (its head is about to go to the client). */
  protected responseStarted(): void {
    Cluster.succeeded(this.endpoint!);
    this.responding = true;
  }

  /** responseEnded: the upstream's response is complete. */
  protected responseEnded(status: number): void {
    this.endpoint!.inflight--;
    this.finish(status);
  }

  /**
   * upstreamError ends an attempt that failed: before the response started it is retried when
   * it may be, or answered with 502/504 (413 for a body over the limit); after, the response
   * is cut short.
   */
  protected upstreamError(err: Error): void {
    if (!this.responding) {
      if (this.upstreamFailed(err)) { this.attempt(this.endpoint); return; }
    } else {
      this.endpoint!.inflight--;
    }
    if (this.clientGone) { this.finish(499); return; }
    if (!this.responding) {
      const status = statusFor(err);
      this.fail(status, upstreamFailure(status), status === 503 ? BUSY_RETRY_AFTER_SEC : 0);
      return;
    }
    this.abortResponse(err);
    this.finish(502);
  }

  /** abortResponse ends the client's connection mid-response. */
  protected abstract abortResponse(err: Error): void;

  /** upstreamFailed does the outlier bookkeeping; true when the request should be retried. */
  private upstreamFailed(err: Error): boolean {
    const ep = this.endpoint!;
    ep.inflight--;
    const code = (err as { code?: string }).code ?? '';
    const cluster = this.cluster!;
    if (!this.requestSent && CONNECT_ERRORS.has(code)) {
      this.ctx.metrics.connectError(cluster.service);
      if (cluster.connectFailed(ep, performance.now(), this.ctx.outlier)) this.ctx.metrics.ejection(cluster.service);
    } else if (code === 'EVANE_QUEUE_FULL' || code === 'EVANE_QUEUE_TIMEOUT') {
      this.ctx.metrics.queueRejected(cluster.service);
    }
    if (this.clientGone || this.requestSent || !this.replayable() || this.attempts > this.ctx.retries || !CONNECT_ERRORS.has(code)) return false;
    this.ctx.metrics.retry(cluster.service);
    return true;
  }

  // ---- replies the proxy makes --------------------------------------------------------

  /** fail answers with an error reply; `retryAfterSec` above 0 adds Retry-After. */
  protected fail(status: number, detail: string, retryAfterSec = 0): void {
    if (!this.requestId) this.requestId = newRequestId();
    const close = this.closesAfter(status);
    this.sendReply(errorReply(status, this.requestId, detail, close, retryAfterSec), close);
  }

  /** redirect answers with a 308 to `location`. */
  protected redirect(location: string): void {
    const close = this.closesAfter(308);
    this.sendReply(redirectReply(location, this.requestId, close), close);
  }

  /**
   * closesAfter: the connection ends after a reply with `status`. An unread or refused body
   * leaves the connection in an unknown state, and a draining worker closes every connection.
   */
  protected closesAfter(status: number): boolean {
    return this.ctx.draining || status === 413 || status === 400 || status === 408 || this.bodyUnread();
  }

  /** bodyUnread: the client has not sent (or the proxy not read) the whole request body. */
  protected abstract bodyUnread(): boolean;

  /** sendReply writes a reply the proxy made and finishes the exchange; `close`: the connection ends after it. */
  protected abstract sendReply(r: Reply, close: boolean): void;

  protected finish(status: number): void {
    if (this.done) return;
    this.done = true;
    this.stats.record(status, (performance.now() - this.startMs) / 1000);
    this.ctx.end();
  }
}

/** statusFor is the status of the reply to a request whose upstream failed with `err`. */
function statusFor(err: Error): number {
  const code = (err as { code?: string }).code;
  if (code === 'EVANE_BODY_TOO_LARGE') return 413;
  if (code === 'EVANE_BODY_TIMEOUT') return 408;
  if (code === 'EVANE_QUEUE_FULL' || code === 'EVANE_QUEUE_TIMEOUT') return 503;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 504;
  return 502;
}
