/** `vane proxy`: the data plane, composed here from proxy/ and a routing source. */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { parseDurationMs, parseSizeBytes } from '../core/index.ts';
import { createLogger } from '../lib/log.ts';
import { defaultListenHost } from './listen.ts';
import { readFile } from 'node:fs/promises';
import { FileSource, StreamSource, resolveOptions, startProxy, DEFAULT_OPTIONS, type ProxyOptions, type ProxyHandle, type RoutingSource } from '../proxy/index.ts';

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('must be an integer');
  return n;
}

function duration(value: string): number {
  const ms = parseDurationMs(value);
  if (ms === null) throw new InvalidArgumentError('must be a duration such as "5s" or "500ms"');
  return ms;
}

function durationOrZero(value: string): number {
  return value.trim() === '0' ? 0 : duration(value);
}

function size(value: string): number {
  const bytes = parseSizeBytes(value);
  if (bytes === null || bytes === 0) throw new InvalidArgumentError('must be a size such as "16k"');
  return bytes;
}

function listeners(value: string | true): ProxyOptions['proxyProtocol'] {
  if (value === true) return { http: true, https: true };
  const names = value.split(',').map((s) => s.trim());
  for (const n of names) if (n !== 'http' && n !== 'https') throw new InvalidArgumentError('must list listeners: http, https');
  return { http: names.includes('http'), https: names.includes('https') };
}

interface Flags {
  fromFiles?: string;
  operator?: string;
  proxyName?: string;
  tokenFile?: string;
  operatorCa?: string;
  allowPlaintextStream?: boolean;
  stateDir?: string;
  maxStateAge: number;
  httpPort: number; httpsPort: number; adminPort: number; host: string; adminHost: string;
  workers: number;
  trustedProxies?: string;
  proxyProtocol?: string | true;
  proxyProtocolPeers?: string;
  defaultSslCertificate?: string;
  shutdownDelay: number; drainTimeout: number;
  httpsRedirectPort: number;
  maxHeaderBytes: number;
  clientHeaderTimeout: number;
  clientBodyTimeout: number;
  clientBodyTotalTimeout: number;
  maxConnectionsPerClient: number;
  clientKeepaliveTimeout: number;
  upstreamConnections: number;
  upstreamKeepaliveTimeout: number;
  upstreamQueue: number;
  upstreamQueueTimeout: number;
  retries: number;
  outlierConsecutiveFailures: number; outlierBaseEjection: number; outlierMaxEjection: number; outlierMaxEjectionPercent: number;
  metricsPerPath?: boolean;
  http2: boolean;
  h2c?: boolean;
  http2MaxConcurrentStreams: number;
  hsts: boolean; hstsMaxAge: number; hstsIncludeSubdomains?: boolean; hstsPreload?: boolean;
  tlsMinVersion: 'TLSv1.2' | 'TLSv1.3'; tlsCiphers?: string; tlsCurves?: string;
  ingressClass: string;
  mergeSlashes: boolean;
}

