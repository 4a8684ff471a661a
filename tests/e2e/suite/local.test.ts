/**
 * `vane local up` → status → up again → a crashed API server → up restarts it → down, as a
 * user runs them (the real CLI, detached processes, pid files).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlPlaneStatus, envWithoutProxies, isAlive } from '../../../devtools/controlplane/index.ts';
import { e2eSkip, cluster } from '../harness/index.ts';
import { eventually } from '../../support/wait.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
let dir = '';

interface Run { code: number; stdout: string; stderr: string }

function vane(...args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(process.execPath, ['cli/main.ts', ...args], { cwd: root, timeout: 120_000, env: { ...process.env, VANE_LOG_LEVEL: 'warn' } }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function kubectl(bin: string, ...args: string[]): Promise<Run> {
  return new Promise((done) => {
    const child = execFile(join(bin, 'kubectl'), [`--kubeconfig=${join(dir, 'kubeconfig')}`, `--cache-dir=${join(dir, 'kubectl-cache')}`, ...args], { env: envWithoutProxies() }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    child.stdin?.end();
  });
}

interface Status {
  ready: boolean;
  server: string | null;
  etcd: number | null;
  apiserver: number | null;
  components: { name: string; running: boolean; pid: number | null; unavailable: string | null }[];
}

async function status(): Promise<{ code: number; status: Status }> {
  const r = await vane('local', 'status', '--dir', dir, '--json');
  return { code: r.code, status: JSON.parse(r.stdout) as Status };
}

after(async () => {
  if (!dir) return;
  await vane('local', 'down', '--dir', dir);
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

test('vane local up, status, up again, restart after a crash, down', { skip: e2eSkip }, async () => {
  const { bin } = await cluster();
  dir = join(mkdtempSync(join(tmpdir(), 'vane-local-test-')), 'state');

  const up = await vane('local', 'up', '--dir', dir, '--proxies', '2', '--no-build');
  assert.equal(up.code, 0, up.stderr);
  for (const step of [/etcd v[\d.]+ healthy on http:\/\/127\.0\.0\.1:\d+/, /kube-apiserver v[\d.]+ ready on https:\/\/127\.0\.0\.1:\d+/,
    /CRDs applied and Established: canaries\.vane\.dev/, /webhook started \(pid \d+, https:\/\/127\.0\.0\.1:\d+\/validate/,
    /operator started \(pid \d+, http:\/\/127\.0\.0\.1:\d+\/fleet/, /proxy-0 started \(pid \d+/, /proxy-1 started \(pid \d+/]) {
    assert.match(up.stderr, step);
  }
  assert.ok(up.stdout.includes(`export KUBECONFIG=${join(dir, 'kubeconfig')}`), up.stdout);

  const first = await status();
  assert.equal(first.code, 0);
  assert.equal(first.status.ready, true);
  assert.equal(first.status.components.find((c) => c.name === 'webhook')?.running, true);
  for (const name of ['operator', 'proxy-0', 'proxy-1']) assert.equal(first.status.components.find((c) => c.name === name)?.running, true, name);
  // The operator leads, and both proxies it expects (ready endpoints of the proxy Service) ACKed its routing.
  const fleetUrl = /operator started \(pid \d+, (http:\/\/127\.0\.0\.1:\d+\/fleet)/.exec(up.stderr)![1]!;
  let fleet: { convergence: { expected: number; converged: number } | null } = { convergence: null };
  await eventually('both expected proxies to ACK', async () => {
    fleet = await (await fetch(fleetUrl)).json() as typeof fleet;
    return fleet.convergence?.expected === 2 && fleet.convergence.converged === 2;
  }, 20_000, { intervalMs: 200, detail: () => `last convergence ${JSON.stringify(fleet.convergence)}` });

  assert.equal((await kubectl(bin, 'get', '--raw', '/readyz')).stdout, 'ok');
  assert.equal((await kubectl(bin, 'get', 'crd', 'canaries.vane.dev', '-o', 'name')).stdout.trim(), 'customresourcedefinition.apiextensions.k8s.io/canaries.vane.dev');
  assert.equal((await kubectl(bin, 'create', 'namespace', 'kept')).code, 0);
  // The webhook `up` started is registered: an Ingress with a configuration snippet is refused.
  const denied = await new Promise<Run>((done) => {
    const child = execFile(join(bin, 'kubectl'), [`--kubeconfig=${join(dir, 'kubeconfig')}`, `--cache-dir=${join(dir, 'kubectl-cache')}`, '-n', 'kept', 'apply', '-f', '-'], { env: envWithoutProxies() }, (err, stdout, stderr) => {
      done({ code: err ? 1 : 0, stdout, stderr });
    });
    child.stdin?.end(JSON.stringify({
      apiVersion: 'networking.k8s.io/v1', kind: 'Ingress',
      metadata: { name: 'snippet', annotations: { 'nginx.ingress.kubernetes.io/configuration-snippet': 'return 200;' } },
      spec: { ingressClassName: 'vane', rules: [{ host: 'a.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'a', port: { number: 80 } } } }] } }] },
    }));
  });
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /admission webhook "validate\.vane\.dev" denied the request: .*configuration snippets are not supported/);

  const again = await vane('local', 'up', '--dir', dir, '--proxies', '2', '--no-build');
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /already running: etcd \(pid \d+\), kube-apiserver \(pid \d+\)/);
  assert.match(again.stderr, /webhook already running/);
  assert.match(again.stderr, /operator already running/);
  // (The library's view from here on: every CLI start costs seconds of module loading.)
  const second = await controlPlaneStatus(dir);
  assert.deepEqual([second.etcd, second.apiserver, second.state?.server], [first.status.etcd, first.status.apiserver, first.status.server]);

  process.kill(first.status.apiserver!, 'SIGKILL');
  await eventually('the killed kube-apiserver to be gone', () => !isAlive(first.status.apiserver!), 5_000);
  assert.equal((await controlPlaneStatus(dir)).ready, false, 'not ready once kube-apiserver is gone');
  const restart = await vane('local', 'up', '--dir', dir, '--proxies', '2', '--no-build');
  assert.equal(restart.code, 0, restart.stderr);
  assert.match(restart.stderr, /found a partial control plane .*restarting it/);
  assert.match(restart.stderr, /certificates reused/);
  const third = await controlPlaneStatus(dir);
  assert.equal(third.ready, true);
  assert.equal(third.state?.server, first.status.server, 'the same port again, so an exported KUBECONFIG keeps working');
  assert.equal((await kubectl(bin, 'get', 'namespace', 'kept', '-o', 'name')).stdout.trim(), 'namespace/kept', 'etcd data survives the restart');

  const pids = [third.etcd!, third.apiserver!, ...first.status.components.flatMap((c) => (c.running && c.pid ? [c.pid] : []))];
  const down = await vane('local', 'down', '--dir', dir);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stderr, /webhook \(pid \d+\) stopped/);
  assert.match(down.stderr, /removed the state/);
  for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} still runs after down`);
  assert.equal(existsSync(dir), false, 'down removes the state directory');
  const after = await vane('local', 'status', '--dir', dir);
  assert.equal(after.code, 3);
  assert.match(after.stdout, /^etcd\s+not running$/m);
});
