/**
 * What the global setup hands to the e2e test files: one JSON file named by $VANE_E2E_RUN_FILE
 * (environment variables are inherited by the test processes; objects are not).
 */
import { readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { procStart, stopControlPlane } from '../../../devtools/controlplane/index.ts';

export const RUN_FILE_ENV = 'VANE_E2E_RUN_FILE';
/** SKIP_ENV carries why the e2e tier is skipped (tools missing, locally only). */
export const SKIP_ENV = 'VANE_E2E_SKIP';
export const STATE_PREFIX = 'vane-e2e-';

export interface RunInfo {
  /** run is the id in every network namespace and veth name of this run. */
  run: string;
  /** dir is the control plane's state directory (see devtools/controlplane layout). */
  dir: string;
  kubeconfig: string;
  bin: string;
  /** netns is 'ok', or why backends in network namespaces cannot be made here. */
  netns: 'ok' | { unavailable: string };
}

export interface Owner { pid: number; start: string }

export function newRunId(): string {
  return randomBytes(4).readUInt32BE(0).toString(36).slice(0, 5).padStart(5, '0');
}

let ownRun: string | null = null;

/** runId is the run's id (part of every network namespace name): the global setup's, else this process's own. */
export function runId(): string {
  const info = readRunInfo();
  if (info) return info.run;
  ownRun ??= newRunId();
  return ownRun;
}

export function readRunInfo(env: NodeJS.ProcessEnv = process.env): RunInfo | null {
  const file = env[RUN_FILE_ENV];
  if (!file) return null;
  return JSON.parse(readFileSync(file, 'utf8')) as RunInfo;
}

export function ownerFile(dir: string): string {
  return join(dir, 'owner.json');
}

export function currentOwner(): Owner {
  return { pid: process.pid, start: procStart(process.pid) ?? '' };
}

/**
 * reapStaleStateDirs stops the control planes of earlier runs whose owning process died
 * without tearing down (SIGKILL, OOM) and removes their directories. Only directories named
 * vane-e2e-* in the temp dir whose owner.json names a dead process are touched, and only
 * processes whose command line names that directory are stopped.
 */
export async function reapStaleStateDirs(): Promise<string[]> {
  const reaped: string[] = [];
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(STATE_PREFIX)) continue;
    const dir = join(tmpdir(), entry);
    if (!existsSync(ownerFile(dir))) continue;
    let owner: Owner;
    try { owner = JSON.parse(readFileSync(ownerFile(dir), 'utf8')) as Owner; } catch { continue; }
    if (procStart(owner.pid) === owner.start) continue;
    await stopControlPlane(dir, { graceMs: 2_000 });
    rmSync(dir, { recursive: true, force: true });
    reaped.push(dir);
  }
  return reaped;
}
