/**
 * lib/manifests.ts on real files in a temporary directory: each file parsed on its own within
 * limits (an alias bomb, a document nested too deep, a file over the size limit are each one
 * problem naming the file, and the other files still load), and problem text clipped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, symlinkSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadManifests, parseManifestText, problemLine, MAX_MANIFEST_BYTES, MAX_DEPTH } from '../../../lib/manifests.ts';
import { validate, type Ingress } from '../../../core/index.ts';
import { ALIAS_BOMB } from '../../support/hostile-manifests.ts';

const SERVICE = 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {ports: [{port: 80}]}\n';

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), 'vane-manifests-'));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

test('an alias bomb is one problem naming its file, not an exception', () => {
  const parsed = parseManifestText(ALIAS_BOMB, '/m/bomb.yaml');
  assert.deepEqual(parsed.objects, []);
  assert.equal(parsed.errors.length, 1);
  assert.equal(parsed.errors[0]!.file, '/m/bomb.yaml');
  assert.match(parsed.errors[0]!.message, /alias/i);
});

test('a document nested deeper than the limit is refused, in JSON as in YAML', () => {
  const deep = (n: number) => `{"kind":"Service","metadata":{"name":"x"},"spec":${'['.repeat(n)}${']'.repeat(n)}}`;
  for (const file of ['/m/deep.json', '/m/deep.yaml']) {
    const parsed = parseManifestText(deep(20_000), file);
    assert.deepEqual(parsed.objects, [], file);
    assert.ok(parsed.errors.length > 0 && parsed.errors.every((e) => e.file === file), `${file}: ${JSON.stringify(parsed.errors)}`);
  }
  assert.equal(parseManifestText(deep(MAX_DEPTH - 3), '/m/ok.json').objects.length, 1);
  assert.match(parseManifestText(deep(MAX_DEPTH), '/m/deep.json').errors[0]!.message, new RegExp(`nested deeper than ${MAX_DEPTH} levels`));
});

test('loading several paths reports every bad file and loads every good one', async () => {
  using t = tempDir();
  writeFileSync(join(t.dir, 'a-bomb.yaml'), ALIAS_BOMB);
  writeFileSync(join(t.dir, 'b-good.yaml'), SERVICE);
  writeFileSync(join(t.dir, 'c-broken.yaml'), 'kind: Service\nmetadata: {name: x\n');
  writeFileSync(join(t.dir, 'd-huge.yaml'), '');
  truncateSync(join(t.dir, 'd-huge.yaml'), MAX_MANIFEST_BYTES + 1);
  mkdirSync(join(t.dir, 'sub'));
  writeFileSync(join(t.dir, 'sub', 'e-good.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'api', namespace: 'default' }, spec: { ports: [{ port: 80 }] } }));
  // A symlink to an ancestor would be walked for ever.
  symlinkSync(t.dir, join(t.dir, 'sub', 'loop'));

  const m = await loadManifests([t.dir, join(t.dir, 'missing.yaml')]);
  assert.deepEqual(m.objects.map((o) => `${o.file.slice(t.dir.length)} ${o.object.metadata?.name}`), ['/b-good.yaml web', '/sub/e-good.json api']);
  const bad = m.errors.map((e) => e.file.slice(t.dir.length));
  for (const file of ['/a-bomb.yaml', '/c-broken.yaml', '/d-huge.yaml', '/missing.yaml']) assert.ok(bad.includes(file), `${file} not reported: ${JSON.stringify(m.errors)}`);
  assert.match(m.errors.find((e) => e.file.endsWith('d-huge.yaml'))!.message, /larger than the limit/);
});

test('a 10 MB value is clipped in the problem and in its line; a newline cannot forge a line', () => {
  const huge = 'a'.repeat(10 * 1024 * 1024);
  const ing: Ingress = {
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress',
    metadata: { name: `n\n${huge}`, namespace: 'default' },
    spec: { ingressClassName: 'vane', rules: [{ host: huge, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] },
  };
  const verdict = validate(ing, { objects: [] });
  assert.ok(verdict.errors.length > 0);
  for (const p of verdict.errors) {
    // The limits (1024 and 256) count the text kept, not the clip marker.
    assert.ok(p.message.length <= 1100 && p.field.length <= 300, `${p.field}: ${p.message.length} characters`);
    const line = problemLine('/m/big.yaml', 'Ingress', `default/${ing.metadata!.name}`, p);
    assert.ok(line.length < 2048, `${line.length} characters`);
    assert.ok(!line.includes('\n'));
    assert.match(line, /^\/m\/big\.yaml: Ingress default\/n a+…\[\d+ characters clipped\]…a+: /);
  }
  assert.ok(verdict.errors.some((p) => /characters clipped/.test(p.message)), JSON.stringify(verdict.errors.map((p) => p.message.slice(0, 80))));
});