export function registerProxy(program: Command): void {
  const d = DEFAULT_OPTIONS;
  program.command('proxy')
    .description('run the proxy (data plane) on routing from the operator\'s stream, or compiled from a directory of manifests')
    .option('--from-files <path>', 'file or directory of manifests, watched: changes apply live')
    .option('--operator <urls>', 'wss:// URL(s) of the operator stream, comma-separated (replicas); instead of --from-files')
    .option('--proxy-name <name>', 'this proxy\'s name on the stream (its pod name in a cluster)', process.env.POD_NAME)
    .option('--token-file <file>', 'bearer token for the stream, re-read on every connect (a projected ServiceAccount token)')
    .option('--operator-ca <file>', 'PEM CA bundle that signs the operator\'s stream certificate')
    .option('--allow-plaintext-stream', 'accept ws:// operator URLs (local development only; the token travels unencrypted)')
    .option('--state-dir <dir>', 'keep last-known-good routing here (use a memory-backed volume: it holds TLS keys)')
    .option('--max-state-age <duration>', 'last-known-good routing older than this is not served on start', duration, 24 * 3600 * 1000)
    .option('--http-port <port>', 'plain HTTP listener', int, d.httpPort)
    .option('--https-port <port>', 'HTTPS listener', int, d.httpsPort)
    .option('--admin-port <port>', '/healthz, /readyz and /metrics', int, d.adminPort)
    .option('--host <address>', 'address the traffic listeners bind to', d.host)
    .option('--admin-host <address>', 'address the admin listener binds to (default: 0.0.0.0 in a pod, else 127.0.0.1)', defaultListenHost())
    .option('--workers <n>', 'worker processes (default: one per core)', int, availableParallelism())
    .option('--trusted-proxies <cidrs>', 'comma-separated CIDRs whose X-Forwarded-* headers are believed')
    .option('--proxy-protocol [listeners]', 'expect a PROXY protocol v1/v2 header on http, https (default both) from --proxy-protocol-peers')
    .option('--proxy-protocol-peers <cidrs>', 'comma-separated CIDRs of the load balancers that send PROXY headers (required with --proxy-protocol)')
    .option('--default-ssl-certificate <namespace/name>', 'TLS Secret served when no certificate matches')
    .option('--shutdown-delay <duration>', 'readiness fails this long before listeners close', duration, d.shutdownDelayMs)
    .option('--drain-timeout <duration>', 'longest wait for in-flight requests on shutdown', duration, d.drainTimeoutMs)
    .option('--https-redirect-port <port>', 'port in 308 redirects to HTTPS', int, d.httpsRedirectPort)
    .option('--max-header-bytes <size>', 'request head limit (larger: 431)', size, d.maxHeaderBytes)
    .option('--client-header-timeout <duration>', 'time a client has to send a whole request head (then 408)', duration, d.clientHeaderTimeoutMs)
    .option('--client-body-timeout <duration>', 'longest silence between two reads of a request body (then 408)', duration, d.clientBodyTimeoutMs)
    .option('--client-body-total-timeout <duration>', 'time a client has to send a whole request body (then 408; 0s: no limit)', durationOrZero, d.clientBodyTotalTimeoutMs)
    .option('--max-connections-per-client <n>', 'connections at once from one untrusted client address, per worker (then 503; 0: no limit)', int, d.maxConnectionsPerClient)
    .option('--client-keepalive-timeout <duration>', 'idle keep-alive client connections close after this', duration, d.clientKeepAliveTimeoutMs)
    .option('--upstream-connections <n>', 'connections per upstream endpoint and worker', int, d.upstreamConnections)
    .option('--upstream-keepalive-timeout <duration>', 'idle upstream connections close after this', duration, d.upstreamKeepAliveMs)
    .option('--upstream-queue <n>', 'requests that may wait for a busy endpoint\'s connection, per endpoint and worker (more: 503)', int, d.upstreamQueue)
    .option('--upstream-queue-timeout <duration>', 'longest wait for an upstream connection (then 503)', duration, d.upstreamQueueTimeoutMs)
    .option('--retries <n>', 'extra attempts for idempotent requests whose connection failed', int, d.retries)
    .option('--outlier-consecutive-failures <n>', 'connect failures in a row that eject an endpoint', int, d.outlier.consecutiveFailures)
    .option('--outlier-base-ejection <duration>', 'first ejection time, doubled per ejection in a row', duration, d.outlier.baseEjectionMs)
    .option('--outlier-max-ejection <duration>', 'longest ejection time', duration, d.outlier.maxEjectionMs)
    .option('--outlier-max-ejection-percent <n>', 'largest share of a backend\'s endpoints ejected at once', int, d.outlier.maxEjectionPercent)
    .option('--metrics-per-path', 'label request metrics with the route path too')
    .option('--no-http2', 'offer only HTTP/1.1 by ALPN on the HTTPS listener (HTTP/2 is offered by default)')
    .option('--h2c', 'serve HTTP/2 with prior knowledge (h2c) on the plain HTTP listener too')
    .option('--http2-max-concurrent-streams <n>', 'streams an HTTP/2 client may have open at once per connection', int, d.http2MaxConcurrentStreams)
    .option('--no-hsts', 'send no Strict-Transport-Security on TLS hosts unless their Ingress asks (vane.dev/hsts)')
    .option('--hsts-max-age <seconds>', 'Strict-Transport-Security max-age on TLS hosts', int, d.hsts.maxAgeSec)
    .option('--hsts-include-subdomains', 'Strict-Transport-Security includeSubDomains on TLS hosts')
    .option('--hsts-preload', 'Strict-Transport-Security preload on TLS hosts')
    .option('--tls-min-version <version>', 'oldest TLS version clients may use: TLSv1.2 or TLSv1.3', d.tls.minVersion)
    .option('--tls-ciphers <list>', 'OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL\'s)')
    .option('--tls-curves <list>', 'key exchange groups, colon-separated (e.g. X25519:P-256)')
    .option('--ingress-class <name>', 'IngressClass served', 'vane')
    .option('--no-merge-slashes', 'keep runs of "/" in request paths')
    .action(async (flags: Flags) => {
      const log = createLogger('proxy');
      const options = resolveOptions({
        httpPort: flags.httpPort, httpsPort: flags.httpsPort, adminPort: flags.adminPort, host: flags.host, adminHost: flags.adminHost,
        workers: flags.workers,
        trustedProxies: flags.trustedProxies ? flags.trustedProxies.split(',').filter((s) => s.trim() !== '') : [],
        proxyProtocol: flags.proxyProtocol === undefined ? d.proxyProtocol : listeners(flags.proxyProtocol),
        proxyProtocolPeers: flags.proxyProtocolPeers ? flags.proxyProtocolPeers.split(',').filter((s) => s.trim() !== '') : [],
        defaultSslCertificate: flags.defaultSslCertificate ?? null,
        shutdownDelayMs: flags.shutdownDelay, drainTimeoutMs: flags.drainTimeout,
        httpsRedirectPort: flags.httpsRedirectPort,
        maxHeaderBytes: flags.maxHeaderBytes,
        clientHeaderTimeoutMs: flags.clientHeaderTimeout,
        clientBodyTimeoutMs: flags.clientBodyTimeout,
        clientBodyTotalTimeoutMs: flags.clientBodyTotalTimeout,
        maxConnectionsPerClient: flags.maxConnectionsPerClient,
        clientKeepAliveTimeoutMs: flags.clientKeepaliveTimeout,
        upstreamConnections: flags.upstreamConnections,
        upstreamKeepAliveMs: flags.upstreamKeepaliveTimeout,
        upstreamQueue: flags.upstreamQueue,
        upstreamQueueTimeoutMs: flags.upstreamQueueTimeout,
        retries: flags.retries,
        outlier: {
          consecutiveFailures: flags.outlierConsecutiveFailures, baseEjectionMs: flags.outlierBaseEjection,
          maxEjectionMs: flags.outlierMaxEjection, maxEjectionPercent: flags.outlierMaxEjectionPercent,
        },
        metricsPerPath: flags.metricsPerPath === true,
        http2: flags.http2,
        h2c: flags.h2c === true,
        http2MaxConcurrentStreams: flags.http2MaxConcurrentStreams,
        hsts: { enabled: flags.hsts, maxAgeSec: flags.hstsMaxAge, includeSubDomains: flags.hstsIncludeSubdomains === true, preload: flags.hstsPreload === true },
        tls: { minVersion: flags.tlsMinVersion, ciphers: flags.tlsCiphers ?? null, curves: flags.tlsCurves ?? null },
      });
      if ((flags.fromFiles === undefined) === (flags.operator === undefined)) {
        log.fatal({}, 'exactly one of --from-files or --operator is required');
        process.exit(2);
      }
      const plain = (flags.operator ?? '').split(',').map((u) => u.trim()).filter((u) => u.toLowerCase().startsWith('ws://'));
      if (plain.length > 0 && !flags.allowPlaintextStream) {
        log.fatal({ urls: plain }, '--operator: plain ws:// sends the stream token unencrypted; use wss:// (with --operator-ca), or --allow-plaintext-stream for local development');
        process.exit(2);
      }
      let handle: ProxyHandle | undefined;
      const source: RoutingSource = flags.operator ? new StreamSource({
        url: flags.operator.split(',').map((u) => u.trim()).filter(Boolean),
        ...(flags.allowPlaintextStream ? { allowPlaintext: true } : {}),
        proxyName: flags.proxyName ?? 'proxy',
        ...(flags.tokenFile ? { token: async () => (await readFile(flags.tokenFile!, 'utf8')).trim() } : {}),
        ...(flags.operatorCa ? { ca: await readFile(flags.operatorCa, 'utf8') } : {}),
        ...(flags.stateDir ? { stateDir: resolve(flags.stateDir) } : {}),
        maxStateAgeMs: flags.maxStateAge,
        logger: log,
        takeStats: async () => (handle ? handle.stats() : {}),
      }) : new FileSource({
        paths: [resolve(flags.fromFiles!)],
        compile: {
          ingressClass: flags.ingressClass,
          mergeSlashes: flags.mergeSlashes,
          ...(options.defaultSslCertificate ? { defaultCertificate: options.defaultSslCertificate } : {}),
        },
        logger: log,
      });
      try {
        handle = await startProxy(options, source, log);
      } catch (err) {
        log.fatal({ err: (err as Error).message }, 'proxy failed to start');
        process.exit(1);
      }
      let signals = 0;
      const onSignal = (signal: string) => {
        if (++signals > 1) { log.warn({ signal }, 'second signal: exiting now'); process.exit(1); }
        void handle.stop();
      };
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      process.on('SIGINT', () => onSignal('SIGINT'));
      // A parent that started this proxy over IPC (vane up) owns it: if the parent dies, even by
      // SIGKILL, the channel closes and the proxy drains instead of living on as an orphan.
      if (process.channel) {
        process.once('disconnect', () => { log.warn({ parent: process.ppid }, 'parent process gone: stopping'); void handle.stop(); });
        process.channel.unref();
      }
      await handle.done;
      process.exit(0);
    });
}
