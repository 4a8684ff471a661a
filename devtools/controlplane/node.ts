/**
 * A one-node Kubernetes cluster on this machine, with a real kubelet: pods started by the
 * kubelet from images built here, through Debian's containerd and runc, with Services
 * (kube-proxy, iptables) and cluster DNS (CoreDNS). Every daemon runs inside a network
 * namespace of its own; the host reaches it through a veth pair. What it takes and why is
 * written down in shared/notes/real-node.md; docs/local.md describes it for users.
 *
 * Addresses come from benchmark and documentation ranges only, so nothing here can reach a
 * real network: the node is 198.19.0.1 (the host's end of the veth 198.19.0.254), CoreDNS
 * listens on 198.19.0.2, pods get 198.18.0.0/24 on a bridge and Services 198.19.128.0/24.
 * The namespace has no default route, so pods reach only the node, each other and the host.
 * The host routes the pod and Service ranges to the node, so they must be free: a start
 * refuses when the host already has an address or route in one of them. The documentation
 * ranges are not free everywhere: machines this runs on sit on 192.0.2.0/24, and their
 * package registries resolve into 203.0.113.0/24, so neither is used here.
 *
 * One node cluster runs on a machine at a time (fixed names and addresses): a claim file
 * names its state directory and owner, and a later start reaps a dead owner's leftovers.
 *
 * DIR layout: the control plane's (devtools/controlplane/controlplane.ts) plus node/ (containerd,
 * runc, CNI, kubelet root, configs), node.json; logs/*.log for every daemon.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { join, resolve } from 'node:path';
import { VaneError } from '../../core/index.ts';
import { onExitSync } from './exit.ts';
import {
  inNetns, layout, pidMarker, pollUntil, readPid, removeState, startControlPlane, stopControlPlane, writePid, type ControlPlane,
} from './controlplane.ts';
import { ensurePki } from './pki.ts';
import { hostNetworkOverlap } from '../netns.ts';
import { isOurs, killSync, procStart, startProcess, stopProcess } from './processes.ts';

export const NODE_NAME = 'vane-node';
export const NODE_NETNS = 'vane-node';
/** NODE_LINK is the veth pair's network, part of 198.18.0.0/15 (RFC 2544, benchmarking). */
export const NODE_LINK = '198.19.0.0/24';
export const NODE_ADDRESS = '198.19.0.1';
export const NODE_DNS_ADDRESS = '198.19.0.2';
export const NODE_HOST_ADDRESS = '198.19.0.254';
/** POD_CIDR is part of 198.18.0.0/15 (RFC 2544, benchmarking): pods never collide with a real network. */
export const POD_CIDR = '198.18.0.0/24';
const POD_GATEWAY = '198.18.0.1';
/** SERVICE_CIDR is the node cluster's Service range (RFC 2544 too). */
export const SERVICE_CIDR = '198.19.128.0/24';
/** KUBERNETES_SERVICE_IP is the `kubernetes` Service's ClusterIP: the first address of the Service range. */
export const KUBERNETES_SERVICE_IP = '198.19.128.1';
const HOST_VETH = 'vnode0';
const NODE_VETH = 'vnode1';
const BRIDGE = 'vanebr0';
const CGROUP_ROOT = '/vane-node';
const CGROUP_FS = '/sys/fs/cgroup';
const CLAIM_FILE = process.env.VANE_NODE_CLAIM_FILE ?? '/run/vane-node/claim.json';
const CNI_BIN = '/usr/lib/cni';
const PAUSE_IMAGE = 'localhost/pause:vane';
/** NODE_DAEMONS in start order; stop goes in reverse. */
const NODE_DAEMONS = ['containerd', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy', 'coredns'] as const;
/** NODE_TOOLS are the binaries `build.sh --node` adds to the control plane's. */
export const NODE_TOOLS = ['kubelet', 'kube-scheduler', 'kube-proxy', 'kube-controller-manager', 'coredns', 'pause'] as const;
/** NODE_COMMANDS come from Debian packages a node needs (scripts/install-system-deps.sh installs them). */
export const NODE_COMMANDS = ['containerd', 'ctr', 'runc', 'buildah', 'iptables', 'nsenter'] as const;

export interface NodeClusterOptions {
  dir: string;
  /** bin holds the control plane's tools and those of `build.sh --node`. */
  bin: string;
  /** detached daemons outlive this process (`vane local up --node`); attached ones are stopped by an exit hook. */
  detached?: boolean;
  /** removeOnExit deletes dir in the exit hook of an attached cluster (tests). */
  removeOnExit?: boolean;
  onProgress?: (message: string) => void;
  nodeReadyTimeoutMs?: number;
}

export interface NodeClusterState {
  version: 1;
  dir: string;
  nodeName: string;
  nodeAddress: string;
  hostAddress: string;
  dnsAddress: string;
  podCidr: string;
  serviceCidr: string;
  netns: string;
  kubeconfig: string;
  server: string;
  containerdSocket: string;
  pids: Record<string, number>;
  startedAt: string;
}

export interface NodeCluster {
  state: NodeClusterState;
  controlPlane: ControlPlane;
  /**
   * importImage loads an OCI archive into the node's containerd (namespace k8s.io), where the
   * kubelet finds it; baseName names an archive whose reference is a bare tag (`0.1.0` →
   * `localhost/vane:0.1.0`).
   */
  importImage(archive: string, baseName?: string): Promise<void>;
  /** stop stops every daemon and container, unmounts, removes the namespace and cgroups; removeState also deletes what it wrote in dir. */
  stop(opts?: { removeState?: boolean }): Promise<void>;
}

/** NodeClusterError: the machine cannot run a node, or a node daemon failed (code ENODE). */
export class NodeClusterError extends VaneError<'ENODE'> {
  override name = 'NodeClusterError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENODE', message, options);
  }
}

