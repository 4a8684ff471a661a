/**
 * `vane webhook --watch-cluster` against the real API server: the cache holds the kinds the
 * verdicts read and nothing else, TLS Secrets as metadata only — no `data`, no annotation
 * repeating it, no byte of a private key anywhere — and no other Secret at all. Cross-object
 * warnings follow the cluster: a Canary whose Ingress does not exist yet is admitted with a
 * warning that goes away once the Ingress is there. The last test runs the real process as a
 * ServiceAccount holding exactly the RBAC the Helm chart grants for it (WATCH_RULES).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { KubeConfig } from '@kubernetes/client-node';
import { OBJECT_KINDS, type KubeObject, type Secret } from '../../../core/index.ts';
import { reviewAdmission } from '../../../webhook/index.ts';
import { watchCluster, type ClusterCache } from '../../../cli/webhook.ts';
import { selfSigned } from '../../support/tls.ts';
import { reviewBody } from '../../unit/webhook/helpers.ts';
import { cluster, e2eSkip, type Cluster } from '../harness/index.ts';
import {
  WATCH_RULES, awaitAdmission, cleanup, installCrds, pointAt, prepareWebhook, startWebhook, type WebhookEnv,
} from './webhook-support.ts';
import { eventually } from '../../support/wait.ts';

let c: Cluster;
let ns: string;
let env: WebhookEnv;
let watched: ClusterCache | undefined;
const logs: { level: number; msg: string; kind?: string; err?: string }[] = [];

before(async () => {
  if (e2eSkip) return;
  c = await cluster();
  await installCrds(c);
  ns = await c.namespace('webhook-cluster-watch-cache');
});

after(async () => {
  await watched?.close();
  await cleanup(env);
});

function tlsSecret(name: string, pair: { cert: string; key: string }, namespace = ns): KubeObject {
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace, labels: { app: 'shop' } },
    data: { 'tls.crt': Buffer.from(pair.cert).toString('base64'), 'tls.key': Buffer.from(pair.key).toString('base64') },
  } as KubeObject;
}

/** fragments: pieces of a PEM key that any copy of it would show — its base64 lines, and the base64 of the PEM as `data` holds it. */
function fragments(pem: string): string[] {
  const lines = pem.split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----'));
  const data = Buffer.from(pem).toString('base64');
  const chunks: string[] = [];
  for (let i = 0; i + 24 <= data.length; i += 24) chunks.push(data.slice(i, i + 24));
  return [...lines, ...chunks];
}

function everything(cache: ClusterCache['cache']): KubeObject[] {
  return OBJECT_KINDS.flatMap((kind) => [...cache.list(kind)]);
}

/** apply is `kubectl apply` without --server-side: it stores the whole object, data included, in the last-applied annotation. */
async function apply(...objects: KubeObject[]): Promise<string> {
  return c.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) });
}

function logger() {
  return pino({ level: 'info' }, new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line) as (typeof logs)[number]);
      done();
    },
  }));
}

