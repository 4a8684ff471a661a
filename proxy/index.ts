/** proxy/: Vane's data plane. The only door into this folder. */
export { startProxy, type ProxyHandle } from './primary/start.ts';
export { FileSource, type FileSourceOptions } from './source/files.ts';
export type { RoutingSource, RoutingUpdate, WireDelta } from './source/source.ts';
export { DEFAULT_OPTIONS, resolveOptions, type ProxyOptions, type OutlierOptions } from './options.ts';
export { ProxyError, UpstreamError, BodyError, type ProxyErrorCode } from './errors.ts';
export { selfSignedCertificate, type SelfSignedCertificate, type SelfSignedRequest } from './listen/x509.ts';
export { parseProxyHeader, parseClientHello, NEED_MORE, INVALID } from './listen/preamble.ts';
export { Cluster, Endpoint, type PoolSettings } from './upstream/endpoints.ts';
export { STICKY_COOKIE } from './http/exchange.ts';
export { PASSTHROUGH_IDLE_MS } from './listen/listeners.ts';
export { StreamSource, DEFAULT_MAX_STATE_AGE_MS, type StreamClientOptions, type StreamStatus } from './source/stream.ts';
