import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { resolveOptions, selfSignedCertificate, ProxyError } from '../../../proxy/index.ts';
import { filterResponseHeaders, nominatedHeaders } from '../../../proxy/http1/headers.ts';

test('response headers: hop-by-hop and Connection-named headers go, repeated headers and byte values stay', () => {
  const raw = ['Content-Type', 'text/plain', 'Connection', 'keep-alive, X-Hop', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked',
    'X-Hop', '1', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'X-Bytes', 'caf\u00e9'].map((s) => Buffer.from(s, 'latin1'));
  const out: string[] = [];
  filterResponseHeaders(raw, out);
  assert.deepEqual(out, ['Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'X-Bytes', 'caf\u00e9']);
});

test('Connection values: the usual ones name no headers', () => {
  assert.equal(nominatedHeaders(null), null);
  assert.equal(nominatedHeaders('keep-alive'), null);
  assert.equal(nominatedHeaders('Close'), null);
  assert.equal(nominatedHeaders('Upgrade'), null);
  assert.deepEqual(nominatedHeaders('close, X-A,x-b ,'), new Set(['x-a', 'x-b']));
});

test('options: defaults, and each bad value named', () => {
  const o = resolveOptions({});
  assert.equal(o.httpPort, 8080);
  assert.equal(o.httpsPort, 8443);
  assert.equal(o.adminPort, 9901);
  assert.equal(o.shutdownDelayMs, 5_000);
  // docs/proxy.md says why: nginx's client_body_timeout, Node's requestTimeout, Envoy's max_pending_requests; no per-client limit behind SNAT.
  assert.deepEqual([o.clientBodyTimeoutMs, o.clientBodyTotalTimeoutMs, o.upstreamQueue, o.upstreamQueueTimeoutMs, o.maxConnectionsPerClient], [60_000, 300_000, 1024, 10_000, 0]);
  const bad: [object, RegExp][] = [
    [{ httpPort: 70000 }, /--http-port/],
    [{ workers: 0 }, /--workers/],
    [{ trustedProxies: ['10.0.0.0/33'] }, /prefix length/],
    [{ trustedProxies: ['not-an-ip'] }, /not an IP address/],
    [{ proxyProtocol: { http: true, https: false } }, /--proxy-protocol needs --proxy-protocol-peers/],
    [{ proxyProtocol: { http: false, https: true }, proxyProtocolPeers: ['10.0.0.0/8', 'lb.example'] }, /--proxy-protocol-peers: "lb.example" is not an IP address/],
    [{ defaultSslCertificate: 'no-slash' }, /namespace\/name/],
    [{ retries: 9 }, /--retries/],
    [{ clientBodyTimeoutMs: 0 }, /--client-body-timeout must be a positive number/],
    [{ clientBodyTotalTimeoutMs: -1 }, /--client-body-total-timeout/],
    [{ upstreamQueue: 1.5 }, /--upstream-queue must be a whole number/],
    [{ upstreamQueueTimeoutMs: 0 }, /--upstream-queue-timeout/],
    [{ maxConnectionsPerClient: -2 }, /--max-connections-per-client/],
    [{ outlier: { consecutiveFailures: 3, baseEjectionMs: 10, maxEjectionMs: 5, maxEjectionPercent: 50 } }, /--outlier-max-ejection/],
  ];
  for (const [partial, message] of bad) {
    assert.throws(() => resolveOptions(partial), (err: unknown) => err instanceof ProxyError && err.code === 'EOPTION' && message.test(err.message));
  }
  assert.deepEqual(resolveOptions({ trustedProxies: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1'] }).trustedProxies.length, 3);
  assert.deepEqual(resolveOptions({ proxyProtocol: { http: true, https: true }, proxyProtocolPeers: ['10.0.0.0/8'] }).proxyProtocolPeers, ['10.0.0.0/8']);
});

test('the self-signed certificate parses, names its hosts and matches its key', () => {
  const c = selfSignedCertificate({ commonName: 'a.test', altNames: ['a.test', '*.b.test', '127.0.0.1', '2001:db8::1'], days: 10 });
  const x = new X509Certificate(c.certificatePem);
  assert.equal(x.subject, 'CN=a.test');
  assert.equal(x.subjectAltName, 'DNS:a.test, DNS:*.b.test, IP Address:127.0.0.1, IP Address:2001:DB8:0:0:0:0:0:1');
  assert.ok(x.checkPrivateKey(createPrivateKey(c.privateKeyPem)));
  assert.ok(x.verify(x.publicKey), 'self-signed');
  assert.equal(x.checkHost('x.b.test'), '*.b.test');
  const days = (Date.parse(x.validTo) - Date.now()) / 86_400_000;
  assert.ok(days > 9.9 && days <= 10);
});
