/**
 * A real Kubernetes control plane on loopback: etcd and kube-apiserver (built from Go modules
 * by tests/e2e/tools/build.sh), with generated certificates, RBAC, a ServiceAccount token
 * issuer (TokenRequest/TokenReview), the admission chain with ValidatingAdmissionWebhook, and
 * an admin kubeconfig. The e2e harness runs it attached (one per test run); `vane local up`
 * runs it detached, with pid files, and `vane local down` stops it from those.
 *
 * DIR layout: pki/, etcd/ (data), logs/*.log, pids/*.pid, kubeconfig, controlplane.json.
 * Every process's command line contains DIR, which is how a pid is known to be ours.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { get as httpGet } from 'node:http';
import { join, resolve } from 'node:path';
import { VaneError } from '../../core/index.ts';
import { apiRequest, type ApiCredentials, type ApiRequestOptions, type ApiResponse } from './client.ts';
import { onExitSync } from './exit.ts';
import { ensurePki, ADMIN_USER } from './pki.ts';
import { isAlive, isOurs, killSync, logTail, startProcess, stopProcess } from './processes.ts';
import { toolVersions } from './tools.ts';

export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc';
/** STREAM_AUDIENCE is the audience of the tokens proxies present on the operator's stream (DESIGN.md). */
export const STREAM_AUDIENCE = 'vane-stream';
/** SERVICE_CLUSTER_IP_RANGE is TEST-NET-3 (RFC 5737): a ClusterIP never reaches a real network by accident. */
export const SERVICE_CLUSTER_IP_RANGE = '203.0.113.0/24';
const CLUSTER_NAME = 'vane-local';

export interface ControlPlaneOptions {
  /** dir holds everything the control plane writes; created when missing. */
  dir: string;
  /** bin holds etcd, kube-apiserver and kubectl. */
  bin: string;
  /** detached processes outlive this one (`vane local`); attached ones are killed by an exit hook. */
  detached?: boolean;
  /** removeOnExit deletes dir in the exit hook of an attached control plane (tests). */
  removeOnExit?: boolean;
  onProgress?: (message: string) => void;
  etcdReadyTimeoutMs?: number;
  apiReadyTimeoutMs?: number;
  stopGraceMs?: number;
  /**
   * apiAudiences are the audiences the API server accepts as credentials for itself (default:
   * the issuer). Keep vane-stream out: a TokenReview that names its audiences works without
   * it, and listing it would let a proxy's stream token act as an API credential.
   */
  apiAudiences?: readonly string[];
  /** ports to prefer (a restarted `vane local` keeps its address when they are still free). */
  preferPorts?: Partial<ControlPlanePorts>;
  /**
   * node runs etcd and kube-apiserver inside a network namespace, on the node's address, for
   * a cluster with a real kubelet (devtools/controlplane/node.ts): the ServiceAccount admission
   * plugin and the `kubernetes` Service's endpoints are on, since controllers and pods run.
   */
  node?: NodeNetwork;
}

/** NodeNetwork is where a control plane with a real node listens. */
export interface NodeNetwork {
  /** netns is the network namespace's name (under /run/netns). */
  netns: string;
  /** address is the node's address inside it, reachable from the host. */
  address: string;
  /** serviceCidr is the Services' range; the host routes it to the node, so it must be one nothing else uses. */
  serviceCidr: string;
  /** serviceIp is the `kubernetes` Service's ClusterIP (the range's first address), which pods dial. */
  serviceIp: string;
}

/** NODE_PORTS are fixed: a namespace of its own has nothing else listening. */
const NODE_PORTS: ControlPlanePorts = { etcdClient: 2379, etcdPeer: 2380, apiserver: 6443 };

/** inNetns is how a command runs inside a network namespace: nsenter execs it, so the pid stays the daemon's. */
export function inNetns(netns: string | undefined, command: string, args: readonly string[]): [string, string[]] {
  return netns ? ['nsenter', [`--net=/run/netns/${netns}`, '--', command, ...args]] : [command, [...args]];
}

export interface ControlPlanePorts { etcdClient: number; etcdPeer: number; apiserver: number }

export interface ControlPlaneState {
  version: 1;
  dir: string;
  bin: string;
  server: string;
  kubeconfig: string;
  caFile: string;
  adminCertFile: string;
  adminKeyFile: string;
  ports: ControlPlanePorts;
  pids: { etcd: number; apiserver: number };
  kubernetesVersion: string;
  etcdVersion: string;
  startedAt: string;
}

export interface ControlPlane {
  state: ControlPlaneState;
  credentials: ApiCredentials;
  /** api sends a request as the admin user (system:masters). */
  api<T = unknown>(method: string, path: string, body?: unknown, opts?: ApiRequestOptions): Promise<ApiResponse<T>>;
  /** stop stops kube-apiserver then etcd (SIGTERM, SIGKILL after a bound); removeState also deletes what it wrote in dir. */
  stop(opts?: { removeState?: boolean }): Promise<void>;
}

