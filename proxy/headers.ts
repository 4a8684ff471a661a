/**
 * Header rewriting between client and upstream, on flat `[name, value, …]` arrays as Node
 * and undici hand them over: hop-by-hop headers (and those the Connection header names)
 * are dropped, forwarding headers follow the trust model, and nothing is rebuilt as an
 * object. Lower-cased names are compared by length first, so most headers cost one
 * toLowerCase and a switch.
 */

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus `expect`, which the proxy answers itself. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings']);
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

/** STATUS_TEXT holds the reason phrases of the responses the proxy makes itself. */
export const STATUS_TEXT: Record<number, string> = {
  308: 'Permanent Redirect', 400: 'Bad Request', 404: 'Not Found', 408: 'Request Timeout', 413: 'Content Too Large',
  431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

/** errorBody is the short plain-text body of a proxy-made response. */
export function errorBody(status: number, requestId: string, detail: string): string {
  return `${status} ${STATUS_TEXT[status] ?? ''}: ${detail}\nrequest id: ${requestId}\n`;
}

/** rawErrorResponse is a whole HTTP/1.1 response for sockets without a ServerResponse (parse errors, upgrades). */
export function rawErrorResponse(status: number, requestId: string, detail: string, extra = ''): string {
  const body = errorBody(status, requestId, detail);
  return `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ''}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`
    + `X-Request-Id: ${requestId}\r\nConnection: close\r\n${extra}\r\n${body}`;
}