interface Claim { dir: string; owner: { pid: number; start: string } | null }

function nodeLayout(dir: string) {
  const node = join(dir, 'node');
  return {
    node,
    containerdRoot: join(node, 'containerd', 'root'),
    containerdState: join(node, 'containerd', 'state'),
    containerdConfig: join(node, 'containerd.toml'),
    // Unix socket paths are limited to 108 bytes: keep this one short.
    containerdSocket: join(node, 'ctrd.sock'),
    runcRoot: join(node, 'runc'),
    cniConf: join(node, 'cni', 'net.d'),
    cniIpam: join(node, 'cni', 'ipam'),
    kubeletRoot: join(node, 'kubelet'),
    kubeletCerts: join(node, 'kubelet-pki'),
    kubeletConfig: join(node, 'kubelet.yaml'),
    podLogs: join(node, 'pod-logs'),
    resolvConf: join(node, 'resolv.conf'),
    kubeProxyConfig: join(node, 'kube-proxy.yaml'),
    corefile: join(node, 'Corefile'),
    state: join(dir, 'node.json'),
  };
}

function run(command: string, args: readonly string[], opts: { netns?: string; allowFail?: boolean; timeoutMs?: number } = {}): { ok: boolean; out: string; err: string } {
  const [cmd, argv] = inNetns(opts.netns, command, args);
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: opts.timeoutMs ?? 30_000 });
  const result = { ok: r.status === 0 && !r.error, out: r.stdout ?? '', err: (r.stderr ?? '').trim() || (r.error?.message ?? '') };
  if (!result.ok && !opts.allowFail) throw new NodeClusterError(`${[command, ...args].join(' ')}${opts.netns ? ` (in ${opts.netns})` : ''}: ${result.err || `exit ${r.status}`}`);
  return result;
}

