/**
 * Vane's own processes against the e2e control plane: the operator in Kubernetes mode
 * (as a ServiceAccount with deploy/operator/rbac.yaml, not as admin), proxy identities
 * (ServiceAccount, pods, the proxy Service and its EndpointSlice, as a controller would
 * write them), bound stream tokens, and real `vane proxy --operator` processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envWithoutProxies } from '../../../devtools/controlplane/index.ts';
import type { Cluster } from './index.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const PROXY_LABELS = { 'app.kubernetes.io/name': 'vane-proxy' } as const;

export interface VaneProcess {
  name: string;
  child: ChildProcess;
  /** Every stderr line (JSON logs) so far. */
  lines: string[];
  /** waitFor resolves with the first log entry matching `test`, or rejects after timeoutMs. */
  waitFor(test: (entry: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function startVane(name: string, args: string[]): VaneProcess {
  const child = spawn(process.execPath, [join(ROOT, 'cli/main.ts'), ...args], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...envWithoutProxies(process.env), VANE_LOG_LEVEL: 'info' },
  });
  const lines: string[] = [];
  const waiters: { test: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }[] = [];
  let buffered = '';
  const onData = (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      lines.push(line);
      let entry: Record<string, unknown>;
      try { entry = JSON.parse(line) as Record<string, unknown>; } catch { continue; }
      for (const w of waiters.slice()) if (w.test(entry)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(entry); }
    }
  };
  child.stderr!.on('data', onData);
  child.stdout!.on('data', onData);
  return {
    name, child, lines,
    waitFor(test, timeoutMs = 20_000) {
      for (const line of lines) {
        try { const e = JSON.parse(line) as Record<string, unknown>; if (test(e)) return Promise.resolve(e); } catch { /* not JSON */ }
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name}: no matching log line within ${timeoutMs} ms; last lines:\n${lines.slice(-15).join('\n')}`)), timeoutMs);
        waiters.push({ test, resolve: (e) => { clearTimeout(timer); resolve(e); } });
        child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited with ${code}; last lines:\n${lines.slice(-15).join('\n')}`)); });
      });
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** kubeconfigFor writes a kubeconfig that authenticates with a bearer token against the cluster. */
export function kubeconfigFor(c: Cluster, token: string, dir: string, name: string): string {
  const admin = readFileSync(c.kubeconfig, 'utf8');
  const ca = /certificate-authority(-data)?:\s*(\S+)/.exec(admin);
  const caLine = ca ? `    certificate-authority${ca[1] ?? ''}: ${ca[2]}` : '    insecure-skip-tls-verify: true';
  const path = join(dir, `${name}.kubeconfig`);
  writeFileSync(path, [
    'apiVersion: v1', 'kind: Config',
    'clusters:', '- name: e2e', '  cluster:', `    server: ${c.server}`, caLine,
    'users:', `- name: ${name}`, '  user:', `    token: ${token}`,
    'contexts:', '- name: e2e', '  context: {cluster: e2e, user: ' + name + '}',
    'current-context: e2e', '',
  ].join('\n'), { mode: 0o600 });
  return path;
}

/** token asks the TokenRequest API for a ServiceAccount token, optionally bound to a pod. */
export async function token(c: Cluster, ns: string, sa: string, opts: { audience?: string; pod?: { name: string; uid: string }; seconds?: number } = {}): Promise<string> {
  const r = await c.api('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
    apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
    spec: {
      ...(opts.audience ? { audiences: [opts.audience] } : {}),
      expirationSeconds: opts.seconds ?? 3600,
      ...(opts.pod ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: opts.pod.name, uid: opts.pod.uid } } : {}),
    },
  });
  if (r.status !== 201) throw new Error(`TokenRequest for ${ns}/${sa}: HTTP ${r.status} ${r.text}`);
  return (r.body as { status: { token: string } }).status.token;
}

export interface Fleet {
  dir: string;
  operatorKubeconfig: string;
  proxies: { name: string; uid: string }[];
  cleanup(): void;
}

/**
 * setupFleet prepares namespace `ns` for an operator and `proxies` proxy identities:
 * operator RBAC and a token kubeconfig, the proxy ServiceAccount, one pod per proxy
 * (pods never run here; they exist to bind tokens to), the proxy Service and an
 * EndpointSlice listing those pods as ready, and Vane's IngressClass.
 */
