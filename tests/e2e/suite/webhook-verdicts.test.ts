/**
 * Every case in tests/fixtures/webhook/{denied,warned,allowed}, applied with the real kubectl
 * to the real API server, which calls `vane webhook --watch-cluster` over TLS. Denials print
 * `admission webhook "….vane.dev" denied the request:` and then exactly the problems core's
 * validate() finds, as `field.path: message`; warnings print as kubectl's `Warning: …` lines,
 * exactly validate()'s warnings on the objects as stored. The cases the CRD refuses first
 * print the CRD's own message.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { formatProblem, validate, type KubeObject } from '../../../core/index.ts';
import { webhookFixtures, type FixtureCase } from '../../unit/webhook/helpers.ts';
import { cluster, e2eSkip, type Cluster } from '../harness/index.ts';
import {
  ROOT, awaitAdmission, cleanup, installCrds, pointAt, prepareWebhook, scopedNamespace, startWebhook, type WebhookEnv,
} from './webhook-support.ts';
import { eventually } from '../../support/wait.ts';

let c: Cluster;
let env: WebhookEnv;

before(async () => {
  if (e2eSkip) return;
  c = await cluster();
  await installCrds(c);
  env = await prepareWebhook(c, import.meta.url, { watchCluster: true });
  const webhook = await startWebhook(env, ['--watch-cluster']);
  await eventually('the object cache to sync', () => webhook.count('object cache synced') === 1);
  await pointAt(env, webhook.url);
  await awaitAdmission(env);
});

after(() => cleanup(env));

const WEBHOOK_OF = { Canary: 'canaries.vane.dev', Ingress: 'ingresses.vane.dev' } as const;

/**
 * crdMessages maps each field path that a CEL rule of crds/ reports on (schema path plus the
 * rule's fieldPath) to the rules' messages.
 */
function crdMessages(): Map<string, string[]> {
  type Schema = { properties?: Record<string, Schema>; items?: Schema; 'x-kubernetes-validations'?: { fieldPath?: string; message?: string }[] };
  const crd = parse(readFileSync(join(ROOT, 'crds/canaries.vane.dev.yaml'), 'utf8')) as { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } };
  const out = new Map<string, string[]>();
  const walk = (schema: Schema, path: string) => {
    for (const rule of schema['x-kubernetes-validations'] ?? []) {
      const field = `${path}${rule.fieldPath ?? ''}`.replace(/^\./, '');
      out.set(field, [...(out.get(field) ?? []), rule.message ?? '']);
    }
    for (const [name, child] of Object.entries(schema.properties ?? {})) walk(child, `${path}.${name}`);
    if (schema.items) walk(schema.items, `${path}[*]`);
  };
  walk(crd.spec.versions[0]!.schema.openAPIV3Schema, '');
  return out;
}

/** The file's own copy of each fixture namespace, in the webhook's scope: `wh-x` → `<file namespace>-wh-x`. */
function remap(fixture: FixtureCase): { context: KubeObject[]; subject: KubeObject; namespaces: string[] } {
  const names = new Map<string, string>();
  const rename = (ns: string) => {
    if (!names.has(ns)) names.set(ns, `${env.ns}-${ns}`);
    return names.get(ns)!;
  };
  const move = (o: KubeObject): KubeObject => {
    const metadata = { ...o.metadata };
    delete metadata.creationTimestamp;
    if (metadata.namespace) metadata.namespace = rename(metadata.namespace);
    return { ...o, metadata } as KubeObject;
  };
  for (const o of fixture.context) if (o.kind === 'Namespace') rename(o.metadata!.name!);
  return { context: fixture.context.filter((o) => o.kind !== 'Namespace').map(move), subject: move(fixture.subject), namespaces: [...names.values()] };
}

async function stored(o: KubeObject): Promise<KubeObject> {
  const resource = o.kind === 'Canary' ? 'canaries.vane.dev' : o.kind!.toLowerCase();
  return JSON.parse(await c.kubectlOk(['-n', o.metadata!.namespace!, 'get', resource, o.metadata!.name!, '-o', 'json'])) as KubeObject;
}

