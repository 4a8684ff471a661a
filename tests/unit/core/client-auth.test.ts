/**
 * Client certificate authentication (issue #19): the vane.dev/auth-tls-* annotations, their
 * validation with field paths, and what the virtual host carries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compile, validate, formatProblem, type KubeObject, type Secret } from '../../../core/index.ts';
import { ingress, service } from '../../support/objects.ts';
import { selfSigned } from '../../support/tls.ts';

function shop(annotations: Record<string, string>, name = 'shop', created = '2024-01-01T00:00:00Z'): KubeObject {
  return ingress({ name, created, annotations, tls: [{ hosts: ['shop.test'], secretName: 'shop-tls' }], rules: [{ host: 'shop.test', paths: [{ path: name === 'shop' ? '/' : `/${name}`, service: 'web' }] }] });
}

function caSecret(name: string, ca: string): Secret {
  return { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace: 'default' }, data: { 'ca.crt': Buffer.from(ca).toString('base64'), 'tls.crt': '', 'tls.key': '' } };
}

test('bad client certificate annotations are errors naming the annotation', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ 'vane.dev/auth-tls-secret': 'ns/ca' }, /^metadata\.annotations\["vane\.dev\/auth-tls-secret"\]: must be the name of a Secret in the Ingress's namespace/],
    [{ 'vane.dev/auth-tls-secret': 'ca', 'vane.dev/auth-tls-verify-client': 'required' }, /^metadata\.annotations\["vane\.dev\/auth-tls-verify-client"\]: must be "on", "off", "optional" or "optional_no_ca", got "required"/],
    [{ 'vane.dev/auth-tls-secret': 'ca', 'vane.dev/auth-tls-verify-depth': '0' }, /^metadata\.annotations\["vane\.dev\/auth-tls-verify-depth"\]: must be a whole number from 1 to 10/],
    [{ 'vane.dev/auth-tls-secret': 'ca', 'vane.dev/auth-tls-verify-depth': '1e1' }, /auth-tls-verify-depth"\]: must be a whole number/],
    [{ 'vane.dev/auth-tls-secret': 'ca', 'vane.dev/auth-tls-pass-certificate-to-upstream': 'yes' }, /auth-tls-pass-certificate-to-upstream"\]: must be "true" or "false"/],
    [{ 'vane.dev/auth-tls-verify-client': 'on' }, /^metadata\.annotations\["vane\.dev\/auth-tls-verify-client"\]: needs vane\.dev\/auth-tls-secret/],
  ];
  for (const [annotations, want] of cases) {
    const errors = validate(shop(annotations)).errors.map(formatProblem);
    assert.ok(errors.some((e) => want.test(e)), `${want}: got ${JSON.stringify(errors)}`);
  }
  const warnings = validate(ingress({ name: 'a', annotations: { 'vane.dev/auth-tls-secret': 'ca' }, rules: [{ host: 'a.test', paths: [{ service: 'web' }] }] })).warnings.map(formatProblem);
  assert.ok(warnings.some((w) => w.startsWith('metadata.annotations["vane.dev/auth-tls-secret"]: client certificates are asked for in the TLS handshake')), JSON.stringify(warnings));
});

test('the host carries the oldest Ingress\'s client authentication; its CA travels only in the secret resource', () => {
  const { cert, key } = selfSigned('shop.test');
  const ca = selfSigned('client-ca.test');
  const serving: Secret = { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'shop-tls', namespace: 'default' },
    data: { 'tls.crt': Buffer.from(cert).toString('base64'), 'tls.key': Buffer.from(key).toString('base64') } };
  const objects = [service('web'), serving, caSecret('client-ca', ca.cert),
    shop({ 'vane.dev/auth-tls-secret': 'client-ca', 'vane.dev/auth-tls-verify-client': 'optional', 'vane.dev/auth-tls-verify-depth': '2' }),
    shop({ 'vane.dev/auth-tls-secret': 'other-ca' }, 'newer', '2024-06-01T00:00:00Z')];
  const { resources, statuses } = compile(objects);
  const vhost = resources.get('vhost/shop.test')!.resource;
  assert.ok(vhost.type === 'vhost');
  assert.deepEqual(vhost.spec.clientAuth, { depth: 2, mode: 'optional', passCertificate: false, secret: 'secret/default/client-ca' });
  const secret = resources.get('secret/default/client-ca')!.resource;
  assert.ok(secret.type === 'secret' && secret.spec.caPem === ca.cert);
  assert.ok(!JSON.stringify(vhost).includes(ca.cert.split('\n')[1]!));
  assert.deepEqual(statuses.get('Ingress/default/shop')!.problems, []);
  // Off turns it off; a missing CA is a warning naming the annotation, and the host still asks (and verifies nothing).
  const off = compile([service('web'), serving, shop({ 'vane.dev/auth-tls-secret': 'client-ca', 'vane.dev/auth-tls-verify-client': 'off' })]);
  const offHost = off.resources.get('vhost/shop.test')!.resource;
  assert.ok(offHost.type === 'vhost' && offHost.spec.clientAuth === undefined);
  const missing = compile([service('web'), serving, shop({ 'vane.dev/auth-tls-secret': 'client-ca' })]);
  const p = missing.statuses.get('Ingress/default/shop')!.problems.find((x) => x.reason === 'ClientAuthSecretInvalid');
  assert.ok(p && p.field === 'metadata.annotations["vane.dev/auth-tls-secret"]' && /Secret default\/client-ca: Secret not found; .* refused \(400\)/.test(p.message), JSON.stringify(p));
  const missingHost = missing.resources.get('vhost/shop.test')!.resource;
  assert.ok(missingHost.type === 'vhost' && missingHost.spec.clientAuth?.mode === 'on', 'fails closed');
});