export async function setupFleet(c: Cluster, ns: string, proxies: number): Promise<Fleet> {
  const dir = mkdtempSync(join(tmpdir(), 'vane-fleet-'));
  const rbac = readFileSync(join(ROOT, 'deploy/operator/rbac.yaml'), 'utf8').replaceAll('NAMESPACE', ns);
  await c.kubectlOk(['apply', '-f', '-'], { input: rbac });
  await c.kubectlOk(['apply', '-f', '-'], { input: 'apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: vane}\nspec: {controller: vane.dev/ingress-controller}\n' });
  await c.kubectlOk(['-n', ns, 'create', 'serviceaccount', 'vane-proxy']);
  const operatorKubeconfig = kubeconfigFor(c, await token(c, ns, 'vane-operator'), dir, 'vane-operator');
  const pods: { name: string; uid: string }[] = [];
  for (let i = 0; i < proxies; i++) {
    const name = `vane-proxy-${i}`;
    const r = await c.api('POST', `/api/v1/namespaces/${ns}/pods`, {
      apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: PROXY_LABELS },
      spec: { serviceAccountName: 'vane-proxy', containers: [{ name: 'proxy', image: 'vane:e2e' }] },
    });
    if (r.status !== 201) throw new Error(`creating pod ${name}: HTTP ${r.status} ${r.text}`);
    pods.push({ name, uid: (r.body as { metadata: { uid: string } }).metadata.uid });
  }
  await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: JSON.stringify({
    apiVersion: 'v1', kind: 'List', items: [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'vane-proxy', namespace: ns }, spec: { selector: PROXY_LABELS, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'vane-proxy-1', namespace: ns, labels: { 'kubernetes.io/service-name': 'vane-proxy' } },
        addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        endpoints: pods.map((p, i) => ({ addresses: [`203.0.113.${10 + i}`], conditions: { ready: true }, targetRef: { kind: 'Pod', name: p.name, namespace: ns, uid: p.uid } })),
      },
    ],
  }) });
  return { dir, operatorKubeconfig, proxies: pods, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface OperatorProcess extends VaneProcess {
  streamUrl: string;
  adminUrl: string;
}

/** startOperator runs `vane operator` in Kubernetes mode for the fleet in `ns`. */
export async function startOperator(fleet: Fleet, ns: string, identity: string, extra: string[] = []): Promise<OperatorProcess> {
  const p = startVane(`operator ${identity}`, [
    'operator', '--kubeconfig', fleet.operatorKubeconfig, '--identity', identity,
    '--stream-host', '127.0.0.1', '--stream-port', '0', '--admin-host', '127.0.0.1', '--admin-port', '0',
    '--stream-ip', '127.0.0.1', '--stream-tls-secret', `${ns}/vane-stream-tls`, '--stream-ca-configmap', `${ns}/vane-stream-ca`,
    '--lease-namespace', ns, '--proxy-service', `${ns}/vane-proxy`, '--proxy-service-account', `${ns}/vane-proxy`,
    ...Object.entries(PROXY_LABELS).flatMap(([k, v]) => ['--proxy-pod-label', `${k}=${v}`]),
    '--publish-address', '203.0.113.80',
    ...extra,
  ]);
  const started = await p.waitFor((e) => e.msg === 'operator started', 30_000);
  const stream = started.stream as { port: number };
  const admin = started.admin as { port: number };
  return { ...p, streamUrl: `wss://127.0.0.1:${stream.port}/stream`, adminUrl: `http://127.0.0.1:${admin.port}` };
}

/** streamCa reads the CA bundle the operator published for proxies. */
export async function streamCa(c: Cluster, ns: string): Promise<string> {
  const r = await c.api('GET', `/api/v1/namespaces/${ns}/configmaps/vane-stream-ca`);
  if (r.status !== 200) throw new Error(`reading the stream CA ConfigMap: HTTP ${r.status}`);
  return (r.body as { data: Record<string, string> }).data['ca.crt']!;
}

export interface ProxyProcess extends VaneProcess {
  http: number;
  admin: number;
}

/** startProxy runs `vane proxy --operator` as proxy pod `pod`, with a token bound to it; `extra` flags override the defaults. */
export async function startProxy(c: Cluster, fleet: Fleet, ns: string, pod: { name: string; uid: string }, operatorUrls: string[], ports: { http: number; https: number; admin: number }, stateDir?: string, extra: string[] = []): Promise<ProxyProcess> {
  const tokenFile = join(fleet.dir, `${pod.name}.token`);
  writeFileSync(tokenFile, await token(c, ns, 'vane-proxy', { audience: 'vane-stream', pod }), { mode: 0o600 });
  const caFile = join(fleet.dir, 'stream-ca.pem');
  writeFileSync(caFile, await streamCa(c, ns));
  const p = startVane(`proxy ${pod.name}`, [
    'proxy', '--operator', operatorUrls.join(','), '--proxy-name', pod.name, '--token-file', tokenFile, '--operator-ca', caFile,
    '--state-dir', stateDir ?? join(fleet.dir, `${pod.name}-state`),
    '--host', '127.0.0.1', '--admin-host', '127.0.0.1', '--http-port', String(ports.http), '--https-port', String(ports.https), '--admin-port', String(ports.admin),
    '--workers', '1', '--shutdown-delay', '0s',
    ...extra,
  ]);
  return { ...p, http: ports.http, admin: ports.admin };
}

/** fleetReport reads an operator's /fleet. */
export async function fleetReport(op: OperatorProcess): Promise<{ version: { generation: number; root: string } | null; convergence: { expected: number; converged: number; stragglers: string[]; root: string } | null; connected: { proxy: string }[] }> {
  const r = await fetch(`${op.adminUrl}/fleet`);
  return await r.json() as never;
}
