/**
 * `vane webhook`: the admission webhook, composed here from webhook/ and lib/certs.
 *
 * Certificates come from one of:
 * - `--kubeconfig FILE` / `--in-cluster`: a kubernetes.io/tls Secret that the webhook creates
 *   and rotates, with the caBundle of `--webhook-config` kept in sync (replicas share both);
 * - `--cert-dir DIR`: tls.crt + tls.key written by someone else (cert-manager), reloaded when
 *   they change — or, when DIR holds no tls.crt or also holds ca.key, a CA and serving
 *   certificate that the webhook creates and rotates in DIR itself.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isIP } from 'node:net';
import { InvalidArgumentError, type Command } from 'commander';
import type { KubeConfig } from '../lib/kube/index.ts';
import { parseDurationMs, parseSizeBytes, type KubeObject } from '../core/index.ts';
import { createLogger, type Logger } from '../lib/log.ts';
import { loadManifests } from '../lib/manifests.ts';
import { CertManager, DirCertStore, loadKeyPair, watchKeyPair, type CaBundleTarget, type CertStore } from '../lib/certs/index.ts';
import { UsageError } from './explain.ts';
import { CONTEXT_KINDS, MemoryObjectCache, startWebhookServer, MAX_BODY_BYTES, type ObjectCache, type WebhookServer } from '../webhook/index.ts';

export interface WebhookFlags {
  host: string;
  port: number;
  certDir?: string;
  kubeconfig?: string;
  inCluster?: boolean;
  namespace?: string;
  secretName: string;
  serviceName: string;
  webhookConfig: string;
  dnsName: string[];
  ip: string[];
  ingressClass: string;
  defaultClass?: boolean;
  fromFiles?: string;
  watchCluster?: boolean;
  maxBodyBytes: number;
  shutdownDelay: number;
  resync: number;
  reloadInterval: number;
}

export interface RunningWebhook {
  server: WebhookServer;
  /** stop fails readiness, waits the shutdown delay, closes the listener and the certificate loops. */
  stop(): Promise<void>;
}

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number (0 picks a free one)');
  return n;
}

function duration(value: string): number {
  const ms = value === '0' ? 0 : parseDurationMs(value);
  if (ms === null) throw new InvalidArgumentError('must be a duration such as "5s" or "500ms"');
  return ms;
}

function size(value: string): number {
  const bytes = parseSizeBytes(value);
  if (bytes === null || bytes < 1024) throw new InvalidArgumentError('must be a size of at least 1k, such as "6m"');
  return bytes;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function ipAddress(value: string, previous: string[]): string[] {
  if (!isIP(value)) throw new InvalidArgumentError('must be an IPv4 or IPv6 address');
  return [...previous, value];
}

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function defaultNamespace(): string {
  if (process.env.VANE_NAMESPACE) return process.env.VANE_NAMESPACE;
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() || 'vane-system';
  } catch {
    return 'vane-system';
  }
}

async function objectCache(dir: string | undefined, log: Logger): Promise<ObjectCache | undefined> {
  if (!dir) return undefined;
  const manifests = await loadManifests([resolve(dir)]);
  for (const e of manifests.errors) log.warn({ file: e.file, message: e.message }, 'manifest not loaded');
  const objects: KubeObject[] = manifests.objects.map((o) => o.object);
  log.info({ dir, objects: objects.length }, 'object cache loaded from files');
  return new MemoryObjectCache(objects);
}

export interface ClusterCache {
  /** The objects the verdicts read; synced() turns true once every kind was listed. */
  cache: MemoryObjectCache;
  /** Resolves once the first full view is in the cache (rejects never: failures are logged and retried). */
  synced: Promise<void>;
  close(): Promise<void>;
}

/**
 * watchCluster fills the cache `--watch-cluster` reviews with: lib/kube's reflectors
 * (KubeObjectSource: list, watch, relist on 410), narrowed to the kinds contextFor reads and
 * with Secrets read as metadata only — the webhook learns that a TLS Secret exists, never its
 * key. RBAC: list/watch on ingressclasses, ingresses, services, canaries and secrets.
 */
