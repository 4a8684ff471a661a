/**
 * Where requests go: canary decisions (header, cookie, weight, sticky), load balancing over
 * ready endpoints with the terminating fallback, outlier ejection and retries.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startUpstream, runProxy, tempDir, writeManifests, ingress, service, INGRESS_CLASS, get, raw, freePort, metric,
  type Upstream, type RunningProxy, type Echo,
} from './harness.ts';

let dir: { dir: string; remove(): Promise<void> };
let stable: Upstream;
let canary: Upstream;
let sticky: Upstream;
let r1: Upstream;
let r2: Upstream;
let term: Upstream;
let proxy: RunningProxy;

function canaryObject(name: string, ingressName: string, svc: string, canarySvc: string, traffic: object): object {
  return {
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary',
    metadata: { name, namespace: 'default', creationTimestamp: '2024-01-01T00:00:00Z' },
    spec: { ingressRef: { name: ingressName }, service: svc, canaryService: { name: canarySvc, port: { number: 80 } }, traffic },
  };
}

before(async () => {
  dir = await tempDir();
  stable = await startUpstream('stable');
  canary = await startUpstream('canary');
  sticky = await startUpstream('sticky');
  r1 = await startUpstream('r1');
  r2 = await startUpstream('r2');
  term = await startUpstream('term');
  const dead = await freePort();
  const dead2 = await freePort();
  await writeManifests(dir.dir, 'all.json', [
    INGRESS_CLASS,
    ingress({ name: 'shop', host: 'shop.test', paths: [{ path: '/', service: 'stable' }] }),
    canaryObject('shop', 'shop', 'stable', 'canary', { weight: 30, header: { name: 'X-Canary' }, cookie: { name: 'canary' } }),
    ingress({ name: 'sticky', host: 'sticky.test', paths: [{ path: '/', service: 'sticky-stable' }] }),
    canaryObject('sticky', 'sticky', 'sticky-stable', 'sticky-canary', { weight: 50, sticky: true }),
    ingress({ name: 'rr', host: 'rr.test', paths: [{ path: '/', service: 'rr' }] }),
    ingress({ name: 'flaky', host: 'flaky.test', paths: [{ path: '/', service: 'flaky' }] }),
    ingress({ name: 'posts', host: 'posts.test', paths: [{ path: '/', service: 'posts' }] }),
    ingress({ name: 'term', host: 'term.test', paths: [{ path: '/', service: 'term' }] }),
    ...service('stable', [{ port: stable.port }]),
    ...service('canary', [{ port: canary.port }]),
    ...service('sticky-stable', [{ port: stable.port }]),
    ...service('sticky-canary', [{ port: sticky.port }]),
    ...service('rr', [{ port: r1.port }, { port: r2.port }]),
    ...service('flaky', [{ port: r1.port }, { port: dead }]),
    ...service('posts', [{ port: r2.port }, { port: dead2 }]),
    ...service('term', [{ port: term.port, ready: false, serving: true, terminating: true }, { port: r1.port, ready: false, serving: false, terminating: true }]),
  ]);
  proxy = await runProxy(dir.dir, ['--outlier-consecutive-failures', '2', '--outlier-base-ejection', '30s']);
});

after(async () => {
  await proxy?.stop();
  await Promise.all([stable, canary, sticky, r1, r2, term].map((u) => u?.close()));
  await dir?.remove();
});

async function who(host: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<string> {
  const r = await get(proxy.http, '/', { host, ...headers }, method, body);
  return r.status === 200 ? (JSON.parse(r.body) as Echo).name : `status ${r.status}`;
}

test('canary header rule: always and never override the weight', async () => {
  for (let i = 0; i < 10; i++) {
    assert.equal(await who('shop.test', { 'x-canary': 'always' }), 'canary');
    assert.equal(await who('shop.test', { 'x-canary': 'never', cookie: 'canary=always' }), 'stable', 'the header rule comes before the cookie rule');
  }
});

test('canary cookie rule', async () => {
  for (let i = 0; i < 10; i++) {
    assert.equal(await who('shop.test', { cookie: 'a=b; canary=always' }), 'canary');
    assert.equal(await who('shop.test', { cookie: 'canary=never' }), 'stable');
  }
});

test('canary cookie rule: the cookie may be in any Cookie line, and a name that only ends like it does not count', async () => {
  const side = async (cookieLines: string) => {
    const r = await raw(proxy.http, `GET / HTTP/1.1\r\nHost: shop.test\r\n${cookieLines}Connection: close\r\n\r\n`);
    return (JSON.parse(r.slice(r.indexOf('\r\n\r\n') + 4)) as Echo).name;
  };
  assert.equal(await side('Cookie: a=b\r\nCookie: x=y; canary=always\r\n'), 'canary');
  assert.equal(await side('Cookie: a=b\r\ncookie: canary=never\r\nCookie: canary=always\r\n'), 'stable', 'the first one wins');
  assert.equal(await side('Cookie: xcanary=never; canary=always\r\n'), 'canary');
  assert.equal(await side('Cookie: xcanary=always\r\nCookie: canary=never\r\n'), 'stable');
});

test('canary weight: about 30% of requests go to the canary', async () => {
  let toCanary = 0;
  const n = 400;
  for (let i = 0; i < n; i++) if ((await who('shop.test')) === 'canary') toCanary++;
  // 30% of 400 = 120, standard deviation ≈ 9.2: ±45 is about five sigmas.
  assert.ok(toCanary > 75 && toCanary < 165, `${toCanary} of ${n} went to the canary`);
});

test('sticky canary: the first response sets the bucket cookie and the client keeps its side', async () => {
  const sides = new Set<string>();
  for (let client = 0; client < 12; client++) {
    const first = await get(proxy.http, '/', { host: 'sticky.test' });
    const setCookie = (first.headers['set-cookie'] as string[] | undefined)?.[0];
    assert.ok(setCookie?.startsWith('vane_bucket='), 'bucket cookie set');
    const cookie = setCookie!.split(';')[0]!;
    const side = (JSON.parse(first.body) as Echo).name;
    sides.add(side);
    for (let i = 0; i < 5; i++) {
      const again = await get(proxy.http, '/', { host: 'sticky.test', cookie });
      assert.equal((JSON.parse(again.body) as Echo).name, side);
      assert.equal(again.headers['set-cookie'], undefined, 'no new cookie once the client has one');
    }
  }
  assert.deepEqual([...sides].sort(), ['stable', 'sticky'], 'both sides were chosen for some clients');
});

test('round-robin spreads requests over the ready endpoints', async () => {
  const counts = new Map<string, number>();
  for (let i = 0; i < 40; i++) { const w = await who('rr.test'); counts.set(w, (counts.get(w) ?? 0) + 1); }
  assert.deepEqual(Object.fromEntries(counts), { r1: 20, r2: 20 });
});

test('serving-but-terminating endpoints are used when none is ready', async () => {
  for (let i = 0; i < 5; i++) assert.equal(await who('term.test'), 'term');
});

test('idempotent requests are retried on another endpoint when the connection fails; others are not', async () => {
  for (let i = 0; i < 6; i++) assert.equal(await who('flaky.test'), 'r1', 'GET never fails: it is retried');
  assert.ok(await metric(proxy.admin, 'vane_proxy_upstream_retries_total', { service: 'default/flaky:80' }) >= 1);
  const posts = [await who('posts.test', {}, 'POST', 'x'), await who('posts.test', {}, 'POST', 'x')].sort();
  assert.deepEqual(posts, ['r2', 'status 502'], 'round-robin sent one POST to the dead endpoint, and it was not retried');
});

test('an endpoint that keeps failing to connect is ejected, so POSTs stop failing', async () => {
  assert.ok(await metric(proxy.admin, 'vane_proxy_outlier_ejections_total', { service: 'default/flaky:80' }) >= 1, 'ejected after consecutive failures');
  const results = [];
  for (let i = 0; i < 10; i++) results.push(await who('flaky.test', { 'content-type': 'text/plain' }, 'POST', 'data'));
  assert.deepEqual(results, Array(10).fill('r1'), 'the ejected endpoint gets no requests during its ejection time');
});
