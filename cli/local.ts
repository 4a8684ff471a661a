/**
 * `vane local up | status | down`: a real Kubernetes control plane on this machine (etcd +
 * kube-apiserver from tests/e2e/tools/build.sh, the same as the e2e tests use) plus Vane's
 * own components, as detached processes with pid files in --dir. `up` is idempotent: what
 * already runs is reported, not started twice. `down` stops everything and removes the state.
 *
 * Vane's components are a list (LOCAL_COMPONENTS): each says how to start it against the local
 * API server, or why it cannot start yet, and `up` prints which is which.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { execFile } from 'node:child_process';
import { get as httpsGet } from 'node:https';
import { extname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, type Command } from 'commander';
import { parseManifestText } from '../lib/manifests.ts';
import { PACKAGE_ROOT } from '../lib/package-root.ts';
import { localDownNode, localUpNode, nodeStatus } from './local-node.ts';
import {
  BUILD_SCRIPT, buildTools, controlPlaneStatus, envWithoutProxies, layout, locateTools, procStart, readControlPlaneState, removeState,
  startControlPlane, startProcess, stopControlPlane, stopProcess, isAlive, isOurs, type ControlPlaneState,
} from '../devtools/controlplane/index.ts';

const ROOT = PACKAGE_ROOT;
// The components run the same code as this command: cli/main.ts from a checkout, dist/cli/main.js compiled.
const CLI = fileURLToPath(new URL(`./main${extname(fileURLToPath(import.meta.url))}`, import.meta.url));
const CRDS = join(ROOT, 'crds');
const LOCAL_STATE = 'local.json';

/** LocalContext is what a component needs to run against the local control plane. */
export interface LocalContext {
  dir: string;
  kubeconfig: string;
  server: string;
  bin: string;
  proxies: number;
  /** freePort picks a free TCP port on 127.0.0.1. */
  freePort(): Promise<number>;
  /** kubectl runs the real kubectl with the local kubeconfig; rejects with stderr on failure. */
  kubectl(args: readonly string[], input?: string): Promise<string>;
}

export interface ComponentPlan {
  /** argv after `node cli/main.ts`, e.g. ['operator', '--kubeconfig', ctx.kubeconfig]. */
  argv: string[];
  env?: Record<string, string>;
  /** url users reach it at, shown by up and status. */
  url?: string;
  /** before runs first (e.g. apply the objects the component expects). */
  before?: () => Promise<void>;
  /** ready resolves once the started component serves; rejects with why not. */
  ready?: (pid: number) => Promise<void>;
}

export interface LocalComponent {
  name: string;
  /** instances of it to run (default 1), e.g. --proxies N. */
  count?(ctx: LocalContext): number;
  /** plan says how to start instance `index`, or, as a string, why it cannot start yet. */
  plan(ctx: LocalContext, index: number): Promise<ComponentPlan | string>;
}

/**
 * LOCAL_COMPONENTS are Vane's processes that `vane local up` starts, in order, and `down`
 * stops in reverse. A component that has no Kubernetes mode yet returns the reason; when it
 * gains one, its plan returns the command instead.
 */
