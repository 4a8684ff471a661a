/** operator/: sources → core.compile → versions → the stream to the proxy fleet. */
export { Operator, type OperatorOptions, type FleetReport } from './operator.ts';
export { Pipeline, type RoutingVersion, type PipelineOptions } from './pipeline.ts';
export { StreamServer, type Authenticator, type AuthResult, type StreamServerOptions } from './stream/server.ts';
export { tokenFileAuthenticator, parseTokenFile } from './stream/auth.ts';
export { Fleet, type Convergence } from './fleet.ts';
