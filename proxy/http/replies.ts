/**
 * Replies the proxy makes itself — no route (404), upstream failures (502, 503, 504), refused
 * requests (400, 408, 413, 414, 431) and redirects (308) — made in this one place, so every path
 * sends the same bytes: the fast path and the upgrade path write `replyBytes`, the general path
 * hands the same status, reason, headers and body to node:http (which adds its own Date and
 * keep-alive lines). Header names are lower-case, in a fixed order; the body is a short plain
 * text naming the request id, which X-Request-Id repeats. tests/unit/proxy/replies.test.ts pins
 * the bytes of each.
 */

/** STATUS_TEXT holds the reason phrases of the responses the proxy makes itself. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  308: 'Permanent Redirect', 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 408: 'Request Timeout', 413: 'Content Too Large', 414: 'URI Too Long',
  421: 'Misdirected Request', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

/** Reply is a response the proxy makes: what node:http's writeHead and end take, or replyBytes writes. */
export interface Reply {
  readonly status: number;
  readonly reason: string;
  /** Flat `[name, value, …]` with lower-case names. */
  readonly headers: string[];
  readonly body: string;
}

/**
 * errorReply is the reply with an error status; `close` adds `connection: close` (the
 * connection ends after it: draining, a refused or unread body, an upgrade request), and
 * `retryAfterSec` above 0 adds Retry-After (an overloaded upstream or client limit).
 */
export function errorReply(status: number, requestId: string, detail: string, close: boolean, retryAfterSec = 0): Reply {
  const reason = STATUS_TEXT[status] ?? '';
  const body = `${status} ${reason}: ${detail}\nrequest id: ${requestId}\n`;
  const headers = ['content-type', 'text/plain; charset=utf-8', 'content-length', String(Buffer.byteLength(body)), 'x-request-id', requestId];
  if (retryAfterSec > 0) headers.push('retry-after', String(retryAfterSec));
  if (close) headers.push('connection', 'close');
  return { status, reason, headers, body };
}

/** redirectReply is a 308 to `location` without a body. */
export function redirectReply(location: string, requestId: string, close: boolean): Reply {
  const headers = ['location', location, 'content-length', '0', 'x-request-id', requestId];
  if (close) headers.push('connection', 'close');
  return { status: 308, reason: STATUS_TEXT[308]!, headers, body: '' };
}

/** upstreamFailure is the detail of the reply to a request whose upstream failed with `status`. */
export function upstreamFailure(status: number): string {
  return status === 413 ? 'request body too large' : status === 408 ? 'request body not received in time'
    : status === 503 ? 'upstream busy, no connection free in time' : status === 504 ? 'upstream timed out' : 'upstream failed';
}

/** replyBytes is the reply as an HTTP/1.1 response, for sockets without a ServerResponse. */
export function replyBytes(r: Reply): string {
  let head = `HTTP/1.1 ${r.status} ${r.reason}\r\n`;
  const h = r.headers;
  for (let i = 0; i < h.length; i += 2) head += `${h[i]}: ${h[i + 1]}\r\n`;
  return `${head}\r\n${r.body}`;
}

/** closingErrorBytes is an error reply that ends the connection, as bytes (parse errors, timeouts, client limits). */
export function closingErrorBytes(status: number, requestId: string, detail: string, retryAfterSec = 0): string {
  return replyBytes(errorReply(status, requestId, detail, true, retryAfterSec));
}