export const LOCAL_COMPONENTS: LocalComponent[] = [
  {
    name: 'webhook',
    plan: async (ctx) => {
      const port = await ctx.freePort();
      const url = `https://127.0.0.1:${port}/validate`;
      return {
        argv: ['webhook', '--kubeconfig', ctx.kubeconfig, '--namespace', WEBHOOK_NAMESPACE, '--webhook-config', WEBHOOK_CONFIG,
          '--host', '127.0.0.1', '--port', String(port), '--ip', '127.0.0.1', '--shutdown-delay', '0'],
        url,
        // The webhook fills in caBundle itself, so the configuration must exist before it starts.
        before: async () => { await ctx.kubectl(['apply', '-f', '-'], webhookManifests(url)); },
        ready: (pid) => webhookReady(ctx, pid, port),
      };
    },
  },
  {
    name: 'operator',
    plan: async (ctx) => {
      const ports = { stream: await ctx.freePort(), admin: await ctx.freePort() };
      mkdirSync(join(ctx.dir, COMPONENT_FILES), { recursive: true, mode: 0o700 });
      writeFileSync(join(ctx.dir, COMPONENT_FILES, OPERATOR_PORTS), JSON.stringify(ports));
      return {
        argv: ['operator', '--kubeconfig', ctx.kubeconfig, '--identity', 'local-operator',
          '--stream-host', '127.0.0.1', '--stream-port', String(ports.stream), '--admin-host', '127.0.0.1', '--admin-port', String(ports.admin),
          '--stream-ip', '127.0.0.1', '--lease-namespace', VANE_NAMESPACE,
          '--stream-tls-secret', `${VANE_NAMESPACE}/vane-stream-tls`, '--stream-ca-configmap', `${VANE_NAMESPACE}/vane-stream-ca`,
          '--proxy-service', `${VANE_NAMESPACE}/vane-proxy`, '--proxy-service-account', `${VANE_NAMESPACE}/vane-proxy`,
          '--proxy-pod-label', `${PROXY_LABEL[0]}=${PROXY_LABEL[1]}`, '--publish-address', '127.0.0.1'],
        url: `http://127.0.0.1:${ports.admin}/fleet`,
        // Objects a cluster install (the chart) would create: the proxies' identity and Service,
        // and Vane's IngressClass as the default class.
        before: async () => { await ctx.kubectl(['apply', '-f', '-'], operatorManifests()); },
        ready: (pid) => httpReady(pid, `http://127.0.0.1:${ports.admin}/readyz`, 'operator', ctx.dir),
      };
    },
  },
  {
    name: 'proxy',
    count: (ctx) => ctx.proxies,
    plan: async (ctx, index) => {
      const files = join(ctx.dir, COMPONENT_FILES);
      const operator = JSON.parse(readFileSync(join(files, OPERATOR_PORTS), 'utf8')) as { stream: number };
      const ports = { http: await ctx.freePort(), https: await ctx.freePort(), admin: await ctx.freePort() };
      const pod = `vane-proxy-${index}`;
      const tokenFile = join(files, `${pod}.token`);
      const caFile = join(files, 'stream-ca.pem');
      return {
        argv: ['proxy', '--operator', `wss://127.0.0.1:${operator.stream}/stream`, '--proxy-name', pod, '--token-file', tokenFile, '--operator-ca', caFile,
          '--state-dir', join(files, `${pod}-state`), '--host', '127.0.0.1', '--admin-host', '127.0.0.1',
          '--http-port', String(ports.http), '--https-port', String(ports.https), '--admin-port', String(ports.admin), '--workers', '1', '--shutdown-delay', '0s'],
        url: `http://127.0.0.1:${ports.http}`,
        // A pod object for the proxy (pods never run here; a stream token is bound to it), its
        // endpoint in the proxy Service, a bound token, and the CA that signs the operator.
        before: async () => {
          await ctx.kubectl(['apply', '-f', '-'], proxyPodManifest(pod));
          const uid = await ctx.kubectl(['-n', VANE_NAMESPACE, 'get', 'pod', pod, '-o', 'jsonpath={.metadata.uid}']);
          await ctx.kubectl(['apply', '-f', '-'], proxyEndpointManifest(pod, uid, index));
          const token = await ctx.kubectl(['-n', VANE_NAMESPACE, 'create', 'token', 'vane-proxy', '--audience', 'vane-stream', '--duration', '24h',
            '--bound-object-kind', 'Pod', '--bound-object-name', pod, '--bound-object-uid', uid]);
          writeFileSync(tokenFile, token.trim(), { mode: 0o600 });
          const ca = await ctx.kubectl(['-n', VANE_NAMESPACE, 'get', 'configmap', 'vane-stream-ca', '-o', 'jsonpath={.data.ca\\.crt}']);
          writeFileSync(caFile, ca);
        },
        ready: (pid) => httpReady(pid, `http://127.0.0.1:${ports.admin}/readyz`, pod, ctx.dir),
      };
    },
  },
];

const VANE_NAMESPACE = 'vane-system';
const OPERATOR_PORTS = 'operator-ports.json';
/** COMPONENT_FILES holds what the components' plans write (ports, tokens, CA, proxy state); down removes it. */
const COMPONENT_FILES = 'components';
const PROXY_LABEL = ['app.kubernetes.io/name', 'vane-proxy'] as const;

function operatorManifests(): string {
  return JSON.stringify({
    apiVersion: 'v1', kind: 'List', items: [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: VANE_NAMESPACE } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'vane-proxy', namespace: VANE_NAMESPACE } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'vane-proxy', namespace: VANE_NAMESPACE }, spec: { selector: { [PROXY_LABEL[0]]: PROXY_LABEL[1] }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      {
        apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass',
        metadata: { name: 'vane', annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' } },
        spec: { controller: 'vane.dev/ingress-controller' },
      },
    ],
  });
}