test('the cache holds TLS Secrets as metadata only, never a byte of a key, and no other Secret or EndpointSlice', { skip: e2eSkip }, async () => {
  const listed = selfSigned('listed.cache.example');
  const watchedPair = selfSigned('watched.cache.example');
  const rotated = selfSigned('rotated.cache.example');
  const opaque = selfSigned('opaque.cache.example');
  // Listed: exists before the cache starts.
  await apply(tlsSecret('listed-tls', listed));
  const stored = JSON.parse(await c.kubectlOk(['-n', ns, 'get', 'secret', 'listed-tls', '-o', 'json'])) as KubeObject;
  const lastApplied = stored.metadata?.annotations?.['kubectl.kubernetes.io/last-applied-configuration'] ?? '';
  assert.ok(fragments(listed.key).some((f) => lastApplied.includes(f)), 'the stored Secret repeats its key in an annotation (what the cache must drop)');

  const kc = new KubeConfig();
  kc.loadFromFile(c.kubeconfig);
  watched = await watchCluster(kc, logger());
  const { cache } = watched;
  await eventually('the cache to sync', () => cache.synced(), 30_000);

  const cached = cache.get('Secret', ns, 'listed-tls');
  assert.ok(cached, 'a TLS Secret that existed before the cache started is in it');
  assert.deepEqual(Object.keys(cached).sort(), ['apiVersion', 'kind', 'metadata', 'type']);
  assert.equal((cached as Secret).type, 'kubernetes.io/tls');
  assert.deepEqual(Object.keys(cached.metadata!).sort(), ['creationTimestamp', 'labels', 'name', 'namespace', 'resourceVersion', 'uid']);
  assert.deepEqual(cached.metadata!.labels, { app: 'shop' });

  // Watched: created after the first list; an Opaque Secret holding a key and an EndpointSlice
  // come first, and a TLS Secret written last is the barrier — one watch stream per kind keeps
  // order, so once the barrier is cached, what came before it would have been too.
  await apply(
    { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'opaque', namespace: ns }, stringData: { 'tls.key': opaque.key } } as KubeObject,
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-x', namespace: ns, labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'] }] } as KubeObject,
    tlsSecret('watched-tls', watchedPair),
  );
  // Modified: a new key for a listed Secret arrives as a watch event.
  await apply(tlsSecret('listed-tls', rotated));
  const rotatedRv = JSON.parse(await c.kubectlOk(['-n', ns, 'get', 'secret', 'listed-tls', '-o', 'json'])).metadata.resourceVersion as string;
  await eventually('the watched Secret and the rotation', () => cache.get('Secret', ns, 'watched-tls') && cache.get('Secret', ns, 'listed-tls')?.metadata?.resourceVersion === rotatedRv);
  assert.equal(cache.get('Secret', ns, 'opaque'), undefined, 'an Opaque Secret is never cached');
  assert.deepEqual([...cache.list('EndpointSlice')], [], 'EndpointSlices are not watched');

  const text = JSON.stringify(everything(cache));
  for (const [name, pair] of Object.entries({ listed, watchedPair, rotated, opaque })) {
    for (const f of fragments(pair.key)) assert.ok(!text.includes(f), `${name}: a piece of its private key is in the cache`);
  }
  // No PEM at all, whoever else's Secret is in the cluster-wide cache (base64 of "-----BEGIN").
  assert.ok(!text.includes('PRIVATE KEY') && !text.includes('LS0tLS1CRUdJTi'), 'no PEM, plain or base64, anywhere in the cache');
  for (const s of cache.list('Secret')) {
    assert.equal((s as Secret).type, 'kubernetes.io/tls');
    for (const field of ['data', 'stringData']) assert.ok(!(field in s), `${s.metadata?.namespace}/${s.metadata?.name} has ${field}`);
    assert.equal(s.metadata?.annotations, undefined, 'no annotations: kubectl\'s last-applied-configuration repeats the data');
  }

  await c.kubectlOk(['-n', ns, 'delete', 'secret', 'watched-tls']);
  await eventually('the deleted Secret to be forgotten', () => cache.get('Secret', ns, 'watched-tls') === undefined);
  assert.ok(cache.get('Secret', ns, 'listed-tls'), 'the other one stays');
  // A just-installed CRD can answer 429 "storage is (re)initializing" once; the reflector
  // retries that. What must never happen: a Secret read failing, or anything refused.
  const failed = logs.filter((l) => l.level >= 40 && (l.kind === 'Secret' || /\b(401|403|406)\b/.test(String(l.err))));
  assert.deepEqual(failed, [], 'no Secret list or watch failed, nothing was refused');
});

test('a Canary whose Ingress does not exist yet is admitted with a warning naming it, which goes once the Ingress is cached', { skip: e2eSkip }, async () => {
  assert.ok(watched, 'the cache of the previous test');
  const { cache } = watched;
  const port = { ports: [{ name: 'http', port: 80 }] };
  await apply(
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'checkout', namespace: ns }, spec: port } as KubeObject,
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'checkout-v2', namespace: ns }, spec: port } as KubeObject,
  );
  await eventually('the Services in the cache', () => cache.get('Service', ns, 'checkout') && cache.get('Service', ns, 'checkout-v2'));
  const canary = {
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'checkout', namespace: ns },
    spec: { ingressRef: { name: 'shop' }, service: 'checkout', canaryService: { name: 'checkout-v2', port: { number: 80 } } },
  } as KubeObject;
  const review = () => reviewAdmission(reviewBody({ object: canary }), { cache }).review.response;

  const first = review();
  assert.equal(first.allowed, true);
  assert.deepEqual(first.warnings, [`spec.ingressRef.name: Ingress ${ns}/shop not found; the canary routes nothing until it exists`]);

  await apply({
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'shop', namespace: ns },
    spec: {
      ingressClassName: 'vane',
      rules: [{ host: 'shop.cache.example', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'checkout', port: { number: 80 } } } }] } }],
    },
  } as KubeObject);
  const settled = await eventually('the warning to go once the Ingress is cached', () => {
    const r = review();
    return r.warnings === undefined ? r : null;
  });
  assert.equal(settled.allowed, true);
});

