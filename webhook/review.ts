/**
 * One admission review: AdmissionReview in, verdict out, using core's validate() — the same
 * verdict `vane validate` prints and the operator writes into status. Errors deny, listing
 * every problem as `field.path: message`; warnings come back as AdmissionResponse.warnings,
 * which kubectl prints. Never throws, whatever the body.
 */
import { formatProblem, kindOf, namespaceOf, validate, type Ingress, type KubeObject, type Problem } from '../core/index.ts';
import {
  ADMISSION_VERSION, decodeReview,
  type AdmissionRequest, type AdmissionResponse, type AdmissionReviewResponse, type StatusCause,
} from './admission.ts';
import { MemoryObjectCache, type ObjectCache } from './cache.ts';
import { contextFor, isVaneIngress, DEFAULT_CLASS_OPTIONS, type ClassOptions } from './context.ts';

export interface ReviewOptions extends Partial<ClassOptions> {
  /** The cluster's objects for cross-object warnings; without one, only self-contained checks run. */
  cache?: ObjectCache;
}

export type Verdict = 'allowed' | 'denied' | 'skipped' | 'invalid-request';

/** ReviewSummary says what happened, for logs and metrics; it holds field paths and counts, never object content. */
export interface ReviewSummary {
  uid: string;
  kind: string;
  operation: string;
  /** `namespace/name` of the object, '' when unknown. */
  key: string;
  verdict: Verdict;
  /** Why a request was skipped or refused without validation. */
  note?: string;
  errors: number;
  warnings: number;
  fields: string[];
}

export interface ReviewOutcome {
  /** 200 for every review with a uid to answer; 400 only when the body is not a review at all. */
  httpStatus: 200 | 400;
  review: AdmissionReviewResponse;
  summary: ReviewSummary;
}

/** Limits keep a response readable and bounded whatever the object holds. */
export const MAX_LISTED_PROBLEMS = 25;
export const MAX_WARNINGS = 20;
export const MAX_PROBLEM_CHARS = 512;
/** The API server truncates longer warnings; cutting here keeps the field path and an ellipsis. */
export const MAX_WARNING_CHARS = 256;

const KINDS = {
  Canary: { group: 'vane.dev', version: 'v1alpha1', apiVersion: 'vane.dev/v1alpha1' },
  Ingress: { group: 'networking.k8s.io', version: 'v1', apiVersion: 'networking.k8s.io/v1' },
} as const;

const EMPTY_CACHE: ObjectCache = new MemoryObjectCache();

/**
 * shown is a request value as text for a message: strings as they are, anything else by its
 * type. String() would call a hostile object's own toString (and throw when that is no
 * function: `{"toString": {}}`).
 */
function shown(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) return '';
  return typeof v === 'object' ? `(${Array.isArray(v) ? 'array' : 'object'})` : JSON.stringify(v) ?? typeof v;
}