function proxyPodManifest(pod: string): string {
  return JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, namespace: VANE_NAMESPACE, labels: { [PROXY_LABEL[0]]: PROXY_LABEL[1] } },
    spec: { serviceAccountName: 'vane-proxy', containers: [{ name: 'proxy', image: 'vane:local' }] },
  });
}

/** proxyEndpointManifest lists the proxy as a ready endpoint of the proxy Service, as the EndpointSlice controller would. */
function proxyEndpointManifest(pod: string, uid: string, index: number): string {
  return JSON.stringify({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: pod, namespace: VANE_NAMESPACE, labels: { 'kubernetes.io/service-name': 'vane-proxy' } },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    // A documentation address: nothing connects to it; the operator reads which pods are ready.
    endpoints: [{ addresses: [`203.0.113.${100 + index}`], conditions: { ready: true }, targetRef: { kind: 'Pod', name: pod, namespace: VANE_NAMESPACE, uid } }],
  });
}

async function httpReady(pid: number, url: string, name: string, dir: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (!isAlive(pid)) throw new Error(`${name} exited; see ${join(layout(dir).logs, `${name}.log`)}`);
    const ok = await fetch(url).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() >= deadline) throw new Error(`${name} did not become ready in ${READY_TIMEOUT_MS / 1000} s; see ${join(layout(dir).logs, `${name}.log`)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const WEBHOOK_NAMESPACE = 'vane-system';
const WEBHOOK_CONFIG = 'vane-webhook';
const READY_TIMEOUT_MS = 30_000;

/** webhookManifests registers the webhook by URL (nothing routes a Service here) for Ingress and Canary writes. */
function webhookManifests(url: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: WEBHOOK_NAMESPACE } },
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingWebhookConfiguration',
        metadata: { name: WEBHOOK_CONFIG, labels: { 'app.kubernetes.io/name': 'vane', 'app.kubernetes.io/component': 'webhook' } },
        webhooks: [{
          name: 'validate.vane.dev',
          clientConfig: { url },
          rules: [
            { apiGroups: ['networking.k8s.io'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['ingresses'] },
            { apiGroups: ['vane.dev'], apiVersions: ['v1alpha1'], operations: ['CREATE', 'UPDATE'], resources: ['canaries'] },
          ],
          failurePolicy: 'Fail',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          timeoutSeconds: 5,
        }],
      },
    ],
  });
}

/** webhookReady waits until the webhook has put its CA into the configuration and answers /readyz with it. */
async function webhookReady(ctx: LocalContext, pid: number, port: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (!isAlive(pid)) throw new Error(`the webhook exited; see ${join(layout(ctx.dir).logs, 'webhook.log')}`);
    const caBundle = await ctx.kubectl(['get', 'validatingwebhookconfiguration', WEBHOOK_CONFIG, '-o', 'jsonpath={.webhooks[0].clientConfig.caBundle}']).catch(() => '');
    if (caBundle) {
      const ok = await new Promise<boolean>((done) => {
        const req = httpsGet({ host: '127.0.0.1', port, path: '/readyz', ca: Buffer.from(caBundle, 'base64'), agent: false, timeout: 1_000 }, (res) => {
          res.resume();
          done(res.statusCode === 200);
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => done(false));
      });
      if (ok) return;
    }
    if (Date.now() >= deadline) throw new Error(`the webhook did not become ready in ${READY_TIMEOUT_MS / 1000} s; see ${join(layout(ctx.dir).logs, 'webhook.log')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface ComponentRecord {
  name: string;
  pid?: number;
  start?: string;
  url?: string;
  log?: string;
  unavailable?: string;
}

interface LocalState { components: ComponentRecord[] }

function readLocalState(dir: string): LocalState {
  try {
    return JSON.parse(readFileSync(join(dir, LOCAL_STATE), 'utf8')) as LocalState;
  } catch {
    return { components: [] };
  }
}

function writeLocalState(dir: string, state: LocalState): void {
  writeFileSync(join(dir, LOCAL_STATE), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

function running(c: ComponentRecord): boolean {
  return c.pid !== undefined && c.start !== undefined && isOurs(c.pid, { start: c.start });
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => done(port));
    });
  });
}

