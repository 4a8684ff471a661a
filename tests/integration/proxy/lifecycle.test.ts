/**
 * Live operation: manifest changes applied under load without a failed request, invalid
 * objects dropped and bad files skipped while the rest applies, workers replaced under load,
 * and the graceful shutdown Kubernetes needs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { WORKER_SEMI_SPACE_MB } from '../../../proxy/primary/worker-flags.ts';
import {
  startUpstream, runProxy, tempDir, writeManifests, ingress, service, INGRESS_CLASS, get, load, readyz, metric,
  type Upstream, type RunningProxy, type Echo,
} from './harness.ts';
import { eventually } from '../../support/wait.ts';
import { ALIAS_BOMB } from '../../support/hostile-manifests.ts';

let dir: { dir: string; remove(): Promise<void> };
let blue: Upstream;
let green: Upstream;
let slow: Upstream;
let proxy: RunningProxy;

const base = () => [INGRESS_CLASS, ...service('blue', [{ port: blue.port }]), ...service('green', [{ port: green.port }]), ...service('slow', [{ port: slow.port }])];

before(async () => {
  dir = await tempDir();
  blue = await startUpstream('blue');
  green = await startUpstream('green');
  slow = await startUpstream('slow', (req, res) => { setTimeout(() => { res.setHeader('x-upstream', 'slow'); res.end('done'); }, 1_500).unref(); req.resume(); });
  await writeManifests(dir.dir, 'app.json', [...base(), ingress({ name: 'app', host: 'app.test', paths: [{ path: '/', service: 'blue' }] })]);
  proxy = await runProxy(dir.dir, ['--workers', '2']);
});

after(async () => {
  await proxy?.stop();
  await Promise.all([blue, green, slow].map((u) => u?.close()));
  await dir?.remove();
});

async function upstreamOf(host: string): Promise<string> {
  const r = await get(proxy.http, '/', { host });
  return r.status === 200 ? (JSON.parse(r.body) as Echo).name : `status ${r.status}`;
}

test('each of the two workers reads plain HTTP into its shared buffer', async () => {
  assert.equal(await metric(proxy.admin, 'vane_proxy_fast_path_shared_reads_workers'), 2);
});

test('manifest changes apply live under load with zero failed requests', async () => {
  const result = await load(proxy.http, 'app.test', async () => {
    await new Promise((r) => setTimeout(r, 300));
    await writeManifests(dir.dir, 'app.json', [...base(), ingress({ name: 'app', host: 'app.test', paths: [{ path: '/', service: 'green' }] }), ingress({ name: 'new', host: 'new.test', paths: [{ path: '/', service: 'blue' }] })]);
    await eventually('the switch to green', async () => (await upstreamOf('app.test')) === 'green');
    await writeManifests(dir.dir, 'app.json', [...base(), ingress({ name: 'app', host: 'app.test', paths: [{ path: '/', service: 'blue' }] }), ingress({ name: 'new', host: 'new.test', paths: [{ path: '/', service: 'blue' }] })]);
    await eventually('the switch back to blue', async () => (await upstreamOf('app.test')) === 'blue');
  }, { maxMs: 20_000 });
  assert.deepEqual(result.errors, []);
  assert.deepEqual(Object.keys(result.statuses), ['200'], JSON.stringify(result.statuses));
  assert.ok((result.upstreams.blue ?? 0) > 0 && (result.upstreams.green ?? 0) > 0, JSON.stringify(result.upstreams));
  assert.equal(await upstreamOf('new.test'), 'blue');
});

test('an invalid object is dropped with the line `vane validate` prints and the rest applies; a bad file keeps its last good objects and holds up no other', async () => {
  const generation = (await readyz(proxy.admin)).generation;
  const bad = ingress({ name: 'bad', host: 'bad.test', paths: [{ path: '/', service: 'green' }], annotations: { 'vane.dev/load-balance': 'random' } });
  await writeManifests(dir.dir, 'app.json', [...base(), ingress({ name: 'app', host: 'app.test', paths: [{ path: '/', service: 'green' }] }), bad]);
  const file = join(dir.dir, 'app.json');
  const cli = fileURLToPath(new URL('../../../cli/main.ts', import.meta.url));
  const validate = await promisify(execFile)(process.execPath, [cli, 'validate', dir.dir]).catch((e: { stdout: string }) => e);
  const expected = validate.stdout.split('\n').find((l) => l.includes('Ingress default/bad'));
  assert.ok(expected?.startsWith(`${file}: Ingress default/bad: metadata.annotations["vane.dev/load-balance"]`), expected);
  await eventually('the error in the log', () => proxy.logs.some((l) => l.level === 'error' && l.msg === expected && l.file === file));
  await eventually('the valid part of the change to apply', async () => (await upstreamOf('app.test')) === 'green');
  assert.equal(await upstreamOf('bad.test'), 'status 404', 'the invalid Ingress has no routes');
  assert.ok((await readyz(proxy.admin)).generation > generation);

  // Half-saved: what app.json last gave keeps serving until it is whole again.
  await writeFile(file, '{"apiVersion": "v1", "kind": "List", "items": [');
  await eventually('the broken file in the log', () => proxy.logs.some((l) => l.level === 'error' && String(l.msg).startsWith(`${file}: not applied; the `)));
  assert.equal(await upstreamOf('app.test'), 'green');

  // An alias bomb in one file holds up no change in another.
  await writeFile(join(dir.dir, 'bomb.yaml'), ALIAS_BOMB);
  await writeManifests(dir.dir, 'new.json', [ingress({ name: 'new', host: 'new.test', paths: [{ path: '/', service: 'blue' }] })]);
  await eventually('the change beside the bomb to apply', async () => (await upstreamOf('new.test')) === 'blue');
  assert.ok(proxy.logs.some((l) => l.level === 'error' && String(l.msg).startsWith(`${join(dir.dir, 'bomb.yaml')}: refused: `)));
  assert.equal(await upstreamOf('app.test'), 'green');

  await rm(join(dir.dir, 'bomb.yaml'));
  await rm(join(dir.dir, 'new.json'));
  await writeManifests(dir.dir, 'app.json', [...base(), ingress({ name: 'app', host: 'app.test', paths: [{ path: '/', service: 'blue' }] })]);
  await eventually('the fixed manifests to apply', async () => (await upstreamOf('app.test')) === 'blue' && (await upstreamOf('new.test')) === 'status 404');
});

test('a worker is replaced under load with zero non-2xx responses; metrics survive it', async () => {
  const before = await readyz(proxy.admin);
  assert.equal(before.workers.length, 2);
  const victim = before.workers[0]!.pid;
  const requestsBefore = await metric(proxy.admin, 'vane_proxy_requests_total', { ingress: 'default/app' });
  const result = await load(proxy.http, 'app.test', async () => {
    await new Promise((r) => setTimeout(r, 300));
    process.kill(victim, 'SIGTERM');
    await eventually('the replacement to serve and the old worker to leave', async () => {
      const now = await readyz(proxy.admin);
      return now.workers.length === 2 && now.workers.every((w) => w.ready && w.pid !== victim);
    }, 15_000);
  }, { maxMs: 20_000, tailMs: 300 });
  assert.deepEqual(result.errors, []);
  assert.deepEqual(Object.keys(result.statuses), ['200'], JSON.stringify(result.statuses));
  assert.ok(result.requests > 100, `${result.requests} requests`);
  const requestsAfter = await metric(proxy.admin, 'vane_proxy_requests_total', { ingress: 'default/app' });
  assert.ok(requestsAfter - requestsBefore >= result.requests, `counted ${requestsAfter - requestsBefore} of ${result.requests}: the retired worker's counts are kept`);
  // Replacements run with the workers' V8 flags too (proxy/primary/worker-flags.ts).
  for (const w of (await readyz(proxy.admin)).workers) {
    const argv = (await readFile(`/proc/${w.pid}/cmdline`, 'utf8')).split('\0');
    assert.ok(argv.includes(`--min-semi-space-size=${WORKER_SEMI_SPACE_MB}`), `worker ${w.pid} runs ${argv.join(' ')}`);
  }
});

test('SIGTERM: readiness fails, requests still flow during the delay, in-flight ones finish, then exit 0', async () => {
  const d = await tempDir();
  await writeManifests(d.dir, 'app.json', [...base(), ingress({ name: 'slow', host: 'slow.test', paths: [{ path: '/', service: 'slow' }] }), ingress({ name: 'app', host: 'app.test', paths: [{ path: '/', service: 'blue' }] })]);
  const p = await runProxy(d.dir, ['--shutdown-delay', '1s', '--drain-timeout', '10s']);
  try {
    const inflight = get(p.http, '/', { host: 'slow.test' });
    await eventually('the slow request to reach the upstream', () => slow.requests > 0);
    p.child.kill('SIGTERM');
    await eventually('readiness to fail', async () => (await get(p.admin, '/readyz')).status === 503);
    assert.equal((await get(p.http, '/', { host: 'app.test' })).status, 200, 'still serving during the shutdown delay');
    await eventually('listeners to close', async () => { try { await get(p.http, '/', { host: 'app.test' }); return false; } catch { return true; } });
    const r = await inflight;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'done');
    assert.equal(await p.exited, 0);
  } finally {
    await p.stop('SIGKILL');
    await d.remove();
  }
});
