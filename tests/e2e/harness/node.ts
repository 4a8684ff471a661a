/**
 * The node tier of the e2e harness: a one-node cluster with a real kubelet, containerd,
 * kube-proxy and CoreDNS (devtools/controlplane/node.ts), for tests that install Vane with its
 * Helm chart and send traffic to pods. A file starts one in `before` and stops it in `after`:
 *
 *   const node = await startNode(import.meta.url);
 *   await node.helmOk(['install', 'vane', CHART, ...]);
 *   await node.stop();
 *
 * Only one node cluster runs on a machine at a time; the global setup reaps one left by a
 * run that died.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkNodeHost, envWithoutProxies, layout, locateTools, startNodeCluster, type NodeCluster } from '../../../devtools/controlplane/index.ts';
import { e2eSkip, type KubectlResult } from './index.ts';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CHART = join(ROOT, 'charts', 'vane');
export const NODE_STATE_PREFIX = 'vane-node-';

const ci = process.env.CI === 'true';

function computeNodeSkip(): string | false {
  if (e2eSkip) return e2eSkip;
  const tools = locateTools();
  const why = checkNodeHost(tools.bin);
  if (!why) return false;
  if (ci) throw new Error(`CI=true and the real node cannot run: ${why}`);
  return `real node unavailable: ${why}`;
}

/** nodeSkip is false, or why this run skips the node tier (locally only; CI fails instead). */
export const nodeSkip: string | false = computeNodeSkip();

export interface NodeEnv {
  cluster: NodeCluster;
  kubeconfig: string;
  /** kubectl runs the real kubectl against the node cluster; never throws on a non-zero exit. */
  kubectl(args: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  kubectlOk(args: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** helm runs the real helm with the node cluster's kubeconfig; never throws on a non-zero exit. */
  helm(args: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  helmOk(args: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  stop(): Promise<void>;
}

function runTool(command: string, args: readonly string[], env: NodeJS.ProcessEnv, opts: { input?: string; timeoutMs?: number } = {}): Promise<KubectlResult> {
  return new Promise((done) => {
    const child = execFile(command, args, { env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      done({ code, stdout, stderr: stderr || (err ? err.message : '') });
    });
    child.stdin?.end(opts.input ?? '');
  });
}

async function ok(what: string, r: Promise<KubectlResult>, args: readonly string[]): Promise<string> {
  const res = await r;
  if (res.code !== 0) throw new Error(`${what} ${args.join(' ')} exited ${res.code}: ${res.stderr.trim()}`);
  return res.stdout;
}

/** startNode starts a node cluster for the calling test file (state in $TMPDIR/vane-node-<file>-XXXX). */
export async function startNode(fileUrl: string): Promise<NodeEnv> {
  const tools = locateTools();
  if ('missing' in tools) throw new Error(`e2e tools missing: ${tools.missing.join(', ')} in ${tools.bin}`);
  const dir = mkdtempSync(join(tmpdir(), `${NODE_STATE_PREFIX}${basename(fileURLToPath(fileUrl)).replace(/\.test\.ts$/, '')}-`));
  const started = Date.now();
  const cluster = await startNodeCluster({ dir, bin: tools.bin, removeOnExit: true, onProgress: (m) => console.error(`[vane-node ${((Date.now() - started) / 1000).toFixed(1)}s] ${m}`) });
  const kubeconfig = cluster.state.kubeconfig;
  const env = envWithoutProxies(process.env, { KUBECONFIG: kubeconfig, HELM_CACHE_HOME: join(dir, 'helm', 'cache'), HELM_CONFIG_HOME: join(dir, 'helm', 'config'), HELM_DATA_HOME: join(dir, 'helm', 'data') });
  const kubectlArgs = (args: readonly string[]): string[] => [`--kubeconfig=${kubeconfig}`, `--cache-dir=${layout(dir).kubectlCache}`, ...args];
  const kubectl = (args: readonly string[], opts?: { input?: string; timeoutMs?: number }) => runTool(join(tools.bin, 'kubectl'), kubectlArgs(args), env, opts);
  const helm = (args: readonly string[], opts?: { input?: string; timeoutMs?: number }) => runTool(join(tools.bin, 'helm'), [`--kubeconfig=${kubeconfig}`, ...args], env, opts);
  return {
    cluster,
    kubeconfig,
    kubectl,
    kubectlOk: (args, opts) => ok('kubectl', kubectl(args, opts), args),
    helm,
    helmOk: (args, opts) => ok('helm', helm(args, opts), args),
    stop: async () => {
      await cluster.stop({ removeState: true });
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    },
  };
}
