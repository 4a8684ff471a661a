import { test } from 'node:test';
import assert from 'node:assert/strict';
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { canonicalJson, hashValue, sha256Hex, RootAccumulator } from '../../../core/index.ts';

// Golden vectors: if any of these change, every hash a proxy or operator computes changes,
// and mixed-version fleets stop agreeing. Change them only with a compiler version bump.
const vectors: [unknown, string][] = [
  [{ b: 1, a: [1, 2.5, 'x'] }, '{"a":[1,2.5,"x"],"b":1}'],
  [{ '€': 1, '\r': 2, 'ö': 3, '1': 4 }, '{"\\r":2,"1":4,"ö":3,"€":1}'],
  [{ n: [1e21, 1e-7, -0, 0.1, 100] }, '{"n":[1e+21,1e-7,0,0.1,100]}'],
  [{ s: 'line\nbreak "quoted" \u001f' }, '{"s":"line\\nbreak \\"quoted\\" \\u001f"}'],
  [{ nested: { z: null, y: true, x: false } }, '{"nested":{"x":false,"y":true,"z":null}}'],
  [{ dropped: undefined, kept: 1 }, '{"kept":1}'],
];

test('canonicalJson follows RFC 8785', () => {
  for (const [value, want] of vectors) assert.equal(canonicalJson(value), want);
});

test('canonicalJson agrees with the reference RFC 8785 implementation on random JSON', () => {
  fc.assert(fc.property(fc.jsonValue(), (value) => {
    assert.equal(canonicalJson(value), canonicalize(value));
  }), { numRuns: 5000 });
});

test('hashValue is SHA-256 of the canonical form, lowercase hex', () => {
  assert.equal(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(hashValue({ b: 1, a: 2 }), sha256Hex('{"a":2,"b":1}'));
  assert.equal(hashValue({ b: 1, a: 2 }), 'd3626ac30a87e6f7a6428233b3c68299976865fa5508e4267c5415c76af7a772');
});

test('root hash: order-independent, removal restores, count and compiler version matter', () => {
  const pairs: [string, string][] = [['vhost/a', 'h1'], ['backend/x', 'h2'], ['endpoints/x', 'h3']];
  const forward = new RootAccumulator('v1');
  for (const [n, h] of pairs) forward.add(n, h);
  const backward = new RootAccumulator('v1');
  for (const [n, h] of [...pairs].reverse()) backward.add(n, h);
  assert.equal(forward.root(), backward.root());

  const before = forward.root();
  forward.add('secret/y', 'h4');
  assert.notEqual(forward.root(), before);
  forward.remove('secret/y', 'h4');
  assert.equal(forward.root(), before);

  const other = new RootAccumulator('v2');
  for (const [n, h] of pairs) other.add(n, h);
  assert.notEqual(other.root(), before, 'compiler version is part of the root');

  const swapped = new RootAccumulator('v1');
  swapped.add('vhost/a', 'h2');
  swapped.add('backend/x', 'h1');
  swapped.add('endpoints/x', 'h3');
  assert.notEqual(swapped.root(), before, 'a hash moved to another name changes the root');
  assert.equal(new RootAccumulator('v1').root(), new RootAccumulator('v1').root());
});
