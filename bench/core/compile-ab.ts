/**
 * Paired A/B of the compiler: two source trees' Compilers in one process, on the same world
 * (bench/support/world.ts, the compile benchmark's), so that a refactor can show it costs
 * nothing. Wall-clock totals of bench/core/compile.ts swing by 10 % and more when the host
 * is shared; rounds paired back to back, timed by this process's CPU time, resolve a few
 * percent.
 *
 * - A is another tree (e.g. `mkdir /tmp/a && git archive HEAD core bench tests/support | tar -x
 *   -C /tmp/a && ln -s "$PWD/node_modules" /tmp/a/`), B is this one.
 * - Each round, in ABBA order after a warm-up round: a full compile of the world, then
 *   VANE_AB_CHANGES (default 1000) one-Ingress changes and as many one-EndpointSlice changes,
 *   each built on its own (the incremental path). The CPU time (user + system) of each part
 *   is taken from process.cpuUsage().
 * - The figures are medians over pairs of B's CPU time over A's: below 1, B is cheaper.
 *
 * Usage: node --expose-gc bench/core/compile-ab.ts DIR_OF_TREE_A [--ingresses 10000] [--pairs 8]
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadavg } from 'node:os';
import type { KubeObject } from '../../core/index.ts';
import { Compiler as CompilerB } from '../../core/index.ts';
import { buildWorld } from '../support/world.ts';
import { selfSigned } from '../../tests/support/tls.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { ingresses: { type: 'string', default: '10000' }, paths: { type: 'string', default: '10' }, pairs: { type: 'string', default: '8' } },
});
if (positionals.length !== 1) throw new Error('usage: node --expose-gc bench/core/compile-ab.ts DIR_OF_TREE_A');
const CHANGES = Number(process.env.VANE_AB_CHANGES ?? 1000);
const PAIRS = Number(values.pairs);

interface CompilerLike { set(obj: KubeObject): void; build(): { root: string } }
type CompilerClass = new () => CompilerLike;

const treeA = resolve(positionals[0]!);
const { Compiler: CompilerA } = await import(pathToFileURL(`${treeA}/core/index.ts`).href) as { Compiler: CompilerClass };
const world = buildWorld({
  ingresses: Number(values.ingresses), pathsPerIngress: Number(values.paths), endpointsPerService: 3, tlsShare: 0.2, canaryShare: 0.1,
  tls: selfSigned('bench.example.com'),
});
const gc = (globalThis as { gc?: () => void }).gc;

/** cpuMs runs fn and returns the CPU time it took this process, in milliseconds. */
function cpuMs(fn: () => void): number {
  gc?.();
  const before = process.cpuUsage();
  fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

interface Round { fullMs: number; ingressMs: number; sliceMs: number; root: string }

let revision = 0;
function round(Compiler: CompilerClass, firstRevision: number): Round {
  const compiler = new Compiler();
  let root = '';
  const fullMs = cpuMs(() => { for (const obj of world.objects) compiler.set(obj); compiler.build(); });
  const ingressMs = cpuMs(() => {
    for (let i = 0; i < CHANGES; i++) { compiler.set(world.changedIngress((i * 37) % world.hosts.length, firstRevision + i)); compiler.build(); }
  }) / CHANGES;
  const sliceMs = cpuMs(() => {
    for (let i = 0; i < CHANGES; i++) { compiler.set(world.changedSlice((i * 53) % world.hosts.length, firstRevision + i)); root = compiler.build().root; }
  }) / CHANGES;
  return { fullMs, ingressMs, sliceMs, root };
}

function pair(): { a: Round; b: Round } {
  const first = ++revision * CHANGES;
  // ABBA within a pair of pairs: the order alternates so that neither side always runs warm.
  if (revision % 2 === 0) { const a = round(CompilerA, first); const b = round(CompilerB, first); return { a, b }; }
  const b = round(CompilerB, first);
  const a = round(CompilerA, first);
  return { a, b };
}

const median = (xs: number[]) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const fmt = (x: number) => x.toFixed(x < 10 ? 3 : 1);

console.log(`world: ${world.objects.length} objects; A = ${treeA}, B = this tree; ${CHANGES} changes of each kind per round; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
pair();
const rounds: { a: Round; b: Round }[] = [];
for (let i = 0; i < PAIRS; i++) {
  const r = pair();
  const same = r.a.root === r.b.root ? 'same root' : 'ROOTS DIFFER';
  console.log(`pair ${i + 1}: full A ${fmt(r.a.fullMs)} / B ${fmt(r.b.fullMs)} ms; one Ingress A ${fmt(r.a.ingressMs)} / B ${fmt(r.b.ingressMs)} ms; one EndpointSlice A ${fmt(r.a.sliceMs)} / B ${fmt(r.b.sliceMs)} ms (${same})`);
  rounds.push(r);
}
for (const [label, part] of [['full compile', 'fullMs'], ['one-Ingress change', 'ingressMs'], ['one-EndpointSlice change', 'sliceMs']] as const) {
  const a = median(rounds.map((r) => r.a[part]));
  const b = median(rounds.map((r) => r.b[part]));
  const ratio = median(rounds.map((r) => r.b[part] / r.a[part]));
  console.log(`${label}: median CPU A ${fmt(a)} ms, B ${fmt(b)} ms; median pair ratio B/A ${ratio.toFixed(3)}`);
}
console.log(`load at the end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
