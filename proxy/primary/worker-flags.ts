/**
 * V8 flags for the proxy's worker processes. A proxy allocates a few KB per request and keeps
 * almost none of it, and V8 sizes the young generation by its own heuristics, differently from
 * run to run. Traced at 18k req/s with idle gaps between rounds (as the benchmark runs): in one
 * run a worker's young generation stayed small and it scavenged every 30–40 ms, 418 times
 * (189 ms of pauses); in another the same load took 57 scavenges. With 16 MB semi-spaces every
 * run took 52–57. A scavenge copies only the few live objects, so it costs about the same at
 * either size: fewer of them are fewer requests that wait for one.
 */

/** The semi-space size (MB) workers start with unless the operator set one. */
export const WORKER_SEMI_SPACE_MB = 16;

const SEMI_SPACE_FLAG = /(^|\s)--(min|max)[-_]semi[-_]space[-_]size\b/;

/**
 * workerExecArgv is what a worker runs with: the primary's own Node flags, plus a fixed young
 * generation unless `execArgv` or NODE_OPTIONS already sizes it (theirs then wins whole).
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const sized = execArgv.some((a) => SEMI_SPACE_FLAG.test(a)) || SEMI_SPACE_FLAG.test(nodeOptions ?? '');
  return sized ? [...execArgv] : [...execArgv, `--min-semi-space-size=${WORKER_SEMI_SPACE_MB}`];
}
