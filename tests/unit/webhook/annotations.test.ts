/** The core/annotations.ts checks the webhook added or fixed (see docs/webhook.md, "What is denied"). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validate, type KubeObject } from '../../../core/index.ts';

function verdict(annotations: Record<string, string>) {
  return validate({
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress',
    metadata: { name: 'web', namespace: 'shop', annotations },
    spec: { ingressClassName: 'vane', defaultBackend: { service: { name: 'web', port: { number: 80 } } } },
  } as KubeObject);
}

test('vane.dev/__proto__ and other Object.prototype names are unknown annotations, not a crash (regression)', () => {
  for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
    const v = verdict(JSON.parse(`{"vane.dev/${name}": "x"}`) as Record<string, string>);
    assert.deepEqual(v.errors, [], name);
    assert.equal(v.warnings.length, 1, name);
    assert.match(v.warnings[0]!.message, /^unknown Vane annotation; /, name);
  }
});

test('snippet annotations are refused in any letter case and position, under vane.dev/ and ingress-nginx', () => {
  for (const key of ['vane.dev/server-snippet', 'vane.dev/Configuration-Snippet', 'vane.dev/snippet-extra', 'nginx.ingress.kubernetes.io/configuration-snippet',
    'nginx.ingress.kubernetes.io/auth-snippet', 'nginx.ingress.kubernetes.io/stream-snippet', 'nginx.ingress.kubernetes.io/server-snippets']) {
    const v = verdict({ [key]: 'return 200;' });
    assert.deepEqual(v.errors.map((e) => e.field), [`metadata.annotations["${key}"]`], key);
    assert.match(v.errors[0]!.message, /^configuration snippets are not supported/);
  }
});

test('other controllers\' annotations that are not snippets stay none of Vane\'s business', () => {
  const v = verdict({ 'nginx.ingress.kubernetes.io/rewrite-target': '/', 'example.com/snippet': 'x', 'nginx.ingress.kubernetes.io/affinity': 'cookie' });
  assert.deepEqual(v.errors, []);
  assert.deepEqual(v.warnings, []);
});

test('a misspelled Vane annotation is warned with the one it was probably meant to be', () => {
  const cases: [string, string | null][] = [
    ['vane.dev/read-timout', 'vane.dev/read-timeout'],
    ['vane.dev/use-regx', 'vane.dev/use-regex'],
    ['vane.dev/ssl-redirects', 'vane.dev/ssl-redirect'],
    ['vane.dev/canary-weight', null],
  ];
  for (const [key, meant] of cases) {
    const [w] = verdict({ [key]: 'x' }).warnings;
    assert.equal(w?.field, `metadata.annotations["${key}"]`);
    if (meant) assert.ok(w!.message.includes(`did you mean ${meant}?`), w!.message);
    else assert.ok(!w!.message.includes('did you mean'), w!.message);
  }
});

test('ingress-nginx canary annotations: known ones point at the Canary resource, misspelled ones are named', () => {
  const known = verdict({ 'nginx.ingress.kubernetes.io/canary-weight': '10' }).warnings[0]!;
  assert.match(known.message, /declare a Canary/);
  const typo = verdict({ 'nginx.ingress.kubernetes.io/canary-wieght': '10' }).warnings[0]!;
  assert.match(typo.message, /did you mean nginx\.ingress\.kubernetes\.io\/canary-weight\?/);
  const prefixTypo = verdict({ 'nginx.ingress.kubernetes.io/canry': 'true' }).warnings[0]!;
  assert.match(prefixTypo.message, /did you mean nginx\.ingress\.kubernetes\.io\/canary\?/);
});
