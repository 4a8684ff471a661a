/** core/: the pure heart of Vane — objects in, hashed routing resources and verdicts out. */
export type {
  KubeObject, ObjectMeta, Ingress, IngressClass, Service, EndpointSlice, Secret, Canary, CanarySpec, CanaryStatus, ObjectKind,
} from './objects.ts';
export {
  kindOf, objectKey, namespaceOf, memoKey, OBJECT_KINDS, INGRESS_CONTROLLER, SERVICE_NAME_LABEL, DEFAULT_CLASS_ANNOTATION,
} from './objects.ts';
export {
  classIsVane, hostsOfIngress, servicesOfIngress, secretsOfIngress, ingressOfCanary, serviceOfCanary,
  type ClassSelection, type IngressClassLookup,
} from './selectors.ts';
export type {
  Resource, ResourceType, HashedResource, ResourceMap, RouteSpec, VirtualHostSpec, BackendSpec, EndpointsSpec, EndpointAddress,
  SecretSpec, UpstreamTlsSpec, ClientAuthSpec, HstsSpec, ListenerSpec, CanarySplit, HeaderRule, RouteTimeouts, PathMatchType,
} from './resources.ts';
export { LISTENER_NAME, endpointsName } from './resources.ts';
export { canonicalJson, hashValue, sha256Hex, RootAccumulator } from './canonical.ts';
export { VaneError, isVaneError } from './errors.ts';
export { Compiler, compile, COMPILER_VERSION, type CompileOptions, type CompileResult, type ObjectStatus } from './compile.ts';
export { diff, apply, deltaFromHashes, hashesOf, rootOf, ResourceSet, type Delta, type ApplyResult } from './delta.ts';
export {
  buildRouteTable, updateRouteTable, match, chooseSide, findHost,
  type RouteTable, type HostTable, type CompiledRoute, type MatchRequest, type Decision, type MatchResult,
} from './match.ts';
export { normalizePath, normalizeHost, splitTarget } from './paths.ts';
export { compileUserRegex, type CompiledRegex } from './regex.ts';
export { validate, type Verdict, type ValidationContext } from './validate.ts';
export { formatProblem, clip, type Problem } from './problems.ts';
export { parseDurationMs, parseSizeBytes } from './units.ts';
export { stepWeightsOf, BUILT_IN_METRICS, WEBHOOK_TYPES } from './canary.ts';
export {
  SUBPROTOCOL, PROTOCOL_VERSION, CLOSE, STATS_BUCKETS_MS, closeReason, decodeClientMessage, decodeServerMessage, emptySideStats, mergeSideStats, percentileMs,
  type ClientMessage, type ServerMessage, type Version, type ProxyIdentity, type SideStats, type BackendStats, type Decoded,
} from './protocol.ts';
export {
  CANARY_DEFAULTS, CANARY_PHASES, CANARY_STAGES, PROMOTION_STRATEGIES, CHECK_RESULTS,
  type CanaryPhase, type CanaryStage, type CanaryWebhookType, type PromotionStrategy,
} from './canary-types.gen.ts';
export type {
  CanaryAnalysis, CanaryMetric, CanaryWebhook, CanaryTraffic, CanaryCondition, CanaryCheckResult, CanaryProxies,
} from './canary-types.gen.ts';
export { parseCanary, canaryProblems, withCanaryDefaults, durationMsOf, CANARY_PATTERNS, CANARY_LIMITS } from './canary.ts';
export {
  step, parseCommand, formatCommand, runHashOf, analysisWindow,
  FINALIZER, COMMAND_ANNOTATION, DEFAULT_RETIRE_STEPS, RESTART_STEP_DOWN_ABOVE, WEBHOOK_API_VERSION,
  type StepInput, type StepResult, type Action, type FleetInput, type MetricsInput, type PrometheusResult,
  type WebhookResult, type WebhookBody, type Command, type CommandVerb,
} from './rollout.ts';
