/**
 * The proxy's errors, in one place (undici's errors.js is the model): each has a stable `code`
 * that callers branch on, never the message. Upstream failures keep undici's codes, so an
 * exchange treats the fast path's pool and undici's alike.
 */
import { VaneError } from '../core/index.ts';

/**
 * ProxyErrorCode: an option the proxy refuses at start (EOPTION), a request whose upstream
 * failed (UpstreamErrorCode), or a request body the proxy refused (BodyErrorCode).
 */
export type ProxyErrorCode = 'EOPTION' | UpstreamErrorCode | BodyErrorCode;

/**
 * UpstreamErrorCode: undici's codes for the cases both upstream paths share, so the exchange
 * treats them alike, and the fast path's queue for a connection (full, or waited too long).
 */
export type UpstreamErrorCode = 'UND_ERR_CONNECT_TIMEOUT' | 'UND_ERR_HEADERS_TIMEOUT' | 'UND_ERR_BODY_TIMEOUT' | 'UND_ERR_SOCKET'
  | 'UND_ERR_RESPONSE' | 'UND_ERR_CLOSED' | 'UND_ERR_DESTROYED' | 'EVANE_QUEUE_FULL' | 'EVANE_QUEUE_TIMEOUT';

/** BodyErrorCode: a request body over the route's limit, or not received in time. */
export type BodyErrorCode = 'EVANE_BODY_TOO_LARGE' | 'EVANE_BODY_TIMEOUT';

/** ProxyError is the root of the proxy's errors; callers branch on `code`. */
export class ProxyError<Code extends ProxyErrorCode = ProxyErrorCode> extends VaneError<Code> {
  override name = 'ProxyError';
}

/** UpstreamError: an upstream connection failed, or none could be had for the request. */
export class UpstreamError extends ProxyError<UpstreamErrorCode> {
  override name = 'UpstreamError';
}

/** BodyError ends an upstream request whose client body the proxy refused. */
export class BodyError extends ProxyError<BodyErrorCode> {
  override name = 'BodyError';
}
