/**
 * The e2e harness, as test files use it:
 *
 *   import { e2eSkip, cluster, fileNamespace, startEchoBackend, netnsSkip } from '../harness/index.ts';
 *   test('…', { skip: e2eSkip }, async () => {
 *     const c = await cluster();                       // the run's control plane
 *     const ns = await fileNamespace(import.meta.url); // a fresh namespace for this file
 *     await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: yaml });
 *   });
 *
 * Under the global setup every file shares one control plane; a file run on its own
 * (`node --test tests/e2e/suite/x.test.ts`) starts its own, stopped when the process exits.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  attachControlPlane, envWithoutProxies, layout, locateTools, startControlPlane, type ApiRequestOptions, type ApiResponse, type ControlPlane,
} from '../../../devtools/controlplane/index.ts';
import { probeNetns } from '../../../devtools/netns.ts';
import { SKIP_ENV, STATE_PREFIX, currentOwner, ownerFile, readRunInfo, runId, type RunInfo } from './run.ts';

export { runId };

export { startEchoBackend, httpJson, type EchoBackend, type HttpResult } from './echo-backend.ts';

export interface KubectlResult { code: number; stdout: string; stderr: string }

export interface Cluster {
  run: string;
  kubeconfig: string;
  bin: string;
  server: string;
  controlPlane: ControlPlane;
  /** api sends one request as the admin (system:masters). */
  api<T = unknown>(method: string, path: string, body?: unknown, opts?: ApiRequestOptions): Promise<ApiResponse<T>>;
  /** kubectl runs the real kubectl against this cluster; never throws on a non-zero exit. */
  kubectl(args: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /** kubectlOk is kubectl that throws (with stderr) unless it exits 0, and returns stdout. */
  kubectlOk(args: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** namespace creates a fresh namespace `PREFIX-xxxxx`, labelled with the run id. */
  namespace(prefix: string): Promise<string>;
}

const ci = process.env.CI === 'true';

function computeSkip(): string | false {
  if (process.env[SKIP_ENV]) return process.env[SKIP_ENV]!;
  if (readRunInfo()) return false;
  const tools = locateTools();
  if ('missing' in tools && !ci) return `e2e tools missing (${tools.missing.join(', ')} in ${tools.bin}); build them with bash tests/e2e/tools/build.sh`;
  return false;
}

/** e2eSkip is false, or why this run skips the e2e tier (locally only; CI fails instead). Use as `{ skip: e2eSkip }`. */
export const e2eSkip: string | false = computeSkip();

function computeNetnsSkip(): string | false {
  if (e2eSkip) return e2eSkip;
  const info = readRunInfo();
  if (info) return info.netns === 'ok' ? false : `network namespaces unavailable: ${info.netns.unavailable}`;
  const probe = probeNetns(runId());
  if (probe.ok) return false;
  if (ci) throw new Error(`CI=true and network namespaces are unavailable: ${probe.reason}`);
  return `network namespaces unavailable: ${probe.reason}`;
}

/** netnsSkip is false, or why tests needing backends in network namespaces skip. */
export const netnsSkip: string | false = computeNetnsSkip();

function randomSuffix(): string {
  return randomBytes(4).readUInt32BE(0).toString(36).slice(0, 5).padStart(5, '0');
}

function makeCluster(run: string, info: Pick<RunInfo, 'kubeconfig' | 'bin'>, plane: ControlPlane): Cluster {
  const kubectl = (args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<KubectlResult> =>
    new Promise((done) => {
      const child = execFile(join(info.bin, 'kubectl'), [`--kubeconfig=${info.kubeconfig}`, `--cache-dir=${layout(plane.state.dir).kubectlCache}`, ...args], {
        env: envWithoutProxies(),
        timeout: opts.timeoutMs ?? 30_000,
        maxBuffer: 16 * 1024 * 1024,
      }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        done({ code, stdout, stderr: stderr || (err ? err.message : '') });
      });
      child.stdin?.end(opts.input ?? '');
    });
  const cluster: Cluster = {
    run,
    kubeconfig: info.kubeconfig,
    bin: info.bin,
    server: plane.state.server,
    controlPlane: plane,
    api: (method, path, body, opts) => plane.api(method, path, body, opts),
    kubectl,
    async kubectlOk(args, opts) {
      const r = await kubectl(args, opts);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
      return r.stdout;
    },
    async namespace(prefix) {
      const name = `${prefix.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 50)}-${randomSuffix()}`;
      const r = await plane.api('POST', '/api/v1/namespaces', { metadata: { name, labels: { 'vane.dev/e2e-run': run } } });
      if (r.status !== 201) throw new Error(`creating namespace ${name}: HTTP ${r.status} ${r.text}`);
      return name;
    },
  };
  return cluster;
}

let current: Promise<Cluster> | null = null;

async function connect(): Promise<Cluster> {
  const info = readRunInfo();
  if (info) return makeCluster(info.run, info, attachControlPlane(info.dir));
  const tools = locateTools();
  if ('missing' in tools) {
    throw new Error(`e2e tools missing: ${tools.missing.join(', ')} in ${tools.bin}. Build them with bash tests/e2e/tools/build.sh (or set VANE_K8S_BIN).`);
  }
  const dir = mkdtempSync(join(tmpdir(), STATE_PREFIX));
  writeFileSync(ownerFile(dir), JSON.stringify(currentOwner()));
  const plane = await startControlPlane({ dir, bin: tools.bin, removeOnExit: true, onProgress: (m) => console.error(`[vane-e2e] ${m}`) });
  return makeCluster(runId(), { kubeconfig: plane.state.kubeconfig, bin: tools.bin }, plane);
}

/** cluster is the run's control plane (started for this process when no global setup ran). */
export function cluster(): Promise<Cluster> {
  current ??= connect();
  return current;
}

/** fileNamespace creates a fresh namespace named after the test file (pass import.meta.url). */
export async function fileNamespace(fileUrl: string): Promise<string> {
  const name = basename(new URL(fileUrl).pathname).replace(/\.test\.ts$/, '').replace(/\.ts$/, '');
  return (await cluster()).namespace(name);
}