function clip(text: string, max: number): string {
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

function envelope(response: AdmissionResponse): AdmissionReviewResponse {
  return { apiVersion: ADMISSION_VERSION, kind: 'AdmissionReview', response };
}

function deny(uid: string, problems: Problem[], details: { name?: string; group?: string; kind?: string } = {}): AdmissionResponse {
  const listed = problems.slice(0, MAX_LISTED_PROBLEMS).map((p) => clip(formatProblem(p), MAX_PROBLEM_CHARS));
  if (problems.length > MAX_LISTED_PROBLEMS) listed.push(`and ${problems.length - MAX_LISTED_PROBLEMS} more problem(s)`);
  const causes: StatusCause[] = problems.slice(0, 100).map((p) => ({ reason: p.reason, field: p.field, message: clip(p.message, MAX_PROBLEM_CHARS) }));
  return {
    uid,
    allowed: false,
    // 403, not 422 Invalid: kubectl then prints the API server's `admission webhook "…" denied the request: <message>`.
    status: { code: 403, reason: 'Forbidden', message: listed.join('; '), details: { ...details, causes } },
  };
}

function warningsOf(problems: Problem[], prefix = ''): string[] {
  return problems.map((p) => clip(`${prefix}${formatProblem(p)}`, MAX_WARNING_CHARS));
}

function capWarnings(warnings: string[]): string[] | undefined {
  if (warnings.length === 0) return undefined;
  if (warnings.length <= MAX_WARNINGS) return warnings;
  return [...warnings.slice(0, MAX_WARNINGS), `and ${warnings.length - MAX_WARNINGS} more warning(s); run \`vane validate\` for all`];
}

function requestProblem(field: string, message: string): Problem {
  return { severity: 'error', reason: 'InvalidRequest', field, message };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** deepEqual compares JSON values; used to let unchanged objects through updates. */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (!Object.hasOwn(b, k) || !deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  return true;
}

/** validatedPart is what validation reads: a change elsewhere (labels, finalizers) cannot make an object invalid. */
function validatedPart(kind: 'Ingress' | 'Canary', obj: KubeObject): unknown {
  const spec = (obj as { spec?: unknown }).spec;
  return kind === 'Canary' ? spec : { spec, annotations: obj.metadata?.annotations };
}

/** reviewRequest reviews a decoded request. */
export function reviewRequest(request: AdmissionRequest, options: ReviewOptions = {}): { response: AdmissionResponse; summary: ReviewSummary } {
  const uid = request.uid;
  const operation = typeof request.operation === 'string' ? request.operation : '';
  const gvk = isRecord(request.kind) ? request.kind : {};
  const kindName = typeof gvk.kind === 'string' ? gvk.kind : '';
  const summary: ReviewSummary = {
    uid, kind: kindName, operation,
    key: typeof request.name === 'string' ? `${typeof request.namespace === 'string' && request.namespace ? request.namespace : 'default'}/${request.name}` : '',
    verdict: 'allowed', errors: 0, warnings: 0, fields: [],
  };
  const skip = (note: string) => ({ response: { uid, allowed: true }, summary: { ...summary, verdict: 'skipped' as const, note } });
  const refuse = (field: string, message: string) => {
    const response = deny(uid, [requestProblem(field, message)]);
    return { response, summary: { ...summary, verdict: 'denied' as const, note: message, errors: 1, fields: [field] } };
  };

  if (operation !== 'CREATE' && operation !== 'UPDATE') return skip(`operation ${JSON.stringify(operation)} is not validated`);
  if (typeof request.subResource === 'string' && request.subResource !== '') return skip(`subresource ${request.subResource} is not validated`);
  const expected = kindName === 'Canary' || kindName === 'Ingress' ? KINDS[kindName] : null;
  if (!expected || gvk.group !== expected.group || gvk.version !== expected.version) {
    return refuse('request.kind', `the Vane webhook validates Ingress (networking.k8s.io/v1) and Canary (vane.dev/v1alpha1), not ${clip(`${shown(gvk.group)}/${shown(gvk.version)} ${kindName}`, 120)}: check the rules of its ValidatingWebhookConfiguration`);
  }
  const kind = kindName as 'Canary' | 'Ingress';
  if (!isRecord(request.object)) return refuse('request.object', `must be the ${kind} under review`);
  let obj = request.object as KubeObject;
  if (obj.apiVersion === undefined && obj.kind === undefined) obj = { ...obj, apiVersion: expected.apiVersion, kind };
  if (obj.apiVersion !== expected.apiVersion || obj.kind !== kind || kindOf(obj) !== kind) {
    return refuse('kind', `the object is ${clip(`${shown(obj.apiVersion)} ${shown(obj.kind)}`, 120)}, but the request is for ${expected.apiVersion} ${kind}`);
  }
  if (!isRecord(obj.metadata)) return refuse('metadata', 'is required');
  summary.key = `${typeof obj.metadata.namespace === 'string' ? namespaceOf(obj) : 'default'}/${shown(obj.metadata.name)}`;
  const details = { name: typeof obj.metadata.name === 'string' ? obj.metadata.name : '', group: expected.group, kind };

  const cache = options.cache ?? EMPTY_CACHE;
  const classOptions: ClassOptions = {
    ingressClass: options.ingressClass ?? DEFAULT_CLASS_OPTIONS.ingressClass,
    controller: options.controller ?? DEFAULT_CLASS_OPTIONS.controller,
    defaultClass: options.defaultClass ?? DEFAULT_CLASS_OPTIONS.defaultClass,
  };
  if (kind === 'Ingress' && !isVaneIngress(obj as Ingress, cache, classOptions)) return skip('Ingress of another class');
  if (operation === 'UPDATE' && typeof obj.metadata.deletionTimestamp === 'string' && obj.metadata.deletionTimestamp !== '') {
    return skip('object is being deleted');
  }

  const synced = options.cache ? (options.cache.synced?.() ?? true) : false;
  const verdict = validate(obj, {
    ...(synced ? { objects: contextFor(kind, obj, cache, classOptions) } : {}),
    // The webhook never holds private keys (`--watch-cluster` reads Secrets as metadata only),
    // so a TLS Secret is judged by existence and type alone, whatever the cache holds: a
    // malformed certificate is reported by the operator's status condition, not here.
    options: { ingressClass: classOptions.ingressClass, controller: classOptions.controller, secretsMetadataOnly: true },
  });
  const fields = [...verdict.errors, ...verdict.warnings].map((p) => p.field);

  if (verdict.errors.length > 0 && operation === 'UPDATE' && isRecord(request.oldObject)
    && deepEqual(validatedPart(kind, obj), validatedPart(kind, request.oldObject as KubeObject))) {
    // Stored before the webhook (or before a rule) existed: blocking a label or finalizer
    // change would only wedge the object, e.g. keep it from being deleted.
    const warnings = capWarnings([...warningsOf(verdict.errors, '(unchanged, not enforced) '), ...warningsOf(verdict.warnings)]);
    return {
      response: { uid, allowed: true, ...(warnings ? { warnings } : {}) },
      summary: { ...summary, verdict: 'allowed', note: 'existing errors not enforced: validated fields unchanged', errors: verdict.errors.length, warnings: verdict.warnings.length, fields },
    };
  }
  if (verdict.errors.length > 0) {
    const response = deny(uid, verdict.errors, details);
    const warnings = capWarnings(warningsOf(verdict.warnings));
    if (warnings) response.warnings = warnings;
    return { response, summary: { ...summary, verdict: 'denied', errors: verdict.errors.length, warnings: verdict.warnings.length, fields } };
  }
  const warnings = capWarnings(warningsOf(verdict.warnings));
  return {
    response: { uid, allowed: true, ...(warnings ? { warnings } : {}) },
    summary: { ...summary, verdict: 'allowed', warnings: verdict.warnings.length, fields },
  };
}

/** reviewAdmission decodes a request body and reviews it; it never throws. */
export function reviewAdmission(body: string, options: ReviewOptions = {}): ReviewOutcome {
  const decoded = decodeReview(body);
  if (!decoded.ok) {
    const response = deny(decoded.uid, [requestProblem(decoded.field, decoded.message)]);
    return {
      httpStatus: decoded.uid ? 200 : 400,
      review: envelope(response),
      summary: { uid: decoded.uid, kind: '', operation: '', key: '', verdict: 'invalid-request', note: `${decoded.field}: ${decoded.message}`, errors: 1, warnings: 0, fields: [decoded.field] },
    };
  }
  let result: { response: AdmissionResponse; summary: ReviewSummary };
  try {
    result = reviewRequest(decoded.request, options);
  } catch (err) {
    // validate() promises not to throw; this keeps a broken promise a denial with the uid, not a crash.
    const message = `internal error while validating: ${clip((err as Error)?.message ?? String(err), 200)}`;
    result = {
      response: deny(decoded.request.uid, [requestProblem('request.object', message)]),
      summary: { uid: decoded.request.uid, kind: '', operation: '', key: '', verdict: 'denied', note: message, errors: 1, warnings: 0, fields: ['request.object'] },
    };
  }
  return { httpStatus: 200, review: envelope(result.response), summary: result.summary };
}

/** oversized answers a body over the size limit without parsing it; the caller recovers uid from the body's head. */
export function oversized(bytes: number, limit: number, uid: string): ReviewOutcome {
  const message = `the AdmissionReview is ${bytes} bytes or more; the limit is ${limit}: Kubernetes stores objects up to 1.5 MiB, so this is not an object Vane can route`;
  const response = deny(uid, [requestProblem('request.object', message)]);
  return {
    httpStatus: uid ? 200 : 400,
    review: envelope(response),
    summary: { uid, kind: '', operation: '', key: '', verdict: 'invalid-request', note: message, errors: 1, warnings: 0, fields: ['request.object'] },
  };
}
