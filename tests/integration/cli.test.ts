import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALIAS_BOMB } from '../support/hostile-manifests.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

function vane(...args: string[]) {
  const r = spawnSync(process.execPath, ['cli/main.ts', ...args], { cwd: root, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('vane validate passes the examples', () => {
  const r = vane('validate', 'examples/');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.stdout, '');
});

test('vane validate names file, object, field and message, and exits 1', () => {
  const r = vane('validate', 'tests/fixtures/invalid');
  assert.equal(r.code, 1);
  const lines = r.stdout.trim().split('\n');
  const expect = [
    'tests/fixtures/invalid/canary-errors.yaml: Canary demo/self-split: spec.canaryService.name: must differ from spec.service',
    'tests/fixtures/invalid/canary-errors.yaml: Canary demo/unreachable-steps: spec.analysis.maxWeight: steps of 20 never reach 50',
    'tests/fixtures/invalid/ingress-errors.yaml: Ingress demo/ip-host: spec.rules[0].host: host "192.0.2.10" must be a DNS name, not an IP address',
    'tests/fixtures/invalid/ingress-errors.yaml: Ingress demo/snippet: metadata.annotations["nginx.ingress.kubernetes.io/configuration-snippet"]: configuration snippets are not supported',
    'tests/fixtures/invalid/ingress-errors.yaml: Ingress demo/bad-regex: spec.rules[0].http.paths[0].path: invalid regular expression',
  ];
  for (const prefix of expect) assert.ok(lines.some((l) => l.startsWith(prefix)), `missing: ${prefix}\n${r.stdout}`);
});

test('vane validate reports YAML syntax errors with file and line', () => {
  const r = spawnSync('bash', ['-c', `d=$(mktemp -d) && printf 'kind: Ingress\\nmetadata: {name: x\\n' > $d/bad.yaml && ${JSON.stringify(process.execPath)} cli/main.ts validate $d; rc=$?; rm -rf $d; exit $rc`], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stdout, /bad\.yaml: line \d+: /);
});

test('vane validate reports every file\'s findings — an alias bomb, a broken file, a 10 MB value clipped — not only the first', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vane-validate-'));
  try {
    writeFileSync(join(dir, 'a-bomb.yaml'), ALIAS_BOMB);
    writeFileSync(join(dir, 'b-broken.yaml'), 'kind: Ingress\nmetadata: {name: x\n');
    const huge = 'h'.repeat(10 * 1024 * 1024);
    writeFileSync(join(dir, 'c-huge.yaml'), `apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: huge, namespace: demo}\nspec:\n  ingressClassName: vane\n  rules: [{host: "${huge}"}]\n`);
    writeFileSync(join(dir, 'd-ok.yaml'), 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: ok, namespace: demo, annotations: {vane.dev/load-balance: random}}\nspec: {ingressClassName: vane, defaultBackend: {service: {name: web, port: {number: 80}}}}\n');
    const r = vane('validate', dir);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stdout.length < 8 * 1024, `${r.stdout.length} bytes of output`);
    const lines = r.stdout.trim().split('\n');
    assert.ok(lines.some((l) => l.startsWith(`${join(dir, 'a-bomb.yaml')}: refused: `)), r.stdout);
    assert.ok(lines.some((l) => l.startsWith(`${join(dir, 'b-broken.yaml')}: line `)), r.stdout);
    assert.ok(lines.some((l) => l.startsWith(`${join(dir, 'c-huge.yaml')}: Ingress demo/huge: spec.rules[0].host: `) && /characters clipped/.test(l)), r.stdout);
    assert.ok(lines.some((l) => l.startsWith(`${join(dir, 'd-ok.yaml')}: Ingress demo/ok: metadata.annotations["vane.dev/load-balance"]`)), r.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('vane explain --json on the quickstart', () => {
  const canaryRun = vane('explain', '--from-files', 'examples/quickstart', 'http://shop.example.com/checkout/./pay?x=1', '-H', 'X-Canary: always', '--json');
  assert.equal(canaryRun.code, 0, canaryRun.stderr);
  const out = JSON.parse(canaryRun.stdout);
  assert.equal(out.result, 'routed');
  assert.deepEqual(out.backend, { namespace: 'shop', service: 'checkout-v2', port: 80 });
  assert.equal(out.canary, 'canary');
  assert.equal(out.path, '/checkout/pay?x=1');
  assert.ok(Array.isArray(out.reasons) && out.reasons.some((r: string) => r.includes('always')));

  const stable = JSON.parse(vane('explain', '--from-files', 'examples/quickstart', 'http://shop.example.com/checkout', '--cookie', 'canary=never', '--json').stdout);
  assert.equal(stable.canary, 'stable');
  assert.equal(stable.backend.service, 'checkout');

  const weighted = JSON.parse(vane('explain', '--from-files', 'examples/quickstart', 'http://shop.example.com/checkout', '--bucket', '19.5', '--json').stdout);
  assert.equal(weighted.canary, 'canary', 'bucket 19.5 is inside the 20% split');

  const missing = JSON.parse(vane('explain', '--from-files', 'examples/quickstart', 'http://nowhere.example.com/', '--json').stdout);
  assert.deepEqual([missing.result, missing.backend, missing.canary], ['not-found', null, null]);
});

test('vane explain refuses a bad URL with a usage error', () => {
  const r = vane('explain', '--from-files', 'examples/quickstart', 'not a url');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /not an absolute URL/);
});
