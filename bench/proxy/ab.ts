/**
 * Paired A/B of a vane worker's CPU per request: two source trees of Vane side by side, the
 * way docs/proxy.md's A/B figures were measured. Totals over a run swing by ±5 % with the
 * host's load; rounds paired back to back resolve a few percent.
 *
 * - A is another tree (e.g. `mkdir /tmp/a && git archive HEAD | tar -x -C /tmp/a && ln -s
 *   "$PWD/node_modules" /tmp/a/`), B is this one. Each runs `vane proxy --workers 1` pinned
 *   to CPU 0; an nginx upstream answering from memory and the fixed-rate generator
 *   (bench/proxy/loadgen) run on CPU 1.
 * - Rounds of VANE_AB_SECONDS (default 3) at VANE_AB_RATE req/s (default 10000), in ABBA order,
 *   after a warm-up round each. A round reads the worker's CPU ticks (utime + stime in
 *   /proc/PID/stat) before and after and divides by the requests completed.
 * - The figure is the median over pairs of B's ticks per request over A's: below 1, B is cheaper.
 *
 * Usage: node bench/proxy/ab.ts DIR_OF_TREE_A   (VANE_AB_PAIRS pairs, default 10)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitHttp } from '../support/http.ts';
import { children, freePort, start } from '../support/processes.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECONDS = Number(process.env.VANE_AB_SECONDS ?? 3);
const RATE = Number(process.env.VANE_AB_RATE ?? 10_000);
const PAIRS = Number(process.env.VANE_AB_PAIRS ?? 10);
const HOST = 'bench.local';
const BODY = 'x'.repeat(600);

function manifests(upstreamPort: number): object {
  return {
    apiVersion: 'v1', kind: 'List', items: [
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
    ],
  };
}

interface Vane { name: string; child: ChildProcess; http: number; pid: number }

async function startVane(name: string, root: string, dir: string): Promise<Vane> {
  const [http, https, admin] = [await freePort(), await freePort(), await freePort()];
  const child = start('0', process.execPath, [join(root, 'cli/main.ts'), 'proxy', '--from-files', dir, '--http-port', String(http), '--https-port', String(https),
    '--admin-port', String(admin), '--host', '127.0.0.1', '--admin-host', '127.0.0.1', '--workers', '1', '--shutdown-delay', '0s', '--drain-timeout', '2s'],
  { ...process.env, VANE_LOG_LEVEL: 'error' });
  await waitHttp(admin, 'localhost', '/readyz');
  await waitHttp(http, HOST);
  const r = await fetch(`http://127.0.0.1:${admin}/readyz`).then((x) => x.json() as Promise<{ workers: { pid: number }[] }>);
  return { name, child, http, pid: r.workers[0]!.pid };
}

/** ticks is a process's user + system CPU time in clock ticks. */
function ticks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function round(loadgen: string, v: Vane): Promise<{ perKiloRequest: number; completed: number; errors: number; p99Ms: number }> {
  const before = ticks(v.pid);
  return new Promise((done, fail) => {
    const child = spawn('taskset', ['-c', '1', loadgen, '-port', String(v.http), '-host', HOST, '-rate', String(RATE), '-seconds', String(SECONDS), '-connections', '50'],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => { out += c; });
    child.on('exit', (code) => {
      if (code !== 0) { fail(new Error(`loadgen exited ${code}`)); return; }
      const spent = ticks(v.pid) - before;
      const r = JSON.parse(out) as { completed: number; errors: number; p99Ms: number };
      done({ perKiloRequest: (spent * 1000) / Math.max(1, r.completed), completed: r.completed, errors: r.errors, p99Ms: r.p99Ms });
    });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  const treeA = process.argv[2];
  if (!treeA) { console.error('usage: node bench/proxy/ab.ts DIR_OF_TREE_A'); process.exit(2); }
  const work = await mkdtemp(join(tmpdir(), 'vane-bench-ab-'));
  const loadgen = join(work, 'loadgen');
  const go = spawnSync('sh', ['-c', 'command -v go'], { encoding: 'utf8' }).stdout.trim() || '/usr/local/go/bin/go';
  const built = spawnSync(go, ['build', '-o', loadgen, '.'], { cwd: join(ROOT, 'bench/proxy/loadgen'), encoding: 'utf8', env: { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' } });
  if (built.status !== 0) throw new Error(`go build of bench/proxy/loadgen failed: ${built.stderr}`);

  const upPort = await freePort();
  spawnSync('mkdir', ['-p', join(work, 'up')]);
  await writeFile(join(work, 'upstream.conf'), `worker_processes 1;\ndaemon off;\npid ${work}/up/nginx.pid;\nerror_log ${work}/up/error.log warn;\nevents { worker_connections 4096; }\n`
    + `http {\n  access_log off;\n  client_body_temp_path ${work}/up/body;\n  proxy_temp_path ${work}/up/proxy;\n  fastcgi_temp_path ${work}/up/fastcgi;\n  uwsgi_temp_path ${work}/up/uwsgi;\n  scgi_temp_path ${work}/up/scgi;\n`
    + `  keepalive_requests 1000000;\n  server { listen 127.0.0.1:${upPort} backlog=4096; location / { default_type text/plain; return 200 '${BODY}'; } }\n}\n`);
  start('1', 'nginx', ['-c', join(work, 'upstream.conf'), '-e', join(work, 'up/error.log')]);
  await waitHttp(upPort, HOST);
  const dir = join(work, 'routes');
  spawnSync('mkdir', ['-p', dir]);
  await writeFile(join(dir, 'manifests.json'), JSON.stringify(manifests(upPort)));

  const a = await startVane('A', resolve(treeA), dir);
  const b = await startVane('B', ROOT, dir);
  console.log(`A: ${resolve(treeA)}\nB: ${ROOT}\n${PAIRS} pairs of ${SECONDS} s rounds at ${RATE} req/s; load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  await round(loadgen, a);
  await round(loadgen, b);
  const ratios: number[] = [];
  const per: Record<string, number[]> = { A: [], B: [] };
  for (let i = 0; i < PAIRS; i++) {
    const order = i % 2 === 0 ? [a, b] : [b, a];
    const r: Record<string, number> = {};
    for (const v of order) {
      const x = await round(loadgen, v);
      if (x.errors > 0) console.log(`  ${v.name}: ${x.errors} errors`);
      r[v.name] = x.perKiloRequest;
      per[v.name]!.push(x.perKiloRequest);
    }
    ratios.push(r.B! / r.A!);
    console.log(`pair ${i + 1}: A ${r.A!.toFixed(2)} B ${r.B!.toFixed(2)} ticks per 1k requests, B/A ${(r.B! / r.A!).toFixed(3)}`);
  }
  console.log(`median ticks per 1k requests: A ${median(per.A!).toFixed(2)}, B ${median(per.B!).toFixed(2)}; median of pair ratios B/A ${median(ratios).toFixed(3)}`
    + ` (pairs: min ${Math.min(...ratios).toFixed(3)}, max ${Math.max(...ratios).toFixed(3)}); load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  await rm(work, { recursive: true, force: true });
}

try {
  await main();
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
}
