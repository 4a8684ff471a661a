/**
 * `vane local up --node`: a one-node cluster with a real kubelet (devtools/controlplane/node.ts)
 * and Vane installed into it the way a user installs it — the image built here
 * (scripts/build-image.sh) loaded into the node's containerd, then `helm upgrade --install` of
 * charts/vane. Needs a source checkout (the chart, the image script and the tools recipe).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join, relative } from 'node:path';
import { PACKAGE_ROOT } from '../lib/package-root.ts';
import {
  buildTools, envWithoutProxies, locateTools, nodeDaemonsRunning, readNodeClusterState, startNodeCluster, stopNodeCluster,
  NODE_ADDRESS, type NodeClusterState,
} from '../devtools/controlplane/index.ts';

const CHART = join(PACKAGE_ROOT, 'charts', 'vane');
const IMAGE_SCRIPT = join(PACKAGE_ROOT, 'scripts', 'build-image.sh');
const EXAMPLE = join(PACKAGE_ROOT, 'examples', 'cluster');
const RELEASE = 'vane';
const NAMESPACE = 'vane-system';
export const NODE_HTTP_PORT = 30080;
export const NODE_HTTPS_PORT = 30443;

type Say = (message: string) => void;

/** run runs a command, passing each stderr line (and stdout's, unless captured) to onLine; resolves to stdout's last line. */
function run(command: string, args: readonly string[], onLine: (line: string) => void, env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: PACKAGE_ROOT, env: env ?? process.env });
    let last = '';
    createInterface({ input: child.stdout }).on('line', (l) => { if (l.trim()) { last = l.trim(); onLine(l); } });
    createInterface({ input: child.stderr }).on('line', onLine);
    child.once('error', fail);
    child.once('close', (code) => (code === 0 ? done(last) : fail(new Error(`${command} ${args.join(' ')} failed (exit ${code}); its last lines above say why`))));
  });
}

function display(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel || '.';
}

/** localUpNode starts (or reports) the node cluster and installs or upgrades Vane's chart in it; resolves to the exit code. */
export async function localUpNode(opts: { dir: string; build: boolean }, say: Say): Promise<number> {
  for (const need of [CHART, IMAGE_SCRIPT]) {
    if (!existsSync(need)) throw new Error(`${need} is missing: --node needs a source checkout of Vane (the chart and the image script)`);
  }
  const indent = (line: string): void => console.error(`  ${line}`);
  let state: NodeClusterState | null = readNodeClusterState(opts.dir);
  const running = nodeDaemonsRunning(opts.dir);
  let bin: string;
  if (state && Object.keys(running).length === 6) {
    say(`node cluster already running (${Object.entries(running).map(([n, p]) => `${n} ${p}`).join(', ')})`);
    bin = locateTools().bin;
  } else {
    if (state) {
      say(`found a partial node cluster in ${display(opts.dir)}: restarting it`);
      await stopNodeCluster(opts.dir, { onProgress: say });
    }
    if (opts.build && !process.env.VANE_K8S_BIN) {
      say('tools: bash tests/e2e/tools/build.sh --node (a no-op when cached; about 16 min the first time)');
      bin = await buildTools(indent, { node: true });
    } else {
      bin = locateTools().bin;
    }
    say(`tools in ${bin}`);
    state = (await startNodeCluster({ dir: opts.dir, bin, detached: true, onProgress: say })).state;
  }

  say(`image: bash ${display(IMAGE_SCRIPT)} (cached when nothing changed)`);
  const archive = await run('bash', [IMAGE_SCRIPT, '--import', state.containerdSocket], indent);
  say(`image loaded into the node's containerd from ${display(archive)}`);

  const env = envWithoutProxies(process.env, {
    KUBECONFIG: state.kubeconfig,
    HELM_CACHE_HOME: join(opts.dir, 'helm', 'cache'), HELM_CONFIG_HOME: join(opts.dir, 'helm', 'config'), HELM_DATA_HOME: join(opts.dir, 'helm', 'data'),
  });
  const t = Date.now();
  say(`helm upgrade --install ${RELEASE} ${display(CHART)} -n ${NAMESPACE} (waits until every pod is Ready)`);
  await run(join(bin, 'helm'), [
    'upgrade', '--install', RELEASE, CHART, '-n', NAMESPACE, '--create-namespace',
    '--set', 'image.pullPolicy=Never', '--set', 'proxy.service.type=NodePort',
    '--set', `proxy.service.nodePorts.http=${NODE_HTTP_PORT}`, '--set', `proxy.service.nodePorts.https=${NODE_HTTPS_PORT}`,
    '--wait', '--timeout', '5m',
  ], indent, env);
  say(`Vane installed in ${Date.now() - t} ms`);
  console.log(whatNow(opts.dir, state, bin));
  return 0;
}

function whatNow(dir: string, state: NodeClusterState, bin: string): string {
  const proxy = `http://${NODE_ADDRESS}:${NODE_HTTP_PORT}`;
  return [
    `Vane runs on a real node: node ${state.nodeName} (${state.nodeAddress}), API server ${state.server}, state in ${display(dir)}`,
    '',
    'What now:',
    `  export KUBECONFIG=${state.kubeconfig}`,
    `  ${join(bin, 'kubectl')} get pods -n ${NAMESPACE}     # operator, proxies, webhook`,
    `  kubectl apply -f ${display(EXAMPLE)}/       # echo pods, an Ingress and a progressive Canary`,
    `  for i in $(seq 20); do curl -s -H 'Host: shop.example.com' ${proxy}/; echo; done`,
    `  curl -s -H 'Host: shop.example.com' -H 'X-Canary: always' ${proxy}/`,
    '  kubectl vane status -n shop',
    `  vane local status --dir ${display(dir)}`,
    `  vane local down --dir ${display(dir)}`,
  ].join('\n');
}

/** nodeStatusLines describes DIR's node cluster for `vane local status`, or null when there is none. */
export function nodeStatus(dir: string): { lines: string[]; ready: boolean; state: NodeClusterState } | null {
  const state = readNodeClusterState(dir);
  if (!state) return null;
  const running = nodeDaemonsRunning(dir);
  const lines = ['containerd', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy', 'coredns']
    .map((name) => `${name.padEnd(24)}${running[name] ? `running (pid ${running[name]})` : 'not running'}`);
  lines.push(`${'proxies'.padEnd(24)}http://${NODE_ADDRESS}:${NODE_HTTP_PORT} (NodePort of the vane-proxy Service)`);
  return { lines, ready: Object.keys(running).length === 6, state };
}

/** localDownNode stops DIR's node cluster (daemons, containers, mounts, namespace, cgroups) and removes its state. */
export async function localDownNode(dir: string, say: Say): Promise<void> {
  await stopNodeCluster(dir, { removeState: true, onProgress: say });
}
