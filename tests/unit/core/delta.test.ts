import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { diff, apply, deltaFromHashes, hashesOf, rootOf, ResourceSet, hashValue, type HashedResource, type Resource } from '../../../core/index.ts';

const resourceArb: fc.Arbitrary<HashedResource> = fc.record({
  id: fc.integer({ min: 0, max: 30 }),
  ips: fc.array(fc.constantFrom('192.0.2.1', '192.0.2.2', '192.0.2.3'), { maxLength: 3 }),
}).map(({ id, ips }) => {
  const resource: Resource = { type: 'endpoints', name: `endpoints/ns/svc${id}:80`, spec: { backend: `backend/ns/svc${id}:80`, addresses: ips.map((address) => ({ address, port: 80, ready: true, serving: true, terminating: false })) } };
  return { resource, hash: hashValue(resource) };
});

const setArb = fc.array(resourceArb, { maxLength: 20 }).map((list) => new Map(list.map((r) => [r.resource.name, r])));

test('apply(a, diff(a, b)) has exactly b: same resources, same root (property)', () => {
  fc.assert(fc.property(setArb, setArb, (a, b) => {
    const delta = diff(a, b);
    const result = apply(a, delta);
    assert.equal(rootOf(result), rootOf(b));
    assert.deepEqual([...hashesOf(result)].sort(), [...hashesOf(b)].sort());
    const viaHashes = deltaFromHashes(hashesOf(a), b);
    assert.deepEqual(viaHashes, delta, 'a delta needs only the peer\'s (name, hash) list');
    const unchanged = [...b.keys()].filter((n) => a.get(n)?.hash === b.get(n)!.hash);
    for (const n of unchanged) assert.ok(!delta.upserts.some((r) => r.resource.name === n), 'unchanged resources are not sent');
  }), { numRuns: 300 });
});

test('ResourceSet applies deltas incrementally and agrees with a from-scratch root (property)', () => {
  fc.assert(fc.property(fc.array(setArb, { minLength: 1, maxLength: 6 }), (versions) => {
    const set = new ResourceSet();
    let current = new Map<string, HashedResource>();
    for (const next of versions) {
      const result = set.applyDelta(diff(current, next), rootOf(next));
      assert.ok(result.ok);
      assert.equal(set.root, rootOf(next));
      current = next;
    }
  }), { numRuns: 200 });
});

test('ResourceSet refuses a corrupted delta and keeps what it had', () => {
  const r = (id: number, ip: string): HashedResource => {
    const resource: Resource = { type: 'endpoints', name: `endpoints/ns/s${id}:80`, spec: { backend: `backend/ns/s${id}:80`, addresses: [{ address: ip, port: 80, ready: true, serving: true, terminating: false }] } };
    return { resource, hash: hashValue(resource) };
  };
  const v1 = new Map([[r(1, '192.0.2.1').resource.name, r(1, '192.0.2.1')]]);
  const set = new ResourceSet();
  assert.ok(set.applyDelta(diff(new Map(), v1), rootOf(v1)).ok);
  const rootBefore = set.root;

  const good = r(1, '192.0.2.9');
  const tampered: HashedResource = { resource: { ...good.resource, spec: { ...good.resource.spec, backend: 'backend/evil:1' } } as Resource, hash: good.hash };
  const v2 = new Map([[good.resource.name, good]]);
  const bad = set.applyDelta({ upserts: [tampered], removals: [] }, rootOf(v2));
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? '' : bad.reason, /does not match its hash/);
  assert.equal(set.root, rootBefore);

  const wrongRoot = set.applyDelta({ upserts: [good], removals: [] }, rootOf(v1));
  assert.equal(wrongRoot.ok, false);
  assert.match(wrongRoot.ok ? '' : wrongRoot.reason, /root mismatch/);
  assert.equal(set.root, rootBefore, 'a failed delta leaves the set unchanged');
  assert.equal(set.resources.get(good.resource.name)!.hash, v1.get(good.resource.name)!.hash);
});
