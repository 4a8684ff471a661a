/**
 * KubeError: the one error of lib/kube, and apiStatusOf, the one way to read the HTTP status
 * out of any error a Kubernetes call can throw (ours, @kubernetes/client-node's ApiException
 * with a numeric `code`, its Watch's `statusCode`, a test double's `{ code: 404 }`).
 */
import { VaneError } from '../../core/index.ts';

export type KubeErrorCode =
  /** The API server answered with a non-2xx status: `status` and `reason` say which. */
  | 'EHTTP'
  /** No answer within the request's bound (a black-holed or overloaded API server). */
  | 'ETIMEOUT'
  /** The API server could not be reached (refused, reset, DNS, TLS). */
  | 'EUNREACHABLE'
  /** A fenced write was not sent: this replica no longer holds the lease. */
  | 'EFENCED'
  /** The answer was not what was asked for (not JSON, wrong kind). */
  | 'EMALFORMED'
  /** The kubeconfig names no cluster, or the request was cancelled by its caller. */
  | 'ECONFIG'
  | 'EABORTED';

/** StatusBody is the metav1.Status the API server answers errors with. */
export interface StatusBody { kind?: string; message?: string; reason?: string; code?: number; details?: { name?: string; kind?: string } }

export class KubeError extends VaneError<KubeErrorCode> {
  override name = 'KubeError';
  /** status is the HTTP status for EHTTP (404, 409, 410, 422, …). */
  readonly status: number | undefined;
  /** reason is metav1.Status.reason (NotFound, Conflict, Invalid, Expired, …) when the server gave one. */
  readonly reason: string | undefined;
  /** body is the parsed Status, when the server sent one. */
  readonly body: StatusBody | undefined;

  constructor(code: KubeErrorCode, message: string, options: { status?: number; reason?: string; body?: StatusBody; cause?: unknown } = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = options.status;
    this.reason = options.reason;
    this.body = options.body;
  }
}

export function isKubeError(err: unknown, ...codes: KubeErrorCode[]): err is KubeError {
  return err instanceof KubeError && (codes.length === 0 || codes.includes(err.code));
}

/**
 * apiStatusOf is the HTTP status of a failed Kubernetes call, or undefined when there was no
 * answer (timeout, refused connection) or err is no API error at all.
 */
export function apiStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { status?: unknown; code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  if (err instanceof KubeError) return e.status as number | undefined;
  for (const v of [e.code, e.statusCode, e.response?.statusCode]) if (typeof v === 'number') return v;
  return undefined;
}

/** apiMessageOf is the server's own message (metav1.Status.message) when it sent one, else the error's. */
export function apiMessageOf(err: unknown): string {
  if (err instanceof KubeError) return err.body?.message ?? err.message;
  const body = (err as { body?: unknown } | null)?.body;
  if (typeof body === 'string') {
    try { const m = (JSON.parse(body) as StatusBody).message; if (m) return m; } catch { /* not a Status */ }
  } else if (body && typeof body === 'object' && typeof (body as StatusBody).message === 'string') {
    return (body as StatusBody).message!;
  }
  return (err as Error | null)?.message ?? String(err);
}

/** isConflict: a failed JSON patch `test` (422 Invalid on most servers, 409 elsewhere) or a stale resourceVersion (409). */
export function isConflict(err: unknown): boolean {
  const s = apiStatusOf(err);
  return s === 409 || s === 422;
}
