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
 * spec, no hash), and every file is checked for PEM before it is written or compared. The
 * sets with TLS Secrets generate their key pairs per run (test.vane.dev/self-signed), so
 * their root hash, which covers the secret resources' hashes, is not recorded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { compile, type KubeObject, type CompileResult } from '../../../core/index.ts';
import { loadManifests } from '../../../lib/manifests.ts';
import { selfSigned } from '../../support/tls.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const GOLDEN_DIR = join(ROOT, 'tests/fixtures/golden');
const UPDATE = process.env.VANE_GOLDEN_UPDATE === '1';
const SELF_SIGNED_ANNOTATION = 'test.vane.dev/self-signed';

/** GOLDEN_SETS names each set and the manifests (files or directories) it compiles. */
const GOLDEN_SETS: Record<string, string[]> = {
  quickstart: ['examples/quickstart'],
  progressive: ['examples/progressive'],
  cluster: ['examples/cluster'],
  invalid: ['tests/fixtures/invalid'],
  conflicts: ['tests/fixtures/golden/conflicts/objects.yaml'],
  tls: ['tests/fixtures/golden/tls/objects.yaml'],
};

/** withGeneratedKeys fills Secrets annotated test.vane.dev/self-signed with a fresh pair: test keys are never committed. */
function withGeneratedKeys(obj: KubeObject): { object: KubeObject; generated: boolean } {
  const names = obj.kind === 'Secret' ? obj.metadata?.annotations?.[SELF_SIGNED_ANNOTATION] : undefined;
  if (!names) return { object: obj, generated: false };
  const { cert, key } = selfSigned(...names.split(','));
  return { object: { ...obj, stringData: { 'tls.crt': cert, 'tls.key': key } } as KubeObject, generated: true };
}

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
    let generated = false;
    const objects = manifests.objects.map(({ object }) => {
      const filled = withGeneratedKeys(object);
      generated ||= filled.generated;
      return filled.object;
    });
    const actual = goldenOf(inputs, compile(objects), !generated);
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
