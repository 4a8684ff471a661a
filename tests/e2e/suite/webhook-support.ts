/**
 * What the webhook e2e files share: `vane webhook` as a real process (`node cli/main.ts
 * webhook`) against the run's kube-apiserver, running as a ServiceAccount with the RBAC of
 * deploy/webhook/rbac.yaml, behind the ValidatingWebhookConfiguration of
 * deploy/webhook/validatingwebhookconfiguration.yaml. Both are the shipped manifests with
 * three changes only: cluster-scoped names get the file's namespace as a suffix (files share
 * one control plane), `clientConfig` is a loopback URL (nothing routes a Service here), and a
 * namespaceSelector on SCOPE_LABEL keeps other files' writes away from this file's webhook.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { envWithoutProxies } from '../../../devtools/controlplane/index.ts';
import { parseManifestText } from '../../../lib/manifests.ts';
import { call } from '../../integration/webhook/client.ts';
import { fileNamespace, type Cluster } from '../harness/index.ts';
import { eventually } from '../../support/wait.ts';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** SCOPE_LABEL on a namespace names the file whose webhook reviews writes in it. */
export const SCOPE_LABEL = 'vane.dev/e2e-webhook';

/** Nothing listens on the discard port; nothing in scope is written before pointAt() names the real one. */
export const PLACEHOLDER_URL = 'https://127.0.0.1:9/validate';

const SERVICE_ACCOUNT = 'vane-webhook';
const SECRET = 'vane-webhook-tls';

type Json = Record<string, unknown>;

export interface WebhookEnv {
  c: Cluster;
  /** The webhook's own namespace, standing in for vane-system; it is in scope too. */
  ns: string;
  /** The ValidatingWebhookConfiguration's name. */
  vwc: string;
  secret: string;
  /** `system:serviceaccount:NS:vane-webhook`, for `kubectl --as`. */
  user: string;
  /** A kubeconfig holding only the ServiceAccount's token. */
  kubeconfig: string;
  dir: string;
  clusterScoped: string[];
  processes: WebhookProcess[];
}

export interface LogLine { msg?: string; level?: string; port?: number; [key: string]: unknown }

export interface WebhookProcess {
  pid: number;
  port: number;
  url: string;
  logs(): LogLine[];
  /** count of log lines with this msg. */
  count(msg: string): number;
  /** stop sends SIGTERM and resolves to the exit code (SIGKILL after 10 s). */
  stop(): Promise<number | null>;
}

function deployObjects(file: string): Json[] {
  const parsed = parseManifestText(readFileSync(join(ROOT, 'deploy/webhook', file), 'utf8'), file);
  if (parsed.errors.length) throw new Error(`deploy/webhook/${file}: ${parsed.errors[0]!.message}`);
  return parsed.objects.map((o) => o.object as unknown as Json);
}

/** rbacFor is deploy/webhook/rbac.yaml for a webhook in ns whose configuration is vwc. */
export function rbacFor(ns: string, vwc: string): Json[] {
  const objects = JSON.parse(JSON.stringify(deployObjects('rbac.yaml'))
    .replaceAll('"vane-system"', JSON.stringify(ns))
    .replaceAll('"vane-webhook-cabundle"', JSON.stringify(`vane-webhook-cabundle-${ns}`))) as Json[];
  const clusterRole = objects.find((o) => o.kind === 'ClusterRole') as { rules: { resourceNames?: string[] }[] } | undefined;
  if (!clusterRole || clusterRole.rules.length !== 1 || clusterRole.rules[0]!.resourceNames?.join() !== 'vane-webhook') {
    throw new Error('deploy/webhook/rbac.yaml changed shape: its ClusterRole no longer names exactly the vane-webhook configuration');
  }
  clusterRole.rules[0]!.resourceNames = [vwc];
  return objects;
}

