/** operator/: sources → core.compile → versions → the stream to the proxy fleet. */
export { Operator, type OperatorOptions, type FleetReport } from './operator.ts';
export { Pipeline, type RoutingVersion, type PipelineOptions } from './pipeline.ts';
export { StreamServer, type Authenticator, type AuthResult, type StreamServerOptions } from './stream/server.ts';
export { tokenFileAuthenticator, parseTokenFile } from './stream/auth.ts';
export { Fleet, type Convergence } from './fleet.ts';
export { FileObjectSource } from './sources/files.ts';
export { KubeObjectSource, WATCHED_KINDS } from './sources/kube.ts';
export type { ObjectSource, ObjectSink } from './sources/source.ts';
export { LeaderElector, type LeaderOptions } from './leader.ts';
export { StatusWriter, EVENT_REASONS, type StatusWriterOptions } from './status.ts';
export { kubeAuthenticator, STREAM_AUDIENCE, type KubeAuthOptions } from './stream/kube-auth.ts';
export type { Leadership, Controller, OperatorContext } from './operator.ts';
export { MemoryObjectSource } from './sources/memory.ts';
export {
  CanaryController, KubeCanaryStore, OverlayCanaryStore, SYSTEM_CLOCK,
  type CanaryControllerOptions, type CanaryStore, type Clock, type WriteOutcome,
} from './canary/index.ts';
export { ConfigMapCaBundle } from './stream/tls.ts';
