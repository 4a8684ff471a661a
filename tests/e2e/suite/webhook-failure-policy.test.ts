/**
 * deploy/webhook's failure policies on the real API server. With the webhook stopped, a
 * Canary create fails (Fail: a Canary moves traffic) while an Ingress is stored unchecked
 * (Ignore: GitOps tools and other controllers must never be blocked). When the webhook is back
 * — a new process, adopting the stored certificates — that Ingress is not wedged: a change
 * that leaves the validated fields alone goes through with the errors as warnings, while a
 * change to them is judged.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { cluster, e2eSkip, type Cluster } from '../harness/index.ts';
import {
  SNIPPET_DENIAL, awaitAdmission, cleanup, installCrds, pointAt, prepareWebhook, readConfig, readSecret, snippetIngress, startWebhook,
  type WebhookEnv,
} from './webhook-support.ts';

let c: Cluster;
let env: WebhookEnv;

before(async () => {
  if (e2eSkip) return;
  c = await cluster();
  await installCrds(c);
  env = await prepareWebhook(c, import.meta.url);
});

after(() => cleanup(env));

const canary = {
  apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'checkout' },
  spec: { ingressRef: { name: 'unchecked' }, service: 'web', canaryService: { name: 'web-v2', port: { number: 80 } }, traffic: { weight: 10 } },
};

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(false); });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

test('webhook down: a Canary create fails closed, a Vane Ingress is admitted unchecked; back up, that Ingress is not wedged', { skip: e2eSkip }, async () => {
  const first = await startWebhook(env);
  await pointAt(env, first.url);
  await awaitAdmission(env);
  assert.equal(await first.stop(), 0, 'SIGTERM is a clean exit');
  assert.equal(await refused(first.port), true, 'nothing listens any more');

  const blocked = await c.kubectl(['-n', env.ns, 'apply', '-f', '-'], { input: JSON.stringify(canary) });
  assert.notEqual(blocked.code, 0);
  assert.match(blocked.stderr, /failed calling webhook "canaries\.vane\.dev": .*connect: connection refused/);
  assert.match((await c.kubectl(['-n', env.ns, 'get', 'canaries.vane.dev', 'checkout'])).stderr, /NotFound/);

  const admitted = await c.kubectl(['-n', env.ns, 'apply', '-f', '-'], { input: JSON.stringify(snippetIngress('unchecked')) });
  assert.equal(admitted.code, 0, admitted.stderr);
  assert.match(admitted.stdout, /ingress\.networking\.k8s\.io\/unchecked created/);
  assert.doesNotMatch(admitted.stderr, /Warning/, 'Ignore is silent: the operator\'s status conditions are the backstop');

  const ca = (await readSecret(env))!.data['ca.crt'];
  const second = await startWebhook(env);
  assert.equal(second.count('certificates written'), 0, 'a restart adopts the stored certificates');
  assert.equal((await readSecret(env))!.data['ca.crt'], ca);
  assert.deepEqual((await readConfig(env)).caBundles, [ca, ca]);
  await pointAt(env, second.url);
  await awaitAdmission(env);

  const labelled = await c.kubectl(['-n', env.ns, 'label', 'ingress', 'unchecked', 'team=shop']);
  assert.equal(labelled.code, 0, labelled.stderr);
  assert.ok(labelled.stderr.includes(`Warning: (unchanged, not enforced) ${SNIPPET_DENIAL.slice(SNIPPET_DENIAL.indexOf('metadata.'))}`), labelled.stderr);

  const edited = await c.kubectl(['-n', env.ns, 'annotate', 'ingress', 'unchecked', 'vane.dev/read-timeout=2h']);
  assert.notEqual(edited.code, 0);
  assert.ok(edited.stderr.includes(SNIPPET_DENIAL), edited.stderr);

  assert.match(await c.kubectlOk(['-n', env.ns, 'apply', '-f', '-'], { input: JSON.stringify(canary) }), /canary\.vane\.dev\/checkout created/);
});
