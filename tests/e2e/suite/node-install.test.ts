/**
 * Vane installed the way a user installs it, on a real node: the image built here
 * (scripts/build-image.sh) loaded into the node's containerd, `helm install --wait` of
 * charts/vane, and then everything through Kubernetes itself — pods started by the kubelet,
 * traffic through the proxy Service (kube-proxy), the in-cluster webhook called by the API
 * server, a Canary promoted with pods as backends, a `helm upgrade` rolling the proxies under
 * load, `helm test`, and `helm uninstall`.
 *
 * The tests run in order and build on each other (one install per file: a node cluster and an
 * install take about a minute).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { CHART, ROOT, nodeSkip, startNode, type NodeEnv } from '../harness/node.ts';
import { eventually } from '../../support/wait.ts';
import { NODE_ADDRESS } from '../../../devtools/controlplane/index.ts';

const skip = nodeSkip;
const NS = 'vane-system';
const APP = 'shop';
const HOST = 'shop.example.com';
const HTTP_NODE_PORT = 30080;
const PROXY_URL = `http://${NODE_ADDRESS}:${HTTP_NODE_PORT}`;
const IMAGE_TAG = '0.1.0';
/** The chart's values for this node: the image loaded by hand, the proxies on a fixed node port. */
const INSTALL_VALUES = [
  '--set', 'image.pullPolicy=Never',
  '--set', `image.tag=${IMAGE_TAG}`,
  '--set', 'proxy.service.type=NodePort',
  '--set', `proxy.service.nodePorts.http=${HTTP_NODE_PORT}`,
  '--set', 'proxy.workers=1',
];

let node: NodeEnv;

function buildImage(): Promise<string> {
  return new Promise((done, fail) => {
    const child = execFile('bash', [join(ROOT, 'scripts', 'build-image.sh')], { cwd: ROOT, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) return fail(new Error(`build-image.sh failed: ${stderr.split('\n').slice(-15).join('\n')}`));
      done(stdout.trim().split('\n').at(-1)!);
    });
    child.stderr?.on('data', (d: Buffer) => process.stderr.write(d));
  });
}

before(async () => {
  if (skip) return;
  const [archive, started] = await Promise.all([buildImage(), startNode(import.meta.url)]);
  node = started;
  await node.cluster.importImage(archive, 'localhost/vane');
}, { timeout: 900_000 });

after(async () => {
  if (skip || !node) return;
  await node.stop();
});

interface Reply { status: number; body: string; backend?: string; pod?: string; error?: string }

