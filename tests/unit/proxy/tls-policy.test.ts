/** --tls-* and --hsts-* (issue #19): checked when the proxy starts, naming the flag. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveOptions } from '../../../proxy/options.ts';

test('proxy flags: a TLS policy OpenSSL refuses, or an HSTS max-age out of range, stops the start naming the flag', () => {
  assert.throws(() => resolveOptions({ tls: { minVersion: 'TLSv1.2', ciphers: 'NO-SUCH-CIPHER', curves: null } }), /--tls-ciphers: OpenSSL refuses "NO-SUCH-CIPHER"/);
  assert.throws(() => resolveOptions({ tls: { minVersion: 'TLSv1.2', ciphers: null, curves: 'P-999' } }), /--tls-curves: OpenSSL refuses "P-999"/);
  assert.throws(() => resolveOptions({ tls: { minVersion: 'TLSv1.1' as 'TLSv1.2', ciphers: null, curves: null } }), /--tls-min-version must be TLSv1\.2 or TLSv1\.3/);
  assert.throws(() => resolveOptions({ hsts: { enabled: true, maxAgeSec: -1, includeSubDomains: false, preload: false } }), /--hsts-max-age must be whole seconds/);
  assert.doesNotThrow(() => resolveOptions({ tls: { minVersion: 'TLSv1.3', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', curves: 'X25519:P-256' } }));
});
