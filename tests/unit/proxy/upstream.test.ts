import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, Endpoint, DEFAULT_OPTIONS, type OutlierOptions } from '../../../proxy/index.ts';

const settings = { connections: 1, keepAliveMs: 1000, queue: 16, queueTimeoutMs: 1000, waiting: { count: 0 } };
const outlier: OutlierOptions = { consecutiveFailures: 3, baseEjectionMs: 1_000, maxEjectionMs: 5_000, maxEjectionPercent: 50 };

function endpoints(n: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) => new Endpoint(`e${i}`, `http://127.0.0.1:${1000 + i}`, '127.0.0.1', 1000 + i, settings));
}

function cluster(eps: Endpoint[]): Cluster {
  return new Cluster('backend/ns/svc:80', eps, eps);
}

test('round-robin visits every endpoint in turn', () => {
  const eps = endpoints(3);
  const c = cluster(eps);
  const seen = Array.from({ length: 6 }, () => c.pick(false, 0, null)!.key);
  assert.deepEqual(new Set(seen.slice(0, 3)), new Set(['e0', 'e1', 'e2']));
  assert.deepEqual(seen.slice(3), seen.slice(0, 3));
});

test('a retry avoids the endpoint that just failed when there is another', () => {
  const eps = endpoints(2);
  const c = cluster(eps);
  for (let i = 0; i < 10; i++) assert.equal(c.pick(false, 0, eps[0]!), eps[1]);
  for (let i = 0; i < 10; i++) assert.equal(c.pick(true, 0, eps[1]!), eps[0]);
});

test('least-request prefers the endpoint with fewer requests in flight', () => {
  const eps = endpoints(2);
  eps[0]!.inflight = 5;
  const c = cluster(eps);
  for (let i = 0; i < 20; i++) assert.equal(c.pick(true, 0, null), eps[1]);
});

test('consecutive connect failures eject, with doubling back-off capped at the maximum; success resets', () => {
  const eps = endpoints(4);
  const c = cluster(eps);
  const e = eps[0]!;
  assert.equal(c.connectFailed(e, 0, outlier), false);
  assert.equal(c.connectFailed(e, 0, outlier), false);
  assert.equal(c.connectFailed(e, 0, outlier), true);
  assert.equal(e.ejectedUntil, 1_000);
  for (let i = 0; i < 20; i++) assert.notEqual(c.pick(false, 500, null), e, 'no requests while ejected');
  for (let i = 0; i < 3; i++) c.connectFailed(e, 1_500, outlier);
  assert.equal(e.ejectedUntil, 1_500 + 2_000, 'second ejection in a row: twice as long');
  for (let i = 0; i < 3; i++) c.connectFailed(e, 10_000, outlier);
  for (let i = 0; i < 3; i++) c.connectFailed(e, 20_000, outlier);
  assert.equal(e.ejectedUntil, 20_000 + 5_000, 'capped at maxEjectionMs');
  Cluster.succeeded(e);
  for (let i = 0; i < 3; i++) c.connectFailed(e, 30_000, outlier);
  assert.equal(e.ejectedUntil, 31_000, 'a success resets the back-off');
});

test('at most maxEjectionPercent of the endpoints are ejected; a lone endpoint never is', () => {
  const eps = endpoints(4);
  const c = cluster(eps);
  for (const e of eps) for (let i = 0; i < 3; i++) c.connectFailed(e, 0, outlier);
  assert.equal(c.ejectedNow(0), 2);
  const lone = endpoints(1);
  const single = cluster(lone);
  for (let i = 0; i < 10; i++) single.connectFailed(lone[0]!, 0, outlier);
  assert.equal(single.ejectedNow(0), 0);
});

test('when every candidate is ejected the cluster still picks one (panic mode)', () => {
  const eps = endpoints(2);
  const c = cluster(eps);
  for (const e of eps) e.ejectedUntil = 1_000;
  assert.ok(eps.includes(c.pick(false, 0, null)!));
  assert.equal(cluster([]).pick(false, 0, null), null);
});

test('the default outlier parameters are the documented ones', () => {
  assert.deepEqual(DEFAULT_OPTIONS.outlier, { consecutiveFailures: 3, baseEjectionMs: 10_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 });
});