/** get sends one request on a new connection (as a client behind a load balancer would), bounded by a timeout. */
function get(path: string, headers: Record<string, string> = {}, timeoutMs = 5_000): Promise<Reply> {
  return new Promise((done) => {
    const req = request(`${PROXY_URL}${path}`, { headers: { host: HOST, connection: 'close', ...headers }, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => {
        let parsed: { backend?: string; pod?: string } = {};
        try { parsed = JSON.parse(body) as typeof parsed; } catch { /* not an echo answer */ }
        done({ status: res.statusCode ?? 0, body, ...(parsed.backend ? { backend: parsed.backend } : {}), ...(parsed.pod ? { pod: parsed.pod } : {}) });
      });
      res.on('error', (err) => done({ status: 0, body, error: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => done({ status: 0, body: '', error: err.message }));
    req.end();
  });
}

/** getJson GETs url on a connection of its own and parses a 200 answer; anything else is undefined. */
function getJson(url: string, timeoutMs = 5_000): Promise<unknown> {
  return new Promise((done) => {
    const req = request(url, { agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => {
        try { done(res.statusCode === 200 ? JSON.parse(body) as unknown : undefined); } catch { done(undefined); }
      });
      res.on('error', () => done(undefined));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => done(undefined));
    req.end();
  });
}

interface Load { stop(): Promise<{ sent: number; failed: Reply[]; byBackend: Record<string, number>; byPod: Record<string, number> }> }

/** load sends ratePerSecond requests (each on its own connection) until stopped or maxMs passes. */
function load(ratePerSecond: number, maxMs: number, headers: Record<string, string> = {}): Load {
  const replies: Promise<Reply>[] = [];
  const started = Date.now();
  const timer = setInterval(() => {
    if (Date.now() - started > maxMs) { clearInterval(timer); return; }
    replies.push(get('/load', headers));
  }, 1000 / ratePerSecond);
  return {
    async stop() {
      clearInterval(timer);
      const all = await Promise.all(replies);
      const byBackend: Record<string, number> = {};
      const byPod: Record<string, number> = {};
      for (const r of all) {
        if (r.backend) byBackend[r.backend] = (byBackend[r.backend] ?? 0) + 1;
        if (r.pod) byPod[r.pod] = (byPod[r.pod] ?? 0) + 1;
      }
      return { sent: all.length, failed: all.filter((r) => r.status !== 200), byBackend, byPod };
    },
  };
}

/** ECHO_SERVER answers every request with which backend and pod it is, as JSON. */
const ECHO_SERVER = [
  "const http = require('node:http');",
  "http.createServer((req, res) => { req.resume(); res.setHeader('content-type', 'application/json');",
  "res.end(JSON.stringify({ backend: process.env.BACKEND, pod: process.env.HOSTNAME, path: req.url })); }).listen(8080);",
  "process.on('SIGTERM', () => process.exit(0));",
].join(' ');

function echoApp(name: string, replicas: number): unknown[] {
  const labels = { app: name };
  return [
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: APP },
      spec: {
        replicas, selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [{
              name: 'echo', image: `localhost/vane:${IMAGE_TAG}`, imagePullPolicy: 'Never',
              command: ['/usr/local/bin/node'], args: ['-e', ECHO_SERVER],
              env: [{ name: 'BACKEND', value: name }],
              ports: [{ name: 'http', containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/ready', port: 8080 }, periodSeconds: 1 },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
            }],
          },
        },
      },
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: APP }, spec: { selector: labels, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
  ];
}

const list = (items: unknown[]): string => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });

test('helm install --wait brings the operator, proxies and webhook up in a namespace that enforces restricted Pod Security', { skip, timeout: 300_000 }, async () => {
  await node.kubectlOk(['create', 'namespace', NS]);
  await node.kubectlOk(['label', 'namespace', NS, 'pod-security.kubernetes.io/enforce=restricted']);
  const t0 = Date.now();
  await node.helmOk(['install', 'vane', CHART, '-n', NS, ...INSTALL_VALUES, '--wait', '--timeout', '4m'], { timeoutMs: 260_000 });
  console.error(`[node-install] helm install --wait took ${Date.now() - t0} ms`);
  for (const d of ['vane-operator', 'vane-proxy', 'vane-webhook']) {
    const ready = await node.kubectlOk(['-n', NS, 'get', 'deployment', d, '-o', 'jsonpath={.status.readyReplicas}/{.spec.replicas}']);
    assert.equal(ready, '2/2', `${d} ready replicas`);
  }
  const pods = JSON.parse(await node.kubectlOk(['-n', NS, 'get', 'pods', '-o', 'json'])) as { items: { spec: { nodeName?: string }; status: { phase: string } }[] };
  assert.equal(pods.items.length, 6);
  assert.ok(pods.items.every((p) => p.spec.nodeName === 'vane-node' && p.status.phase === 'Running'), 'every pod runs on the real node');
  // The leader serves the stream: its /fleet (through the admin Service, which also reaches the
  // follower) expects the two ready proxy pods and sees both on the current version. Each probe
  // opens its own connection: kube-proxy picks the pod per connection, and a kept-alive one
  // (fetch's pool) would ask the follower every time.
  const ip = await node.kubectlOk(['-n', NS, 'get', 'service', 'vane-operator-admin', '-o', 'jsonpath={.spec.clusterIP}']);
  const fleet = await eventually('the leader seeing both proxies converged', async () => {
    const r = await getJson(`http://${ip}:7901/fleet`);
    const body = r as { convergence: { expected: number; converged: number } | null; connected: { proxy: string }[] } | undefined;
    return body?.connected.length === 2 && body.convergence?.expected === 2 && body.convergence.converged === 2 ? body : undefined;
  }, 60_000, { intervalMs: 250 });
  assert.ok(fleet.connected.every((c) => c.proxy.startsWith('vane-proxy-')), JSON.stringify(fleet.connected));
});