/** ControlPlaneError: a control plane process would not start, answer or stop (code ECONTROLPLANE). */
export class ControlPlaneError extends VaneError<'ECONTROLPLANE'> {
  override name = 'ControlPlaneError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ECONTROLPLANE', message, options);
  }
}

const STATE_FILE = 'controlplane.json';

export function layout(dir: string) {
  return {
    pki: join(dir, 'pki'),
    apiserverCerts: join(dir, 'apiserver-certs'),
    etcdData: join(dir, 'etcd'),
    logs: join(dir, 'logs'),
    etcdLog: join(dir, 'logs', 'etcd.log'),
    apiserverLog: join(dir, 'logs', 'kube-apiserver.log'),
    pids: join(dir, 'pids'),
    kubeconfig: join(dir, 'kubeconfig'),
    /** kubectlCache is kubectl's --cache-dir: a fresh port per run would otherwise leave a discovery cache in ~/.kube per run. */
    kubectlCache: join(dir, 'kubectl-cache'),
    state: join(dir, STATE_FILE),
  };
}

/** pidMarker is what every control plane process's command line contains: DIR with a trailing slash. */
export function pidMarker(dir: string): string {
  return `${resolve(dir)}/`;
}

function tryPort(port: number): Promise<number | null> {
  return new Promise((done) => {
    const srv = createServer();
    srv.once('error', () => done(null));
    srv.listen(port, '127.0.0.1', () => {
      const got = (srv.address() as { port: number }).port;
      srv.close(() => done(got));
    });
  });
}

async function freePorts(prefer: Partial<ControlPlanePorts>): Promise<ControlPlanePorts> {
  const taken = new Set<number>();
  const pick = async (preferred?: number): Promise<number> => {
    if (preferred && !taken.has(preferred) && (await tryPort(preferred)) !== null) {
      taken.add(preferred);
      return preferred;
    }
    for (let i = 0; i < 20; i++) {
      const p = await tryPort(0);
      if (p !== null && !taken.has(p)) {
        taken.add(p);
        return p;
      }
    }
    throw new ControlPlaneError('no free port on 127.0.0.1');
  };
  return { etcdClient: await pick(prefer.etcdClient), etcdPeer: await pick(prefer.etcdPeer), apiserver: await pick(prefer.apiserver) };
}

