import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizePath, normalizeHost } from '../../../core/index.ts';

const merged: [string, string | null, string][] = [
  ['/', '/', 'root'],
  ['/foo/bar', '/foo/bar', 'already normal'],
  ['/foo/', '/foo/', 'trailing slash kept'],
  ['/public/../admin', '/admin', 'dot-dot climbs one segment'],
  ['/../../admin', '/admin', 'dot-dot never climbs above the root'],
  ['//admin', '/admin', 'merged leading slashes'],
  ['/a//b///c', '/a/b/c', 'merged inner slashes'],
  ['/a/./b', '/a/b', 'single dot removed'],
  ['/a/b/..', '/a/', 'trailing dot-dot leaves a directory'],
  ['/a/b/.', '/a/b/', 'trailing dot leaves a directory'],
  ['/public/%2e%2e/admin', '/admin', 'encoded dots are dot segments'],
  ['/public/%2E%2e/admin', '/admin', 'mixed-case encoded dots'],
  ['/public/.%2e/admin', '/admin', 'half-encoded dot-dot'],
  ['/admin%2F..', '/admin%2F..', '%2F is never a separator'],
  ['/admin%2f..', '/admin%2F..', '%2f is upper-cased, still not a separator'],
  ['/a%5C..%5Cadmin', '/a%5C..%5Cadmin', '%5C is never a separator'],
  ['/%7Euser', '/~user', 'unreserved tilde decoded'],
  ['/caf%c3%a9', '/caf%C3%A9', 'non-ASCII escapes keep their bytes, upper-case hex'],
  ['/a%20b', '/a%20B'.replace('B', 'b'), 'space stays encoded'],
  ['/bad%zz', null, 'malformed escape is invalid'],
  ['/bad%2', null, 'truncated escape is invalid'],
  ['relative', null, 'not origin-form'],
  ['*', null, 'asterisk-form is not routed'],
];

test('normalizePath (slashes merged, the default)', () => {
  for (const [input, want, why] of merged) assert.equal(normalizePath(input, true), want, `${input}: ${why}`);
});

test('normalizePath with slash merging off keeps empty segments but still removes dot segments', () => {
  assert.equal(normalizePath('//admin', false), '//admin');
  assert.equal(normalizePath('/a//../b', false), '/a/b');
  assert.equal(normalizePath('/a/./b', false), '/a/b');
});

test('normalizeHost strips port and trailing dot and lower-cases', () => {
  const cases: [string | undefined, string][] = [
    ['Shop.Example.COM', 'shop.example.com'],
    ['shop.example.com:8080', 'shop.example.com'],
    ['shop.example.com.', 'shop.example.com'],
    ['[::1]:8443', '[::1]'],
    ['127.0.0.1:80', '127.0.0.1'],
    [undefined, ''],
    ['', ''],
  ];
  for (const [input, want] of cases) assert.equal(normalizeHost(input), want, String(input));
});