export async function watchCluster(kc: KubeConfig, log: Logger): Promise<ClusterCache> {
  const { KubeObjectSource } = await import('../lib/kube/index.ts');
  // Reviews start at once; until the first full list has arrived the cache reports itself
  // unsynced and reviews leave cross-object warnings out rather than report false "not found".
  const cache = new MemoryObjectCache([], { synced: false });
  const source = new KubeObjectSource(kc, { logger: log, kinds: CONTEXT_KINDS, secretsMetadataOnly: true });
  const synced = source.start(cache).then(() => { cache.markSynced(); log.info({}, 'object cache synced'); }, (err: unknown) => {
    log.error({ message: (err as Error).message }, 'object cache failed; cross-object warnings stay off');
  });
  return { cache, synced, close: () => source.close() };
}

/** runWebhook starts the webhook as the CLI does; exported so tests can run it in-process. */
export async function runWebhook(flags: WebhookFlags, log: Logger = createLogger('webhook')): Promise<RunningWebhook> {
  if (!(flags.reloadInterval >= 100)) throw new UsageError('--reload-interval must be at least 100ms');
  const kubeMode = Boolean(flags.kubeconfig || flags.inCluster);
  if (kubeMode === Boolean(flags.certDir)) throw new UsageError('give exactly one of --cert-dir DIR, --kubeconfig FILE or --in-cluster');
  const namespace = flags.namespace ?? defaultNamespace();
  const dnsNames = flags.dnsName.length || flags.ip.length
    ? flags.dnsName
    : kubeMode ? [`${flags.serviceName}.${namespace}.svc`, `${flags.serviceName}.${namespace}.svc.cluster.local`] : ['localhost'];
  const ipAddresses = flags.dnsName.length || flags.ip.length || kubeMode ? flags.ip : ['127.0.0.1', '::1'];
  if (flags.watchCluster && !kubeMode) throw new UsageError('--watch-cluster needs --kubeconfig FILE or --in-cluster');
  if (flags.watchCluster && flags.fromFiles) throw new UsageError('give at most one of --watch-cluster and --from-files');
  let cache = await objectCache(flags.fromFiles, log);
  let kc: KubeConfig | null = null;
  if (kubeMode) {
    const { loadKubeConfig } = await import('../lib/kube/index.ts');
    kc = loadKubeConfig(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : { inCluster: true });
  }

  let manager: CertManager | null = null;
  let stopWatch: (() => void) | null = null;
  let source: { close(): Promise<void> } | null = null;
  let initial: { certPem: string; keyPem: string };
  let onCertificate: (pair: { certPem: string; keyPem: string }) => void = () => {};

  const external = flags.certDir && existsSync(join(flags.certDir, 'tls.crt')) && !existsSync(join(flags.certDir, 'ca.key'));
  if (flags.certDir && external) {
    initial = await loadKeyPair(flags.certDir);
    stopWatch = watchKeyPair(flags.certDir, initial, (pair) => onCertificate(pair), flags.reloadInterval, log);
    log.info({ certDir: flags.certDir }, 'serving certificates managed outside Vane; reloading on change');
  } else {
    let store: CertStore;
    let targets: CaBundleTarget[] = [];
    if (kc) {
      const { kubeCertBackends } = await import('../lib/certs/kube.ts');
      const backends = kubeCertBackends(kc, {
        namespace,
        secretName: flags.secretName,
        webhookConfigurations: flags.webhookConfig ? [flags.webhookConfig] : [],
        labels: { 'app.kubernetes.io/name': 'vane', 'app.kubernetes.io/component': 'webhook' },
      });
      store = backends.store;
      targets = backends.targets;
    } else {
      store = new DirCertStore(resolve(flags.certDir!));
    }
    manager = new CertManager({
      store, targets, log, resyncMs: flags.resync,
      policy: { commonName: flags.serviceName, dnsNames, ipAddresses },
      onChange: (serving) => onCertificate(serving),
    });
    initial = await manager.start();
  }

  if (flags.watchCluster && kc) {
    const watching = await watchCluster(kc, log);
    source = watching;
    cache = watching.cache;
  }

  const server = await startWebhookServer({
    host: flags.host,
    port: flags.port,
    tls: initial,
    maxBodyBytes: flags.maxBodyBytes,
    ingressClass: flags.ingressClass,
    defaultClass: flags.defaultClass === true,
    log,
    ...(cache ? { cache } : {}),
  });
  onCertificate = (pair) => {
    try {
      server.setCertificate(pair);
      log.info({}, 'serving certificate swapped');
    } catch (err) {
      log.error({ message: (err as Error).message }, 'new serving certificate refused; keeping the previous one');
    }
  };
  log.info({ host: server.host, port: server.port, url: server.url('/validate'), dnsNames, ipAddresses }, 'webhook listening');

  let stopping: Promise<void> | null = null;
  return {
    server,
    stop: () => {
      stopping ??= (async () => {
        server.setReady(false);
        if (flags.shutdownDelay > 0) await new Promise((r) => setTimeout(r, flags.shutdownDelay));
        manager?.stop();
        stopWatch?.();
        await source?.close();
        await server.close();
      })();
      return stopping;
    },
  };
}