test('an echo Deployment behind an Ingress answers through the proxy Service, spread over its pods', { skip, timeout: 120_000 }, async () => {
  await node.kubectlOk(['create', 'namespace', APP]);
  await node.kubectlOk(['apply', '-f', '-'], { input: list([
    ...echoApp('checkout', 2),
    {
      apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'shop', namespace: APP },
      spec: { ingressClassName: 'vane', rules: [{ host: HOST, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'checkout', port: { number: 80 } } } }] } }] },
    },
  ]) });
  await node.kubectlOk(['-n', APP, 'rollout', 'status', 'deployment/checkout', '--timeout=60s'], { timeoutMs: 70_000 });
  await eventually('the route through the proxies', async () => {
    const r = await get('/hello');
    return r.status === 200 && r.backend === 'checkout' ? r : undefined;
  }, 60_000, { intervalMs: 250 });
  const l = load(20, 3_000);
  await new Promise((r) => setTimeout(r, 3_000));
  const res = await l.stop();
  assert.deepEqual(res.failed, []);
  assert.deepEqual(Object.keys(res.byBackend), ['checkout']);
  assert.equal(Object.keys(res.byPod).length, 2, `both echo pods answered: ${JSON.stringify(res.byPod)}`);
  const unknown = await get('/', { host: 'nobody.example.com' });
  assert.equal(unknown.status, 404);
});

test('the in-cluster webhook denies a bad Canary and warns about one whose Ingress does not exist yet', { skip, timeout: 60_000 }, async () => {
  const bad = await node.kubectl(['apply', '-f', '-'], { input: JSON.stringify({
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'bad', namespace: APP },
    spec: { ingressRef: { name: 'shop' }, service: 'checkout', canaryService: { name: 'checkout-v2' }, traffic: { header: { name: 'X-Canary', regex: '(unclosed' } } },
  }) });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /admission webhook "[^"]*vane\.dev" denied the request: .*spec\.traffic\.header/);
  const early = await node.kubectl(['apply', '-f', '-'], { input: JSON.stringify({
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'early', namespace: APP },
    spec: { ingressRef: { name: 'not-yet' }, service: 'checkout', canaryService: { name: 'checkout-v9' } },
  }) });
  assert.equal(early.code, 0, early.stderr);
  assert.match(early.stderr, /Warning: .*not-yet/);
  await node.kubectlOk(['-n', APP, 'delete', 'canary', 'early']);
});

test('a Canary progresses and promotes with pods as backends', { skip, timeout: 180_000 }, async () => {
  await node.kubectlOk(['apply', '-f', '-'], { input: list(echoApp('checkout-v2', 1)) });
  await node.kubectlOk(['-n', APP, 'rollout', 'status', 'deployment/checkout-v2', '--timeout=60s'], { timeoutMs: 70_000 });
  await node.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'checkout', namespace: APP },
    spec: {
      ingressRef: { name: 'shop' }, service: 'checkout', canaryService: { name: 'checkout-v2' }, revision: 'v2',
      traffic: { header: { name: 'X-Canary' } },
      analysis: {
        interval: '10s', stepWeights: [50], threshold: 2, minRequests: 20,
        metrics: [{ name: 'success-rate', min: 99 }, { name: 'latency-p99', maxMs: 2000 }],
      },
    },
  }) });
  // Ten in a row through the Service: both proxies serve the header rule (one alone would be missed 1 in 1,024 times).
  await eventually('the header rule served by both proxies', async () => {
    for (let i = 0; i < 10; i++) if ((await get('/', { 'x-canary': 'always' })).backend !== 'checkout-v2') return undefined;
    return true;
  }, 30_000, { intervalMs: 250 });
  const plain = load(10, 150_000);
  const forced = load(10, 150_000, { 'x-canary': 'always' });
  try {
    const waited = await node.kubectl(['-n', APP, 'wait', '--for=condition=Promoted', 'canary/checkout', '--timeout=150s'], { timeoutMs: 160_000 });
    assert.equal(waited.code, 0, waited.stderr);
  } finally {
    const [a, b] = await Promise.all([plain.stop(), forced.stop()]);
    assert.deepEqual([...a.failed, ...b.failed], [], 'no request failed while the canary progressed');
    assert.deepEqual(Object.keys(b.byBackend), ['checkout-v2'], 'X-Canary: always reached the canary pods only');
  }
  const status = JSON.parse(await node.kubectlOk(['-n', APP, 'get', 'canary', 'checkout', '-o', 'json'])) as { status: { phase: string; weight: number; proxies?: { converged: number; expected: number } } };
  assert.equal(status.status.phase, 'Promoted');
  assert.equal(status.status.weight, 100);
  assert.deepEqual(status.status.proxies && [status.status.proxies.converged, status.status.proxies.expected], [2, 2]);
  const after = load(20, 2_000);
  await new Promise((r) => setTimeout(r, 2_000));
  const res = await after.stop();
  assert.deepEqual(res.byBackend, { 'checkout-v2': res.sent }, 'promoted: every request reaches the canary pods');
});

