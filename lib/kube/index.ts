/**
 * lib/kube: Vane's one adapter for the Kubernetes API. The operator, the webhook, lib/certs
 * and `kubectl vane` talk to the API server only through it; nothing else imports
 * @kubernetes/client-node for a request (tests/unit/kube/adapter.test.ts checks it).
 *
 * - Kube (client.ts): request() bounds every call (default 10 s, lists 60 s) with an
 *   AbortSignal from before credentials are read to the last byte of the answer, and checks a
 *   lease fence right before sending; get/getOrNull, list (metadata-only too), create,
 *   replace, jsonPatch/patchStatus (RFC 6902), mergePatch, apply (server-side), delete (404 is
 *   success). kubeOf(kc) gives the one Kube of a KubeConfig.
 * - errors.ts: KubeError (EHTTP with status/reason/Status body, ETIMEOUT, EUNREACHABLE,
 *   EFENCED, EMALFORMED) and apiStatusOf, the one way to read an HTTP status out of any error.
 * - patch.ts: fencedPatch/fieldPatch, JSON patches guarded by a resourceVersion `test`.
 * - events.ts, lease.ts: Events; the Lease read/create/compare-and-swap update.
 * - watch.ts, reflector.ts, objects.ts: a bounded watch (connect bound, idle cut-off,
 *   server-side timeoutSeconds), the list+watch Reflector (uid cache, 410 → relist, resume
 *   from the last resourceVersion, jittered relist and back-off), and KubeObjectSource, the
 *   reflectors of every kind compile() reads (Secrets metadata-only for the webhook).
 *
 * Why not kubernetes-fluent-client (DESIGN.md names it "where it does the job"). Checked on
 * 2026-12-05 against the registry and the package's own source (src/fluent/utils.ts, watch.ts):
 * - 3.11.11, the latest, does not install: it pins quicktype-core@25.0.0, which the registry
 *   does not have (npm ETARGET).
 * - 3.11.6 installs 119 packages (100 MB), 68 of them new to this tree, among them runtime
 *   dependencies on tsx + esbuild, quicktype-core + lodash (its type generator), node-fetch 2,
 *   yargs, a second @kubernetes/client-node (1.4.0, pinned; we run 2.0.1) and a second undici
 *   (7.x; we run 8.x).
 * - Every call (k8sExec → k8sCfg) builds `new KubeConfig()` with loadFromDefault(): our
 *   --kubeconfig/--context and the kubeconfig a test hands in are ignored, and a new undici
 *   Agent is made per request.
 * - No timeout and no AbortSignal on k8sExec, which is the point of this module; failures are
 *   thrown as a plain { ok, status, statusText } object, not an Error.
 * - Status patches are merge patches of `status` only (PATCH_STATUS): no RFC 6902 `test` of
 *   the resourceVersion. Server-side apply has fieldManager "pepr" hard-coded.
 * - Its Watcher sends fixed headers (no Accept: the webhook's PartialObjectMetadata Secrets are
 *   impossible) and jitters relists by at most 1 s.
 * What it does well — list+watch with a uid cache, 410 → relist, relist/resync timers, errors as
 * events, close() clearing timers — is the shape Reflector keeps (STYLE.md). So
 * @kubernetes/client-node stays, behind this module, for what it is good at: KubeConfig
 * (kubeconfig files, in-cluster config, exec/OIDC credential plugins, token refresh, proxies)
 * and the TLS dispatcher of each request. Requests are undici's fetch, as the library's own
 * generated clients send them, so one function puts a bound on all of them.
 */
export { Kube, kubeOf, JSON_PATCH, MERGE_PATCH, APPLY_PATCH, METADATA_LIST_ACCEPT, METADATA_WATCH_ACCEPT, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_LIST_TIMEOUT_MS } from './client.ts';
export type { KubeOptions, Fence, RequestOptions, WriteOptions, PatchOptions, ListOptions, ListAnswer, WritableObject } from './client.ts';
export { KubeError, isKubeError, apiStatusOf, apiMessageOf, isConflict, type KubeErrorCode, type StatusBody } from './errors.ts';
export { RESOURCES, pathOf, apiVersionOf, type ResourceType, type ObjectRef } from './resources.ts';
export { fencedPatch, fieldPatch, versionTest, compare, type PatchOp } from './patch.ts';
export { eventBody, recordEvent, MAX_EVENT_MESSAGE, type EventObject, type EventType, type InvolvedObject } from './events.ts';
export { readLease, createLease, updateLease, microTime, type Lease, type LeaseSpec } from './lease.ts';
export { watch, DEFAULT_IDLE_TIMEOUT_MS, type WatchOptions, type WatchEvent, type WatchEnd, type WatchHandle } from './watch.ts';
export { Reflector, type ReflectorOptions, type ReflectedObject } from './reflector.ts';
export { KubeObjectSource, WATCHED_KINDS, type KubeSourceOptions, type KindSpec, type ObjectSink } from './objects.ts';
export { loadKubeConfig, type KubeConfigSource } from './config.ts';
export type { KubeConfig } from '@kubernetes/client-node';
