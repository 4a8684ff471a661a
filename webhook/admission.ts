/**
 * admission.k8s.io/v1 AdmissionReview, reduced to what the webhook reads and writes, and
 * the decoding of a request body that may be anything at all.
 */

export interface GroupVersionKind { group?: string; version?: string; kind?: string }

export interface AdmissionRequest {
  uid: string;
  kind?: GroupVersionKind;
  resource?: { group?: string; version?: string; resource?: string };
  subResource?: string;
  name?: string;
  namespace?: string;
  operation?: string;
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
}

export interface StatusCause { reason: string; message: string; field: string }

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: {
    code: number;
    reason: string;
    message: string;
    details?: { name?: string; group?: string; kind?: string; causes: StatusCause[] };
  };
  warnings?: string[];
}

export interface AdmissionReviewResponse {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

export const ADMISSION_VERSION = 'admission.k8s.io/v1';

export type Decoded =
  | { ok: true; request: AdmissionRequest }
  | { ok: false; uid: string; field: string; message: string };

const UID_IN_HEAD = /"uid"\s*:\s*"([^"\\]{1,256})"/;

/**
 * uidFromHead recovers the request uid from the start of a body that cannot be decoded
 * (too large, malformed): the API server writes `request.uid` before the objects, so the
 * first `"uid"` in the first few KiB is the request's. '' when there is none.
 */
export function uidFromHead(head: string): string {
  return UID_IN_HEAD.exec(head.slice(0, 4096))?.[1] ?? '';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** decodeReview parses and checks the envelope; it never throws. */
export function decodeReview(body: string): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    return { ok: false, uid: uidFromHead(body), field: 'body', message: `not JSON: ${(err as Error).message.slice(0, 200)}` };
  }
  if (!isRecord(value)) return { ok: false, uid: '', field: 'body', message: 'must be a JSON object (an AdmissionReview)' };
  const request = value.request;
  const uid = isRecord(request) && typeof request.uid === 'string' ? request.uid : '';
  if (value.apiVersion !== ADMISSION_VERSION || value.kind !== 'AdmissionReview') {
    return { ok: false, uid, field: 'apiVersion', message: `must be an ${ADMISSION_VERSION} AdmissionReview, got ${JSON.stringify(String(value.apiVersion ?? '')).slice(0, 80)} ${JSON.stringify(String(value.kind ?? '')).slice(0, 80)}` };
  }
  if (!isRecord(request)) return { ok: false, uid, field: 'request', message: 'is required' };
  if (uid === '') return { ok: false, uid, field: 'request.uid', message: 'is required' };
  if (request.kind !== undefined && !isRecord(request.kind)) return { ok: false, uid, field: 'request.kind', message: 'must be an object' };
  return { ok: true, request: request as unknown as AdmissionRequest };
}
