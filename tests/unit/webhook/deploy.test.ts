/** deploy/webhook: the manifests say what docs/webhook.md promises, and match the CLI's names and flags. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeObject } from '../../../core/index.ts';
import { loadManifests } from '../../../lib/manifests.ts';
import { buildProgram } from '../../../cli/main.ts';
import { ROOT } from './helpers.ts';

interface Webhook {
  name: string; failurePolicy: string; sideEffects: string; admissionReviewVersions: string[]; timeoutSeconds: number;
  clientConfig: { caBundle?: string; service: { name: string; namespace: string; path: string; port: number } };
  rules: { apiGroups: string[]; apiVersions: string[]; resources: string[]; operations: string[] }[];
  matchConditions?: { name: string; expression: string }[];
}
type Any = KubeObject & Record<string, unknown>;

const objects = (await loadManifests([`${ROOT}deploy/webhook`])).objects.map((o) => o.object as Any);
const find = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata?.name === name)!;
const config = find('ValidatingWebhookConfiguration', 'vane-webhook') as Any & { webhooks: Webhook[] };
const deployment = find('Deployment', 'vane-webhook') as Any & { spec: { template: { spec: { containers: { args: string[]; ports: { name: string; containerPort: number }[] }[]; serviceAccountName: string } } } };
const args = deployment.spec.template.spec.containers[0]!.args;
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];

test('Canary admission fails closed, Ingress admission fails open; both v1, side-effect free, short timeouts', () => {
  const byName = new Map(config.webhooks.map((w) => [w.name, w]));
  assert.deepEqual([...byName.keys()].sort(), ['canaries.vane.dev', 'ingresses.vane.dev']);
  assert.equal(byName.get('canaries.vane.dev')!.failurePolicy, 'Fail');
  assert.equal(byName.get('ingresses.vane.dev')!.failurePolicy, 'Ignore');
  for (const w of config.webhooks) {
    assert.equal(w.sideEffects, 'None');
    assert.deepEqual(w.admissionReviewVersions, ['v1']);
    assert.ok(w.timeoutSeconds <= 5);
    assert.deepEqual(w.rules.flatMap((r) => r.operations).sort(), ['CREATE', 'UPDATE']);
  }
  assert.deepEqual(byName.get('canaries.vane.dev')!.rules[0]!.resources, ['canaries'], 'not canaries/status: status writes never wait on the webhook');
  assert.deepEqual(byName.get('ingresses.vane.dev')!.rules[0]!.resources, ['ingresses']);
  const ingressCondition = byName.get('ingresses.vane.dev')!.matchConditions?.[0]?.expression ?? '';
  assert.match(ingressCondition, /object\.spec\.ingressClassName == 'vane'/);
  assert.match(ingressCondition, /'kubernetes\.io\/ingress\.class'/);
});

test('no manifest sets caBundle: the webhook owns it, so apply and helm upgrade never blank it', () => {
  for (const w of config.webhooks) assert.equal(w.clientConfig.caBundle, undefined);
});

test('names line up: Service, port, path, Secret, configuration and RBAC resourceNames', () => {
  const service = find('Service', 'vane-webhook') as Any & { spec: { ports: { port: number; targetPort: string }[] } };
  const container = deployment.spec.template.spec.containers[0]!;
  for (const w of config.webhooks) {
    assert.deepEqual(w.clientConfig.service, { name: 'vane-webhook', namespace: 'vane-system', path: '/validate', port: service.spec.ports[0]!.port });
  }
  assert.equal(container.ports.find((p) => p.name === service.spec.ports[0]!.targetPort)!.containerPort, Number(flag('port')));
  const role = find('Role', 'vane-webhook-certs') as Any & { rules: { resources: string[]; resourceNames?: string[]; verbs: string[] }[] };
  const byName = role.rules.find((r) => r.resourceNames)!;
  assert.deepEqual(byName.resourceNames, [flag('secret-name')]);
  assert.deepEqual(byName.verbs, ['get', 'update']);
  assert.deepEqual(role.rules.find((r) => !r.resourceNames)!.verbs, ['create'], 'only create is unlimited by name');
  const clusterRole = find('ClusterRole', 'vane-webhook-cabundle') as Any & { rules: { resourceNames: string[]; verbs: string[]; resources: string[] }[] };
  assert.deepEqual(clusterRole.rules, [{ apiGroups: ['admissionregistration.k8s.io'], resources: ['validatingwebhookconfigurations'], resourceNames: [flag('webhook-config')], verbs: ['get', 'patch'] }]);
  assert.equal(deployment.spec.template.spec.serviceAccountName, 'vane-webhook');
  for (const o of objects) {
    for (const rule of ((o as { rules?: { verbs: string[]; resources: string[] }[] }).rules ?? [])) {
      assert.ok(!rule.verbs.includes('*') && !rule.resources.includes('*'), 'no wildcards');
    }
  }
});

test('every flag the Deployment passes exists on `vane webhook`, and defaults match the manifests', () => {
  const command = buildProgram().commands.find((c) => c.name() === 'webhook')!;
  const longs = new Set(command.options.map((o) => o.long));
  for (const a of args.slice(1)) assert.ok(longs.has(a.split('=')[0]!), `${a} is a vane webhook flag`);
  const defaults = Object.fromEntries(command.options.map((o) => [o.long, o.defaultValue]));
  assert.equal(defaults['--secret-name'], flag('secret-name'));
  assert.equal(defaults['--webhook-config'], flag('webhook-config'));
  assert.equal(defaults['--service-name'], flag('service-name'));
  assert.equal(defaults['--port'], Number(flag('port')));
});