/** webhookConfigFor is deploy/webhook's ValidatingWebhookConfiguration named vwc, calling url, scoped to SCOPE_LABEL=scope. */
export function webhookConfigFor(vwc: string, scope: string, url: string): Json {
  const [config] = deployObjects('validatingwebhookconfiguration.yaml') as [{ metadata: { name: string }; webhooks: Json[] }];
  config.metadata.name = vwc;
  for (const webhook of config.webhooks) {
    webhook.clientConfig = { url };
    webhook.namespaceSelector = { matchLabels: { [SCOPE_LABEL]: scope } };
  }
  return config as unknown as Json;
}

/**
 * WATCH_RULES: the ClusterRole rules `--watch-cluster` needs and the Helm chart grants
 * (docs/webhook.md, "The cluster watch"): nothing on EndpointSlices, and no `get` on Secrets —
 * the webhook lists and watches them as metadata only, `type=kubernetes.io/tls`.
 */
export const WATCH_RULES = [
  { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['networking.k8s.io'], resources: ['ingresses', 'ingressclasses'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['vane.dev'], resources: ['canaries'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['secrets'], verbs: ['list', 'watch'] },
];

/**
 * prepareWebhook makes the file's namespace (in scope), the ServiceAccount and RBAC, a
 * kubeconfig with the ServiceAccount's token and, unless register is false, the webhook
 * configuration at PLACEHOLDER_URL without a caBundle, as deploy/ ships it.
 */
export async function prepareWebhook(c: Cluster, fileUrl: string, options: { watchCluster?: boolean; register?: boolean } = {}): Promise<WebhookEnv> {
  const ns = await fileNamespace(fileUrl);
  await c.kubectlOk(['label', 'namespace', ns, `${SCOPE_LABEL}=${ns}`]);
  const vwc = `vane-webhook-${ns}`;
  const env: WebhookEnv = {
    c, ns, vwc, secret: SECRET, user: `system:serviceaccount:${ns}:${SERVICE_ACCOUNT}`,
    kubeconfig: '', dir: mkdtempSync(join(tmpdir(), 'vane-e2e-webhook-')), clusterScoped: [], processes: [],
  };
  const items = rbacFor(ns, vwc);
  if (options.watchCluster) {
    const name = `vane-webhook-watch-${ns}`;
    items.push(
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules: WATCH_RULES },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
        subjects: [{ kind: 'ServiceAccount', name: SERVICE_ACCOUNT, namespace: ns }],
      },
    );
  }
  for (const o of items) {
    const kind = String(o.kind);
    if (kind.startsWith('Cluster')) env.clusterScoped.push(`${kind.toLowerCase()}/${(o.metadata as { name: string }).name}`);
  }
  await c.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) });
  const token = (await c.kubectlOk(['-n', ns, 'create', 'token', SERVICE_ACCOUNT, '--duration=1h'])).trim();
  env.kubeconfig = join(env.dir, 'kubeconfig');
  writeFileSync(env.kubeconfig, stringify({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: 'e2e', cluster: { server: c.server, 'certificate-authority': c.controlPlane.credentials.caFile } }],
    users: [{ name: SERVICE_ACCOUNT, user: { token } }],
    contexts: [{ name: SERVICE_ACCOUNT, context: { cluster: 'e2e', user: SERVICE_ACCOUNT, namespace: ns } }],
    'current-context': SERVICE_ACCOUNT,
  }), { mode: 0o600 });
  env.clusterScoped.push(`validatingwebhookconfiguration/${vwc}`);
  if (options.register !== false) {
    await c.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(webhookConfigFor(vwc, ns, PLACEHOLDER_URL)) });
  }
  return env;
}

/** scopedNamespace creates namespace name in the file's scope. */
export async function scopedNamespace(env: WebhookEnv, name: string): Promise<void> {
  const r = await env.c.api('POST', '/api/v1/namespaces', { metadata: { name, labels: { 'vane.dev/e2e-run': env.c.run, [SCOPE_LABEL]: env.ns } } });
  if (r.status !== 201) throw new Error(`creating namespace ${name}: HTTP ${r.status} ${r.text}`);
}