test('`--watch-cluster` as a ServiceAccount with only the chart\'s RBAC: metadata-only Secrets, warnings that follow the cluster', { skip: e2eSkip }, async () => {
  env = await prepareWebhook(c, import.meta.url, { watchCluster: true });
  const can = async (verb: string, resource: string) => (await c.kubectl(['auth', 'can-i', verb, resource, '--all-namespaces', `--as=${env.user}`])).stdout.trim();
  assert.equal(await can('list', 'secrets'), 'yes');
  assert.equal(await can('get', 'secrets'), 'no', 'no get on Secrets cluster-wide');
  assert.equal(await can('list', 'endpointslices.discovery.k8s.io'), 'no', 'no EndpointSlices');
  assert.deepEqual(WATCH_RULES.find((r) => r.resources.includes('secrets'))?.verbs, ['list', 'watch']);

  const webhook = await startWebhook(env, ['--watch-cluster']);
  await eventually('the object cache to sync', () => webhook.count('object cache synced') === 1, 30_000);
  await pointAt(env, webhook.url);
  await awaitAdmission(env);

  const port = { ports: [{ name: 'http', port: 80 }] };
  await c.kubectlOk(['-n', env.ns, 'apply', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'checkout' }, spec: port },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'checkout-v2' }, spec: port },
    ] }),
  });
  // A dry run of an unchanged object sends nothing (kubectl prints "unchanged"); a new label
  // on every probe makes it an UPDATE the webhook reviews, with the verdict's full warnings.
  let probes = 0;
  const probe = (text: string) => {
    const o = JSON.parse(text) as KubeObject;
    o.metadata!.labels = { probe: String(++probes) };
    return JSON.stringify(o);
  };
  const canary = JSON.stringify({
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'checkout' },
    spec: { ingressRef: { name: 'shop' }, service: 'checkout', canaryService: { name: 'checkout-v2', port: { number: 80 } } },
  });
  const missingIngress = `Warning: spec.ingressRef.name: Ingress ${env.ns}/shop not found; the canary routes nothing until it exists`;
  // The Services reach the cache through the watch; a dry run shows when only the Ingress is missing.
  await eventually('the Services in the webhook\'s cache', async () => {
    const dry = await c.kubectl(['-n', env.ns, 'apply', '--dry-run=server', '-f', '-'], { input: canary });
    return dry.code === 0 && dry.stderr.trim() === missingIngress;
  });
  const created = await c.kubectl(['-n', env.ns, 'apply', '-f', '-'], { input: canary });
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, /canary\.vane\.dev\/checkout created/);
  assert.equal(created.stderr.trim(), missingIngress);

  const ingress = JSON.stringify({
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'shop' },
    spec: {
      ingressClassName: 'vane',
      tls: [{ hosts: ['shop.watch.example'], secretName: 'shop-tls' }],
      rules: [{ host: 'shop.watch.example', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'checkout', port: { number: 80 } } } }] } }],
    },
  });
  const noSecret = `Warning: spec.tls[0].secretName: Secret ${env.ns}/shop-tls: Secret not found; host "shop.watch.example" uses the default certificate`;
  const ing = await c.kubectl(['-n', env.ns, 'apply', '-f', '-'], { input: ingress });
  assert.equal(ing.code, 0, ing.stderr);
  assert.equal(ing.stderr.trim(), noSecret);

  await eventually('the Canary\'s warning to go once the Ingress is cached', async () => {
    const dry = await c.kubectl(['-n', env.ns, 'apply', '--dry-run=server', '-f', '-'], { input: probe(canary) });
    assert.match(dry.stdout, /configured \(server dry run\)/, 'the dry run reached the API server');
    return dry.code === 0 && dry.stderr.trim() === '';
  });

  // The TLS Secret, read through the metadata-only watch under this RBAC, silences the Ingress's warning …
  await c.kubectlOk(['-n', env.ns, 'apply', '-f', '-'], { input: JSON.stringify(tlsSecret('shop-tls', selfSigned('shop.watch.example'), env.ns)) });
  const ingressWarnings = async () => {
    const dry = await c.kubectl(['-n', env.ns, 'apply', '--dry-run=server', '-f', '-'], { input: probe(ingress) });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /configured \(server dry run\)/, 'the dry run reached the API server');
    return dry.stderr.trim();
  };
  await eventually('the Secret in the webhook\'s cache', async () => (await ingressWarnings()) === '');
  // … and its deletion brings the warning back.
  await c.kubectlOk(['-n', env.ns, 'delete', 'secret', 'shop-tls']);
  await eventually('the deleted Secret to be forgotten', async () => (await ingressWarnings()) === noSecret);

  const failures = webhook.logs().filter((l) => (l.level === 'warn' || l.level === 'error') && (l.kind === 'Secret' || /\b(401|403|406)\b/.test(String(l.err))));
  assert.deepEqual(failures, [], 'no list or watch was refused under the chart\'s RBAC');
});
