/**
 * Proxy benchmark: nginx as the reverse proxy baseline and `vane proxy`, side by side in one
 * run, in front of the same upstream (nginx answering every request with a fixed 600-byte body
 * from memory: a file served per request cost the shared core enough to cap nginx's maximum).
 *
 * - nginx is configured as ingress-nginx configures it for this job: upstream keep-alive and
 *   the same forwarding headers Vane sets (X-Request-ID, X-Real-IP, X-Forwarded-*).
 * - CPU 0: the proxy under test (nginx with 1 worker, or vane with 1 worker). CPU 1: the
 *   upstream and the load generator (`taskset`). Keep-alive on both sides.
 * - Throughput and latency: wrk -t1 -c50, bounded runs (VANE_BENCH_SECONDS, default 10 s),
 *   VANE_BENCH_ROUNDS rounds (default 3) alternating the proxies; figures are medians. Each
 *   round reports how busy both cores were: a maximum is the proxy's only while CPU 1 has room.
 * - Latency at a fixed rate of half nginx's maximum: bench/proxy/loadgen (Go, built here with the
 *   machine's Go toolchain; open loop, measured from the scheduled send time; wrk2 is not
 *   packaged in Debian). VANE_BENCH_FIXED_ROUNDS rounds (default 7) of VANE_BENCH_FIXED_SECONDS
 *   (default 6 s), alternating; the figure is the median round by p99: on a shared machine a
 *   neighbour's burst ruins a whole round, and more, shorter rounds keep one from deciding it.
 *   Each round starts with VANE_BENCH_FIXED_WARMUP seconds (default 1) at the same rate that
 *   the percentiles leave out, as wrk2 leaves out its calibration: a proxy idle while the other
 *   was measured starts cold (50 new connections; a young generation V8 shrank while idle, seen
 *   with --trace-gc). That second's p99 is printed per round, so a slow start stays visible.
 * - Memory: RSS of the primary and of one worker with 10k and 100k routes loaded.
 * - A full routing update (every Ingress changed) under fixed-rate load with 10k routes: p99 with and without.
 *
 * Usage: node bench/proxy/run.ts   (needs nginx and wrk: bash scripts/install-system-deps.sh; and Go)
 * Quick mode, VANE_BENCH_QUICK=1 (about 2 minutes): rounds of 5 s, 5 fixed-rate rounds, and only
 * the ratios against nginx (no run at half vane's maximum, no memory or routing-update figures).
 * Per-request CPU of two builds, paired: bench/proxy/ab.ts.
 * VANE_BENCH_PROFILE=DIR writes CPU profiles of the vane processes (--cpu-prof) to DIR.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildWorld } from '../support/world.ts';
import { waitHttp } from '../support/http.ts';
import { FORWARDING, nginxConf } from '../support/nginx.ts';
import { children, freePort, need, start, stopChild } from '../support/processes.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const QUICK = process.env.VANE_BENCH_QUICK === '1';
const SECONDS = Number(process.env.VANE_BENCH_SECONDS ?? (QUICK ? 5 : 10));
const ROUNDS = Number(process.env.VANE_BENCH_ROUNDS ?? 3);
const FIXED_ROUNDS = Number(process.env.VANE_BENCH_FIXED_ROUNDS ?? (QUICK ? 5 : 7));
const FIXED_SECONDS = Number(process.env.VANE_BENCH_FIXED_SECONDS ?? 6);
const FIXED_WARMUP = Number(process.env.VANE_BENCH_FIXED_WARMUP ?? 1);
const PROFILE = process.env.VANE_BENCH_PROFILE;
const BODY = 'x'.repeat(600);
const HOST = 'bench.local';

interface WrkResult { rps: number; p50Ms: number; p99Ms: number; errors: number; busy: [number, number] }

/** cpuTimes reads the busy, total and stolen jiffies of CPU 0 and CPU 1 from /proc/stat. */
function cpuTimes(): [number, number, number][] {
  return readFileSync('/proc/stat', 'utf8').split('\n').filter((l) => /^cpu[01] /.test(l)).map((l) => {
    const [user, nice, system, idle, iowait, irq, softirq, steal] = l.trim().split(/\s+/).slice(1).map(Number) as number[];
    return [user! + nice! + system! + irq! + softirq! + steal!, user! + nice! + system! + idle! + iowait! + irq! + softirq! + steal!, steal!];
  });
}

