/**
 * The adapter is the only door to the API server: outside lib/kube, @kubernetes/client-node is
 * imported for KubeConfig (loading a kubeconfig) and nothing else — no generated API client,
 * no Watch, no request of its own that would escape the adapter's timeouts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

test('only lib/kube sends requests through @kubernetes/client-node; elsewhere it is imported for KubeConfig at most', () => {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) { walk(path); continue; }
      if (!name.endsWith('.ts')) continue;
      const rel = relative(root, path);
      if (rel.startsWith('lib/kube/')) continue;
      const text = readFileSync(path, 'utf8');
      const imports = [...text.matchAll(/import\s*(type\s*)?\{([^}]*)\}\s*from\s*'@kubernetes\/client-node'/g)].flatMap((m) => m[2]!.split(',').map((s) => s.replace(/^\s*type\s+/, '').trim()).filter(Boolean));
      const dynamic = [...text.matchAll(/const\s*\{([^{}]*)\}\s*=\s*await import\('@kubernetes\/client-node'\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.split(':')[0]!.trim()).filter(Boolean));
      const other = [...imports, ...dynamic].filter((n) => n !== 'KubeConfig');
      if (other.length > 0) offenders.push(`${rel}: ${other.join(', ')}`);
    }
  };
  for (const part of ['core', 'operator', 'webhook', 'proxy', 'lib', 'cli']) walk(join(root, part));
  assert.deepEqual(offenders, []);
});
