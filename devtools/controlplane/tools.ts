/**
 * The real Kubernetes tools (etcd, kube-apiserver, kubectl, …) that tests/e2e/tools/build.sh
 * builds from Go modules into a cache keyed by version. This module only finds them, or
 * runs that script; it never downloads a binary.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packagePath } from '../../lib/package-root.ts';

/** TOOLS_DIR is in the checkout or the installed package (which ships build.sh and versions.env), never under dist/. */
export const TOOLS_DIR = packagePath('tests', 'e2e', 'tools');
export const BUILD_SCRIPT = join(TOOLS_DIR, 'build.sh');
/** REQUIRED_TOOLS are what a control plane and its tests need; helm and kube-controller-manager are optional. */
export const REQUIRED_TOOLS = ['etcd', 'kube-apiserver', 'kubectl'] as const;

export interface ToolVersions { kubernetes: string; etcd: string; helm: string }

/** toolVersions reads the pinned versions from tests/e2e/tools/versions.env, the one place they are set. */
export function toolVersions(): ToolVersions {
  const text = readFileSync(join(TOOLS_DIR, 'versions.env'), 'utf8');
  const get = (key: string): string => {
    const m = new RegExp(`^${key}=(\\S+)`, 'm').exec(text);
    if (!m) throw new Error(`${key} is not set in ${join(TOOLS_DIR, 'versions.env')}`);
    return m[1]!;
  };
  return { kubernetes: get('KUBERNETES_VERSION'), etcd: get('ETCD_VERSION'), helm: get('HELM_VERSION') };
}

/** defaultToolsBin is where build.sh puts the binaries: ${VANE_TOOLS_DIR:-~/.cache/vane/tools}/k8s-VERSION/bin. */
export function defaultToolsBin(env: NodeJS.ProcessEnv = process.env): string {
  const root = env.VANE_TOOLS_DIR || join(homedir(), '.cache', 'vane', 'tools');
  return join(root, `k8s-${toolVersions().kubernetes}`, 'bin');
}

/** missingTools lists the required tools that are not executable in bin. */
export function missingTools(bin: string): string[] {
  return REQUIRED_TOOLS.filter((t) => {
    try {
      accessSync(join(bin, t), constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
}

/**
 * locateTools returns the bin directory from $VANE_K8S_BIN, else the build cache, when every
 * required tool is there; otherwise what is missing and where it looked.
 */
export function locateTools(env: NodeJS.ProcessEnv = process.env): { bin: string } | { bin: string; missing: string[] } {
  const bin = env.VANE_K8S_BIN || defaultToolsBin(env);
  const missing = missingTools(bin);
  return missing.length === 0 ? { bin } : { bin, missing };
}

/**
 * buildTools runs build.sh (a no-op in milliseconds when the cache is warm; about 12 minutes
 * cold on 2 cores, plus about 4 with `node` for the real node's tools), passing each progress
 * line to onLine, and resolves to the bin directory.
 */
export function buildTools(onLine: (line: string) => void, opts: { node?: boolean } = {}): Promise<string> {
  if (!existsSync(BUILD_SCRIPT)) return Promise.reject(new Error(`${BUILD_SCRIPT} is missing: building the tools needs a source checkout of Vane`));
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [BUILD_SCRIPT, ...(opts.node ? ['--node'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let last = '';
    createInterface({ input: child.stdout }).on('line', (l) => { if (l.trim()) last = l.trim(); });
    createInterface({ input: child.stderr }).on('line', onLine);
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) return reject(new Error(`bash ${BUILD_SCRIPT} failed (exit ${code}); its last lines above say why`));
      const missing = missingTools(last);
      if (missing.length > 0) return reject(new Error(`build.sh reported ${last}, which lacks ${missing.join(', ')}`));
      resolve(last);
    });
  });
}
