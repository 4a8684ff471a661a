/**
 * Match benchmark (issue 3): Vane's matcher against find-my-way, built from the same table
 * in the same run — 10k hosts × 10 paths, wildcard hosts, mixed pathTypes, 20% misses.
 *
 * find-my-way routes paths; its host constraint allows at most 31 handlers per node, far
 * below 10k hosts, so the baseline is a Map from host to one find-my-way router per host
 * (the same host step Vane takes). Prefix rules become two routes (`/p` and `/p/*`), Exact
 * rules one; a request for a host under a wildcard is looked up under the wildcard. Path
 * normalisation is Vane's alone (it is part of what Vane must do), so the comparison is
 * conservative for Vane.
 *
 *   node bench/core/match.ts [--hosts 10000] [--paths 10] [--seconds 3]
 */
import { parseArgs } from 'node:util';
import FindMyWay from 'find-my-way';
import { compile, buildRouteTable, match, type MatchRequest } from '../../core/index.ts';
import { buildWorld } from '../support/world.ts';

const { values } = parseArgs({ options: { hosts: { type: 'string', default: '10000' }, paths: { type: 'string', default: '10' }, seconds: { type: 'string', default: '3' } } });
const size = { ingresses: Number(values.hosts), pathsPerIngress: Number(values.paths), endpointsPerService: 1, tlsShare: 0, canaryShare: 0 };
const seconds = Number(values.seconds);
const world = buildWorld(size);

const table = buildRouteTable(compile(world.objects).resources);

const routers = new Map<string, FindMyWay.Instance<FindMyWay.HTTPVersion.V1>>();
const handler = () => undefined;
let routes = 0;
for (let i = 0; i < world.hosts.length; i++) {
  const host = world.hosts[i]!;
  const router = FindMyWay({ ignoreTrailingSlash: true, caseSensitive: true });
  routers.set(host, router);
  world.paths[i]!.forEach((path, p) => {
    const exact = p % 3 === 2;
    router.on('GET', path, handler);
    routes++;
    if (!exact && path !== '/') { router.on('GET', `${path}/*`, handler); routes++; }
    if (path === '/') { router.on('GET', '/*', handler); routes++; }
  });
}

interface Sample { host: string; path: string; hit: boolean }
let seed = 42;
const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
const samples: Sample[] = [];
for (let n = 0; n < 100_000; n++) {
  const i = Math.floor(rand() * world.hosts.length);
  let host = world.hosts[i]!;
  if (host.startsWith('*.')) host = `u${n % 97}${host.slice(1)}`;
  const paths = world.paths[i]!;
  const p = Math.floor(rand() * paths.length);
  const exact = p % 3 === 2;
  const miss = rand() < 0.2;
  if (miss) samples.push(rand() < 0.5 ? { host: `nowhere-${n}.example.org`, path: paths[p]!, hit: false } : { host, path: `/missing/${n}`, hit: paths[0] === '/' });
  else samples.push({ host, path: exact || paths[p] === '/' ? paths[p]! : `${paths[p]}/x/${n % 13}`, hit: true });
}

function fmwFind(host: string, path: string): unknown {
  let router = routers.get(host);
  if (!router) {
    const dot = host.indexOf('.');
    router = dot < 0 ? undefined : routers.get(`*${host.slice(dot)}`);
  }
  return router ? router.find('GET', path) : null;
}

const reqs: MatchRequest[] = samples.map((s) => ({ host: s.host, target: s.path, scheme: 'http', bucket: 50 }));
let agree = 0;
for (let k = 0; k < samples.length; k++) {
  const s = samples[k]!;
  const vaneHit = match(table, reqs[k]!).result === 'routed';
  const fmwHit = fmwFind(s.host, s.path) !== null;
  if (vaneHit === fmwHit) agree++;
}

function run(name: string, fn: (k: number) => unknown): number {
  for (let k = 0; k < 50_000; k++) fn(k % samples.length);
  let ops = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  while (performance.now() < end) for (let k = 0; k < 10_000; k++, ops++) fn(ops % samples.length);
  const nsPerOp = ((performance.now() - t0) * 1e6) / ops;
  console.log(`${name}: ${nsPerOp.toFixed(0)} ns/op (${(1e9 / nsPerOp / 1e6).toFixed(2)} M ops/s)`);
  return nsPerOp;
}

console.log(`table: ${world.hosts.length} hosts (${world.hosts.filter((h) => h.startsWith('*.')).length} wildcard), ${world.hosts.length * size.pathsPerIngress} paths; find-my-way: ${routes} routes`);
console.log(`requests: ${samples.length}, ${samples.filter((s) => !s.hit).length} expected misses; vane and find-my-way agree on hit/miss for ${(100 * agree / samples.length).toFixed(1)}%`);
const vane = run('vane match()', (k) => match(table, reqs[k]!));
const fmw = run('Map + find-my-way find()', (k) => fmwFind(samples[k]!.host, samples[k]!.path));
console.log(`ratio vane/find-my-way time per lookup: ${(vane / fmw).toFixed(2)} (goal ≤ 1.00: no slower than find-my-way)`);