export function registerWebhook(program: Command): void {
  program.command('webhook')
    .description('run the admission webhook (HTTPS) that refuses invalid Ingresses and Canaries')
    .option('--host <address>', 'address to listen on', '0.0.0.0')
    .option('--port <port>', 'HTTPS port (0 picks a free one; the log says which)', int, 9443)
    .option('--cert-dir <dir>', 'serving certificate directory: tls.crt/tls.key from cert-manager, or created and rotated here')
    .option('--kubeconfig <file>', 'keep certificates in a Secret and the webhook caBundle in sync, via this kubeconfig')
    .option('--in-cluster', 'as --kubeconfig, with the pod\'s service account')
    .option('--namespace <ns>', 'namespace of the certificate Secret (default: $VANE_NAMESPACE, the pod\'s, or vane-system)')
    .option('--secret-name <name>', 'kubernetes.io/tls Secret holding the CA and serving certificate', 'vane-webhook-tls')
    .option('--service-name <name>', 'Service in front of the webhook: names the certificate and its default DNS names', 'vane-webhook')
    .option('--webhook-config <name>', 'ValidatingWebhookConfiguration whose caBundle is kept in sync ("" for none)', 'vane-webhook')
    .option('--dns-name <name>', 'DNS name in the serving certificate (repeatable)', collect, [])
    .option('--ip <address>', 'IP address in the serving certificate (repeatable)', ipAddress, [])
    .option('--ingress-class <name>', 'IngressClass whose Ingresses are validated', 'vane')
    .option('--default-class', 'class-less Ingresses are Vane\'s when no IngressClass says otherwise')
    .option('--from-files <dir>', 'manifests standing in for the cluster\'s objects in cross-object warnings')
    .option('--watch-cluster', 'watch the cluster\'s IngressClasses, Ingresses, Services, Canaries and TLS Secrets (metadata only) for cross-object warnings (needs list/watch on them)')
    .option('--max-body-bytes <size>', 'largest AdmissionReview parsed; larger ones are denied unread', size, MAX_BODY_BYTES)
    .option('--shutdown-delay <duration>', 'readiness fails this long before the listener closes', duration, 5_000)
    .option('--resync <duration>', 'how often certificates and caBundle are checked (a blanked caBundle is back within this)', duration, 10_000)
    .option('--reload-interval <duration>', 'how often certificates managed outside Vane are re-read', duration, 10_000)
    .action(async (flags: WebhookFlags) => {
      const log = createLogger('webhook');
      const running = await runWebhook(flags, log);
      let signals = 0;
      const onSignal = (signal: string) => {
        if (++signals > 1) { log.warn({ signal }, 'second signal: exiting now'); process.exit(1); }
        log.info({ signal }, 'shutting down');
        running.stop().then(() => { log.flush(); process.exitCode = 0; }, (err: unknown) => { log.error({ message: (err as Error).message }, 'shutdown failed'); process.exitCode = 1; });
      };
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      process.on('SIGINT', () => onSignal('SIGINT'));
    });
}