/** verdict is validate() on the subject among the objects the cluster holds, as the operator would compute it. */
async function verdict(subject: KubeObject, context: KubeObject[]): Promise<{ errors: string[]; warnings: string[] }> {
  const classes = (JSON.parse(await c.kubectlOk(['get', 'ingressclasses', '-o', 'json'])) as { items: KubeObject[] }).items
    .map((o) => ({ ...o, apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass' }));
  const v = validate(subject, { objects: [...classes, ...context] });
  return { errors: v.errors.map(formatProblem), warnings: v.warnings.map(formatProblem) };
}

/** warningsOf returns kubectl's `Warning: …` lines, without the prefix. */
function warningsOf(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('Warning: ')).map((l) => l.slice('Warning: '.length));
}

/** sameWarnings: the webhook cuts warnings at 256 characters with an ellipsis. */
function sameWarnings(got: string[], want: string[]): boolean {
  return got.length === want.length && got.every((g, i) => g === want[i] || (g.endsWith('…') && want[i]!.startsWith(g.slice(0, -1))));
}

async function arrange(fixture: FixtureCase): Promise<{ context: KubeObject[]; subject: KubeObject }> {
  const { context, subject, namespaces } = remap(fixture);
  for (const ns of namespaces) await scopedNamespace(env, ns);
  if (context.length) await c.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: context }) });
  return { context, subject };
}

const fixtures = webhookFixtures();
const crd = crdMessages();

test('the fixture sets are there', () => {
  assert.ok(fixtures.filter((f) => f.expect.denied).length >= 8);
  assert.ok(fixtures.filter((f) => f.expect.warning).length >= 8);
});

for (const fixture of fixtures.filter((f) => f.expect.denied)) {
  const kind = fixture.subject.kind as 'Canary' | 'Ingress';
  const field = fixture.expect.denied!;
  test(`denied: ${fixture.file} — ${fixture.expect.crdToo ? 'the CRD refuses' : `${WEBHOOK_OF[kind]} denies`} ${field}`, { skip: e2eSkip }, async () => {
    const { context, subject } = await arrange(fixture);
    const r = await c.kubectl(['apply', '-f', '-'], { input: JSON.stringify(subject) });
    assert.notEqual(r.code, 0, `applied although it should be refused:\n${r.stdout}`);
    const expected = await verdict(subject, await Promise.all(context.map(stored)));
    assert.ok(expected.errors.some((e) => e.startsWith(`${field}: `)), `validate() reports ${field}: ${expected.errors.join('; ')}`);
    if (fixture.expect.crdToo) {
      // Schema validation, CEL rules included, runs before validating admission webhooks.
      const messages = crd.get(field) ?? [];
      assert.ok(messages.length > 0, `crds/ has a rule reporting on ${field}`);
      assert.doesNotMatch(r.stderr, /admission webhook/);
      assert.match(r.stderr, new RegExp(`^The Canary "${subject.metadata!.name}" is invalid: `));
      assert.ok(messages.some((m) => r.stderr.includes(`${field}: Invalid value: `) && r.stderr.includes(m)), `the CRD's message for ${field}:\n${r.stderr}`);
    } else {
      const line = `Error from server (Forbidden): error when creating "STDIN": admission webhook "${WEBHOOK_OF[kind]}" denied the request: ${expected.errors.join('; ')}`;
      assert.ok(r.stderr.split('\n').includes(line), `expected the line\n${line}\nin\n${r.stderr}`);
    }
    const after = await c.kubectl(['-n', subject.metadata!.namespace!, 'get', kind === 'Canary' ? 'canaries.vane.dev' : 'ingress', subject.metadata!.name!]);
    assert.match(after.stderr, /NotFound/, 'nothing was stored');
  });
}

for (const fixture of fixtures.filter((f) => f.expect.warning || f.expect.allowed)) {
  const field = fixture.expect.warning;
  test(`${field ? 'warned' : 'allowed'}: ${fixture.file} — accepted${field ? `, with a warning on ${field}` : ' without warnings'}`, { skip: e2eSkip }, async () => {
    const { context, subject } = await arrange(fixture);
    // The webhook learns of the objects just applied through its watch: a server-side dry run
    // shows when its cache holds them, so the real apply below is judged on the same cluster.
    const settled = (warnings: string[]) => (field ? warnings.some((w) => w.startsWith(`${field}: `)) : warnings.length === 0);
    await eventually(`the webhook's cache to hold the ${context.length} objects applied`, async () => {
      const dry = await c.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify(subject) });
      return dry.code === 0 && settled(warningsOf(dry.stderr));
    }, 10_000);

    const r = await c.kubectl(['apply', '-f', '-'], { input: JSON.stringify(subject) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, / created$/m);
    const expected = await verdict(await stored(subject), await Promise.all(context.map(stored)));
    assert.deepEqual(expected.errors, []);
    const got = warningsOf(r.stderr);
    assert.ok(sameWarnings(got, expected.warnings), `kubectl printed\n${got.join('\n')}\nvalidate() says\n${expected.warnings.join('\n')}`);
    if (field) assert.ok(got.some((w) => w.startsWith(`${field}: `)), `a warning on ${field}`);
    else assert.deepEqual(got, []);
  });
}
