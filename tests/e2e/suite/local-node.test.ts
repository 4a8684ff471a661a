/**
 * `vane local up --node` → status → the proxies answer on the node port → down, as a user
 * runs them: the real CLI, a real node with Vane installed by its chart, detached daemons.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_ADDRESS, isAlive, readPid } from '../../../devtools/controlplane/index.ts';
import { ROOT, nodeSkip } from '../harness/node.ts';

let dir = '';

interface Run { code: number; stdout: string; stderr: string }

function vane(...args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(process.execPath, ['cli/main.ts', ...args], { cwd: ROOT, timeout: 400_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, VANE_LOG_LEVEL: 'warn' } }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function status404(): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = request(`http://${NODE_ADDRESS}:30080/`, { headers: { host: 'nobody.example.com' }, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => done({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
    req.end();
  });
}

after(async () => {
  if (!dir) return;
  if (existsSync(join(dir, 'node.json'))) await vane('local', 'down', '--dir', dir);
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

test('vane local up --node installs Vane on a real node; status reports it; down leaves nothing running', { skip: nodeSkip, timeout: 600_000 }, async () => {
  dir = join(mkdtempSync(join(tmpdir(), 'vane-local-node-test-')), 'state');
  const up = await vane('local', 'up', '--node', '--dir', dir, '--no-build');
  assert.equal(up.code, 0, up.stderr);
  for (const line of ['network namespace vane-node', 'kube-apiserver', 'containerd ready', 'node vane-node Ready', 'image loaded', 'Vane installed']) {
    assert.match(up.stderr, new RegExp(`\\[vane local [\\d.]+s\\] .*${line}`), `a progress line says: ${line}`);
  }
  assert.match(up.stdout, /export KUBECONFIG=/);
  assert.match(up.stdout, new RegExp(`http://${NODE_ADDRESS.replace(/\./g, '\\.')}:30080`));

  const st = await vane('local', 'status', '--dir', dir, '--json');
  assert.equal(st.code, 0, st.stderr);
  assert.equal((JSON.parse(st.stdout) as { ready: boolean }).ready, true);

  // Vane's proxies, started by the kubelet, answer through the NodePort: no route for an unknown host.
  const r = await status404();
  assert.equal(r.status, 404);
  assert.match(r.body, /no route/);

  const pids = ['kubelet', 'containerd', 'kube-apiserver', 'etcd'].map((n) => readPid(dir, n)).filter((p): p is number => p !== null);
  assert.equal(pids.length, 4);
  const down = await vane('local', 'down', '--dir', dir);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stderr, /kubelet \(pid \d+\) stopped/);
  for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} is gone`);
  assert.equal(readdirSync('/run/netns').includes('vane-node'), false, 'the network namespace is gone');
  assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes(dir), false, 'nothing stays mounted under the state directory');
  assert.equal(existsSync(dir), false, 'the state is removed');
});
