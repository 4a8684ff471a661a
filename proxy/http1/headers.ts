/**
 * Header rewriting between client and upstream, on flat `[name, value, …]` arrays as Node
 * and undici hand them over: hop-by-hop headers (and those the Connection header names)
 * are dropped, forwarding headers follow the trust model, and nothing is rebuilt as an
 * object. Lower-cased names are compared by length first, so most headers cost one
 * toLowerCase and a switch.
 */

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus `expect`, which the proxy answers itself. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings']);
/**
 * CLIENT_CLAIMS are headers in which a client claims what only a proxy in front of Vane may say:
 * its address, the scheme or host it used, or a URL to serve instead of the one routed (IIS and
 * Symfony's X-Original-URL and X-Rewrite-URL, CVE-2018-14773). Frameworks believe them (Rack,
 * Spring, ASP.NET, the request-ip package), so they reach the upstream only from
 * --trusted-proxies, as X-Forwarded-* does. Vane sets X-Forwarded-* and X-Real-IP itself and
 * none of these: from an untrusted client they are dropped, not replaced. The fast path's parser
 * (request-head.ts) classifies the same names by length.
 */
export const CLIENT_CLAIMS: ReadonlySet<string> = new Set([
  'forwarded', 'x-original-url', 'x-rewrite-url', 'x-original-uri', 'x-forwarded-uri', 'x-forwarded-prefix',
  'x-forwarded-scheme', 'x-forwarded-ssl', 'x-url-scheme', 'x-scheme', 'front-end-https',
  'x-forwarded-server', 'x-original-host',
  'x-client-ip', 'x-cluster-client-ip', 'true-client-ip', 'cf-connecting-ip', 'fastly-client-ip', 'x-original-forwarded-for',
  'forwarded-for', 'x-forwarded',
  // What a client certificate proved (listen/client-cert.ts): set by Vane on hosts that ask for one.
  'ssl-client-verify', 'ssl-client-subject-dn', 'ssl-client-issuer-dn', 'ssl-client-san', 'ssl-client-fingerprint-sha256', 'ssl-client-cert',
]);
/** Connection options that are not header names and need no extra work. */
const PLAIN_CONNECTION_TOKENS = new Set(['keep-alive', 'close', 'upgrade']);

/** nominatedHeaders returns the header names a Connection header lists, or null when none matter. */
export function nominatedHeaders(connection: string | null): Set<string> | null {
  if (connection === null) return null;
  // The usual values, without splitting.
  const l = connection.length;
  if ((l === 10 || l === 5 || l === 7) && PLAIN_CONNECTION_TOKENS.has(connection.toLowerCase())) return null;
  let out: Set<string> | null = null;
  for (const token of connection.split(',')) {
    const t = token.trim().toLowerCase();
    if (t === '' || PLAIN_CONNECTION_TOKENS.has(t)) continue;
    (out ??= new Set()).add(t);
  }
  return out;
}

/**
 * HeaderFacts is what routing and forwarding read from a request's headers, whichever parser
 * read them: node:http's raw headers (inspectHeaders) or the fast path's (http1/request-head).
 */
export interface HeaderFacts {
  /** The first Host value. */
  host: string | undefined;
  hosts: number;
  /** Content-Length lines; contentLength is the last one's value, -1 without one. */
  lengths: number;
  contentLength: number;
  chunked: boolean;
  /** Every Connection value, joined with ", ". */
  connection: string | null;
  upgrade: string | null;
  requestId: string | null;
  /** Every X-Forwarded-For value, joined with ", ". */
  forwardedFor: string | null;
  forwardedProto: string | null;
  forwardedHost: string | null;
  forwardedPort: string | null;
  realIp: string | null;
  /** Every Cookie value, joined with "; ". */
  cookies: string | null;
}

/**
 * inspectHeaders reads node's raw headers: it returns their facts and appends to `out` the
 * headers the upstream gets unchanged — all but the hop-by-hop ones (and those Connection
 * names, Host and Content-Length aside), the forwarding headers the proxy sets, X-Request-Id,
 * a Content-Length of 0, and CLIENT_CLAIMS unless the client is `trusted`.
 */
export function inspectHeaders(raw: readonly string[], out: string[], trusted: boolean): HeaderFacts {
  const f: HeaderFacts = {
    host: undefined, hosts: 0, lengths: 0, contentLength: -1, chunked: false, connection: null, upgrade: null, requestId: null,
    forwardedFor: null, forwardedProto: null, forwardedHost: null, forwardedPort: null, realIp: null, cookies: null,
  };
  const first = out.length;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    switch (lower) {
      case 'host': if (f.hosts++ === 0) f.host = value; out.push(name, value); break;
      case 'content-length': f.lengths++; f.contentLength = Number(value); if (f.contentLength !== 0) out.push(name, value); break;
      case 'transfer-encoding': f.chunked = true; break;
      case 'connection': f.connection = f.connection === null ? value : `${f.connection}, ${value}`; break;
      case 'upgrade': f.upgrade = value; break;
      case 'x-request-id': f.requestId = value; break;
      case 'x-forwarded-for': f.forwardedFor = f.forwardedFor === null ? value : `${f.forwardedFor}, ${value}`; break;
      case 'x-forwarded-proto': f.forwardedProto = value; break;
      case 'x-forwarded-host': f.forwardedHost = value; break;
      case 'x-forwarded-port': f.forwardedPort = value; break;
      case 'x-real-ip': f.realIp = value; break;
      case 'cookie': f.cookies = f.cookies === null ? value : `${f.cookies}; ${value}`; out.push(name, value); break;
      case 'keep-alive': case 'proxy-connection': case 'te': case 'trailer': case 'expect': case 'http2-settings': break;
      default: if (trusted || !CLIENT_CLAIMS.has(lower)) out.push(name, value);
    }
  }
  const nominated = nominatedHeaders(f.connection);
  if (nominated !== null) {
    let w = first;
    for (let r = first; r < out.length; r += 2) {
      const lower = out[r]!.toLowerCase();
      if (nominated.has(lower) && lower !== 'host' && lower !== 'content-length') continue;
      out[w++] = out[r]!; out[w++] = out[r + 1]!;
    }
    out.length = w;
  }
  return f;
}

export function isHopByHop(lower: string): boolean {
  return HOP_BY_HOP.has(lower);
}

/**
 * filterResponseHeaders turns undici's raw response headers (Buffers) into a flat string
 * array for ServerResponse.writeHead, without hop-by-hop headers. Values keep their bytes:
 * Node writes header strings as latin1.
 */
export function filterResponseHeaders(raw: readonly (Buffer | string)[], out: string[]): void {
  let connection: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const r = raw[i]!;
    const name = typeof r === 'string' ? r : r.toString('latin1');
    const v = raw[i + 1]!;
    const value = typeof v === 'string' ? v : v.toString('latin1');
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') connection = connection === null ? value : `${connection}, ${value}`;
      continue;
    }
    out.push(name, value);
  }
  const nominated = nominatedHeaders(connection);
  if (nominated === null) return;
  let w = 0;
  for (let r = 0; r < out.length; r += 2) {
    if (nominated.has(out[r]!.toLowerCase())) continue;
    out[w++] = out[r]!;
    out[w++] = out[r + 1]!;
  }
  out.length = w;
}
