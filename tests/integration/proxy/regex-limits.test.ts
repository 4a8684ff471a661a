/**
 * Issue #18 through a real proxy: a regex route or canary header pattern at the program budget,
 * fed hostile 15 KB paths and header values. A path longer than the regex input cap is 414, a
 * header value longer than it does not match the pattern, and the proxy worker's own CPU time
 * (from /proc, so only the regex work the proxy does counts) stays small per request; before
 * the cap each such request cost the worker 0.5–0.7 s.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startUpstream, runProxy, tempDir, writeManifests, ingress, service, INGRESS_CLASS, get, readyz, type Upstream, type RunningProxy } from './harness.ts';
import { MAX_PROGRAM_SIZE, MAX_REGEX_INPUT } from '../../../core/regex.ts';
import { RE2JS } from 're2js';

/** The shape, as many repetitions as the budget allows: every NFA thread stays alive on a run of `a`. */
function worstAllowed(prefix: string): string {
  let n = 1;
  while (RE2JS.compile(`${prefix}(.*a){${n + 1}}x`).programSize() <= MAX_PROGRAM_SIZE) n++;
  return `${prefix}(.*a){${n}}x`;
}

const HOSTILE = 15_000;
const ROUNDS = 20;

let dir: { dir: string; remove(): Promise<void> };
let stable: Upstream;
let canaryUp: Upstream;
let proxy: RunningProxy;

before(async () => {
  dir = await tempDir();
  stable = await startUpstream('stable');
  canaryUp = await startUpstream('canary');
  await writeManifests(dir.dir, 'all.json', [
    INGRESS_CLASS,
    ingress({ name: 're', host: 're.test', annotations: { 'vane.dev/use-regex': 'true' }, paths: [{ path: worstAllowed('/'), pathType: 'ImplementationSpecific', service: 'stable' }] }),
    ingress({ name: 'shop', host: 'shop.test', paths: [{ path: '/', service: 'stable' }] }),
    {
      apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'shop', namespace: 'default' },
      spec: { ingressRef: { name: 'shop' }, service: 'stable', canaryService: { name: 'canary', port: { number: 80 } }, traffic: { weight: 0, header: { name: 'X-User', regex: worstAllowed('') } } },
    },
    ...service('stable', [{ port: stable.port }]),
    ...service('canary', [{ port: canaryUp.port }]),
  ]);
  proxy = await runProxy(dir.dir);
});

after(async () => {
  await proxy.stop();
  await Promise.all([stable.close(), canaryUp.close()]);
  await dir.remove();
});

/** workerCpuMs reads the proxy worker's user + system CPU time; clock ticks are 10 ms on Linux. */
async function workerCpuMs(): Promise<number> {
  const { workers } = await readyz(proxy.admin);
  assert.equal(workers.length, 1);
  const stat = readFileSync(`/proc/${workers[0]!.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

test('a regex route: matched at the cap, 414 beyond it, and hostile paths cost the worker almost nothing', async (t) => {
  const atCap = '/' + 'a'.repeat(MAX_REGEX_INPUT - 2) + 'x';
  const routed = await get(proxy.http, atCap, { host: 're.test' });
  assert.equal(routed.status, 200);
  assert.equal(routed.headers['x-upstream'], 'stable');

  const over = await get(proxy.http, '/' + 'a'.repeat(MAX_REGEX_INPUT), { host: 're.test' });
  assert.equal(over.status, 414);
  assert.match(over.body, /^414 URI Too Long: path too long for this host's regex routes/);

  const before = await workerCpuMs();
  for (let i = 0; i < ROUNDS; i++) assert.equal((await get(proxy.http, '/' + 'a'.repeat(HOSTILE), { host: 're.test' })).status, 414);
  const perRequest = (await workerCpuMs() - before) / ROUNDS;
  t.diagnostic(`${perRequest} ms of worker CPU per hostile request`);
  assert.ok(perRequest < 20, `${perRequest} ms of worker CPU per hostile request`);
});

test('a canary header pattern: matched at the cap, not beyond it, and hostile values cost the worker almost nothing', async (t) => {
  const atCap = 'a'.repeat(MAX_REGEX_INPUT - 1) + 'x';
  assert.equal((await get(proxy.http, '/', { host: 'shop.test', 'x-user': atCap })).headers['x-upstream'], 'canary');
  assert.equal((await get(proxy.http, '/', { host: 'shop.test', 'x-user': 'a' + atCap })).headers['x-upstream'], 'stable');

  const hostile = 'a'.repeat(HOSTILE) + 'x';
  const before = await workerCpuMs();
  for (let i = 0; i < ROUNDS; i++) assert.equal((await get(proxy.http, '/', { host: 'shop.test', 'x-user': hostile })).headers['x-upstream'], 'stable');
  const perRequest = (await workerCpuMs() - before) / ROUNDS;
  t.diagnostic(`${perRequest} ms of worker CPU per hostile request`);
  assert.ok(perRequest < 20, `${perRequest} ms of worker CPU per hostile request`);
});
