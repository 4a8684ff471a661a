/** What the proxy benchmarks need to run their processes side by side: tools, ports, pinned children. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

/** need exits with a pointer to the install script when `cmd` is not on PATH. */
export function need(bench: string, cmd: string): void {
  if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) {
    console.error(`${bench}: ${cmd} is missing; run: bash scripts/install-system-deps.sh`);
    process.exit(2);
  }
}

export { freePort } from '../../tests/integration/proxy/harness.ts';

/** children: every process start() made, for the benchmark's final clean-up. */
export const children: ChildProcess[] = [];

/** start runs cmd pinned to `cpu` (taskset), so the two sides of a comparison do not share a core. */
export function start(cpu: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn('taskset', ['-c', cpu, cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  child.stderr!.resume();
  children.push(child);
  return child;
}

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}