test('helm upgrade to a changed value rolls every proxy with zero failed requests under load', { skip, timeout: 240_000 }, async () => {
  const before = (await node.kubectlOk(['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/component=proxy', '-o', 'jsonpath={.items[*].metadata.name}'])).split(' ').sort();
  assert.equal(before.length, 2);
  const traffic = load(50, 200_000);
  let res: Awaited<ReturnType<Load['stop']>>;
  try {
    await node.helmOk(['upgrade', 'vane', CHART, '-n', NS, ...INSTALL_VALUES, '--set', 'proxy.workers=2', '--wait', '--timeout', '3m'], { timeoutMs: 200_000 });
    // helm --wait returns when the new pods are ready; the old ones drain after that.
    await eventually('the old proxies gone', async () => {
      const names = (await node.kubectlOk(['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/component=proxy', '-o', 'jsonpath={.items[*].metadata.name}'])).split(' ').filter(Boolean);
      return names.length === 2 && names.every((n) => !before.includes(n)) ? names : undefined;
    }, 90_000, { intervalMs: 250 });
  } finally {
    res = await traffic.stop();
  }
  console.error(`[node-install] upgrade under load: ${res.sent} requests, ${res.failed.length} failed`);
  assert.ok(res.sent >= 200, `load was held (${res.sent} requests)`);
  assert.deepEqual(res.failed, [], 'no request failed while the proxies rolled');
  const args = await node.kubectlOk(['-n', NS, 'get', 'deployment', 'vane-proxy', '-o', 'jsonpath={.spec.template.spec.containers[0].args}']);
  assert.match(args, /--workers=?"?,?"?2/);
});

test('helm test passes', { skip, timeout: 180_000 }, async () => {
  const out = await node.helmOk(['test', 'vane', '-n', NS, '--timeout', '2m'], { timeoutMs: 150_000 });
  assert.match(out, /Phase:\s+Succeeded/);
  assert.doesNotMatch(out, /Phase:\s+Failed/);
});

test('helm uninstall leaves only what the chart documents: the CRD, and the Secrets, ConfigMap and Lease the components wrote', { skip, timeout: 180_000 }, async () => {
  await node.helmOk(['uninstall', 'vane', '-n', NS, '--wait', '--timeout', '2m'], { timeoutMs: 150_000 });
  await eventually('the release\'s pods gone', async () => {
    const left = await node.kubectlOk(['-n', NS, 'get', 'pods', '-o', 'name']);
    return left.trim() === '' ? true : undefined;
  }, 90_000, { intervalMs: 250 });
  const namespaced = (await node.kubectlOk(['-n', NS, 'get',
    'deployments,replicasets,services,serviceaccounts,roles,rolebindings,configmaps,secrets,leases,networkpolicies,poddisruptionbudgets,horizontalpodautoscalers',
    '-o', 'name'])).split('\n').filter(Boolean).sort();
  assert.deepEqual(namespaced, [
    'configmap/kube-root-ca.crt',
    'configmap/vane-stream-ca',
    'lease.coordination.k8s.io/vane-operator',
    'secret/vane-stream-tls',
    'secret/vane-webhook-tls',
    'serviceaccount/default',
  ]);
  const cluster = (await node.kubectlOk(['get', 'clusterroles,clusterrolebindings,validatingwebhookconfigurations,ingressclasses', '-o', 'name'])).split('\n')
    .filter((n) => /vane/.test(n));
  assert.deepEqual(cluster, []);
  assert.equal((await node.kubectl(['get', 'crd', 'canaries.vane.dev'])).code, 0, 'Helm keeps the CRD (crds/ is never deleted)');
});
