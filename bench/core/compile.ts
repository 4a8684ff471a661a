/**
 * Compile benchmark (issue 3): a full compile of 10k Ingresses / 100k paths with TLS,
 * canaries and ~60k endpoints, then one Ingress changed and one EndpointSlice changed, each
 * compiled incrementally. The baseline, run side by side, is a full compile of the changed
 * world: the ratio says what incremental compilation buys.
 *
 *   node bench/core/compile.ts [--ingresses 10000] [--paths 10]
 */
import { parseArgs } from 'node:util';
import { Compiler, canonicalJson, type CompileResult } from '../../core/index.ts';
import { buildWorld } from '../support/world.ts';
import { selfSigned } from '../../tests/support/tls.ts';

const { values } = parseArgs({ options: { ingresses: { type: 'string', default: '10000' }, paths: { type: 'string', default: '10' } } });
const size = { ingresses: Number(values.ingresses), pathsPerIngress: Number(values.paths), endpointsPerService: 3, tlsShare: 0.2, canaryShare: 0.1, tls: selfSigned('bench.example.com') };

function ms(t0: number): number { return Math.round((performance.now() - t0) * 100) / 100; }

function bytesOf(result: CompileResult, names: string[]): number {
  let n = 0;
  for (const name of names) { const r = result.resources.get(name); if (r) n += canonicalJson(r).length; }
  return n;
}

const world = buildWorld(size);
const counts = { ingresses: size.ingresses, paths: size.ingresses * size.pathsPerIngress, objects: world.objects.length };
console.log(`world: ${JSON.stringify(counts)}`);

const compiler = new Compiler();
let t0 = performance.now();
for (const obj of world.objects) compiler.set(obj);
let result = compiler.build();
const fullMs = ms(t0);
const byType = new Map<string, number>();
let totalBytes = 0;
let endpoints = 0;
for (const r of result.resources.values()) {
  byType.set(r.resource.type, (byType.get(r.resource.type) ?? 0) + 1);
  totalBytes += canonicalJson(r).length;
  if (r.resource.type === 'endpoints') endpoints += r.resource.spec.addresses.length;
}
console.log(`full compile: ${fullMs} ms — ${result.resources.size} resources ${JSON.stringify(Object.fromEntries(byType))}, ${endpoints} endpoints, ${(totalBytes / 1e6).toFixed(1)} MB canonical`);

function incremental(label: string, change: () => void): number {
  const t = performance.now();
  change();
  result = compiler.build();
  const took = ms(t);
  const { upserts, removals } = result.changed;
  console.log(`${label}: ${took} ms incremental (compile + hashing + delta) — delta ${upserts.length} upserts / ${removals.length} removals, ${bytesOf(result, upserts)} bytes: ${upserts.join(', ')}`);
  return took;
}

const samples: number[] = [];
for (let rev = 1; rev <= 5; rev++) samples.push(incremental(`one Ingress changed (#${rev})`, () => compiler.set(world.changedIngress(1234 + rev, rev))));
const sliceSamples: number[] = [];
for (let rev = 1; rev <= 5; rev++) sliceSamples.push(incremental(`one EndpointSlice changed (#${rev})`, () => compiler.set(world.changedSlice(4321 + rev, rev))));

t0 = performance.now();
const fresh = new Compiler();
for (const obj of world.objects) fresh.set(obj);
for (let rev = 1; rev <= 5; rev++) fresh.set(world.changedIngress(1234 + rev, rev));
for (let rev = 1; rev <= 5; rev++) fresh.set(world.changedSlice(4321 + rev, rev));
const baseline = fresh.build();
const baselineMs = ms(t0);
if (baseline.root !== result.root) throw new Error('incremental and full compile disagree');

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`baseline full recompile of the changed world: ${baselineMs} ms (same root as incremental: yes)`);
console.log(`ratio one-Ingress incremental / full: ${(median(samples) / baselineMs).toFixed(5)} (median ${median(samples)} ms vs ${baselineMs} ms)`);
console.log(`ratio one-EndpointSlice incremental / full: ${(median(sliceSamples) / baselineMs).toFixed(5)} (median ${median(sliceSamples)} ms)`);
console.log(`goals: full < 1000 ms → ${fullMs < 1000 ? 'met' : 'NOT met'}; one-object change < 5 ms → ${median(samples) < 5 && median(sliceSamples) < 5 ? 'met' : 'NOT met'}`);
