/**
 * `vane webhook` as a real process: certificates bootstrapped into --cert-dir, reviews over
 * HTTPS with objects from --from-files, externally managed certificates reloaded on change,
 * a clean exit on SIGTERM.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertManager, DirCertStore, MemoryCertStore, isCertError, planRotation, policyOf } from '../../../lib/certs/index.ts';
import { reviewBody, ROOT } from '../../unit/webhook/helpers.ts';
import { call } from './client.ts';
import { eventually } from '../../support/wait.ts';

const dirs: string[] = [];
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'vane-webhook-'));
  dirs.push(d);
  return d;
}

interface Started { child: ChildProcess; port: number; logs: () => string; exited: Promise<number | null> }

async function startCli(args: string[]): Promise<Started> {
  const child = spawn(process.execPath, [join(ROOT, 'cli/main.ts'), 'webhook', '--host', '127.0.0.1', '--port', '0', '--shutdown-delay', '0', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, VANE_LOG_LEVEL: 'debug' },
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const port = await eventually('the webhook to listen', () => {
    const line = stderr.split('\n').find((l) => l.includes('"webhook listening"'));
    return line ? (JSON.parse(line) as { port: number }).port : null;
  }, 10_000, { giveUp: () => child.exitCode !== null && `vane webhook exited ${child.exitCode}`, detail: () => stderr });
  return { child, port, logs: () => stderr, exited };
}

function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

test('bootstraps a CA and serving certificate in --cert-dir, reviews with --from-files objects, exits 0 on SIGTERM', async () => {
  const dir = await tempDir();
  const { child, port, logs, exited } = await startCli(['--cert-dir', dir, '--from-files', join(ROOT, 'examples/quickstart')]);
  for (const file of ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']) {
    assert.equal((await stat(join(dir, file))).mode & 0o777, 0o600, `${file} is 0600`);
  }
  const ca = await readFile(join(dir, 'ca.crt'), 'utf8');
  const canary = {
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'checkout', namespace: 'shop' },
    spec: { ingressRef: { name: 'shop' }, service: 'checkout', canaryService: { name: 'checkout-v3' } },
  };
  const warned = (await call(port, { ca, body: reviewBody({ uid: 'cli-1', object: canary }) })).json().response;
  assert.equal(warned.allowed, true);
  assert.deepEqual(warned.warnings, ['spec.canaryService.name: Service shop/checkout-v3 not found; canary requests answer 503']);
  const denied = (await call(port, { ca, body: reviewBody({ uid: 'cli-2', object: { ...canary, spec: { ...canary.spec, canaryService: { name: 'checkout' } } } }) })).json().response;
  assert.equal(denied.allowed, false);
  assert.equal(denied.uid, 'cli-2');
  await eventually('the denial in the log', () => logs().includes('"msg":"admission denied"') && logs().includes('"object":"shop/checkout"'));
  assert.ok(!logs().includes('PRIVATE KEY'), 'no key material in logs');
  child.kill('SIGTERM');
  assert.equal(await exited, 0);

  // A second start adopts what is in the directory instead of creating a new CA.
  const again = await startCli(['--cert-dir', dir]);
  assert.equal((await call(again.port, { ca, method: 'GET', path: '/healthz' })).status, 200);
  assert.equal(await readFile(join(dir, 'ca.crt'), 'utf8'), ca);
  again.child.kill('SIGTERM');
  assert.equal(await again.exited, 0);
});

test('certificates managed outside Vane (tls.crt, tls.key, no ca.key) are served and reloaded when they change', async () => {
  const dir = await tempDir();
  const policy = policyOf({ commonName: 'vane-webhook', ipAddresses: ['127.0.0.1'] });
  const first = planRotation({ stored: null, now: Date.now(), policy, published: null }).next!;
  await writeFile(join(dir, 'tls.crt'), first.certPem);
  await writeFile(join(dir, 'tls.key'), first.keyPem);
  const { child, port, exited } = await startCli(['--cert-dir', dir, '--reload-interval', '100ms']);
  assert.equal((await call(port, { ca: first.caBundlePem, method: 'GET', path: '/healthz' })).fingerprint, fingerprintOf(first.certPem));
  await writeFile(join(dir, 'tls.key'), 'not a key');
  const second = planRotation({ stored: null, now: Date.now(), policy, published: null }).next!;
  await writeFile(join(dir, 'tls.crt'), second.certPem);
  await writeFile(join(dir, 'tls.key'), second.keyPem);
  await eventually('the reloaded certificate', async () => {
    const r = await call(port, { ca: `${first.caBundlePem}${second.caBundlePem}`, method: 'GET', path: '/healthz' });
    return r.fingerprint === fingerprintOf(second.certPem);
  });
  assert.equal((await readdir(dir)).includes('ca.key'), false, 'Vane wrote nothing into a directory it does not manage');
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('bad flags are refused with a usage error before anything starts', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [join(ROOT, 'cli/main.ts'), 'webhook', ...args], { encoding: 'utf8', timeout: 20_000 });
  const neither = run(['--port', '0']);
  assert.equal(neither.status, 2);
  assert.match(neither.stderr, /exactly one of --cert-dir DIR, --kubeconfig FILE or --in-cluster/);
  const watchWithoutCluster = run(['--cert-dir', '/nonexistent', '--watch-cluster']);
  assert.equal(watchWithoutCluster.status, 2);
  assert.match(watchWithoutCluster.stderr, /--watch-cluster needs --kubeconfig FILE or --in-cluster/);
  const badIp = run(['--cert-dir', '/nonexistent', '--ip', 'nope']);
  assert.notEqual(badIp.status, 0);
  assert.match(badIp.stderr, /IPv4 or IPv6/);
});

test('DirCertStore: create once, read back, compare-and-swap, files 0600', async () => {
  const dir = join(await tempDir(), 'certs');
  const store = new DirCertStore(dir);
  assert.equal(await store.read(), null);
  const policy = policyOf({ commonName: 'x', dnsNames: ['localhost'] });
  const bundle = planRotation({ stored: null, now: Date.now(), policy, published: null }).next!;
  const created = await store.create(bundle);
  await assert.rejects(store.create(bundle), (e) => isCertError(e, 'EEXIST'));
  assert.deepEqual(await store.read(), created);
  const next = planRotation({ stored: null, now: Date.now(), policy, published: null }).next!;
  await assert.rejects(store.replace(next, 'stale'), (e) => isCertError(e, 'ECONFLICT'));
  const replaced = await store.replace(next, created.version);
  assert.notEqual(replaced.version, created.version);
  assert.equal((await store.read())!.bundle!.certPem, next.certPem);
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  await mkdir(join(dir, 'sub'));
  await writeFile(join(dir, 'tls.key'), '');
  assert.equal((await store.read())!.bundle, null, 'an incomplete directory is no bundle');
});

test('OpenSSL agrees: the serving certificate verifies for TLS server use under -x509_strict', { skip: spawnSync('openssl', ['version']).status !== 0 && 'openssl not installed' }, async () => {
  const dir = await tempDir();
  const serving = (await new CertManager({ store: new MemoryCertStore(), policy: { commonName: 'vane-webhook', dnsNames: ['vane-webhook.vane-system.svc'], ipAddresses: ['127.0.0.1'] } }).reconcile()).serving;
  await writeFile(join(dir, 'ca.crt'), serving.caBundlePem);
  await writeFile(join(dir, 'tls.crt'), serving.certPem);
  const out = spawnSync('openssl', ['verify', '-x509_strict', '-purpose', 'sslserver', '-verify_hostname', 'vane-webhook.vane-system.svc', '-CAfile', join(dir, 'ca.crt'), join(dir, 'tls.crt')], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /: OK/);
  const ip = spawnSync('openssl', ['verify', '-x509_strict', '-purpose', 'sslserver', '-verify_ip', '127.0.0.1', '-CAfile', join(dir, 'ca.crt'), join(dir, 'tls.crt')], { encoding: 'utf8' });
  assert.equal(ip.status, 0, ip.stderr);
});
