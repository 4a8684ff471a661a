/**
 * `kubectl vane` on lib/kube: failures that never reach a Canary still read as kubectl's do —
 * a refused connection names the server and its cause, a missing context lists the ones there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../cli/kubectl-vane.ts';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function kubeconfig(dir: string, server: string): string {
  const file = join(dir, 'kubeconfig');
  writeFileSync(file, [
    'apiVersion: v1', 'kind: Config', 'current-context: x',
    'clusters: [{ name: c, cluster: { server: "' + server + '", insecure-skip-tls-verify: true } }]',
    'users: [{ name: u, user: { token: t } }]',
    'contexts: [{ name: x, context: { cluster: c, user: u, namespace: shop } }]',
  ].join('\n'));
  return file;
}

test('kubectl vane: a refused connection is Unreachable with the server and ECONNREFUSED; an unknown context lists the known ones', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vane-kubectl-'));
  try {
    const server = `https://127.0.0.1:${await freePort()}`;
    const file = kubeconfig(dir, server);
    const errs: string[] = [];
    const io = { out: () => {}, err: (t: string) => { errs.push(t); }, now: () => 0 };
    assert.equal(await main(['status', '--kubeconfig', file], io), 1);
    assert.match(errs.at(-1)!, new RegExp(`^error: cannot reach the API server at ${server.replace(/\./g, '\\.')} \\(ECONNREFUSED\\)`));
    assert.equal(await main(['status', '--kubeconfig', file, '--context', 'nope'], io), 1);
    assert.equal(errs.at(-1), 'error: context "nope" does not exist in the kubeconfig (have: x)');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
