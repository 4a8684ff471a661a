/** webhook/: Vane's ValidatingAdmissionWebhook — core's validate() behind admission.k8s.io/v1 over HTTPS. */
export { startWebhookServer, MAX_BODY_BYTES, type WebhookServer, type WebhookServerOptions, type TlsPair } from './server.ts';
export {
  reviewAdmission, reviewRequest, oversized, MAX_LISTED_PROBLEMS, MAX_WARNINGS, MAX_WARNING_CHARS,
  type ReviewOptions, type ReviewOutcome, type ReviewSummary, type Verdict,
} from './review.ts';
export {
  decodeReview, uidFromHead, ADMISSION_VERSION,
  type AdmissionRequest, type AdmissionResponse, type AdmissionReviewResponse, type GroupVersionKind, type StatusCause,
} from './admission.ts';
export { MemoryObjectCache, type ObjectCache } from './cache.ts';
export { contextFor, isVaneIngress, CONTEXT_KINDS, DEFAULT_CLASS_OPTIONS, type ClassOptions } from './context.ts';
