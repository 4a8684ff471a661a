/**
 * `vane up`, the README's first command, as a person runs it: the operator on a directory,
 * two real proxy processes over the TLS stream, demo backends; requests routed with the
 * canary split; an edit applied live by every proxy; Ctrl-C stops everything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, freePortRange } from '../support/wait.ts';
import { selfSigned } from '../support/tls.ts';
import { connect as tlsConnect } from 'node:tls';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** get sends one request with Host: shop.example.com (fetch may not set Host). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; backend: string | null }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host: 'shop.example.com', ...headers }, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => {
        let backend: string | null = null;
        try { backend = (JSON.parse(text) as { backend?: string }).backend ?? null; } catch { backend = null; }
        resolve({ status: res.statusCode ?? 0, backend });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * quickstartCopy copies examples/quickstart into a temp dir and picks 12 free ports from base:
 * the example's backends (9001–9003) move to base + 9 … base + 11.
 */
async function quickstartCopy(prefix: string): Promise<{ dir: string; manifests: string; base: number }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const manifests = join(dir, 'quickstart');
  cpSync(join(root, 'examples/quickstart'), manifests, { recursive: true });
  const base = await freePortRange(12);
  for (const file of readdirSync(manifests)) {
    const path = join(manifests, file);
    writeFileSync(path, readFileSync(path, 'utf8').replace(/\b900([123])\b/g, (_, n: string) => String(base + 8 + Number(n))));
  }
  return { dir, manifests, base };
}

interface UpRun { child: ChildProcess; out: () => string }

