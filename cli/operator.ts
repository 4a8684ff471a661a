/** `vane operator`: the composition root of the operator (file or Kubernetes source). */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import type { Command } from 'commander';
import type { Operator, Authenticator } from '../operator/index.ts';
import { createLogger } from '../lib/log.ts';
import { CLOSE } from '../core/index.ts';
import { defaultListenHost } from './listen.ts';
import { UsageError } from './explain.ts';

function collect(value: string, previous: string[]): string[] { return [...previous, value]; }
function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`not a port: ${value}`);
  return n;
}

export interface OperatorFlags {
  fromFiles?: string;
  kubeconfig?: string;
  streamHost: string;
  streamPort: number;
  adminHost: string;
  adminPort: number;
  tlsCert?: string;
  tlsKey?: string;
  allowPlaintextStream?: boolean;
  tokenFile?: string;
  expectProxies: string[];
  proxyService?: string;
  proxyServiceAccount?: string;
  proxyPodLabel: string[];
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  publishAddress: string[];
  ingressClass: string;
  defaultSslCertificate?: string;
  prometheusUrl?: string;
  streamTlsSecret: string;
  streamCaConfigmap: string;
  streamDnsName: string[];
  streamIp: string[];
}

function splitKey(value: string, flag: string): [string, string] {
  const slash = value.indexOf('/');
  if (slash <= 0 || slash === value.length - 1) throw new Error(`${flag} must be namespace/name, got ${value}`);
  return [value.slice(0, slash), value.slice(slash + 1)];
}

/** The operator whose stream certificate the certificate manager swaps on rotation. */
const streamTls: { current: Operator | null } = { current: null };

export async function runOperator(flags: OperatorFlags): Promise<Operator> {
  // Loaded here, not at the top: the Kubernetes client takes seconds to import, and every
  // other `vane` command would pay for it.
  const [{ loadKubeConfig }, { Operator, FileObjectSource, KubeObjectSource, LeaderElector, StatusWriter, tokenFileAuthenticator, kubeAuthenticator, CanaryController, KubeCanaryStore, OverlayCanaryStore }] =
    await Promise.all([import('../lib/kube/index.ts'), import('../operator/index.ts')]);
  const logger = createLogger('operator');
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) throw new UsageError(`${flags.tlsCert ? '--tls-key' : '--tls-cert'} is required with ${flags.tlsCert ? '--tls-cert' : '--tls-key'}`);
  if (flags.fromFiles && !flags.tlsCert && !flags.allowPlaintextStream) {
    throw new UsageError('--from-files: the stream needs --tls-cert and --tls-key (proxies send their tokens over it), or --allow-plaintext-stream for local development');
  }
  const tls = flags.tlsCert && flags.tlsKey ? { cert: await readFile(flags.tlsCert, 'utf8'), key: await readFile(flags.tlsKey, 'utf8') } : undefined;
  const compile = { ingressClass: flags.ingressClass, ...(flags.defaultSslCertificate ? { defaultCertificate: flags.defaultSslCertificate } : {}) };
  const common = {
    compile, logger, streamHost: flags.streamHost, streamPort: flags.streamPort, adminHost: flags.adminHost, adminPort: flags.adminPort, ...(tls ? { tls } : {}),
    ...(flags.allowPlaintextStream ? { allowPlaintext: true } : {}),
  };
  const prometheus = flags.prometheusUrl ? { prometheusUrl: flags.prometheusUrl } : {};
  let operator: Operator;
  if (flags.fromFiles) {
    const authenticate: Authenticator = flags.tokenFile
      ? await tokenFileAuthenticator(flags.tokenFile)
      : async () => ({ ok: false, code: CLOSE.unauthenticated, reason: 'unauthenticated: the operator has no --token-file' });
    operator = new Operator({
      ...common, fileMode: true, source: new FileObjectSource([flags.fromFiles], logger), authenticate, expectedProxies: flags.expectProxies.flatMap((s) => s.split(',')).filter(Boolean),
      controllers: (ctx) => [new CanaryController(ctx, { store: new OverlayCanaryStore({ overlay: ctx.overlay, logger }), ...prometheus })],
    });
  } else {
    const kc = loadKubeConfig(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {});
    if (!tls) {
      // The stream's CA and serving certificate live in a Secret shared by every replica,
      // and the CA bundle in a ConfigMap the proxies mount: the webhook's mechanism.
      const [{ CertManager }, { kubeCertBackends }, { ConfigMapCaBundle }] = await Promise.all([
        import('../lib/certs/index.ts'), import('../lib/certs/kube.ts'), import('../operator/index.ts'),
      ]);
      const [secretNs, secretName] = splitKey(flags.streamTlsSecret, '--stream-tls-secret');
      const [cmNs, cmName] = splitKey(flags.streamCaConfigmap, '--stream-ca-configmap');
      const certs = new CertManager({
        store: kubeCertBackends(kc, { namespace: secretNs, secretName }).store,
        targets: [new ConfigMapCaBundle(kc, cmNs, cmName)],
        policy: { commonName: 'vane-operator', dnsNames: flags.streamDnsName, ipAddresses: flags.streamIp },
        log: logger,
        onChange: (serving) => streamTls.current?.setServingCertificate({ cert: serving.certPem, key: serving.keyPem }),
      });
      const serving = await certs.start();
      Object.assign(common, { tls: { cert: serving.certPem, key: serving.keyPem } });
    }
    if (!flags.proxyServiceAccount) throw new Error('--proxy-service-account namespace/name is required with the Kubernetes source');
    const podLabels = Object.fromEntries(flags.proxyPodLabel.map((l) => { const eq = l.indexOf('='); return [l.slice(0, eq), l.slice(eq + 1)]; }));
    const addresses = flags.publishAddress.map((a) => (isIP(a) ? { ip: a } : { hostname: a }));
    let leader: InstanceType<typeof LeaderElector> | null = null;
    const status = new StatusWriter(kc, { isLeader: () => leader?.isLeader() ?? false, addresses, logger });
    operator = new Operator({
      ...common,
      source: new KubeObjectSource(kc, { logger }),
      authenticate: kubeAuthenticator(kc, { serviceAccount: flags.proxyServiceAccount, podLabels }),
      ...(flags.proxyService ? { proxyService: flags.proxyService } : {}),
      status,
      controllers: (ctx) => [new CanaryController(ctx, { store: new KubeCanaryStore(kc, { writer: status, isLeader: ctx.isLeader, logger }), ...prometheus })],
      leadership: (events) => {
        leader = new LeaderElector(kc, { namespace: flags.leaseNamespace, name: flags.leaseName, identity: flags.identity, logger, ...events });
        return leader;
      },
    });
  }
  streamTls.current = operator;
  await operator.start();
  return operator;
}

