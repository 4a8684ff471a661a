/**
 * Canary routing through real proxies on the real API server (manual mode): the header
 * rule, then the cookie rule, then the weight, as docs/canary.md says; the weight's accuracy
 * over ≥ 2,000 requests at 1, 10, 50 and 99 percent (binomial 3 sigma); and sticky clients
 * that never flip back to stable while the weight rises.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eSkip, netnsSkip } from '../harness/index.ts';
import { canaryFile, converged, binomialOk, NAME } from './canary-support.ts';

const skip = e2eSkip || netnsSkip;
const CANARY = `${NAME}-v2`;
const world = canaryFile(import.meta.url, skip);

const manual = (weight: number, sticky = false) => ({
  ingressRef: { name: 'shop' }, service: NAME, canaryService: { name: CANARY },
  traffic: { weight, header: { name: 'X-Canary' }, cookie: { name: 'canary' }, sticky },
});

async function setWeight(weight: number, sticky = false): Promise<void> {
  await world().apply(manual(weight, sticky));
  await world().until(`weight ${weight} served by every proxy`, (c) => converged(c) && c.status?.weight === weight && c.status?.proxies?.converged === 2);
}


test('header, then cookie, then weight: always/never force a side, other values fall through', { skip }, async () => {
  await setWeight(0);
  const cases: { name: string; headers: Record<string, string>; want: string }[] = [
    { name: 'no rule, weight 0', headers: {}, want: NAME },
    { name: 'header always', headers: { 'x-canary': 'always' }, want: CANARY },
    { name: 'header name is case-insensitive', headers: { 'X-CANARY': 'always' }, want: CANARY },
    { name: 'cookie always', headers: { cookie: 'canary=always' }, want: CANARY },
    { name: 'header never beats cookie always', headers: { 'x-canary': 'never', cookie: 'canary=always' }, want: NAME },
    { name: 'header with another value falls through to the cookie', headers: { 'x-canary': 'maybe', cookie: 'canary=always' }, want: CANARY },
  ];
  for (const c of cases) {
    const r = await world().send(40, { headers: c.headers });
    assert.deepEqual(r.byBackend, { [c.want]: 40 }, c.name);
  }
  await setWeight(100);
  for (const [name, headers] of [['header never', { 'x-canary': 'never' }], ['cookie never', { cookie: 'canary=never' }]] as const) {
    const r = await world().send(40, { headers });
    assert.deepEqual(r.byBackend, { [NAME]: 40 }, `${name} at weight 100`);
  }
  assert.deepEqual((await world().send(40)).byBackend, { [CANARY]: 40 }, 'weight 100 without rules');
});

test('weight accuracy: ≥ 2,000 requests at 1, 10, 50 and 99 percent, each within binomial 3 sigma, over both proxies', { skip }, async (t) => {
  for (const weight of [1, 10, 50, 99]) {
    await setWeight(weight);
    const r = await world().send(2400, { concurrency: 32 });
    assert.equal(r.requests, 2400);
    assert.deepEqual(r.byStatus, { 200: 2400 });
    const check = binomialOk(r.byBackend[CANARY] ?? 0, 2400, weight / 100);
    t.diagnostic(`weight ${weight}: canary ${check.text}`);
    assert.ok(check.ok, `weight ${weight}: canary ${check.text}`);
  }
});

test('sticky clients keep their side: raising the weight moves only the clients it must, never one back', { skip }, async () => {
  await setWeight(10, true);
  const clients = 300;
  const first = await world().send(clients);
  assert.ok(first.cookies.every((c) => c !== null), 'every new client gets a bucket cookie');
  const jar = first.cookies as string[];
  let sides = first.sides;
  for (const weight of [10, 30, 60, 90]) {
    if (weight !== 10) await setWeight(weight, true);
    const seen: (string | null)[] = [];
    for (let i = 0; i < clients; i += 50) {
      const batch = await Promise.all(jar.slice(i, i + 50).map((cookie) => world().send(1, { headers: { cookie } })));
      seen.push(...batch.map((b) => b.sides[0]!));
    }
    for (let i = 0; i < clients; i++) {
      if (sides[i] === CANARY) assert.equal(seen[i], CANARY, `client ${i} (${jar[i]}) went back to stable at weight ${weight}`);
    }
    const buckets = jar.map((c) => Number(c.split('=')[1]));
    seen.forEach((side, i) => assert.equal(side, buckets[i]! < weight ? CANARY : NAME, `client ${i} with bucket ${buckets[i]} at weight ${weight}`));
    sides = seen;
  }
  assert.ok(sides.filter((s) => s === CANARY).length > clients * 0.8, 'at 90 most clients are on the canary');
});