function kubectlWith(bin: string, kubeconfig: string, cacheDir: string) {
  return (args: readonly string[], input?: string): Promise<string> => new Promise((done, fail) => {
    const child = execFile(join(bin, 'kubectl'), [`--kubeconfig=${kubeconfig}`, `--cache-dir=${cacheDir}`, ...args], { env: envWithoutProxies(), timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) fail(new Error(`kubectl ${args.join(' ')}: ${(stderr || err.message).trim()}`));
      else done(stdout);
    });
    child.stdin?.end(input ?? '');
  });
}

function crdFiles(): string[] {
  if (!existsSync(CRDS)) return [];
  return readdirSync(CRDS).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(CRDS, f));
}

function display(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel || '.';
}

export interface LocalOptions { dir: string; proxies: number; build: boolean; node?: boolean }

type Say = (message: string) => void;

function progress(): Say {
  const t0 = Date.now();
  return (message) => console.error(`[vane local ${((Date.now() - t0) / 1000).toFixed(1)}s] ${message}`);
}

async function startComponents(dir: string, ctx: LocalContext, say: Say): Promise<ComponentRecord[]> {
  const previous = readLocalState(dir).components;
  const records: ComponentRecord[] = [];
  for (const component of LOCAL_COMPONENTS) {
    const count = component.count?.(ctx) ?? 1;
    for (let i = 0; i < count; i++) {
      const name = count > 1 || component.count ? `${component.name}-${i}` : component.name;
      const old = previous.find((c) => c.name === name);
      if (old && running(old)) {
        say(`${name} already running (pid ${old.pid}${old.url ? `, ${old.url}` : ''})`);
        records.push(old);
        continue;
      }
      const plan = await component.plan(ctx, i);
      if (typeof plan === 'string') {
        say(`${name} not started: ${plan}`);
        records.push({ name, unavailable: plan });
        continue;
      }
      await plan.before?.();
      const log = join(layout(dir).logs, `${name}.log`);
      const started = await startProcess(process.execPath, [CLI, ...plan.argv], { logFile: log, detached: true, cwd: ROOT, ...(plan.env ? { env: plan.env } : {}) });
      const record: ComponentRecord = { name, pid: started.pid, start: procStart(started.pid) ?? '', log, ...(plan.url ? { url: plan.url } : {}) };
      records.push(record);
      writeLocalState(dir, { components: [...records, ...previous.filter((p) => !records.some((r) => r.name === p.name))] });
      await plan.ready?.(started.pid);
      say(`${name} started (pid ${started.pid}${plan.url ? `, ${plan.url}` : ''}; log ${display(log)})`);
    }
  }
  writeLocalState(dir, { components: records });
  return records;
}

/**
 * quickstartLines applies the quickstart without its EndpointSlices: they name 127.0.0.1, which
 * suits file mode, and a real API server refuses loopback endpoints.
 */