function busyShare(before: [number, number, number][], after: [number, number, number][]): [number, number] {
  const share = (i: number): number => (after[i]![0] - before[i]![0]) / Math.max(1, after[i]![1] - before[i]![1]);
  return [share(0), share(1)];
}

/** stealShare is the share of CPU 0's time the hypervisor gave to other guests: the proxy waited, through no fault of its own. */
function stealShare(before: [number, number, number][], after: [number, number, number][]): number {
  return (after[0]![2] - before[0]![2]) / Math.max(1, after[0]![1] - before[0]![1]);
}

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
}

function wrk(port: number, seconds: number): WrkResult {
  const before = cpuTimes();
  const r = spawnSync('taskset', ['-c', '1', 'wrk', '-t1', '-c50', `-d${seconds}s`, '--latency', '-H', `Host: ${HOST}`, `http://127.0.0.1:${port}/`], { encoding: 'utf8' });
  const busy = busyShare(before, cpuTimes());
  const out = r.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
  const p99 = ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
  const errs = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = Number(errs?.[1] ?? 0) + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  if (!(rps > 0)) throw new Error(`wrk failed: ${r.stderr || out}`);
  return { rps, p50Ms: p50, p99Ms: p99, errors, busy };
}

interface FixedResult { completed: number; errors: number; p50Ms: number; p99Ms: number; p999Ms: number; maxMs: number; warmupP99Ms: number; busy0: number; steal0: number }

/** loadgenPath is the fixed-rate generator's binary, built by buildLoadgen. */
let loadgenPath = '';

function goBinary(): string {
  const onPath = spawnSync('sh', ['-c', 'command -v go'], { encoding: 'utf8' }).stdout.trim();
  return onPath || '/usr/local/go/bin/go';
}

function buildLoadgen(dir: string): void {
  console.log('building the fixed-rate load generator (go build bench/proxy/loadgen)…');
  loadgenPath = join(dir, 'loadgen');
  const r = spawnSync(goBinary(), ['build', '-o', loadgenPath, '.'], {
    cwd: join(ROOT, 'bench/proxy/loadgen'), encoding: 'utf8', env: { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' },
  });
  if (r.status !== 0) throw new Error(`go build of bench/proxy/loadgen failed: ${r.error?.message ?? r.stderr}`);
}

/** fixedRate runs the generator for warmup + seconds; the percentiles cover the last `seconds`. */
function fixedRate(port: number, rate: number, seconds: number, warmup = 0): Promise<FixedResult> {
  const before = cpuTimes();
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', '1', loadgenPath, '-port', String(port), '-host', HOST, '-rate', String(Math.round(rate)), '-seconds', String(seconds + warmup),
      '-warmup', String(warmup), '-connections', '50'],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => { out += c; });
    child.on('exit', (code) => {
      if (code !== 0) { reject(new Error(`loadgen exited ${code}`)); return; }
      const after = cpuTimes();
      resolve({ ...(JSON.parse(out) as FixedResult), busy0: busyShare(before, after)[0], steal0: stealShare(before, after) });
    });
  });
}

function medianBy<T>(list: T[], key: (t: T) => number): T {
  const sorted = [...list].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** fixedRounds runs the fixed-rate load FIXED_ROUNDS times per proxy, alternating; per proxy the median by p99 and the rounds. */
async function fixedRounds(proxies: readonly (readonly [string, number])[], rate: number): Promise<Record<string, FixedResult> & Record<`${string}Rounds`, FixedResult[]>> {
  const rounds: Record<string, FixedResult[]> = {};
  for (let i = 0; i < FIXED_ROUNDS; i++) for (const [name, port] of proxies) (rounds[name] ??= []).push(await fixedRate(port, rate, FIXED_SECONDS, FIXED_WARMUP));
  const out: Record<string, FixedResult | FixedResult[]> = {};
  for (const [name, list] of Object.entries(rounds)) { out[name] = medianBy(list, (r) => r.p99Ms); out[`${name}Rounds`] = list; }
  return out as Record<string, FixedResult> & Record<`${string}Rounds`, FixedResult[]>;
}

function rssKb(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? NaN));
}

