/**
 * Synchronous cleanups that must run however this process ends: normal exit, an uncaught
 * error, or SIGINT/SIGTERM/SIGHUP (on which Node would otherwise exit without 'exit' hooks).
 * Child processes and network namespaces left behind would outlive the run.
 */
const cleanups = new Set<() => void>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let installed = false;

function runAll(): void {
  for (const fn of [...cleanups].reverse()) {
    cleanups.delete(fn);
    try { fn(); } catch { /* best effort: the process is ending */ }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  runAll();
  // When nobody else handles the signal, restore the default and re-raise it, so the exit
  // status still says which signal ended the process.
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onSignal);
    process.kill(process.pid, signal);
  }
}

/** onExitSync registers fn (synchronous work only); the returned function unregisters it. */
export function onExitSync(fn: () => void): () => void {
  if (!installed) {
    installed = true;
    process.on('exit', runAll);
    for (const s of SIGNALS) process.on(s, onSignal);
  }
  cleanups.add(fn);
  return () => { cleanups.delete(fn); };
}