/** checkNodeHost says what this machine lacks for a node (commands, tools), or null when nothing. */
export function checkNodeHost(bin: string): string | null {
  const missing: string[] = [];
  for (const c of NODE_COMMANDS) if (spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0) missing.push(c);
  for (const t of NODE_TOOLS) if (!existsSync(join(bin, t))) missing.push(join(bin, t));
  for (const p of ['bridge', 'host-local', 'loopback', 'portmap']) if (!existsSync(join(CNI_BIN, p))) missing.push(join(CNI_BIN, p));
  return missing.length ? `missing: ${missing.join(', ')} (scripts/install-system-deps.sh and tests/e2e/tools/build.sh --node provide them)` : null;
}

function readClaim(): Claim | null {
  try {
    return JSON.parse(readFileSync(CLAIM_FILE, 'utf8')) as Claim;
  } catch {
    return null;
  }
}

function claim(dir: string, detached: boolean): void {
  mkdirSync(resolve(CLAIM_FILE, '..'), { recursive: true, mode: 0o700 });
  const held = readClaim();
  if (held) {
    const alive = held.owner ? procStart(held.owner.pid) === held.owner.start : existsSync(nodeLayout(held.dir).state);
    if (alive && resolve(held.dir) !== resolve(dir)) {
      throw new NodeClusterError(`a node cluster already runs from ${held.dir}${held.owner ? ` (pid ${held.owner.pid})` : ' (vane local down --dir that directory stops it)'}: one node cluster per machine`);
    }
    teardownSync(held.dir);
  } else {
    // No claim but leftovers (a crash between claim and state): clear the fixed names.
    teardownNetworkSync();
  }
  const start = procStart(process.pid);
  const owner = detached || start === null ? null : { pid: process.pid, start };
  writeFileSync(CLAIM_FILE, JSON.stringify({ dir: resolve(dir), owner } satisfies Claim), { mode: 0o600 });
}

function release(dir: string): void {
  const held = readClaim();
  if (held && resolve(held.dir) === resolve(dir)) {
    try { unlinkSync(CLAIM_FILE); } catch { /* gone */ }
  }
}

/** reapStaleNode tears down a node cluster whose owning process died without stopping it (tests killed hard); returns its dir. */
export function reapStaleNode(): string | null {
  const held = readClaim();
  if (!held?.owner || procStart(held.owner.pid) === held.owner.start) return null;
  teardownSync(held.dir);
  return held.dir;
}

function createNetwork(): void {
  teardownNetworkSync();
  const taken = hostNetworkOverlap([NODE_LINK, POD_CIDR, SERVICE_CIDR]);
  if (taken) throw new NodeClusterError(`this host already has an address or route in ${taken}: a node cluster here would shadow it`);
  run('ip', ['netns', 'add', NODE_NETNS]);
  run('ip', ['link', 'set', 'lo', 'up'], { netns: NODE_NETNS });
  run('ip', ['link', 'add', HOST_VETH, 'type', 'veth', 'peer', 'name', NODE_VETH, 'netns', NODE_NETNS]);
  run('ip', ['addr', 'add', `${NODE_HOST_ADDRESS}/24`, 'dev', HOST_VETH]);
  run('ip', ['link', 'set', HOST_VETH, 'up']);
  run('ip', ['addr', 'add', `${NODE_ADDRESS}/24`, 'dev', NODE_VETH], { netns: NODE_NETNS });
  run('ip', ['addr', 'add', `${NODE_DNS_ADDRESS}/32`, 'dev', 'lo'], { netns: NODE_NETNS });
  run('ip', ['link', 'set', NODE_VETH, 'up'], { netns: NODE_NETNS });
  // Connections from the node itself to a ClusterIP (the API server calling a webhook) are
  // translated by kube-proxy after the route lookup, which fails without a route: the range is
  // local to the node, so an address with no Service is refused here and never leaves.
  run('ip', ['route', 'add', 'local', SERVICE_CIDR, 'dev', 'lo'], { netns: NODE_NETNS });
  // Pods answer the host through the node, and the host reaches pods and ClusterIPs the same way.
  run('sysctl', ['-qw', 'net.ipv4.ip_forward=1'], { netns: NODE_NETNS });
  run('ip', ['route', 'add', POD_CIDR, 'via', NODE_ADDRESS, 'dev', HOST_VETH]);
  run('ip', ['route', 'add', SERVICE_CIDR, 'via', NODE_ADDRESS, 'dev', HOST_VETH]);
}