export function registerOperator(program: Command): void {
  program.command('operator')
    .description('watch objects (a directory or the API server), compile them and stream routing to the proxies')
    .option('--from-files <path>', 'file mode: a file or directory of manifests, watched, instead of the API server')
    .option('--kubeconfig <path>', 'Kubernetes mode: kubeconfig (default: $KUBECONFIG or in-cluster)')
    .option('--stream-host <host>', 'stream listen address (default: 0.0.0.0 in a pod, else 127.0.0.1)', defaultListenHost())
    .option('--stream-port <port>', 'stream listen port', port, 7443)
    .option('--admin-host <host>', 'admin listen address, /healthz, /readyz, /metrics, /fleet (default: 0.0.0.0 in a pod, else 127.0.0.1)', defaultListenHost())
    .option('--admin-port <port>', 'admin listen port', port, 7901)
    .option('--tls-cert <file>', 'PEM serving certificate for the stream')
    .option('--tls-key <file>', 'PEM private key for the stream')
    .option('--allow-plaintext-stream', 'file mode without --tls-cert: serve the stream as plain ws:// (local development only; tokens travel unencrypted)')
    .option('--stream-tls-secret <namespace/name>', 'Kubernetes mode, without --tls-cert: Secret holding the stream CA and serving certificate (created on first start)', 'vane-system/vane-stream-tls')
    .option('--stream-ca-configmap <namespace/name>', 'Kubernetes mode: ConfigMap where the stream CA bundle is published (ca.crt) for proxies', 'vane-system/vane-stream-ca')
    .option('--stream-dns-name <name>', 'DNS name in the stream serving certificate (repeatable)', collect, [])
    .option('--stream-ip <ip>', 'IP address in the stream serving certificate (repeatable)', collect, [])
    .option('--token-file <file>', 'file mode: "proxy-name token" lines accepted on the stream')
    .option('--expect-proxies <names>', 'file mode: proxies expected to serve (comma-separated, repeatable)', collect, [])
    .option('--proxy-service <namespace/name>', 'Kubernetes mode: the proxies\' Service; its ready endpoints are the expected fleet')
    .option('--proxy-service-account <namespace/name>', 'Kubernetes mode: the proxies\' ServiceAccount')
    .option('--proxy-pod-label <key=value>', 'Kubernetes mode: a label every proxy pod has (repeatable)', collect, [])
    .option('--lease-namespace <ns>', 'namespace of the leader-election Lease', 'vane-system')
    .option('--lease-name <name>', 'name of the leader-election Lease', 'vane-operator')
    .option('--identity <id>', 'this replica\'s identity in the Lease', process.env.POD_NAME ?? hostname())
    .option('--publish-address <addr>', 'address written to status.loadBalancer of Vane\'s Ingresses (repeatable)', collect, [])
    .option('--ingress-class <name>', 'Vane\'s IngressClass name', 'vane')
    .option('--default-ssl-certificate <namespace/name>', 'TLS Secret used when no certificate matches')
    .option('--prometheus-url <url>', 'Prometheus for Canary metrics that do not name their own address')
    .action(async (flags: OperatorFlags) => {
      const operator = await runOperator(flags);
      const stop = () => { void operator.close().then(() => process.exit(0)); };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}