function manifests(upstreamPort: number): object[] {
  return [
    { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'vane' }, spec: { controller: 'vane.dev/ingress-controller' } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'upstream', namespace: 'bench' }, spec: { ports: [{ name: 'http', port: 80, targetPort: upstreamPort }] } },
    {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: 'upstream-1', namespace: 'bench', labels: { 'kubernetes.io/service-name': 'upstream' } },
      addressType: 'IPv4', ports: [{ name: 'http', port: upstreamPort, protocol: 'TCP' }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    },
    {
      apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'bench', namespace: 'bench' },
      spec: { ingressClassName: 'vane', rules: [{ host: HOST, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'upstream', port: { number: 80 } } } }] } }] },
    },
  ];
}

async function writeList(file: string, items: object[]): Promise<void> {
  await writeFile(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
}

interface Vane { child: ChildProcess; http: number; admin: number; dir: string }

/** FILE_OBJECTS keeps each generated file well under the loader's 16 MiB limit per manifest. */
const FILE_OBJECTS = 2_000;

async function startVane(items: object[], cpu: string, extra: object[] = []): Promise<Vane> {
  const dir = await mkdtemp(join(tmpdir(), 'vane-bench-proxy-'));
  await writeList(join(dir, 'manifests.json'), items);
  for (let i = 0; i < extra.length; i += FILE_OBJECTS) await writeList(join(dir, `world-${i / FILE_OBJECTS}.json`), extra.slice(i, i + FILE_OBJECTS));
  const http = await freePort();
  const admin = await freePort();
  const https = await freePort();
  const nodeArgs = PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`] : [];
  const child = start(cpu, process.execPath, [...nodeArgs, join(ROOT, 'cli/main.ts'), 'proxy', '--from-files', dir, '--http-port', String(http), '--https-port', String(https),
    '--admin-port', String(admin), '--host', '127.0.0.1', '--admin-host', '127.0.0.1', '--workers', '1', '--shutdown-delay', '0s', '--drain-timeout', '2s'], { ...process.env, VANE_LOG_LEVEL: 'error' });
  await waitHttp(admin, 'localhost', '/readyz');
  return { child, http, admin, dir };
}

async function workerPid(admin: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${admin}/readyz`).then((x) => x.json() as Promise<{ workers: { pid: number }[] }>);
  return r.workers[0]!.pid;
}

function pad(s: string | number, n: number): string { return String(s).padStart(n); }

