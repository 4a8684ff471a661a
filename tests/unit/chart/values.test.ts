/** charts/vane: the chart's version metadata follows package.json, and every value in values.yaml is documented. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHART = join(ROOT, 'charts', 'vane');

test('Chart.yaml: apiVersion v2, appVersion is package.json\'s version, Kubernetes 1.30 or newer', () => {
  const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as Record<string, string>;
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(chart.apiVersion, 'v2');
  assert.equal(chart.name, 'vane');
  assert.equal(chart.appVersion, pkg.version);
  assert.equal(chart.kubeVersion, '>=1.30.0-0');
});

test('every key in values.yaml has a comment right above it or on its line', () => {
  const lines = readFileSync(join(CHART, 'values.yaml'), 'utf8').split('\n');
  const undocumented: string[] = [];
  lines.forEach((line, i) => {
    if (!/^\s*[A-Za-z_][\w-]*:/.test(line) || line.includes(' # ')) return;
    const previous = lines[i - 1]?.trim() ?? '';
    if (!previous.startsWith('#')) undocumented.push(`${i + 1}: ${line.trim()}`);
  });
  assert.deepEqual(undocumented, []);
});

test('every top-level value is declared in values.schema.json, which refuses unknown keys', () => {
  const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as { $schema: string; additionalProperties: boolean; properties: Record<string, unknown> };
  assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  assert.equal(schema.additionalProperties, false);
  for (const key of Object.keys(values)) assert.ok(key in schema.properties, `${key} is in the schema`);
});