/** startUp runs `vane up` on manifests with the ports quickstartCopy picked, collecting its output. */
function startUp(manifests: string, dir: string, base: number, proxies: number, env: NodeJS.ProcessEnv = process.env): UpRun {
  const child = spawn(process.execPath, [join(root, 'cli/main.ts'), 'up', manifests, '--proxies', String(proxies),
    '--http-port', String(base), '--https-port', String(base + 2), '--admin-port', String(base + 4),
    '--operator-port', String(base + 6), '--operator-admin-port', String(base + 7), '--state-dir', join(dir, 'state')],
  { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  return { child, out: () => out };
}

test('vane up: operator, two proxies over the stream and demo backends; live edits; Ctrl-C stops all', async () => {
  const { dir, manifests, base } = await quickstartCopy('vane-up-');
  // A TLS host, so that key material flows through the operator, the stream and the proxies.
  const cert = selfSigned('secure.example.com');
  writeFileSync(join(manifests, '40-tls.yaml'), [
    'apiVersion: v1', 'kind: Secret', 'type: kubernetes.io/tls', 'metadata: { name: secure-tls, namespace: shop }', 'stringData:',
    `  tls.crt: ${JSON.stringify(cert.cert)}`, `  tls.key: ${JSON.stringify(cert.key)}`, '---',
    'apiVersion: networking.k8s.io/v1', 'kind: Ingress', 'metadata: { name: secure, namespace: shop }', 'spec:', '  ingressClassName: vane',
    '  tls: [{ hosts: [secure.example.com], secretName: secure-tls }]',
    '  rules: [{ host: secure.example.com, http: { paths: [{ path: /, pathType: Prefix, backend: { service: { name: storefront, port: { number: 80 } } } }] } }]', '',
  ].join('\n'));
  const { child, out } = startUp(manifests, dir, base, 2, { ...process.env, VANE_LOG_LEVEL: 'debug' });
  try {
    await eventually('the fleet to converge', () => out().includes('Ctrl-C stops everything'), 60_000);
    assert.match(out(), /proxy-0 {2}http:\/\/127\.0\.0\.1:\d+/);
    assert.match(out(), /proxy-1 {2}http:\/\/127\.0\.0\.1:\d+/);

    for (const port of [base, base + 1]) {
      assert.deepEqual(await get(port, '/checkout', { 'x-canary': 'always' }), { status: 200, backend: 'checkout-v2' });
      assert.deepEqual(await get(port, '/checkout', { 'x-canary': 'never' }), { status: 200, backend: 'checkout' });
      assert.deepEqual(await get(port, '/'), { status: 200, backend: 'storefront' });
    }
    const seen = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const r = await get(base + (i % 2), '/checkout');
      seen.set(r.backend ?? String(r.status), (seen.get(r.backend ?? String(r.status)) ?? 0) + 1);
    }
    const canary = seen.get('checkout-v2') ?? 0;
    // 20% of 200: mean 40, sd ≈ 5.7; 3 sd either side.
    assert.ok(canary >= 23 && canary <= 57, `canary share at weight 20: ${canary}/200 (${JSON.stringify([...seen])})`);

    const served = await new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: base + 2, servername: 'secure.example.com', rejectUnauthorized: false }, () => {
        resolve(socket.getPeerX509Certificate()?.subject ?? '');
        socket.end();
      });
      socket.on('error', reject);
    });
    assert.match(served, /CN=secure\.example\.com/, 'the proxy serves the Secret\'s certificate by SNI');
    const keyLine = cert.key.split('\n')[1]!;
    const exposed = [out(), await (await fetch(`http://127.0.0.1:${base + 4}/metrics`)).text(), await (await fetch(`http://127.0.0.1:${base + 7}/metrics`)).text(),
      readFileSync(join(dir, 'state', 'proxy-0', 'routing.json'), 'utf8')];
    for (const text of exposed) {
      assert.ok(!text.includes('PRIVATE KEY') && !text.includes(keyLine), 'no private key in any log line, metric or persisted non-secret file');
    }

    const canaryFile = join(manifests, '30-canary.yaml');
    writeFileSync(canaryFile, readFileSync(canaryFile, 'utf8').replace('weight: 20', 'weight: 100'));
    for (const port of [base, base + 1]) {
      await eventually(`proxy on ${port} to follow the edit`, async () => {
        for (let i = 0; i < 20; i++) if ((await get(port, '/checkout')).backend !== 'checkout-v2') return false;
        return true;
      });
    }
  } finally {
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGINT');
    const code = await exited;
    assert.equal(code, 0, out().slice(-2000));
    await assert.rejects(get(base, '/'), 'proxies are stopped');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('vane up routes to a backend that already listens where the manifests point, and starts demo backends only elsewhere', async () => {
  const { dir, manifests, base } = await quickstartCopy('vane-up-own-');
  // The developer's own storefront (the quickstart's 9001, moved to base + 9) runs already.
  const own = createServer((req, res) => { req.resume(); res.end(JSON.stringify({ backend: 'my-own-storefront' })); });
  await new Promise<void>((r) => own.listen(base + 9, '127.0.0.1', () => r()));
  const { child, out } = startUp(manifests, dir, base, 1);
  try {
    await eventually('the fleet to converge', () => out().includes('Ctrl-C stops everything'), 60_000);
    assert.match(out(), new RegExp(`backend storefront: http://127\\.0\\.0\\.1:${base + 9} already listens; using it as it is`));
    assert.match(out(), /demo backend checkout on /, 'the other backends are demo backends');
    assert.deepEqual(await get(base, '/'), { status: 200, backend: 'my-own-storefront' });
    assert.deepEqual(await get(base, '/checkout', { 'x-canary': 'never' }), { status: 200, backend: 'checkout' });
  } finally {
    // (vane up may have exited already: then its exit code and output say why.)
    const exited = child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGINT');
    try {
      assert.equal(await exited, 0, out().slice(-2000));
      // Stopping vane up leaves the developer's service alone.
      assert.deepEqual(await get(base + 9, '/'), { status: 200, backend: 'my-own-storefront' });
    } finally {
      own.closeAllConnections();
      own.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('vane up killed outright (SIGKILL, no chance to clean up) takes its proxies with it', async () => {
  const { dir, manifests, base } = await quickstartCopy('vane-up-kill-');
  const { child, out } = startUp(manifests, dir, base, 1);
  try {
    await eventually('the fleet to converge', () => out().includes('Ctrl-C stops everything'), 60_000);
    assert.deepEqual(await get(base, '/checkout', { 'x-canary': 'never' }), { status: 200, backend: 'checkout' });
    child.kill('SIGKILL');
    // The proxy is a process of its own: only its IPC channel to vane up tells it the parent is gone.
    await eventually('the orphaned proxy to stop listening', () => get(base, '/').then(() => false, () => true), 20_000);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
