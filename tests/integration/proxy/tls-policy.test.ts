/**
 * TLS policy (issue #19): --tls-min-version refuses older clients in the handshake; HSTS on
 * HTTPS responses of TLS hosts, from the --hsts-* defaults and per host from vane.dev/hsts*,
 * on HTTP/1.1 and HTTP/2, never on plain HTTP.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { connect as h2connect } from 'node:http2';
import { selfSignedCertificate } from '../../../proxy/index.ts';
import {
  startUpstream, runProxy, tempDir, writeManifests, ingress, service, tlsSecret, INGRESS_CLASS, get, type Upstream, type RunningProxy,
} from './harness.ts';

const pair = selfSignedCertificate({ commonName: 'plain.test', altNames: ['plain.test', 'off.test', 'short.test', 'nohsts.test'] });
let dir: { dir: string; remove(): Promise<void> };
let app: Upstream;
let proxy: RunningProxy;

function hstsOf(servername: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: proxy.https, path: '/', servername, rejectUnauthorized: false, agent: false, headers: { host: servername } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.headers['strict-transport-security'] as string | undefined));
    });
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  dir = await tempDir();
  app = await startUpstream('app');
  const host = (name: string, annotations: Record<string, string> = {}, tls = true) =>
    ingress({ name: name.split('.')[0]!, host: name, paths: [{ path: '/', service: 'app' }], annotations: { 'vane.dev/ssl-redirect': 'false', ...annotations }, ...(tls ? { tls: [{ hosts: [name], secretName: 'cert' }] } : {}) });
  await writeManifests(dir.dir, 'all.json', [
    INGRESS_CLASS, tlsSecret('cert', pair), ...service('app', [{ port: app.port }]),
    host('plain.test'),
    host('off.test', { 'vane.dev/hsts': 'false' }),
    host('short.test', { 'vane.dev/hsts-max-age': '600', 'vane.dev/hsts-preload': 'true' }),
    host('nohsts.test', {}, false),
  ]);
  proxy = await runProxy(dir.dir, ['--tls-min-version', 'TLSv1.3', '--hsts-include-subdomains']);
});

after(async () => {
  await proxy?.stop();
  await app?.close();
  await dir?.remove();
});

test('--tls-min-version TLSv1.3: a TLS 1.2 client is refused in the handshake, a TLS 1.3 one served', async () => {
  const handshake = (maxVersion: 'TLSv1.2' | 'TLSv1.3') => new Promise<string>((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port: proxy.https, servername: 'plain.test', rejectUnauthorized: false, maxVersion });
    s.once('secureConnect', () => { resolve(String(s.getProtocol())); s.destroy(); });
    s.once('error', (err: Error & { code?: string }) => resolve(`error ${err.code ?? err.message}`));
  });
  assert.equal(await handshake('TLSv1.3'), 'TLSv1.3');
  assert.match(await handshake('TLSv1.2'), /^error /);
});

test('HSTS: the flags\' defaults on TLS hosts, per-host annotations over them, none without TLS or over plain HTTP', async () => {
  assert.equal(await hstsOf('plain.test'), 'max-age=31536000; includeSubDomains');
  assert.equal(await hstsOf('off.test'), undefined);
  assert.equal(await hstsOf('short.test'), 'max-age=600; includeSubDomains; preload');
  assert.equal(await hstsOf('nohsts.test'), undefined, 'a host without spec.tls served with the default certificate');
  assert.equal((await get(proxy.http, '/', { host: 'plain.test' })).headers['strict-transport-security'], undefined);
});

test('HSTS on HTTP/2 responses too', async () => {
  const session = h2connect(`https://127.0.0.1:${proxy.https}`, { servername: 'short.test', rejectUnauthorized: false });
  try {
    const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = session.request({ ':path': '/', ':authority': 'short.test' });
      req.on('response', (h) => { resolve(h); req.resume(); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(headers['strict-transport-security'], 'max-age=600; includeSubDomains; preload');
  } finally {
    session.close();
  }
});
