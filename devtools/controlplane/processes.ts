/**
 * Processes of the control plane and of `vane local`: started with their output in a log
 * file and the proxy variables removed (the API server must reach etcd and webhooks on
 * loopback directly), identified later by pid *and* command line (a pid file alone could
 * name a reused pid), and stopped with SIGTERM, then SIGKILL after a bound.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

const PROXY_VARIABLES = ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY', 'all_proxy', 'ALL_PROXY'];

/** envWithoutProxies copies env without the proxy variables. */
export function envWithoutProxies(env: NodeJS.ProcessEnv = process.env, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, ...extra };
  for (const v of PROXY_VARIABLES) delete out[v];
  return out;
}

export interface StartedProcess { pid: number; child: ChildProcess }

/**
 * startProcess runs command with stdout and stderr appended to logFile. Detached processes
 * get their own session and outlive this one (`vane local up`); attached ones die with the
 * terminal's process group (a test run interrupted with Ctrl-C).
 */
export function startProcess(command: string, args: readonly string[], opts: { logFile: string; detached: boolean; cwd?: string; env?: Record<string, string> }): Promise<StartedProcess> {
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const fd = openSync(opts.logFile, 'a', 0o600);
  try {
    const child = spawn(command, args, {
      stdio: ['ignore', fd, fd],
      detached: opts.detached,
      env: envWithoutProxies(process.env, opts.env),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    return new Promise((resolve, reject) => {
      child.once('error', (err) => reject(new Error(`cannot start ${command}: ${err.message}`)));
      child.once('spawn', () => {
        // Never keep this process alive for it: the owner stops it explicitly, or an exit hook does.
        child.unref();
        resolve({ pid: child.pid!, child });
      });
    });
  } finally {
    closeSync(fd);
  }
}

/** isAlive says whether pid is a live process (a zombie is not). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** procStart is a process's start time (field 22 of /proc/PID/stat): with the pid, it tells a reused pid apart. */
export function procStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** commandLine is a process's argv, or null when it is gone. */
export function commandLine(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s) => s.length > 0);
  } catch {
    return null;
  }
}

/**
 * Identity tells our process from another that got the same pid: a marker its command line
 * contains (e.g. our state directory), or the start time recorded when it was started.
 */
export type Identity = string | { start: string };

/** isOurs says whether pid is alive and is the process identity describes. */
export function isOurs(pid: number, identity: Identity): boolean {
  if (!isAlive(pid)) return false;
  if (typeof identity !== 'string') return procStart(pid) === identity.start;
  return (commandLine(pid) ?? []).some((arg) => arg.includes(identity));
}

const POLL_MS = 50;

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return true;
}

/**
 * stopProcess sends SIGTERM to pid when it is ours (see isOurs), waits up to graceMs, then
 * sends SIGKILL. Resolves to how it ended: 'not-running', 'terminated' or 'killed'.
 */
export async function stopProcess(pid: number, identity: Identity, graceMs: number): Promise<'not-running' | 'terminated' | 'killed'> {
  if (!isOurs(pid, identity)) return 'not-running';
  try { process.kill(pid, 'SIGTERM'); } catch { return 'not-running'; }
  if (await waitGone(pid, graceMs)) return 'terminated';
  try { process.kill(pid, 'SIGKILL'); } catch { /* exited meanwhile */ }
  await waitGone(pid, 5_000);
  return 'killed';
}

/** killSync sends SIGKILL to pid when it is ours; for exit hooks, which cannot wait. */
export function killSync(pid: number, identity: Identity): void {
  if (!isOurs(pid, identity)) return;
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}

/** logTail is the last lines of a log file, for error messages. */
export function logTail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