/** teardownNetworkSync removes the namespace and the host's veth end (its routes go with it). */
function teardownNetworkSync(): void {
  const pids = run('ip', ['netns', 'pids', NODE_NETNS], { allowFail: true });
  if (pids.ok) {
    for (const line of pids.out.split('\n')) {
      const pid = Number(line.trim());
      if (Number.isInteger(pid) && pid > 0) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  run('ip', ['netns', 'del', NODE_NETNS], { allowFail: true });
  if (run('ip', ['link', 'show', HOST_VETH], { allowFail: true }).ok) run('ip', ['link', 'del', HOST_VETH], { allowFail: true });
}

/** mountsUnder lists mount points at or under dir, deepest first. */
function mountsUnder(dir: string): string[] {
  const root = resolve(dir);
  let text = '';
  try { text = readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return []; }
  const points = text.split('\n').map((l) => l.split(' ')[4] ?? '').map((p) => p.replace(/\\040/g, ' '))
    .filter((p) => p === root || p.startsWith(`${root}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

function unmountAll(dir: string): void {
  // A mount can be stacked on itself (the kubelet's root dir): repeat until none is left.
  for (let round = 0; round < 5; round++) {
    const points = mountsUnder(dir);
    if (points.length === 0) return;
    for (const p of points) {
      if (spawnSync('umount', [p]).status !== 0) spawnSync('umount', ['-l', p]);
    }
  }
}

function cgroupDirs(): string[] {
  let hierarchies: string[] = [];
  try { hierarchies = readdirSync(CGROUP_FS).map((h) => join(CGROUP_FS, h)); } catch { return []; }
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: string[] = [];
    try { entries = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(d, e.name)); } catch { return; }
    for (const e of entries) walk(e);
    out.push(d);
  };
  for (const h of hierarchies) {
    const root = join(h, CGROUP_ROOT);
    if (existsSync(root)) walk(root);
  }
  return out;
}

function killCgroupProcesses(): void {
  for (const d of cgroupDirs()) {
    let procs = '';
    try { procs = readFileSync(join(d, 'cgroup.procs'), 'utf8'); } catch { continue; }
    for (const line of procs.split('\n')) {
      const pid = Number(line);
      if (Number.isInteger(pid) && pid > 0) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
}

/**
 * createCgroupRoot makes the kubelet's cgroup root in every hierarchy (it refuses to start
 * without them); a cpuset cgroup takes no process until it has CPUs and memory nodes.
 */
function createCgroupRoot(): void {
  for (const h of readdirSync(CGROUP_FS)) {
    const root = join(CGROUP_FS, h, CGROUP_ROOT);
    if (!existsSync(join(CGROUP_FS, h, 'cgroup.procs'))) continue;
    mkdirSync(root, { recursive: true });
    if (h === 'cpuset') {
      for (const f of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(root, f), readFileSync(join(CGROUP_FS, h, f), 'utf8'));
    }
  }
}

function removeCgroups(): void {
  // Deepest first (walk pushes children before parents); a cgroup empties a moment after its last process dies.
  for (let round = 0; round < 20; round++) {
    const left = cgroupDirs().filter((d) => { try { rmdirSync(d); return false; } catch { return existsSync(d); } });
    if (left.length === 0) return;
    spawnSync('sleep', ['0.1']);
  }
}

/** killContainers stops every container runc runs for this node, then their shims. */
function killContainers(dir: string): void {
  const L = nodeLayout(dir);
  const runcRoot = join(L.runcRoot, 'k8s.io');
  if (existsSync(runcRoot)) {
    const list = run('runc', ['--root', runcRoot, 'list', '-q'], { allowFail: true });
    for (const id of list.out.split('\n').map((s) => s.trim()).filter(Boolean)) run('runc', ['--root', runcRoot, 'delete', '--force', id], { allowFail: true });
  }
  killCgroupProcesses();
  for (const pid of pidsWithArg(L.containerdSocket)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}

function pidsWithArg(marker: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').some((a) => a.includes(marker))) out.push(Number(name));
    } catch { /* gone */ }
  }
  return out.filter((p) => p !== process.pid);
}

/**
 * teardownSync stops a node cluster from its state directory alone, at once (SIGKILL): for
 * exit hooks and for reaping a dead owner's cluster. Order: daemons (kubelet first, so it
 * restarts nothing), containers and shims, mounts, the namespace, cgroups.
 */
function teardownSync(dir: string): void {
  const marker = pidMarker(dir);
  for (const name of [...NODE_DAEMONS].reverse().filter((n) => n !== 'containerd')) {
    const pid = readPid(dir, name);
    if (pid !== null) killSync(pid, marker);
  }
  killContainers(dir);
  const ctrd = readPid(dir, 'containerd');
  if (ctrd !== null) killSync(ctrd, marker);
  for (const name of ['kube-apiserver', 'etcd']) {
    const pid = readPid(dir, name);
    if (pid !== null) killSync(pid, marker);
  }
  unmountAll(dir);
  teardownNetworkSync();
  removeCgroups();
  release(dir);
}

function writeConfigs(dir: string, kubeconfig: string, caFile: string): void {
  const L = nodeLayout(dir);
  for (const d of [L.node, L.cniConf, L.cniIpam, L.kubeletRoot, L.kubeletCerts, L.podLogs]) mkdirSync(d, { recursive: true, mode: 0o700 });
  writeFileSync(L.containerdConfig, [
    'version = 2',
    `root = "${L.containerdRoot}"`,
    `state = "${L.containerdState}"`,
    // Snapshotters and tracing this node has no use for only log errors at start.
    'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
    '[grpc]',
    `  address = "${L.containerdSocket}"`,
    '[ttrpc]',
    `  address = "${L.containerdSocket}.ttrpc"`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = "${PAUSE_IMAGE}"`,
    // Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to start.
    '  restrict_oom_score_adj = true',
    // Pod network namespaces under our state dir, not /run/netns, so teardown finds them.
    '  netns_mounts_under_state_dir = true',
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    '    snapshotter = "overlayfs"',
    '    default_runtime_name = "runc"',
    '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
    '      runtime_type = "io.containerd.runc.v2"',
    '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
    '        SystemdCgroup = false',
    `        Root = "${L.runcRoot}"`,
    '  [plugins."io.containerd.grpc.v1.cri".cni]',
    `    bin_dir = "${CNI_BIN}"`,
    `    conf_dir = "${L.cniConf}"`,
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${join(L.node, 'containerd', 'opt')}"`,
    '',
  ].join('\n'));
  writeFileSync(join(L.cniConf, '10-vane-node.conflist'), JSON.stringify({
    cniVersion: '0.4.0',
    name: 'vane-node',
    plugins: [
      {
        type: 'bridge', bridge: BRIDGE, isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR, gateway: POD_GATEWAY }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: L.cniIpam },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }, null, 2));
  writeFileSync(L.resolvConf, `nameserver ${NODE_DNS_ADDRESS}\n`);
  writeFileSync(L.kubeletConfig, JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // The host is cgroup v1: the kubelet then only warns that v1 is deprecated.
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    // A cgroup tree of its own: the machine's existing cgroups are never touched.
    cgroupRoot: CGROUP_ROOT,
    failSwapOn: false,
    containerRuntimeEndpoint: `unix://${L.containerdSocket}`,
    address: NODE_ADDRESS,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: NODE_ADDRESS,
    healthzPort: 10248,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: caFile } },
    authorization: { mode: 'AlwaysAllow' },
    clusterDNS: [NODE_DNS_ADDRESS],
    clusterDomain: 'cluster.local',
    resolvConf: L.resolvConf,
    podLogsDir: L.podLogs,
    // A developer's disk may be fuller than a node's: evict only when it is really short.
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    serializeImagePulls: false,
    maxPods: 110,
    rotateCertificates: false,
    serverTLSBootstrap: false,
    syncFrequency: '10s',
  }, null, 2));
  writeFileSync(L.kubeProxyConfig, JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig },
    mode: 'iptables',
    clusterCIDR: POD_CIDR,
    hostnameOverride: NODE_NAME,
    healthzBindAddress: `${NODE_ADDRESS}:10256`,
    metricsBindAddress: '127.0.0.1:10249',
    // The conntrack table is the machine's, not the namespace's: leave its limits alone.
    conntrack: { maxPerCore: 0, min: 0 },
  }, null, 2));
  writeFileSync(L.corefile, [
    '.:53 {',
    `    bind ${NODE_DNS_ADDRESS}`,
    '    errors',
    `    ready ${NODE_DNS_ADDRESS}:8181`,
    '    kubernetes cluster.local in-addr.arpa ip6.arpa {',
    `        kubeconfig ${kubeconfig} vane-local`,
    '        pods insecure',
    '        fallthrough in-addr.arpa ip6.arpa',
    '    }',
    '    cache 5',
    '}',
    '',
  ].join('\n'));
}

