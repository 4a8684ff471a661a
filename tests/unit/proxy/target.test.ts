/**
 * The request's authority (proxy/http1/target.ts): which Host values pass (RFC 3986 `host
 * [":" port]`, without percent escapes or `..`), and how absolute-form targets split.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { absoluteTarget, validHost } from '../../../proxy/http1/target.ts';

test('validHost: names, IPv4 and IPv6 literals, with or without a port', () => {
  for (const host of ['app.test', 'APP.Test', 'app.test.', 'app.test:8080', 'app.test:', 'a-b_c~d.test', "a!$&'()*+,;=b", '192.0.2.1', '192.0.2.1:80',
    '[::1]', '[2001:db8::1]:443', '[::ffff:192.0.2.1]', 'localhost']) {
    assert.equal(validHost(host), true, host);
  }
});

test('validHost: what RFC 3986 does not allow in a host, percent escapes and `..` are refused', () => {
  const refused: Record<string, string> = {
    'a script tag': '<script>',
    'a space': 'app test',
    'a backslash (the open redirect)': 'evil%2ecom\\.wild.test',
    'a backslash alone': 'evil.com\\.wild.test',
    'a percent escape': 'evil%2ecom.wild.test',
    'a slash': 'evil.com/.app.test',
    'userinfo': 'user@app.test',
    'a fragment': 'app.test#x',
    'a query': 'app.test?x',
    'a quote': 'app"test',
    'a tab': 'app\ttest',
    'non-ASCII': 'caf\u00e9.test',
    'a NUL': 'app\u0000.test',
    'empty': '',
    'a port alone': ':80',
    'a port that is not digits': 'app.test:8o',
    'two colons': 'app.test:80:80',
    '..': 'a..b.test',
    'a bracket without an IPv6 address': '[app.test]',
    'an unclosed bracket': '[::1',
    'an IPv6 zone': '[fe80::1%25eth0]',
    'IPvFuture': '[v1.fe80::a+en1]',
    'bytes after an IPv6 literal': '[::1]x',
    'an IPv6 address without brackets': '2001:db8::1',
  };
  for (const [name, host] of Object.entries(refused)) assert.equal(validHost(host), false, name);
});

test('absoluteTarget: http and https targets split into authority and origin form; others are not absolute-form', () => {
  assert.deepEqual(absoluteTarget('http://app.test/a/b?c=d'), { authority: 'app.test', originForm: '/a/b?c=d' });
  assert.deepEqual(absoluteTarget('HTTPS://App.Test:8443'), { authority: 'App.Test:8443', originForm: '/' });
  assert.deepEqual(absoluteTarget('http://app.test?q'), { authority: 'app.test', originForm: '/?q' });
  assert.deepEqual(absoluteTarget('http://[::1]:80/x'), { authority: '[::1]:80', originForm: '/x' });
  assert.deepEqual(absoluteTarget('http://user:pw@app.test/'), { authority: '', originForm: '/' }, 'userinfo: an invalid authority');
  assert.equal(absoluteTarget('/http://app.test/'), null);
  assert.equal(absoluteTarget('ftp://app.test/'), null);
  assert.equal(absoluteTarget('*'), null);
});