async function main(): Promise<void> {
  need('bench/proxy', 'nginx');
  need('bench/proxy', 'wrk');
  need('bench/proxy', 'taskset');
  const nginxVersion = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim();
  // The bracket keeps pgrep from matching the shell running it.
  const busy = spawnSync('sh', ['-c', "pgrep -f '[g]o build' | wc -l"], { encoding: 'utf8' }).stdout.trim();
  console.log(`machine: ${cpus()[0]?.model ?? 'unknown'} × ${availableParallelism()}; node ${process.version}; ${nginxVersion}; wrk -t1 -c50 ${SECONDS}s`);
  if (busy !== '0') console.log('warning: a Go build is running on this machine; figures are noisy');
  const load = loadavg()[0]!;
  if (load > 0.5) console.log(`warning: load average ${load.toFixed(2)} before the run: other work shares these cores; figures are noisy`);

  const work = await mkdtemp(join(tmpdir(), 'vane-bench-nginx-'));
  buildLoadgen(work);
  const upPort = await freePort();
  const ngxPort = await freePort();
  await writeFile(join(work, 'upstream.conf'), nginxConf(`${work}/up`, `  server { listen 127.0.0.1:${upPort} backlog=4096; location / { default_type text/plain; return 200 '${BODY}'; } }`));
  await writeFile(join(work, 'proxy.conf'), nginxConf(`${work}/px`, `  upstream up { server 127.0.0.1:${upPort}; keepalive 64; }\n  server { listen 127.0.0.1:${ngxPort} backlog=4096; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; ${FORWARDING} } }`));
  for (const d of ['up', 'px']) spawnSync('mkdir', ['-p', join(work, d)]);

  const upstream = start('1', 'nginx', ['-c', join(work, 'upstream.conf'), '-e', join(work, 'up/error.log')]);
  const ngx = start('0', 'nginx', ['-c', join(work, 'proxy.conf'), '-e', join(work, 'px/error.log')]);
  await waitHttp(upPort, HOST);
  await waitHttp(ngxPort, HOST);
  const vane = await startVane(manifests(upPort), '0');
  await waitHttp(vane.http, HOST);

  const proxies = [['nginx', ngxPort], ['vane', vane.http]] as const;
  for (const [, port] of proxies) wrk(port, 3);
  // Rounds alternate the proxies, and each figure is the median over rounds: this machine's
  // neighbours come and go, and one unlucky run must not decide a ratio.
  const wrkRounds: Record<string, WrkResult[]> = { nginx: [], vane: [] };
  for (let i = 0; i < ROUNDS; i++) for (const [name, port] of proxies) wrkRounds[name]!.push(wrk(port, SECONDS));
  const results: Record<string, WrkResult> = {};
  for (const [name] of proxies) results[name] = medianBy(wrkRounds[name]!, (r) => r.rps);
  const nginxRps = results.nginx!.rps;
  const fixedRps = nginxRps / 2;
  const fixed = await fixedRounds(proxies, fixedRps);
  // Context for the figure above: both proxies at half of vane's own maximum.
  const ownRps = results.vane!.rps / 2;
  const own = QUICK ? null : await fixedRounds(proxies, ownRps);
  const vanePid = await workerPid(vane.admin);
  const rssUnderLoad = await rssKb(vanePid);
  await stopChild(vane.child);
  await rm(vane.dir, { recursive: true, force: true });

  console.log(`\nthroughput (wrk -t1 -c50, proxy pinned to one core; median of ${ROUNDS} rounds)`);
  console.log(`${'proxy'.padEnd(8)}${pad('req/s', 10)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}${pad('errors', 8)}`);
  for (const [name, r] of Object.entries(results)) console.log(`${name.padEnd(8)}${pad(r.rps.toFixed(0), 10)}${pad(r.p50Ms.toFixed(2), 9)}${pad(r.p99Ms.toFixed(2), 9)}${pad(r.errors, 8)}`);
  const v = results.vane!;
  console.log(`ratio vane/nginx: rps ${(v.rps / nginxRps).toFixed(2)}×, p50 ${(v.p50Ms / results.nginx!.p50Ms).toFixed(2)}×, p99 ${(v.p99Ms / results.nginx!.p99Ms).toFixed(2)}×`);
  const percent = (x: number): string => `${(x * 100).toFixed(0)} %`;
  for (const [name] of proxies) console.log(`  ${name} req/s by round: ${wrkRounds[name]!.map((r) => `${r.rps.toFixed(0)} (CPU 0 ${percent(r.busy[0])}, CPU 1 ${percent(r.busy[1])})`).join(', ')}`);
  const loadBound = Object.values(wrkRounds).flat().filter((r) => r.busy[1] >= 0.95 && r.busy[0] < 0.95).length;
  if (loadBound > 0) console.log(`warning: in ${loadBound} round(s) CPU 1 (load generator and upstream) was saturated and CPU 0 was not: that maximum is the load side's, not the proxy's`);
  console.log(`\nfixed rate ${fixedRps.toFixed(0)} req/s (half nginx's max; open loop, latency from scheduled send; median of ${FIXED_ROUNDS} rounds of ${FIXED_SECONDS} s by p99, each after ${FIXED_WARMUP} s of warm-up)`);
  console.log(`${'proxy'.padEnd(8)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}${pad('p99.9', 9)}${pad('max', 9)}${pad('done', 9)}${pad('errors', 8)}`);
  for (const [name] of proxies) { const r = fixed[name]!; console.log(`${name.padEnd(8)}${pad(r.p50Ms.toFixed(2), 9)}${pad(r.p99Ms.toFixed(2), 9)}${pad(r.p999Ms.toFixed(2), 9)}${pad(r.maxMs.toFixed(1), 9)}${pad(r.completed, 9)}${pad(r.errors, 8)}`); }
  console.log(`ratio vane/nginx p99 at fixed rate: ${(fixed.vane!.p99Ms / fixed.nginx!.p99Ms).toFixed(2)}×`);
  // Each pair of rounds ran back to back, so a pair's ratio compares the proxies under much the
  // same host conditions; its median is a second view of the figure above, less moved by drift.
  const pairRatios = fixed.vaneRounds!.map((r, i) => r.p99Ms / fixed.nginxRounds![i]!.p99Ms);
  console.log(`  p99 ratio by pair of rounds: ${pairRatios.map((x) => x.toFixed(2)).join(', ')}; median ${medianBy(pairRatios, (x) => x).toFixed(2)}×`);
  for (const [name] of proxies) console.log(`  ${name} p99 ms by round: ${fixed[`${name}Rounds`]!.map((r) => r.p99Ms.toFixed(2)).join(', ')}; in the warm-up: ${fixed[`${name}Rounds`]!.map((r) => r.warmupP99Ms.toFixed(2)).join(', ')}`);
  // CPU 0 runs only the proxy: how busy it was says how much headroom the proxy had, and steal
  // says whether the host took the core away (a round to discount, whichever proxy it hit).
  for (const [name] of proxies) console.log(`  ${name} CPU 0 by round: ${fixed[`${name}Rounds`]!.map((r) => `${percent(r.busy0)} (steal ${percent(r.steal0)})`).join(', ')}`);
  if (own === null) {
    await stopChild(ngx, 'SIGQUIT');
    await stopChild(upstream, 'SIGQUIT');
    await rm(work, { recursive: true, force: true });
    return;
  }
  console.log(`\nfixed rate ${ownRps.toFixed(0)} req/s (half vane's max, for context)`);
  for (const [name] of proxies) { const r = own[name]!; console.log(`${name.padEnd(8)}${pad(r.p50Ms.toFixed(2), 9)}${pad(r.p99Ms.toFixed(2), 9)}${pad(r.p999Ms.toFixed(2), 9)}${pad(r.maxMs.toFixed(1), 9)}${pad(r.completed, 9)}${pad(r.errors, 8)}`); }
  console.log(`ratio vane/nginx p99 at half vane's max: ${(own.vane!.p99Ms / own.nginx!.p99Ms).toFixed(2)}×`);
  console.log(`vane worker RSS after the runs (1 route): ${(rssUnderLoad / 1024).toFixed(0)} MiB`);

  console.log('\nmemory with many routes (4 paths per Ingress)');
  for (const ingresses of [2_500, 25_000]) {
    const world = buildWorld({ ingresses, pathsPerIngress: 4, endpointsPerService: 2, tlsShare: 0 });
    const t0 = Date.now();
    const big = await startVane(manifests(upPort), '0', world.objects);
    const readyMs = Date.now() - t0;
    const pid = await workerPid(big.admin);
    await waitHttp(big.http, HOST);
    const [worker, primary] = await Promise.all([rssKb(pid), rssKb(big.child.pid!)]);
    console.log(`${pad(ingresses * 4, 7)} routes: worker ${pad((worker / 1024).toFixed(0), 5)} MiB, primary ${pad((primary / 1024).toFixed(0), 5)} MiB, ready in ${(readyMs / 1000).toFixed(1)} s`);
    if (ingresses === 2_500) {
      const rate = Math.min(fixedRps, 5_000);
      // The first round on a freshly started proxy is its cold start (the JIT and the collector
      // settling on a heap of 10k routes: a p99 of 25–70 ms over 6 s). Measured as the quiet
      // baseline it made the update look like an improvement, so it is a round of its own.
      const cold = await fixedRate(big.http, rate, 6, FIXED_WARMUP);
      const quiet = await fixedRate(big.http, rate, 6, FIXED_WARMUP);
      const changed = world.objects.map((o) => (o.kind === 'Ingress' ? { ...o, metadata: { ...o.metadata, annotations: { ...(o.metadata?.annotations ?? {}), 'vane.dev/read-timeout': '59s' } } } : o));
      const during = fixedRate(big.http, rate, 6, FIXED_WARMUP);
      // The files change a second into the measured part of the round.
      await new Promise((r) => setTimeout(r, (FIXED_WARMUP + 1) * 1000));
      for (let i = 0; i < changed.length; i += FILE_OBJECTS) await writeList(join(big.dir, `world-${i / FILE_OBJECTS}.json`), changed.slice(i, i + FILE_OBJECTS));
      const busyRun = await during;
      console.log(`   first 6 s after start at ${rate} req/s: p99 ${cold.p99Ms} ms, max ${cold.maxMs} ms`);
      console.log(`   full update of all ${ingresses} Ingresses at ${rate} req/s: p99 ${quiet.p99Ms} ms → ${busyRun.p99Ms} ms, max ${quiet.maxMs} → ${busyRun.maxMs} ms, errors ${busyRun.errors}`);
    }
    await stopChild(big.child);
    await rm(big.dir, { recursive: true, force: true });
  }

  await stopChild(ngx, 'SIGQUIT');
  await stopChild(upstream, 'SIGQUIT');
  await rm(work, { recursive: true, force: true });
}

try {
  await main();
} finally {
  // SIGTERM, not SIGKILL: an nginx master killed outright leaves its worker behind.
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
}
