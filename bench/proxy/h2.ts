/**
 * HTTP/2 benchmark (issue 19): h2 from clients to nginx (`listen … ssl http2`) and to `vane proxy`
 * (ALPN h2), side by side in one run, each in front of the same HTTP/1.1 upstream with keep-alive
 * (nginx answering a fixed 600-byte body from memory), with h2load as the load generator.
 *
 * - CPU 0: the proxy under test, one nginx worker or one vane worker. CPU 1: upstream and h2load.
 * - Throughput: h2load -c50 -m10 (50 connections, 10 streams each), rounds of VANE_BENCH_SECONDS
 *   (default 10 s, after 1 s of warm-up) alternating the proxies, VANE_BENCH_ROUNDS rounds
 *   (default 3); the figure is the median round.
 * - Latency at half nginx's maximum: bench/proxy/loadgen -h2 (Go; open loop, latency from the
 *   scheduled send, 50 connections with a stream in flight on each), VANE_BENCH_FIXED_ROUNDS
 *   (default 5) rounds of 6 s after 1 s of warm-up, alternating; the median round by p99. h2load's
 *   own --rps sends each connection's requests in bursts, which gave both proxies the same 20 ms
 *   p50 and 100 ms p99: the generator's, not theirs.
 * - nginx gets the forwarding headers Vane sets, as ingress-nginx configures it.
 *
 * Usage: node bench/proxy/h2.ts   (needs nginx and h2load: bash scripts/install-system-deps.sh; and Go)
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { selfSignedCertificate } from '../../proxy/index.ts';
import { waitHttp } from '../support/http.ts';
import { FORWARDING, nginxConf } from '../support/nginx.ts';
import { children, freePort, need, start } from '../support/processes.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECONDS = Number(process.env.VANE_BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.VANE_BENCH_ROUNDS ?? 3);
const FIXED_ROUNDS = Number(process.env.VANE_BENCH_FIXED_ROUNDS ?? 5);
const FIXED_SECONDS = 6;
const CLIENTS = 50;
const STREAMS = 10;
const BODY = 'x'.repeat(600);
const HOST = 'bench.local';

interface Round { rps: number; p50Ms: number; p99Ms: number; failed: number }

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** h2load runs one round at full speed against `port`; latencies come from its per-request log. */
async function h2load(port: number, seconds: number, work: string): Promise<Round> {
  const log = join(work, 'h2load.log');
  const args = ['-c', '1', 'h2load', '-t', '1', '-c', String(CLIENTS), '-m', String(STREAMS), '-D', String(seconds), '--warm-up-time', '1',
    '-H', `:authority: ${HOST}`, '--log-file', log, `https://127.0.0.1:${port}/`];
  const r = spawnSync('taskset', args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const out = r.stdout;
  const rps = Number(/finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(out)?.[1]);
  const failed = Number(/requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed/.exec(out)?.[1] ?? NaN);
  if (!(rps > 0)) throw new Error(`h2load failed: ${r.stderr || out}`);
  const times = (await readFile(log, 'utf8')).split('\n').filter(Boolean).map((l) => Number(l.split('\t')[2]) / 1000).sort((a, b) => a - b);
  return { rps, p50Ms: percentile(times, 0.5), p99Ms: percentile(times, 0.99), failed };
}

function goBinary(): string {
  const onPath = spawnSync('sh', ['-c', 'command -v go'], { encoding: 'utf8' }).stdout.trim();
  return onPath || '/usr/local/go/bin/go';
}

/** buildLoadgen builds bench/proxy/loadgen into `dir` and returns its path. */
function buildLoadgen(dir: string): string {
  const out = join(dir, 'loadgen');
  const r = spawnSync(goBinary(), ['build', '-o', out, '.'], {
    cwd: join(ROOT, 'bench/proxy/loadgen'), encoding: 'utf8', env: { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' },
  });
  if (r.status !== 0) throw new Error(`go build of bench/proxy/loadgen failed: ${r.error?.message ?? r.stderr}`);
  return out;
}

/** fixedRate runs loadgen -h2 at `rate` req/s for a second of warm-up and FIXED_SECONDS measured. */
function fixedRate(loadgen: string, port: number, rate: number): Round {
  const r = spawnSync('taskset', ['-c', '1', loadgen, '-h2', '-port', String(port), '-host', HOST, '-rate', String(Math.round(rate)),
    '-seconds', String(FIXED_SECONDS + 1), '-warmup', '1', '-connections', String(CLIENTS)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`loadgen failed: ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { completed: number; errors: number; p50Ms: number; p99Ms: number };
  return { rps: j.completed / (FIXED_SECONDS + 1), p50Ms: j.p50Ms, p99Ms: j.p99Ms, failed: j.errors };
}

function medianBy<T>(list: T[], key: (t: T) => number): T {
  const sorted = [...list].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

async function main(): Promise<void> {
  need('bench/proxy/h2', 'nginx');
  need('bench/proxy/h2', 'h2load');
  need('bench/proxy/h2', 'taskset');
  const nginxVersion = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim();
  console.log(`machine: ${cpus()[0]?.model ?? 'unknown'} × ${availableParallelism()}; node ${process.version}; ${nginxVersion}; h2load -c${CLIENTS} -m${STREAMS} ${SECONDS}s`);
  const work = await mkdtemp(join(tmpdir(), 'vane-bench-h2-'));
  const loadgen = buildLoadgen(work);
  const cert = selfSignedCertificate({ commonName: HOST });
  await writeFile(join(work, 'cert.pem'), cert.certificatePem);
  await writeFile(join(work, 'key.pem'), cert.privateKeyPem, { mode: 0o600 });
  const upPort = await freePort();
  const ngxPort = await freePort();
  const ngxHttp = await freePort();
  await writeFile(join(work, 'upstream.conf'), nginxConf(`${work}/up`, `  server { listen 127.0.0.1:${upPort} backlog=4096; location / { default_type text/plain; return 200 '${BODY}'; } }`));
  await writeFile(join(work, 'proxy.conf'), nginxConf(`${work}/px`, `  upstream up { server 127.0.0.1:${upPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${ngxPort} ssl http2 backlog=4096; listen 127.0.0.1:${ngxHttp};
    ssl_certificate ${work}/cert.pem; ssl_certificate_key ${work}/key.pem; ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_concurrent_streams 100;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; ${FORWARDING} }
  }`));
  for (const d of ['up', 'px']) spawnSync('mkdir', ['-p', join(work, d)]);
  start('1', 'nginx', ['-c', join(work, 'upstream.conf'), '-e', join(work, 'up/error.log')]);
  start('0', 'nginx', ['-c', join(work, 'proxy.conf'), '-e', join(work, 'px/error.log')]);
  await waitHttp(upPort, HOST);
  await waitHttp(ngxHttp, HOST);

  const vaneDir = join(work, 'vane');
  spawnSync('mkdir', ['-p', vaneDir]);
  await writeFile(join(vaneDir, 'manifests.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
    { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'vane' }, spec: { controller: 'vane.dev/ingress-controller' } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'upstream', namespace: 'bench' }, spec: { ports: [{ name: 'http', port: 80, targetPort: upPort }] } },
    {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'upstream-1', namespace: 'bench', labels: { 'kubernetes.io/service-name': 'upstream' } },
      addressType: 'IPv4', ports: [{ name: 'http', port: upPort, protocol: 'TCP' }], endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    },
    {
      apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'bench', namespace: 'bench' },
      spec: { ingressClassName: 'vane', rules: [{ host: HOST, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'upstream', port: { number: 80 } } } }] } }] },
    },
  ] }));
  const [vHttp, vHttps, vAdmin] = [await freePort(), await freePort(), await freePort()];
  start('0', process.execPath, [join(ROOT, 'cli/main.ts'), 'proxy', '--from-files', vaneDir, '--http-port', String(vHttp), '--https-port', String(vHttps),
    '--admin-port', String(vAdmin), '--host', '127.0.0.1', '--admin-host', '127.0.0.1', '--workers', '1', '--shutdown-delay', '0s', '--drain-timeout', '2s'],
  { ...process.env, VANE_LOG_LEVEL: 'error' });
  await waitHttp(vAdmin, 'localhost', '/readyz');
  await waitHttp(vHttp, HOST);

  const proxies = [['nginx', ngxPort], ['vane', vHttps]] as const;
  for (const [, port] of proxies) await h2load(port, 3, work);
  const rounds: Record<string, Round[]> = { nginx: [], vane: [] };
  for (let i = 0; i < ROUNDS; i++) for (const [name, port] of proxies) rounds[name]!.push(await h2load(port, SECONDS, work));
  const max: Record<string, Round> = {};
  for (const [name] of proxies) max[name] = medianBy(rounds[name]!, (r) => r.rps);
  const half = max.nginx!.rps / 2;
  const fixedRounds: Record<string, Round[]> = { nginx: [], vane: [] };
  for (let i = 0; i < FIXED_ROUNDS; i++) for (const [name, port] of proxies) fixedRounds[name]!.push(fixedRate(loadgen, port, half));
  const fixed: Record<string, Round> = {};
  for (const [name] of proxies) fixed[name] = medianBy(fixedRounds[name]!, (r) => r.p99Ms);

  console.log(`\nthroughput, h2 to the proxy (h2load -c${CLIENTS} -m${STREAMS}, proxy pinned to one core; median of ${ROUNDS} rounds)`);
  for (const [name] of proxies) {
    const r = max[name]!;
    console.log(`${name.padEnd(8)}${r.rps.toFixed(0).padStart(9)} req/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  failed ${r.failed}   rounds: ${rounds[name]!.map((x) => x.rps.toFixed(0)).join(', ')}`);
  }
  console.log(`ratio vane/nginx: ${(max.vane!.rps / max.nginx!.rps).toFixed(2)}×`);
  console.log(`\nfixed rate ${half.toFixed(0)} req/s (half nginx's max; loadgen -h2, open loop, ${CLIENTS} connections; median of ${FIXED_ROUNDS} rounds of ${FIXED_SECONDS} s by p99)`);
  for (const [name] of proxies) {
    const r = fixed[name]!;
    console.log(`${name.padEnd(8)}${r.rps.toFixed(0).padStart(9)} req/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  failed ${r.failed}   p99 by round: ${fixedRounds[name]!.map((x) => x.p99Ms.toFixed(2)).join(', ')}`);
  }
  console.log(`ratio vane/nginx p99 at half nginx's max: ${(fixed.vane!.p99Ms / fixed.nginx!.p99Ms).toFixed(2)}×`);
  await rm(work, { recursive: true, force: true });
}

try {
  await main();
} finally {
  // SIGTERM, not SIGKILL: an nginx master killed outright leaves its worker behind.
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
}