/** startWebhook runs `vane webhook` as the ServiceAccount and resolves once it listens (its certificates are then in place). */
export async function startWebhook(env: WebhookEnv, extra: string[] = []): Promise<WebhookProcess> {
  const child: ChildProcess = spawn(process.execPath, [
    join(ROOT, 'cli/main.ts'), 'webhook', '--kubeconfig', env.kubeconfig, '--namespace', env.ns, '--webhook-config', env.vwc,
    '--host', '127.0.0.1', '--port', '0', '--ip', '127.0.0.1', '--shutdown-delay', '0', ...extra,
  ], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: envWithoutProxies(process.env, { VANE_LOG_LEVEL: 'info' }) });
  const lines: LogLine[] = [];
  let partial = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      if (!line.trim()) continue;
      try { lines.push(JSON.parse(line) as LogLine); } catch { lines.push({ msg: line }); }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  const placeholder: WebhookProcess = { pid: child.pid!, port: 0, url: '', logs: () => lines, count: (msg) => lines.filter((l) => l.msg === msg).length, stop };
  env.processes.push(placeholder);
  const port = await eventually('vane webhook to listen', () => lines.find((l) => l.msg === 'webhook listening')?.port, 30_000, {
    intervalMs: 25, giveUp: () => child.exitCode !== null && `vane webhook exited ${child.exitCode}`, detail: () => JSON.stringify(lines.slice(-5)),
  });
  return Object.assign(placeholder, { port, url: `https://127.0.0.1:${port}/validate` });
}

/** pointAt makes both webhooks of the configuration call url, with a JSON patch that leaves caBundle alone. */
export async function pointAt(env: WebhookEnv, url: string): Promise<void> {
  const ops = [0, 1].map((i) => ({ op: 'replace', path: `/webhooks/${i}/clientConfig/url`, value: url }));
  await env.c.kubectlOk(['patch', 'validatingwebhookconfiguration', env.vwc, '--type=json', '-p', JSON.stringify(ops)]);
}

/** snippetIngress is a Vane Ingress every verdict denies: a configuration snippet. */
export function snippetIngress(name: string, extra: { className?: string | null; annotations?: Record<string, string> } = {}): Json {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress',
    metadata: { name, annotations: { 'nginx.ingress.kubernetes.io/configuration-snippet': 'return 200;', ...extra.annotations } },
    spec: {
      ...(extra.className === null ? {} : { ingressClassName: extra.className ?? 'vane' }),
      rules: [{ host: `${name}.e2e.example`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }],
    },
  };
}

export const SNIPPET_DENIAL = 'admission webhook "ingresses.vane.dev" denied the request: metadata.annotations["nginx.ingress.kubernetes.io/configuration-snippet"]: configuration snippets are not supported';

/**
 * awaitAdmission waits until the API server calls the webhook for ns: a server-side dry run of
 * a snippet Ingress is denied by it. Configurations reach the admission chain through an
 * informer, and the Ingress webhook fails open, so until then the dry run is allowed.
 */
export async function awaitAdmission(env: WebhookEnv, ns = env.ns): Promise<string> {
  return eventually('the API server to call the webhook', async () => {
    const r = await env.c.kubectl(['-n', ns, 'apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify(snippetIngress('probe')) });
    return r.code !== 0 && r.stderr.includes(SNIPPET_DENIAL) ? r.stderr : null;
  }, 20_000);
}

export interface StoredSecret { resourceVersion: string; type: string; data: Record<string, string>; managers: string[] }

/** readSecret returns the certificate Secret with its data decoded, or null when it does not exist. */
export async function readSecret(env: WebhookEnv): Promise<StoredSecret | null> {
  type Secret = { type: string; data?: Record<string, string>; metadata: { resourceVersion: string; managedFields?: { manager: string }[] } };
  const r = await env.c.api<Secret>('GET', `/api/v1/namespaces/${env.ns}/secrets/${env.secret}`);
  if (r.status === 404) return null;
  if (r.status !== 200) throw new Error(`reading the Secret: HTTP ${r.status} ${r.text}`);
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.body.data ?? {})) data[k] = Buffer.from(v, 'base64').toString('utf8');
  return { resourceVersion: r.body.metadata.resourceVersion, type: r.body.type, data, managers: (r.body.metadata.managedFields ?? []).map((m) => m.manager) };
}