function quickstartLines(): string[] {
  const dir = join(ROOT, 'examples', 'quickstart');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort() : [];
  const usable = files.filter((f) => !/^apiVersion:\s*discovery\.k8s\.io\//m.test(readFileSync(join(dir, f), 'utf8')));
  if (usable.length === 0) return [];
  const lines = ['  kubectl create namespace shop', `  kubectl apply ${usable.map((f) => `-f ${display(join(dir, f))}`).join(' ')}`];
  if (usable.length < files.length) {
    lines.push(`  # skipped: ${files.filter((f) => !usable.includes(f)).join(', ')} (EndpointSlices on 127.0.0.1, for file mode: the API server refuses loopback endpoints)`);
  }
  return lines;
}

function whatNow(dir: string, state: ControlPlaneState, components: ComponentRecord[]): string {
  const kubeconfig = state.kubeconfig;
  const proxy = components.find((c) => c.name.startsWith('proxy') && c.url);
  const lines = [
    `Vane local is up: kube-apiserver ${state.kubernetesVersion} at ${state.server}, state in ${display(dir)}`,
    '',
    'What now:',
    `  export KUBECONFIG=${kubeconfig}`,
    `  ${join(state.bin, 'kubectl')} get --raw /readyz     # or any kubectl ${state.kubernetesVersion.replace(/\.\d+$/, '')}`,
    ...quickstartLines(),
  ];
  if (proxy) lines.push(`  curl -H 'Host: shop.example.com' ${proxy.url}/`);
  else lines.push("  curl -H 'Host: shop.example.com' http://127.0.0.1:PORT/   # once a proxy runs (not started yet; see above)");
  lines.push(`  vane local status --dir ${display(dir)}`, `  vane local down --dir ${display(dir)}`);
  return lines.join('\n');
}

/** localUp starts (or reports) the control plane and the components; resolves to the exit code. */
export async function localUp(opts: LocalOptions): Promise<number> {
  const dir = resolve(opts.dir);
  const say = progress();
  if (opts.node) return localUpNode({ dir, build: opts.build }, say);
  if (nodeStatus(dir)) throw new Error(`${display(dir)} holds a node cluster: use vane local up --node, or vane local down first`);
  const status = await controlPlaneStatus(dir);
  let state: ControlPlaneState;
  if (status.ready && status.state && status.etcd !== null && status.apiserver !== null) {
    state = status.state;
    say(`already running: etcd (pid ${status.etcd}), kube-apiserver (pid ${status.apiserver}) at ${state.server}`);
  } else {
    if (status.etcd !== null || status.apiserver !== null) {
      say(`found a partial control plane in ${display(dir)} (etcd ${status.etcd ?? 'down'}, kube-apiserver ${status.apiserver ?? 'down'}): restarting it`);
      await stopControlPlane(dir, { onProgress: say });
    }
    let bin: string;
    if (opts.build && !process.env.VANE_K8S_BIN) {
      say(`tools: bash ${display(BUILD_SCRIPT)} (a no-op when cached; about 12 min the first time)`);
      bin = await buildTools((line) => console.error(`  ${line}`));
    } else {
      const found = locateTools();
      if ('missing' in found) throw new Error(`${found.missing.join(', ')} missing in ${found.bin} (run without --no-build, or set VANE_K8S_BIN)`);
      bin = found.bin;
    }
    say(`tools in ${bin}`);
    const previous = readControlPlaneState(dir);
    const plane = await startControlPlane({ dir, bin, detached: true, onProgress: say, ...(previous ? { preferPorts: previous.ports } : {}) });
    state = plane.state;
  }

  const kubectl = kubectlWith(state.bin, state.kubeconfig, layout(dir).kubectlCache);
  const crds = crdFiles();
  if (crds.length > 0) {
    const names = crds.flatMap((f) => parseManifestText(readFileSync(f, 'utf8'), f).objects)
      .filter((o) => o.object.kind === 'CustomResourceDefinition' && o.object.metadata?.name)
      .map((o) => o.object.metadata!.name!);
    await kubectl(['apply', '--server-side', '--force-conflicts', ...crds.flatMap((f) => ['-f', f])]);
    if (names.length > 0) await kubectl(['wait', '--for=condition=Established', '--timeout=30s', ...names.map((n) => `crd/${n}`)]);
    say(`CRDs applied and Established: ${names.join(', ') || crds.map(display).join(', ')}`);
  }

  const ctx: LocalContext = { dir, kubeconfig: state.kubeconfig, server: state.server, bin: state.bin, proxies: opts.proxies, freePort, kubectl };
  const components = await startComponents(dir, ctx, say);
  console.log(whatNow(dir, state, components));
  return 0;
}

/** localStatus prints what runs; resolves to 0 when the control plane is ready, 3 when it is not (as `systemctl status`). */
export async function localStatus(opts: { dir: string; json: boolean }): Promise<number> {
  const dir = resolve(opts.dir);
  const node = nodeStatus(dir);
  if (node) {
    const plane = await controlPlaneStatus(dir);
    const ready = plane.ready && node.ready;
    if (opts.json) {
      console.log(JSON.stringify({ dir, node: true, ready, server: node.state.server, kubeconfig: node.state.kubeconfig, etcd: plane.etcd, apiserver: plane.apiserver }, null, 2));
    } else {
      console.log([
        `${'etcd'.padEnd(24)}${plane.etcd !== null ? `running (pid ${plane.etcd})` : 'not running'}`,
        `${'kube-apiserver'.padEnd(24)}${plane.apiserver !== null ? `running (pid ${plane.apiserver}${plane.ready ? ', ready' : ', NOT ready'}) at ${node.state.server}` : 'not running'}`,
        ...node.lines,
        `${'kubeconfig'.padEnd(24)}${node.state.kubeconfig}`,
      ].join('\n'));
    }
    return ready ? 0 : 3;
  }
  const status = await controlPlaneStatus(dir);
  const components = readLocalState(dir).components.map((c) => ({ ...c, running: running(c) }));
  if (opts.json) {
    console.log(JSON.stringify({
      dir, ready: status.ready, server: status.state?.server ?? null, kubeconfig: status.state?.kubeconfig ?? null,
      etcd: status.etcd, apiserver: status.apiserver,
      components: components.map((c) => ({ name: c.name, running: c.running, pid: c.pid ?? null, url: c.url ?? null, unavailable: c.unavailable ?? null })),
    }, null, 2));
    return status.ready ? 0 : 3;
  }
  const row = (name: string, text: string): string => `${name.padEnd(16)}${text}`;
  const lines = [
    row('etcd', status.etcd !== null ? `running (pid ${status.etcd})` : 'not running'),
    row('kube-apiserver', status.apiserver !== null ? `running (pid ${status.apiserver}${status.ready ? ', ready' : ', NOT ready'}) at ${status.state?.server ?? '?'}` : 'not running'),
    ...components.map((c) => row(c.name, c.unavailable ? `not started: ${c.unavailable}` : c.running ? `running (pid ${c.pid}${c.url ? `, ${c.url}` : ''})` : `stopped (was pid ${c.pid})`)),
  ];
  if (status.state) lines.push(row('kubeconfig', status.state.kubeconfig));
  console.log(lines.join('\n'));
  return status.ready ? 0 : 3;
}

/** localDown stops the components (in reverse order), then kube-apiserver and etcd, and removes the state. */
export async function localDown(opts: { dir: string }): Promise<number> {
  const dir = resolve(opts.dir);
  const say = progress();
  if (nodeStatus(dir)) {
    await localDownNode(dir, say);
    say(`removed the state in ${display(dir)}`);
    return 0;
  }
  if (!readControlPlaneState(dir) && !existsSync(join(dir, LOCAL_STATE)) && !existsSync(layout(dir).pids)) {
    say(`nothing to stop: no vane local state in ${display(dir)}`);
    return 0;
  }
  for (const c of [...readLocalState(dir).components].reverse()) {
    if (!running(c)) continue;
    const t = Date.now();
    // A component's command line need not name DIR: its recorded start time identifies it.
    const how = await stopProcess(c.pid!, { start: c.start! }, 10_000);
    say(`${c.name} (pid ${c.pid}) ${how === 'killed' ? 'killed after 10 s' : how === 'terminated' ? 'stopped' : 'was not running'} in ${Date.now() - t} ms`);
  }
  await stopControlPlane(dir, { onProgress: say });
  rmSync(join(dir, LOCAL_STATE), { force: true });
  rmSync(join(dir, COMPONENT_FILES), { recursive: true, force: true });
  removeState(dir);
  say(`removed the state in ${display(dir)}`);
  return 0;
}

function count(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 16) throw new InvalidArgumentError('must be an integer from 0 to 16');
  return n;
}