function httpText(url: string, timeoutMs: number): Promise<string> {
  return new Promise((done, fail) => {
    const req = httpGet(url, { agent: false, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => done(text));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
  });
}

/**
 * pollUntil calls check until it returns true, the process (when a pid is given) dies, or the
 * deadline passes; the error carries the last lines of the process's log.
 */
export async function pollUntil(what: string, timeoutMs: number, pid: number | null, logFile: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  for (;;) {
    if (pid !== null && !isAlive(pid)) throw new ControlPlaneError(`${what}: the process exited; last lines of ${logFile}:\n${logTail(logFile)}`);
    if (await check().catch(() => false)) return;
    if (Date.now() >= deadline) throw new ControlPlaneError(`${what}: not ready after ${timeoutMs} ms; last lines of ${logFile}:\n${logTail(logFile)}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 250);
  }
}

function kubeconfigText(server: string, caPem: string, certPem: string, keyPem: string): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${CLUSTER_NAME}`,
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(caPem)}`,
    'users:',
    `- name: ${ADMIN_USER}`,
    '  user:',
    `    client-certificate-data: ${b64(certPem)}`,
    `    client-key-data: ${b64(keyPem)}`,
    'contexts:',
    `- name: ${CLUSTER_NAME}`,
    `  context: {cluster: ${CLUSTER_NAME}, user: ${ADMIN_USER}}`,
    `current-context: ${CLUSTER_NAME}`,
    '',
  ].join('\n');
}

function credentialsOf(state: ControlPlaneState): ApiCredentials {
  return { server: state.server, caFile: state.caFile, certFile: state.adminCertFile, keyFile: state.adminKeyFile };
}

/** readControlPlaneState returns DIR's controlplane.json, or null when there is none. */
export function readControlPlaneState(dir: string): ControlPlaneState | null {
  const file = layout(dir).state;
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ControlPlaneState;
  } catch {
    return null;
  }
}

/** readPid reads DIR/pids/NAME.pid; null when absent or unreadable. */
export function readPid(dir: string, name: string): number | null {
  try {
    const n = Number(readFileSync(join(layout(dir).pids, `${name}.pid`), 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

export function writePid(dir: string, name: string, pid: number): void {
  mkdirSync(layout(dir).pids, { recursive: true });
  writeFileSync(join(layout(dir).pids, `${name}.pid`), `${pid}\n`);
}

function handle(state: ControlPlaneState, graceMs: number, unhook: () => void): ControlPlane {
  const credentials = credentialsOf(state);
  let stopping: Promise<void> | null = null;
  return {
    state,
    credentials,
    api: (method, path, body, opts) => apiRequest(credentials, method, path, body, opts),
    stop: (opts = {}) => {
      stopping ??= (async () => {
        await stopControlPlane(state.dir, { graceMs, removeState: opts.removeState === true });
        unhook();
      })();
      return stopping;
    },
  };
}

/** attachControlPlane returns a handle on a running control plane from its state file (no exit hook). */
export function attachControlPlane(dir: string, graceMs = 10_000): ControlPlane {
  const state = readControlPlaneState(dir);
  if (!state) throw new ControlPlaneError(`no control plane state in ${dir}`);
  return handle(state, graceMs, () => {});
}

/**
 * startControlPlane starts etcd, waits for /health, starts kube-apiserver, waits for /readyz,
 * then writes the kubeconfig and DIR/controlplane.json. On failure it stops what it started
 * and throws with the failing process's last log lines.
 */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const dir = resolve(opts.dir);
  const bin = resolve(opts.bin);
  const L = layout(dir);
  const marker = pidMarker(dir);
  const progress = opts.onProgress ?? (() => {});
  const graceMs = opts.stopGraceMs ?? 10_000;
  const versions = toolVersions();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  mkdirSync(L.logs, { recursive: true });

  let t = Date.now();
  const node = opts.node;
  const host = node?.address ?? '127.0.0.1';
  const { files: pki, created } = ensurePki(L.pki, node ? { servingIps: [node.address, node.serviceIp] } : {});
  progress(`certificates ${created ? 'created' : 'reused'} in ${L.pki} (CA, API server for ${host}, admin in system:masters, ServiceAccount signing key)${created ? ` in ${Date.now() - t} ms` : ''}`);

  const ports = node ? NODE_PORTS : await freePorts(opts.preferPorts ?? {});
  const started: number[] = [];
  const unhook = opts.detached ? () => {} : onExitSync(() => {
    for (const pid of started) killSync(pid, marker);
    if (opts.removeOnExit) rmSync(dir, { recursive: true, force: true });
  });

  try {
    t = Date.now();
    const etcdUrl = `http://${host}:${ports.etcdClient}`;
    const peerUrl = `http://${host}:${ports.etcdPeer}`;
    const etcd = await startProcess(...inNetns(node?.netns, join(bin, 'etcd'), [
      `--name=${CLUSTER_NAME}`,
      `--data-dir=${L.etcdData}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=${CLUSTER_NAME}=${peerUrl}`,
      '--initial-cluster-state=new',
      // Throwaway or developer data: durability is not worth an fsync per write.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]), { logFile: L.etcdLog, detached: opts.detached === true });
    started.push(etcd.pid);
    writePid(dir, 'etcd', etcd.pid);
    await pollUntil('etcd', opts.etcdReadyTimeoutMs ?? 20_000, etcd.pid, L.etcdLog, async () => (await httpText(`${etcdUrl}/health`, 1_000)).includes('"health":"true"'));
    progress(`etcd ${versions.etcd} healthy on ${etcdUrl} (pid ${etcd.pid}, ${Date.now() - t} ms)`);

    t = Date.now();
    const server = `https://${host}:${ports.apiserver}`;
    const audiences = opts.apiAudiences ?? [SERVICE_ACCOUNT_ISSUER];
    const apiserver = await startProcess(...inNetns(node?.netns, join(bin, 'kube-apiserver'), [
      `--etcd-servers=${etcdUrl}`,
      `--bind-address=${host}`,
      `--secure-port=${ports.apiserver}`,
      `--advertise-address=${host}`,
      ...(node
        ? [
          // Pods reach the API server through the `kubernetes` Service, whose endpoint this is.
          '--endpoint-reconciler-type=lease',
          // The node's name resolves nowhere; logs and exec dial its address with the admin identity.
          '--kubelet-preferred-address-types=InternalIP',
          `--kubelet-client-certificate=${pki.adminCert}`,
          `--kubelet-client-key=${pki.adminKey}`,
        ]
        // Without a default route the endpoint reconciler fails, and it has nothing to do here.
        : ['--endpoint-reconciler-type=none']),
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      `--service-account-key-file=${pki.serviceAccountPub}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      `--api-audiences=${audiences.join(',')}`,
      ...(node
        // A controller manager runs: the default chain, ServiceAccount (tokens in pods) included.
        ? []
        : [
          '--enable-admission-plugins=NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy',
          // No ServiceAccount controller runs to create the default ServiceAccount that plugin waits for.
          '--disable-admission-plugins=ServiceAccount',
        ]),
      `--service-cluster-ip-range=${node?.serviceCidr ?? SERVICE_CLUSTER_IP_RANGE}`,
      `--cert-dir=${L.apiserverCerts}`,
      '--profiling=false',
    ]), { logFile: L.apiserverLog, detached: opts.detached === true });
    started.push(apiserver.pid);
    writePid(dir, 'kube-apiserver', apiserver.pid);
    const state: ControlPlaneState = {
      version: 1,
      dir,
      bin,
      server,
      kubeconfig: L.kubeconfig,
      caFile: pki.caCert,
      adminCertFile: pki.adminCert,
      adminKeyFile: pki.adminKey,
      ports,
      pids: { etcd: etcd.pid, apiserver: apiserver.pid },
      kubernetesVersion: versions.kubernetes,
      etcdVersion: versions.etcd,
      startedAt: new Date().toISOString(),
    };
    const creds = credentialsOf(state);
    await pollUntil('kube-apiserver', opts.apiReadyTimeoutMs ?? 60_000, apiserver.pid, L.apiserverLog, async () => {
      const r = await apiRequest(creds, 'GET', '/readyz', undefined, { timeoutMs: 2_000 });
      return r.status === 200 && r.text === 'ok';
    });
    progress(`kube-apiserver ${versions.kubernetes} ready on ${server} (pid ${apiserver.pid}, ${Date.now() - t} ms)`);

    writeFileSync(L.kubeconfig, kubeconfigText(server, readFileSync(pki.caCert, 'utf8'), readFileSync(pki.adminCert, 'utf8'), readFileSync(pki.adminKey, 'utf8')), { mode: 0o600 });
    writeFileSync(L.state, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    progress(`kubeconfig written to ${L.kubeconfig} (user ${ADMIN_USER}, group system:masters)`);
    return handle(state, graceMs, unhook);
  } catch (err) {
    for (const pid of started.reverse()) await stopProcess(pid, marker, 2_000);
    unhook();
    throw err;
  }
}

export interface StopOptions { graceMs?: number; removeState?: boolean; onProgress?: (message: string) => void }

/**
 * stopControlPlane stops the control plane whose pid files are in DIR (kube-apiserver first,
 * so it never runs without etcd), touching only processes whose command line names DIR.
 */
export async function stopControlPlane(dir: string, opts: StopOptions = {}): Promise<void> {
  const abs = resolve(dir);
  const marker = pidMarker(abs);
  for (const name of ['kube-apiserver', 'etcd']) {
    const pid = readPid(abs, name);
    if (pid === null) continue;
    const t = Date.now();
    const how = await stopProcess(pid, marker, opts.graceMs ?? 10_000);
    if (how !== 'not-running') opts.onProgress?.(`${name} (pid ${pid}) ${how === 'killed' ? 'killed after the grace period' : 'stopped'} in ${Date.now() - t} ms`);
    try { rmSync(join(layout(abs).pids, `${name}.pid`)); } catch { /* gone */ }
  }
  if (opts.removeState) removeState(abs);
}

/**
 * removeState deletes what the control plane wrote in DIR, then DIR itself if nothing else is
 * left: DIR may be a user's `--dir`, so nothing it did not create is ever deleted.
 */
export function removeState(dir: string): void {
  const L = layout(dir);
  for (const path of [L.pki, L.apiserverCerts, L.etcdData, L.logs, L.pids, L.kubeconfig, L.kubectlCache, L.state]) rmSync(path, { recursive: true, force: true });
  try { rmdirSync(dir); } catch { /* not empty (someone else's files) or gone */ }
}

export interface ControlPlaneStatus {
  state: ControlPlaneState | null;
  etcd: number | null;
  apiserver: number | null;
  ready: boolean;
}

/** controlPlaneStatus reports which processes of DIR run (their pids) and whether /readyz is ok. */
export async function controlPlaneStatus(dir: string): Promise<ControlPlaneStatus> {
  const abs = resolve(dir);
  const marker = pidMarker(abs);
  const state = readControlPlaneState(abs);
  const alive = (name: string): number | null => {
    const pid = readPid(abs, name);
    return pid !== null && isOurs(pid, marker) ? pid : null;
  };
  const etcd = alive('etcd');
  const apiserver = alive('kube-apiserver');
  let ready = false;
  if (state && apiserver !== null) {
    const r = await apiRequest(credentialsOf(state), 'GET', '/readyz', undefined, { timeoutMs: 2_000 }).catch(() => null);
    ready = r?.status === 200 && r.text === 'ok';
  }
  return { state, etcd, apiserver, ready };
}
