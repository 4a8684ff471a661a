/**
 * Golden snapshots: each example and fixture set below is compiled and compared with the
 * expected.json committed under tests/fixtures/golden/<set>/, so that any change in what
 * the compiler outputs (resources, hashes, statuses) shows as a diff in review.
 *
 * Regenerate after an intended change, then read the diff before committing it:
 *
 *   npm run golden:update
 *
 * Secrets never appear in golden files: a `secret/…` resource is recorded by name only (no
 * spec, no hash), and every file is checked for PEM before it is written or compared. Test
 * key pairs are never committed either: a set's TLS Secrets are generated per run
 * (TEST_SECRETS), so its root hash, which covers the secret resources' hashes, is not recorded.
 *
 * The inputs under tests/fixtures/golden/ are also one cluster to the webhook agreement
 * test (tests/unit/webhook/agreement.test.ts): sets there must not share hosts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { compile, type KubeObject, type CompileResult } from '../../../core/index.ts';
import { loadManifests } from '../../../lib/manifests.ts';
import { selfSigned } from '../../support/tls.ts';
import { tlsSecret } from '../../support/objects.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const GOLDEN_DIR = join(ROOT, 'tests/fixtures/golden');
const UPDATE = process.env.VANE_GOLDEN_UPDATE === '1';

/** GOLDEN_SETS names each set and the manifests (files or directories) it compiles. */
const GOLDEN_SETS: Record<string, string[]> = {
  quickstart: ['examples/quickstart'],
  progressive: ['examples/progressive'],
  cluster: ['examples/cluster'],
  invalid: ['tests/fixtures/invalid'],
  conflicts: ['tests/fixtures/golden/conflicts/objects.yaml'],
  tls: ['tests/fixtures/golden/tls/objects.yaml'],
  'regex-budget': ['tests/fixtures/golden/regex-budget/objects.yaml'],
};

/**
 * TEST_SECRETS: the TLS Secrets a set gets at test time, with fresh self-signed pairs (test
 * keys are never committed) or data that does not parse (which the webhook, seeing no Secret
 * data, would judge differently from `vane validate` in the agreement test).
 */
const TEST_SECRETS: Record<string, () => KubeObject[]> = {
  tls: () => {
    const pair = (name: string, dnsName: string) => {
      const { cert, key } = selfSigned(dnsName);
      return tlsSecret(name, cert, key, 'shop');
    };
    return [
      pair('secure-tls', 'secure.example.com'),
      pair('wild-tls', '*.apps.example.com'),
      pair('fallback-tls', 'fallback.example.com'),
      tlsSecret('garbage', 'not a certificate', 'not a key', 'shop'),
    ];
  },
};

function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortedKeys((value as Record<string, unknown>)[k])]));
}

/** goldenOf renders a compile result as the committed file: pretty, keys sorted, one resource per key. */
function goldenOf(inputs: string[], result: CompileResult, rootIsStable: boolean): string {
  const resources: Record<string, unknown> = {};
  for (const name of [...result.resources.keys()].sort()) {
    const r = result.resources.get(name)!;
    resources[name] = r.resource.type === 'secret' ? { secret: 'key material is never written to golden files' } : { hash: r.hash, spec: r.resource.spec };
  }
  const statuses: Record<string, unknown> = {};
  for (const key of [...result.statuses.keys()].sort()) statuses[key] = result.statuses.get(key)!.problems;
  const golden = {
    inputs,
    root: rootIsStable ? result.root : 'not recorded: this set generates its key pairs per run',
    resources,
    statuses,
  };
  return `${JSON.stringify(sortedKeys(golden), null, 2)}\n`;
}

for (const [name, inputs] of Object.entries(GOLDEN_SETS)) {
  test(`golden: ${name} (${inputs.join(', ')}) compiles to tests/fixtures/golden/${name}/expected.json`, async () => {
    const manifests = await loadManifests(inputs.map((p) => join(ROOT, p)));
    assert.deepEqual(manifests.errors, [], 'the set loads without errors');
    const secrets = TEST_SECRETS[name]?.() ?? [];
    const objects = [...manifests.objects.map(({ object }) => object), ...secrets];
    const actual = goldenOf(inputs, compile(objects), secrets.length === 0);
    assert.doesNotMatch(actual, /-----BEGIN|PRIVATE KEY/, 'no key material in a golden file');
    const file = join(GOLDEN_DIR, name, 'expected.json');
    if (UPDATE) {
      mkdirSync(join(GOLDEN_DIR, name), { recursive: true });
      writeFileSync(file, actual);
      return;
    }
    let expected: string;
    try {
      expected = readFileSync(file, 'utf8');
    } catch {
      assert.fail(`${file} is missing: run \`npm run golden:update\` and commit it`);
    }
    assert.equal(actual, expected, `compiler output for ${name} differs from ${file}; if intended, run \`npm run golden:update\` and review the diff`);
  });
}
