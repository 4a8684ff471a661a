/** operator/canary/: the canary controller, an adapter around core's step(). */
export { CanaryController, SYSTEM_CLOCK, type CanaryControllerOptions, type Clock } from './controller.ts';
export { KubeCanaryStore, OverlayCanaryStore, type CanaryStore, type WriteOutcome, type KubeCanaryStoreOptions, type OverlayCanaryStoreOptions } from './store.ts';
export { callWebhook, queryPrometheus, sampleOf, type WebhookCall } from './http.ts';
export { carriesStatus, fleetInput } from './fleet-input.ts';
export { statusPatch, addFinalizerPatch, removeFinalizerPatch, ingressSwitchPatch, ingressSwitched, applyPatch, type PatchOp } from './patches.ts';
