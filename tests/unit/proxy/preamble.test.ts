import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseProxyHeader, parseClientHello, NEED_MORE, INVALID } from '../../../proxy/index.ts';

const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

function v2(verCmd: number, fam: number, addr: number[]): Buffer {
  return Buffer.from([...SIG, verCmd, fam, addr.length >> 8, addr.length & 0xff, ...addr]);
}

test('PROXY v1: TCP4, TCP6 and UNKNOWN; the header length excludes what follows', () => {
  const four = parseProxyHeader(Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 50000 443\r\nGET / HTTP/1.1\r\n'));
  assert.deepEqual(four, { length: 44, address: { sourceAddress: '203.0.113.7', sourcePort: 50000, destinationPort: 443 } });
  const six = parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n'));
  assert.deepEqual(six, { length: 40, address: { sourceAddress: '2001:db8::1', sourcePort: 1, destinationPort: 2 } });
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { length: 15, address: null });
});

test('PROXY v1: partial input needs more, malformed input is invalid', () => {
  assert.equal(parseProxyHeader(Buffer.from('PROX')), NEED_MORE);
  assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4')), NEED_MORE);
  assert.equal(parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n')), INVALID);
  assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n')), INVALID);
  assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4\r\n')), INVALID);
  assert.equal(parseProxyHeader(Buffer.from(`PROXY ${'x'.repeat(120)}`)), INVALID, 'longer than the 107-byte maximum');
});

test('PROXY v2: IPv4 and IPv6 (RFC 5952 form), LOCAL, truncated and bad signatures', () => {
  const ipv4 = v2(0x21, 0x11, [198, 51, 100, 9, 192, 0, 2, 1, 0xc3, 0x50, 0x01, 0xbb]);
  assert.deepEqual(parseProxyHeader(Buffer.concat([ipv4, Buffer.from('rest')])), { length: 28, address: { sourceAddress: '198.51.100.9', sourcePort: 50000, destinationPort: 443 } });
  const src6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
  const ipv6 = v2(0x21, 0x21, [...src6, ...src6, 0, 1, 0, 2]);
  assert.deepEqual(parseProxyHeader(ipv6), { length: 52, address: { sourceAddress: '2001:db8::7', sourcePort: 1, destinationPort: 2 } });
  assert.deepEqual(parseProxyHeader(v2(0x20, 0x00, [])), { length: 16, address: null }, 'LOCAL: health checks from the balancer itself');
  assert.equal(parseProxyHeader(ipv4.subarray(0, 20)), NEED_MORE);
  assert.equal(parseProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d, 0x0b])), INVALID);
  assert.equal(parseProxyHeader(v2(0x11, 0x11, [])), INVALID, 'version 1 in the binary form');
});

/** clientHello builds a minimal TLS 1.2-style ClientHello record with an optional SNI extension. */
function clientHello(servername: string | null): Buffer {
  const ext: number[] = [];
  if (servername !== null) {
    const name = [...Buffer.from(servername)];
    const list = [0, name.length >> 8, name.length & 0xff, ...name];
    const data = [list.length >> 8, list.length & 0xff, ...list];
    ext.push(0x00, 0x0b, 0, 4, 0, 0, 1, 0);
    ext.push(0, 0, data.length >> 8, data.length & 0xff, ...data);
  }
  const body = [0x03, 0x03, ...Array(32).fill(7), 0, 0, 2, 0x13, 0x01, 1, 0, ext.length >> 8, ext.length & 0xff, ...ext];
  const hs = [1, 0, body.length >> 8, body.length & 0xff, ...body];
  return Buffer.from([0x16, 0x03, 0x01, hs.length >> 8, hs.length & 0xff, ...hs]);
}

test('ClientHello: the SNI name is found and nothing is consumed', () => {
  assert.deepEqual(parseClientHello(clientHello('pass.example.com')), { length: 0, servername: 'pass.example.com' });
  assert.deepEqual(parseClientHello(clientHello(null)), { length: 0, servername: '' });
});

test('ClientHello: split records need more; plain HTTP is "not TLS"', () => {
  const hello = clientHello('a.test');
  assert.equal(parseClientHello(hello.subarray(0, 3)), NEED_MORE);
  assert.equal(parseClientHello(hello.subarray(0, hello.length - 1)), NEED_MORE);
  assert.deepEqual(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')), { length: 0, servername: '' });
  assert.equal(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff])), INVALID, 'a record larger than TLS allows');
});
