/**
 * Backend TLS (issue #19): the vane.dev/backend-* annotations, their validation with field
 * paths, what the route carries, the warnings when HTTPS goes unverified, and that the CA
 * and client key stay in the secret resource.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compile, validate, formatProblem, canonicalJson, type KubeObject, type Secret } from '../../../core/index.ts';
import { ingress, service, slice } from '../../support/objects.ts';
import { selfSigned } from '../../support/tls.ts';

function caSecret(name: string, data: Record<string, string>): Secret {
  const encoded: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) encoded[k] = Buffer.from(v).toString('base64');
  return { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace: 'default' }, data: encoded };
}

function shop(annotations: Record<string, string>): KubeObject {
  return ingress({ name: 'shop', annotations, rules: [{ host: 'shop.test', paths: [{ path: '/', service: 'web' }] }] });
}

const problems = (obj: KubeObject, objects?: KubeObject[]) => {
  const v = validate(obj, objects ? { objects } : {});
  return { errors: v.errors.map(formatProblem), warnings: v.warnings.map(formatProblem) };
};

test('bad backend TLS annotations are errors naming the annotation', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ 'vane.dev/backend-protocol': 'GRPCS' }, /^metadata\.annotations\["vane\.dev\/backend-protocol"\]: must be "HTTP" or "HTTPS", got "GRPCS"/],
    [{ 'vane.dev/backend-tls-secret': 'other/ca' }, /^metadata\.annotations\["vane\.dev\/backend-tls-secret"\]: must be the name of a Secret in the Ingress's namespace/],
    [{ 'vane.dev/backend-tls-secret': 'Bad_Name' }, /backend-tls-secret"\]: must be a Secret name/],
    [{ 'vane.dev/backend-tls-server-name': 'not a name' }, /^metadata\.annotations\["vane\.dev\/backend-tls-server-name"\]: must be a DNS name/],
    [{ 'vane.dev/backend-tls-server-name': '10.0.0.1.' }, /backend-tls-server-name"\]: must be a DNS name/],
    [{ 'vane.dev/backend-tls-verify': 'on' }, /^metadata\.annotations\["vane\.dev\/backend-tls-verify"\]: must be "true" or "false"/],
    [{ 'vane.dev/backend-protocol': 'HTTP', 'vane.dev/backend-tls-secret': 'ca' }, /backend-tls-secret"\]: backend TLS needs HTTPS, but vane\.dev\/backend-protocol is "HTTP"/],
  ];
  for (const [annotations, want] of cases) {
    const { errors } = problems(shop(annotations));
    assert.ok(errors.some((e) => want.test(e)), `${want}: got ${JSON.stringify(errors)}`);
  }
  const fine: Record<string, string>[] = [{ 'vane.dev/backend-protocol': 'https' }, { 'vane.dev/backend-tls-secret': 'backend-ca', 'vane.dev/backend-tls-server-name': 'api.shop.svc' }, { 'vane.dev/backend-tls-verify': 'true' }];
  for (const ok of fine) {
    assert.deepEqual(problems(shop(ok)).errors, [], JSON.stringify(ok));
  }
});

test('HTTPS without a CA is a warning, on its own and with the cluster, as status and the webhook show it', () => {
  const unverified: [Record<string, string>, string][] = [
    [{ 'vane.dev/backend-protocol': 'HTTPS' }, 'backend-protocol'],
    [{ 'vane.dev/backend-tls-secret': 'ca', 'vane.dev/backend-tls-verify': 'false' }, 'backend-tls-verify'],
  ];
  for (const [annotations, key] of unverified) {
    const { warnings } = problems(shop(annotations));
    assert.ok(warnings.some((w) => w.startsWith(`metadata.annotations["vane.dev/${key}"]: HTTPS to the backend is not verified`)), JSON.stringify(warnings));
  }
  assert.ok(!problems(shop({ 'vane.dev/backend-tls-secret': 'ca' })).warnings.some((w) => w.includes('not verified')));
  assert.ok(!problems(shop({ 'vane.dev/backend-tls-verify': 'true' })).warnings.some((w) => w.includes('not verified')), 'the system CAs verify');
  // A Service port that says HTTPS, with no backend TLS annotation: the same warning, from the cluster's view.
  const https = service('web', 'default', [{ name: 'https', port: 443 }]);
  const { warnings } = problems(ingress({ name: 'shop', rules: [{ host: 'shop.test', paths: [{ path: '/', service: 'web', port: 443 }] }] }), [https]);
  assert.ok(warnings.some((w) => w.startsWith('spec.rules[0].http.paths[0].backend.service.name: HTTPS to the backend is not verified')), JSON.stringify(warnings));
});

test('the route carries its backend TLS; the CA and the client key travel only in the secret resource', () => {
  const ca = selfSigned('backend-ca.test');
  const client = selfSigned('proxy-client.test');
  const objects = [
    service('web'), slice('web-a', 'web', [{ ip: '192.0.2.1' }]),
    caSecret('backend-ca', { 'ca.crt': ca.cert, 'tls.crt': client.cert, 'tls.key': client.key }),
    shop({ 'vane.dev/backend-tls-secret': 'backend-ca', 'vane.dev/backend-tls-server-name': 'Web.Shop.svc' }),
  ];
  const { resources, statuses } = compile(objects);
  const vhost = resources.get('vhost/shop.test')!.resource;
  assert.ok(vhost.type === 'vhost');
  assert.deepEqual(vhost.spec.routes[0]!.upstreamTls, { secret: 'secret/default/backend-ca', serverName: 'web.shop.svc', verify: true });
  const secret = resources.get('secret/default/backend-ca')!.resource;
  assert.ok(secret.type === 'secret' && secret.spec.caPem === ca.cert && secret.spec.certificatePem === client.cert && secret.spec.privateKeyPem === client.key);
  const caLine = ca.cert.split('\n')[1]!;
  for (const r of resources.values()) {
    if (r.resource.type === 'secret') continue;
    const text = canonicalJson(r.resource);
    assert.ok(!text.includes(caLine) && !text.includes('PRIVATE KEY') && !text.includes(client.cert.split('\n')[1]!), `${r.resource.name} holds key material`);
  }
  assert.deepEqual(statuses.get('Ingress/default/shop')!.problems, []);
  // A CA-only Secret (tls.crt and tls.key empty, as kubernetes.io/tls allows): verifies, presents no certificate, serves no host.
  const caOnly = compile([...objects.slice(0, 2), caSecret('backend-ca', { 'ca.crt': ca.cert, 'tls.crt': '', 'tls.key': '' }), objects[3]!]);
  const s = caOnly.resources.get('secret/default/backend-ca')!.resource;
  assert.ok(s.type === 'secret' && s.spec.caPem === ca.cert && s.spec.certificatePem === undefined);
  assert.deepEqual(caOnly.statuses.get('Ingress/default/shop')!.problems, []);
});

test('a backend TLS Secret that cannot verify: a warning naming the annotation, and no secret resource to dial unverified with', () => {
  const ca = selfSigned('backend-ca.test');
  const other = selfSigned('other.test');
  const cases: [string, Secret[], RegExp][] = [
    ['missing', [], /Secret default\/backend-ca: Secret not found; requests to this Ingress's backends fail \(502\)/],
    ['no ca.crt', [caSecret('backend-ca', { 'tls.crt': other.cert, 'tls.key': other.key })], /Secret default\/backend-ca: Secret lacks ca\.crt; requests .* fail \(502\) rather than go unverified/],
    ['garbage ca.crt', [caSecret('backend-ca', { 'ca.crt': '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' })], /ca\.crt holds a certificate that does not parse/],
    ['client key of another certificate', [caSecret('backend-ca', { 'ca.crt': ca.cert, 'tls.crt': ca.cert, 'tls.key': other.key })], /tls\.key does not belong to the certificate in tls\.crt; no client certificate is presented/],
  ];
  for (const [why, secrets, want] of cases) {
    const { resources, statuses } = compile([service('web'), ...secrets, shop({ 'vane.dev/backend-tls-secret': 'backend-ca' })]);
    const p = statuses.get('Ingress/default/shop')!.problems.find((x) => x.reason === 'BackendTLSSecretInvalid');
    assert.ok(p && want.test(p.message) && p.field === 'metadata.annotations["vane.dev/backend-tls-secret"]', `${why}: ${JSON.stringify(p)}`);
    assert.ok(!p.message.includes('BEGIN'), 'messages never carry key material');
    const secret = resources.get('secret/default/backend-ca')?.resource;
    assert.ok(secret === undefined || (secret.type === 'secret' && (why === 'client key of another certificate' ? secret.spec.certificatePem === undefined : secret.spec.caPem === undefined)), why);
  }
});
