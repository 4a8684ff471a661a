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

test('PROXY v1: an address or port outside the spec\'s grammar is invalid (header injection through the source address)', () => {
  const cases: Record<string, string> = {
    'a header line in the source address': 'PROXY TCP4 1.2.3.4\nX-Injected:yes 192.0.2.1 5000 80\r\n',
    'a CR in the source address': 'PROXY TCP4 1.2.3.4\rX: y 192.0.2.1 5000 80\r\n',
    'a name for an address': 'PROXY TCP4 localhost 192.0.2.1 5000 80\r\n',
    'an IPv6 address after TCP4': 'PROXY TCP4 2001:db8::1 192.0.2.1 5000 80\r\n',
    'an IPv4 address after TCP6': 'PROXY TCP6 1.2.3.4 2001:db8::2 5000 80\r\n',
    'a zone in an IPv6 address': 'PROXY TCP6 fe80::1%eth0 2001:db8::2 5000 80\r\n',
    'a leading zero in an octet': 'PROXY TCP4 1.2.3.04 192.0.2.1 5000 80\r\n',
    'a bad destination address': 'PROXY TCP4 1.2.3.4 192.0.2.256 5000 80\r\n',
    'a hexadecimal port': 'PROXY TCP4 1.2.3.4 192.0.2.1 0x10 80\r\n',
    'an exponent as a port': 'PROXY TCP4 1.2.3.4 192.0.2.1 5e3 80\r\n',
    'an empty port (two spaces)': 'PROXY TCP4 1.2.3.4 192.0.2.1  80\r\n',
    'a port with a leading zero': 'PROXY TCP4 1.2.3.4 192.0.2.1 05000 80\r\n',
    'a signed port': 'PROXY TCP4 1.2.3.4 192.0.2.1 +5000 80\r\n',
    'an unknown protocol': 'PROXY UDP4 1.2.3.4 192.0.2.1 5000 80\r\n',
  };
  for (const [name, header] of Object.entries(cases)) assert.equal(parseProxyHeader(Buffer.from(header, 'latin1')), INVALID, name);
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n')),
    { length: 44, address: { sourceAddress: '0.0.0.0', sourcePort: 0, destinationPort: 65535 } }, 'the extremes are valid');
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n')),
    { length: 35, address: { sourceAddress: '::ffff:1.2.3.4', sourcePort: 1, destinationPort: 2 } });
});

test('PROXY v2: only TCP over IPv4 or IPv6, or UNSPEC; an IPv4-mapped source reads as IPv4', () => {
  const addr4 = [198, 51, 100, 9, 192, 0, 2, 1, 0xc3, 0x50, 0x01, 0xbb];
  assert.equal(parseProxyHeader(v2(0x21, 0x12, addr4)), INVALID, 'UDP over IPv4');
  assert.equal(parseProxyHeader(v2(0x21, 0x10, addr4)), INVALID, 'IPv4 without a transport');
  assert.equal(parseProxyHeader(v2(0x21, 0x31, Array(216).fill(0))), INVALID, 'a UNIX socket');
  assert.equal(parseProxyHeader(v2(0x21, 0x11, addr4.slice(0, 8))), INVALID, 'an IPv4 block too short for its addresses');
  assert.deepEqual(parseProxyHeader(v2(0x21, 0x00, [])), { length: 16, address: null }, 'UNSPEC: the socket\'s address');
  const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 5];
  assert.deepEqual(parseProxyHeader(v2(0x21, 0x21, [...mapped, ...mapped, 0, 1, 0, 2])),
    { length: 52, address: { sourceAddress: '203.0.113.5', sourcePort: 1, destinationPort: 2 } });
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