export function registerLocal(program: Command): void {
  const local = program.command('local')
    .description('a real Kubernetes control plane on this machine (etcd + kube-apiserver) with Vane\'s components');

  local.command('up')
    .description('start (or report) the control plane and Vane\'s components; builds the tools the first time')
    .option('--dir <dir>', 'state directory: certificates, etcd data, logs, pid files, kubeconfig', '.vane')
    .option('--proxies <n>', 'proxy processes to run', count, 1)
    .option('--no-build', 'do not run tests/e2e/tools/build.sh; use the build cache (with $VANE_K8S_BIN set, it never runs)')
    .option('--node', 'a real node too (kubelet, containerd, kube-proxy, CoreDNS in a network namespace), with Vane installed by its Helm chart from an image built here')
    .action(async (opts: { dir: string; proxies: number; build: boolean; node?: boolean }) => {
      process.exitCode = await localUp(opts);
    });

  local.command('status')
    .description('show what runs; exit 0 when the control plane is ready, 3 when it is not')
    .option('--dir <dir>', 'state directory', '.vane')
    .option('--json', 'print JSON')
    .action(async (opts: { dir: string; json?: boolean }) => {
      process.exitCode = await localStatus({ dir: opts.dir, json: opts.json === true });
    });

  local.command('down')
    .description('stop everything `up` started and remove its state')
    .option('--dir <dir>', 'state directory', '.vane')
    .action(async (opts: { dir: string }) => {
      process.exitCode = await localDown(opts);
    });
}