/** writeSecretData replaces keys of the Secret as an administrator would, compare-and-swap on resourceVersion. */
export async function writeSecretData(env: WebhookEnv, change: Record<string, string>): Promise<void> {
  const r = await env.c.api<Json & { data: Record<string, string> }>('GET', `/api/v1/namespaces/${env.ns}/secrets/${env.secret}`);
  for (const [k, v] of Object.entries(change)) r.body.data[k] = Buffer.from(v, 'utf8').toString('base64');
  const w = await env.c.api('PUT', `/api/v1/namespaces/${env.ns}/secrets/${env.secret}`, r.body);
  if (w.status !== 200) throw new Error(`replacing the Secret: HTTP ${w.status} ${w.text}`);
}

export interface StoredConfig { resourceVersion: string; caBundles: string[]; urls: string[]; caBundleManagers: string[] }

/** readConfig returns the webhook configuration's caBundle per webhook (decoded PEM, '' when unset) and who manages caBundle. */
export async function readConfig(env: WebhookEnv): Promise<StoredConfig> {
  type Config = {
    metadata: { resourceVersion: string; managedFields?: { manager: string; fieldsV1?: unknown }[] };
    webhooks: { clientConfig: { caBundle?: string; url?: string } }[];
  };
  const r = await env.c.api<Config>('GET', `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${env.vwc}`);
  if (r.status !== 200) throw new Error(`reading the webhook configuration: HTTP ${r.status} ${r.text}`);
  return {
    resourceVersion: r.body.metadata.resourceVersion,
    caBundles: r.body.webhooks.map((w) => Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8')),
    urls: r.body.webhooks.map((w) => w.clientConfig.url ?? ''),
    caBundleManagers: (r.body.metadata.managedFields ?? []).filter((m) => JSON.stringify(m.fieldsV1 ?? {}).includes('"f:caBundle"')).map((m) => m.manager),
  };
}

/** served returns the SHA-256 fingerprint of the certificate a webhook presents, verified against ca. */
export async function served(proc: WebhookProcess, ca: string): Promise<string> {
  return (await call(proc.port, { ca, method: 'GET', path: '/healthz' })).fingerprint;
}

export function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** reviews sums vane_webhook_reviews_total from the webhook's /metrics, fetched over TLS with ca as the only trust. */
export async function reviews(proc: WebhookProcess, ca: string): Promise<number> {
  const text = (await call(proc.port, { ca, method: 'GET', path: '/metrics' })).body;
  let total = 0;
  for (const m of text.matchAll(/^vane_webhook_reviews_total\{[^}]*\} (\d+)$/gm)) total += Number(m[1]);
  return total;
}

/** metric returns one sample of the webhook's /metrics, or null. */
export async function metric(proc: WebhookProcess, ca: string, name: string): Promise<number | null> {
  const text = (await call(proc.port, { ca, method: 'GET', path: '/metrics' })).body;
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

/** installCrds applies crds/ and waits until the API serves canaries. */
export async function installCrds(c: Cluster): Promise<void> {
  await c.kubectlOk(['apply', '-f', join(ROOT, 'crds')]);
  await c.kubectlOk(['wait', '--for=condition=Established', 'crd/canaries.vane.dev', '--timeout=30s']);
}

/** cleanup stops the file's webhooks and removes what it made outside its namespaces. */
export async function cleanup(env: WebhookEnv | undefined): Promise<void> {
  if (!env) return;
  await Promise.all(env.processes.map((p) => p.stop()));
  if (env.clusterScoped.length) await env.c.kubectl(['delete', '--ignore-not-found', '--wait=false', ...env.clusterScoped]);
  rmSync(env.dir, { recursive: true, force: true });
}