function httpStatus(url: string, timeoutMs: number): Promise<number> {
  return new Promise((done, fail) => {
    const req = httpGet(url, { agent: false, timeout: timeoutMs }, (res) => { res.resume(); done(res.statusCode ?? 0); });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
  });
}

function execText(command: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((done, fail) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) fail(new NodeClusterError(`${command} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else done(stdout);
    });
  });
}

/** pauseArchive makes the sandbox image from the pause binary (buildah, no registry) as an OCI archive next to it, once. */
async function pauseArchive(bin: string): Promise<string> {
  const archive = join(bin, 'pause.oci.tar');
  const binary = join(bin, 'pause');
  if (existsSync(archive) && statSync(archive).mtimeMs >= statSync(binary).mtimeMs) return archive;
  const ctr = (await execText('buildah', ['from', 'scratch'], 60_000)).trim();
  try {
    await execText('buildah', ['copy', ctr, binary, '/pause'], 60_000);
    await execText('buildah', ['config', '--entrypoint', '["/pause"]', '--user', '65535:65535', ctr], 60_000);
    await execText('buildah', ['commit', '-q', ctr, PAUSE_IMAGE], 60_000);
    rmSync(`${archive}.tmp`, { force: true });
    await execText('buildah', ['push', '-q', PAUSE_IMAGE, `oci-archive:${archive}.tmp:${PAUSE_IMAGE}`], 60_000);
    await execText('mv', ['-f', `${archive}.tmp`, archive], 10_000);
  } finally {
    await execText('buildah', ['rm', ctr], 60_000).catch(() => '');
  }
  return archive;
}

/**
 * startNodeCluster starts the namespace, the control plane in it, containerd, the controller
 * manager, the scheduler, the kubelet, kube-proxy and CoreDNS, and waits until the node is
 * Ready and DNS answers. On failure everything started is torn down and the error carries the
 * failing daemon's last log lines.
 */
export async function startNodeCluster(opts: NodeClusterOptions): Promise<NodeCluster> {
  const dir = resolve(opts.dir);
  const bin = resolve(opts.bin);
  const progress = opts.onProgress ?? (() => {});
  const missing = checkNodeHost(bin);
  if (missing) throw new NodeClusterError(`this machine cannot run a node: ${missing}`);
  const L = nodeLayout(dir);
  const logs = layout(dir).logs;
  mkdirSync(dir, { recursive: true, mode: 0o700 });

  claim(dir, opts.detached === true);
  const unhook = opts.detached ? () => {} : onExitSync(() => {
    teardownSync(dir);
    if (opts.removeOnExit) rmSync(dir, { recursive: true, force: true });
  });
  const pids: Record<string, number> = {};
  const daemon = async (name: string, command: string, args: readonly string[]): Promise<number> => {
    const p = await startProcess(...inNetns(NODE_NETNS, command, args), { logFile: join(logs, `${name}.log`), detached: opts.detached === true });
    writePid(dir, name, p.pid);
    pids[name] = p.pid;
    return p.pid;
  };

  try {
    let t = Date.now();
    createNetwork();
    progress(`network namespace ${NODE_NETNS}: node ${NODE_ADDRESS}, host ${NODE_HOST_ADDRESS} (veth ${HOST_VETH}), pods ${POD_CIDR}, services ${SERVICE_CIDR}`);

    const plane = await startControlPlane({
      dir, bin, detached: true, onProgress: progress,
      node: { netns: NODE_NETNS, address: NODE_ADDRESS, serviceCidr: SERVICE_CIDR, serviceIp: KUBERNETES_SERVICE_IP },
    });
    const { kubeconfig, caFile } = plane.state;
    const pki = ensurePki(layout(dir).pki).files;
    writeConfigs(dir, kubeconfig, caFile);

    t = Date.now();
    const ctrd = await daemon('containerd', 'containerd', ['--config', L.containerdConfig]);
    await pollUntil('containerd', 20_000, ctrd, join(logs, 'containerd.log'), async () => {
      await execText('ctr', ['-a', L.containerdSocket, 'version'], 5_000);
      return true;
    });
    const pause = await pauseArchive(bin);
    await execText('ctr', ['-a', L.containerdSocket, '-n', 'k8s.io', 'images', 'import', pause], 60_000);
    progress(`containerd ready (pid ${ctrd}, sandbox image ${PAUSE_IMAGE}, ${Date.now() - t} ms)`);

    t = Date.now();
    const kcm = await daemon('kube-controller-manager', join(bin, 'kube-controller-manager'), [
      `--kubeconfig=${kubeconfig}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`,
      '--leader-elect=false', '--bind-address=127.0.0.1', '--secure-port=10257',
      `--root-ca-file=${caFile}`, `--service-account-private-key-file=${pki.serviceAccountKey}`,
      '--use-service-account-credentials=false', `--service-cluster-ip-range=${SERVICE_CIDR}`,
      `--cert-dir=${join(L.node, 'kcm-certs')}`,
    ]);
    const scheduler = await daemon('kube-scheduler', join(bin, 'kube-scheduler'), [
      `--kubeconfig=${kubeconfig}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`,
      '--leader-elect=false', '--bind-address=127.0.0.1', '--secure-port=10259', `--cert-dir=${join(L.node, 'scheduler-certs')}`,
    ]);
    progress(`kube-controller-manager (pid ${kcm}) and kube-scheduler (pid ${scheduler}) started`);

    createCgroupRoot();
    const kubelet = await daemon('kubelet', join(bin, 'kubelet'), [
      `--config=${L.kubeletConfig}`, `--kubeconfig=${kubeconfig}`, `--root-dir=${L.kubeletRoot}`, `--cert-dir=${L.kubeletCerts}`,
      `--hostname-override=${NODE_NAME}`, `--node-ip=${NODE_ADDRESS}`,
    ]);
    const proxy = await daemon('kube-proxy', join(bin, 'kube-proxy'), [`--config=${L.kubeProxyConfig}`]);
    const dns = await daemon('coredns', join(bin, 'coredns'), ['-conf', L.corefile]);
    progress(`kubelet (pid ${kubelet}), kube-proxy (pid ${proxy}) and CoreDNS (pid ${dns}, ${NODE_DNS_ADDRESS}) started`);

    await pollUntil(`node ${NODE_NAME} Ready`, opts.nodeReadyTimeoutMs ?? 120_000, kubelet, join(logs, 'kubelet.log'), async () => {
      const r = await plane.api<{ status?: { conditions?: { type: string; status: string }[] } }>('GET', `/api/v1/nodes/${NODE_NAME}`, undefined, { timeoutMs: 2_000 });
      return r.status === 200 && (r.body?.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
    });
    await pollUntil('kube-proxy', 30_000, proxy, join(logs, 'kube-proxy.log'), async () => (await httpStatus(`http://${NODE_ADDRESS}:10256/healthz`, 1_000)) === 200);
    await pollUntil('CoreDNS', 30_000, dns, join(logs, 'coredns.log'), async () => (await httpStatus(`http://${NODE_DNS_ADDRESS}:8181/ready`, 1_000)) === 200);
    progress(`node ${NODE_NAME} Ready, Services and DNS answer (${Date.now() - t} ms)`);

    const state: NodeClusterState = {
      version: 1, dir, nodeName: NODE_NAME, nodeAddress: NODE_ADDRESS, hostAddress: NODE_HOST_ADDRESS, dnsAddress: NODE_DNS_ADDRESS,
      podCidr: POD_CIDR, serviceCidr: SERVICE_CIDR, netns: NODE_NETNS, kubeconfig, server: plane.state.server,
      containerdSocket: L.containerdSocket, pids: { ...plane.state.pids, ...pids }, startedAt: new Date().toISOString(),
    };
    writeFileSync(L.state, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    return handle(state, plane, unhook);
  } catch (err) {
    teardownSync(dir);
    unhook();
    throw err;
  }
}

function handle(state: NodeClusterState, plane: ControlPlane, unhook: () => void): NodeCluster {
  let stopping: Promise<void> | null = null;
  return {
    state,
    controlPlane: plane,
    importImage: async (archive, baseName) => {
      await execText('ctr', ['-a', state.containerdSocket, '-n', 'k8s.io', 'images', 'import', ...(baseName ? ['--base-name', baseName] : []), archive], 300_000);
    },
    stop: (opts = {}) => {
      stopping ??= (async () => {
        await stopNodeCluster(state.dir, { removeState: opts.removeState === true });
        unhook();
      })();
      return stopping;
    },
  };
}

/** readNodeClusterState returns DIR's node.json, or null when there is none. */
export function readNodeClusterState(dir: string): NodeClusterState | null {
  try {
    return JSON.parse(readFileSync(nodeLayout(dir).state, 'utf8')) as NodeClusterState;
  } catch {
    return null;
  }
}

/**
 * stopNodeCluster stops the node cluster in DIR gracefully: daemons in reverse order with
 * SIGTERM (SIGKILL after a bound), then containers, mounts, the namespace and cgroups.
 */
export async function stopNodeCluster(dir: string, opts: { removeState?: boolean; graceMs?: number; onProgress?: (m: string) => void } = {}): Promise<void> {
  const abs = resolve(dir);
  const marker = pidMarker(abs);
  for (const name of [...NODE_DAEMONS].reverse()) {
    if (name === 'containerd') killContainers(abs);
    const pid = readPid(abs, name);
    if (pid === null) continue;
    const how = await stopProcess(pid, marker, opts.graceMs ?? 5_000);
    if (how !== 'not-running') opts.onProgress?.(`${name} (pid ${pid}) ${how === 'killed' ? 'killed after the grace period' : 'stopped'}`);
    try { rmSync(join(layout(abs).pids, `${name}.pid`)); } catch { /* gone */ }
  }
  await stopControlPlane(abs, { graceMs: opts.graceMs ?? 5_000, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  teardownSync(abs);
  if (opts.removeState) {
    rmSync(nodeLayout(abs).node, { recursive: true, force: true });
    rmSync(nodeLayout(abs).state, { force: true });
    removeState(abs);
  }
}

/** nodeDaemonsRunning lists which of DIR's node daemons run (name → pid). */
export function nodeDaemonsRunning(dir: string): Record<string, number> {
  const abs = resolve(dir);
  const marker = pidMarker(abs);
  const out: Record<string, number> = {};
  for (const name of NODE_DAEMONS) {
    const pid = readPid(abs, name);
    if (pid !== null && isOurs(pid, marker)) out[name] = pid;
  }
  return out;
}
