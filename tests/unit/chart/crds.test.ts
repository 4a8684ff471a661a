/** charts/vane/crds holds a copy of crds/ (Helm installs CRDs only from the chart's own crds/): the two never drift. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const REPO_CRDS = join(ROOT, 'crds');
const CHART_CRDS = join(ROOT, 'charts', 'vane', 'crds');
const yamlFiles = (dir: string) => readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();

test('the chart ships the same CRD files as crds/', () => {
  assert.deepEqual(yamlFiles(CHART_CRDS), yamlFiles(REPO_CRDS));
  assert.ok(yamlFiles(REPO_CRDS).includes('canaries.vane.dev.yaml'));
});

test('each chart CRD is byte for byte the one in crds/ (copy it again after editing crds/)', () => {
  for (const file of yamlFiles(REPO_CRDS)) {
    const repo = readFileSync(join(REPO_CRDS, file), 'utf8');
    const chart = readFileSync(join(CHART_CRDS, file), 'utf8');
    assert.ok(chart === repo, `charts/vane/crds/${file} differs from crds/${file}: cp crds/${file} charts/vane/crds/${file}`);
  }
});
