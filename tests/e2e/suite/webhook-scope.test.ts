/**
 * What reaches the webhook, through deploy/webhook's rules and matchConditions on the real API
 * server: updates of Vane's Ingresses and of Canaries are judged like creates (and a refused
 * update leaves the object as it was); another controller's Ingress — by spec.ingressClassName
 * or the legacy annotation — never reaches the webhook, however un-Vane-like its annotations.
 * The webhook runs with --default-class, as deploy/webhook runs it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { INGRESS_CONTROLLER, type KubeObject } from '../../../core/index.ts';
import { webhookFixtures } from '../../unit/webhook/helpers.ts';
import { cluster, e2eSkip, type Cluster } from '../harness/index.ts';
import {
  SNIPPET_DENIAL, awaitAdmission, cleanup, installCrds, pointAt, prepareWebhook, readSecret, reviews, snippetIngress, startWebhook,
  type WebhookEnv, type WebhookProcess,
} from './webhook-support.ts';

let c: Cluster;
let env: WebhookEnv;
let webhook: WebhookProcess;
let ca: string;

before(async () => {
  if (e2eSkip) return;
  c = await cluster();
  await installCrds(c);
  env = await prepareWebhook(c, import.meta.url);
  webhook = await startWebhook(env, ['--default-class']);
  await pointAt(env, webhook.url);
  await awaitAdmission(env);
  ca = (await readSecret(env))!.data['ca.crt']!;
});

after(async () => {
  await cleanup(env);
  if (env) await c.kubectl(['delete', 'ingressclass', `other-${env.ns}`, '--ignore-not-found']);
});

interface Stored { metadata: { resourceVersion: string; generation: number; annotations?: Record<string, string> }; spec: Record<string, unknown> }

async function get(resource: string, name: string): Promise<Stored> {
  return JSON.parse(await c.kubectlOk(['-n', env.ns, 'get', resource, name, '-o', 'json'])) as Stored;
}

const web = (annotations: Record<string, string> = {}) => ({
  apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'shop', annotations },
  spec: {
    ingressClassName: 'vane',
    rules: [{ host: 'shop.scope.example', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }],
  },
});

test('an update is judged like a create: a bad Ingress change is refused and the stored Ingress stays as it was', { skip: e2eSkip }, async () => {
  assert.match(await c.kubectlOk(['-n', env.ns, 'apply', '-f', '-'], { input: JSON.stringify(web({ 'vane.dev/read-timeout': '30s' })) }), /ingress\.networking\.k8s\.io\/shop created/);
  const before = await get('ingress', 'shop');

  const r = await c.kubectl(['-n', env.ns, 'apply', '-f', '-'], { input: JSON.stringify(web({ 'vane.dev/read-timeout': '2h' })) });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^Error from server \(Forbidden\): error when applying patch:/);
  assert.match(r.stderr, /admission webhook "ingresses\.vane\.dev" denied the request: metadata\.annotations\["vane\.dev\/read-timeout"\]: /);
  const after = await get('ingress', 'shop');
  assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion, 'not written');
  assert.equal(after.metadata.annotations?.['vane.dev/read-timeout'], '30s');

  // A good change still goes through.
  await c.kubectlOk(['-n', env.ns, 'apply', '-f', '-'], { input: JSON.stringify(web({ 'vane.dev/read-timeout': '45s' })) });
  assert.equal((await get('ingress', 'shop')).metadata.annotations?.['vane.dev/read-timeout'], '45s');
});

test('an update is judged like a create: a Canary patched to a backtracking header regex is refused', { skip: e2eSkip }, async () => {
  const canary = {
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'checkout' },
    spec: { ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web-v2', port: { number: 80 } }, traffic: { header: { name: 'X-Canary', regex: '^always$' } } },
  };
  await c.kubectlOk(['-n', env.ns, 'apply', '-f', '-'], { input: JSON.stringify(canary) });
  const before = await get('canaries.vane.dev', 'checkout');

  const r = await c.kubectl(['-n', env.ns, 'patch', 'canaries.vane.dev', 'checkout', '--type=merge', '-p', '{"spec":{"traffic":{"header":{"name":"X-Canary","regex":"(?i)^(?!never)"}}}}']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^Error from server \(Forbidden\): admission webhook "canaries\.vane\.dev" denied the request: spec\.traffic\.header\.regex: invalid regular expression/);
  const after = await get('canaries.vane.dev', 'checkout');
  assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion, 'not written');
  assert.deepEqual(after.spec, before.spec);
});

test('another controller\'s Ingress never reaches the webhook, even with what Vane would deny', { skip: e2eSkip }, async () => {
  const otherClass = `other-${env.ns}`;
  await c.kubectlOk(['apply', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: otherClass }, spec: { controller: 'example.com/other-controller' } }),
  });
  assert.notEqual('example.com/other-controller', INGRESS_CONTROLLER);
  const fixture = webhookFixtures().find((f) => f.file === 'allowed/ingress-other-class.yaml')!;
  assert.ok(fixture.expect.skipped, 'the fixture is one the webhook lets through without a look');
  const subject = fixture.subject as KubeObject & { spec: { ingressClassName?: string } };
  const byClassName = { ...subject, metadata: { ...subject.metadata, namespace: env.ns }, spec: { ...subject.spec, ingressClassName: otherClass } };
  const byAnnotation = snippetIngress('legacy', { className: null, annotations: { 'kubernetes.io/ingress.class': otherClass } });

  const seen = await reviews(webhook, ca);
  assert.match(await c.kubectlOk(['-n', env.ns, 'apply', '-f', '-'], { input: JSON.stringify(byClassName) }), / created$/m);
  assert.match(await c.kubectlOk(['-n', env.ns, 'apply', '-f', '-'], { input: JSON.stringify(byAnnotation) }), / created$/m);
  const changed = { ...byClassName, metadata: { ...byClassName.metadata, annotations: { ...byClassName.metadata.annotations, 'vane.dev/read-timeout': '2h' } } };
  assert.match(await c.kubectlOk(['-n', env.ns, 'apply', '-f', '-'], { input: JSON.stringify(changed) }), / configured$/m);
  assert.equal((await get('ingress', 'legacy')).metadata.annotations?.['nginx.ingress.kubernetes.io/configuration-snippet'], 'return 200;');
  assert.equal(await reviews(webhook, ca), seen, 'the webhook counted no review');

  // The counter does count: a class-less Ingress is Vane's (the default class) and is judged.
  const classless = await c.kubectl(['-n', env.ns, 'apply', '-f', '-'], { input: JSON.stringify(snippetIngress('classless', { className: null })) });
  assert.notEqual(classless.code, 0);
  assert.ok(classless.stderr.includes(SNIPPET_DENIAL), classless.stderr);
  assert.equal(await reviews(webhook, ca), seen + 1);
});
