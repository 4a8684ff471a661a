/**
 * The operator on the real API server: Ingresses compiled and streamed to authenticated
 * proxies (the real stream client), status and Events written by the leader only, the
 * EndpointSlice fast path, stream authentication by bound ServiceAccount tokens, and
 * leader failover between two replicas.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { cluster, e2eSkip, fileNamespace, type Cluster } from '../harness/index.ts';
import { setupFleet, startOperator, streamCa, token, fleetReport, type Fleet, type OperatorProcess } from '../harness/vane.ts';
import { StreamSource } from '../../../proxy/source/stream.ts';
import type { RoutingUpdate } from '../../../proxy/source/source.ts';
import { buildRouteTable, match, SUBPROTOCOL } from '../../../core/index.ts';
import { createLogger } from '../../../lib/log.ts';
import { eventually } from '../../support/wait.ts';

const logger = createLogger('e2e-proxy', 'silent');
let c: Cluster;
let ns: string;
let fleet: Fleet;
let leader: OperatorProcess;
const clients: StreamSource[] = [];
const updates = new Map<string, RoutingUpdate>();

function ingress(paths: string[], service = 'web'): string {
  return JSON.stringify({
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'shop', namespace: ns },
    spec: { ingressClassName: 'vane', rules: [{ host: 'shop.e2e.test', http: { paths: paths.map((path) => ({ path, pathType: 'Prefix', backend: { service: { name: service, port: { number: 80 } } } })) } }] },
  });
}

function slice(ips: string[]): string {
  return JSON.stringify({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-1', namespace: ns, labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
  });
}

async function connect(pod: { name: string; uid: string }, urls: string[]): Promise<StreamSource> {
  const ca = await streamCa(c, ns);
  const t = await token(c, ns, 'vane-proxy', { audience: 'vane-stream', pod });
  const client = new StreamSource({ url: urls, proxyName: pod.name, token: async () => t, ca, logger, initialBackoffMs: 100, maxBackoffMs: 1000 });
  clients.push(client);
  await client.start((u) => { updates.set(pod.name, u); });
  return client;
}

function routeOf(proxy: string, path: string): string | null {
  const u = updates.get(proxy);
  if (!u) return null;
  return match(buildRouteTable(u.resources), { host: 'shop.e2e.test', target: path, scheme: 'http' }).backend;
}

before(async () => {
  if (e2eSkip) return;
  c = await cluster();
  ns = await fileNamespace(import.meta.url);
  fleet = await setupFleet(c, ns, 2);
  await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: ns }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } }) });
  await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: slice(['198.51.100.250']) });
  leader = await startOperator(fleet, ns, 'op-a');
  await leader.waitFor((e) => e.msg === 'became leader');
});

after(async () => {
  if (e2eSkip) return;
  await Promise.all(clients.map((cl) => cl.close()));
  await leader?.stop();
  fleet?.cleanup();
});

test('apply, update, delete: every expected proxy follows; status and Events come from the leader', { skip: e2eSkip }, async () => {
  await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: ingress(['/']) });
  await connect(fleet.proxies[0]!, [leader.streamUrl]);
  await connect(fleet.proxies[1]!, [leader.streamUrl]);
  for (const p of fleet.proxies) await eventually(`${p.name} routes /`, () => routeOf(p.name, '/') === `backend/${ns}/web:80`);

  const status = await eventually('Ingress status.loadBalancer', async () => {
    const r = await c.kubectl(['-n', ns, 'get', 'ingress', 'shop', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}']);
    return r.stdout === '203.0.113.80' ? r.stdout : null;
  });
  assert.equal(status, '203.0.113.80');
  const events = await eventually('a Synced Event', async () => {
    const r = await c.kubectl(['-n', ns, 'get', 'events', '--field-selector', 'involvedObject.name=shop,reason=Synced', '-o', 'name']);
    return r.stdout.trim() ? r.stdout : null;
  });
  assert.ok(events);

  await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: ingress(['/', '/api']) });
  const report = await eventually('both proxies to ACK the update', async () => {
    const f = await fleetReport(leader);
    // The old version also converges: wait for one whose vhost has the new path.
    const updated = fleet.proxies.every((p) => {
      const vhost = updates.get(p.name)?.resources.get('vhost/shop.e2e.test')?.resource;
      return vhost?.type === 'vhost' && vhost.spec.routes.some((r) => r.path === '/api');
    });
    return updated && f.convergence && f.convergence.expected === 2 && f.convergence.converged === 2 && fleet.proxies.every((p) => updates.get(p.name)?.root === f.convergence!.root) ? f : null;
  });
  assert.deepEqual(report.convergence!.stragglers, []);
  for (const p of fleet.proxies) assert.equal(routeOf(p.name, '/api/x'), `backend/${ns}/web:80`);

  const before = updates.get(fleet.proxies[0]!.name)!;
  await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: slice(['198.51.100.250', '198.51.100.251']) });
  const endpointsOnly = await eventually('the EndpointSlice change', () => {
    const u = updates.get(fleet.proxies[0]!.name)!;
    return u !== before && u.changed.upserts.includes(`endpoints/${ns}/web:80`) ? u : null;
  });
  assert.deepEqual(endpointsOnly.changed, { upserts: [`endpoints/${ns}/web:80`], removals: [] }, 'an EndpointSlice change reaches proxies as an endpoints resource only');

  await c.kubectlOk(['-n', ns, 'delete', 'ingress', 'shop']);
  for (const p of fleet.proxies) await eventually(`${p.name} drops the route`, () => routeOf(p.name, '/') === null);
});

async function rejected(headers: Record<string, string>, ca: string): Promise<{ code: number; reason: string; messages: number }> {
  const ws = new WebSocket(leader.streamUrl, SUBPROTOCOL, { headers, ca });
  let messages = 0;
  ws.on('message', () => { messages++; });
  ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', protocol: 1, proxy: { name: fleet.proxies[0]!.name }, version: null, resources: [] })));
  ws.on('error', () => undefined);
  return new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString(), messages })));
}

test('stream authentication: only a vane-stream token of the proxy ServiceAccount bound to a live proxy pod gets routing', { skip: e2eSkip }, async () => {
  const ca = await streamCa(c, ns);
  const pod = fleet.proxies[0]!;
  const none = await rejected({}, ca);
  assert.deepEqual([none.code, none.messages], [4001, 0]);
  const wrongAudience = await rejected({ authorization: `Bearer ${await token(c, ns, 'vane-proxy', { audience: 'something-else', pod })}` }, ca);
  assert.deepEqual([wrongAudience.code, wrongAudience.messages], [4001, 0]);
  await c.kubectlOk(['-n', ns, 'create', 'serviceaccount', 'intruder']);
  const wrongAccount = await rejected({ authorization: `Bearer ${await token(c, ns, 'intruder', { audience: 'vane-stream' })}` }, ca);
  assert.deepEqual([wrongAccount.code, wrongAccount.messages], [4003, 0]);
  assert.match(wrongAccount.reason, /not the proxy ServiceAccount/);
  const unbound = await rejected({ authorization: `Bearer ${await token(c, ns, 'vane-proxy', { audience: 'vane-stream' })}` }, ca);
  assert.deepEqual([unbound.code, unbound.messages], [4003, 0]);
  assert.match(unbound.reason, /not bound to a pod/);
  const expired = await rejected({ authorization: `Bearer ${await token(c, ns, 'vane-proxy', { audience: 'vane-stream', pod, seconds: 600 })}x` }, ca);
  assert.deepEqual([expired.code, expired.messages], [4001, 0], 'a tampered token is refused');
});

test('two replicas: one leads; kill it and the other takes over within the lease, proxies reconnect and converge, status keeps being written by one', { skip: e2eSkip }, async () => {
  await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: ingress(['/']) });
  const follower = await startOperator(fleet, ns, 'op-b');
  try {
    await follower.waitFor((e) => e.msg === 'operator started');
    await assert.rejects(follower.waitFor((e) => e.msg === 'became leader', 3_000), 'a second replica does not lead while the first renews');
    for (const cl of clients.splice(0)) await cl.close();
    updates.clear();
    for (const p of fleet.proxies) await connect(p, [leader.streamUrl, follower.streamUrl]);
    for (const p of fleet.proxies) await eventually(`${p.name} routes /`, () => routeOf(p.name, '/') === `backend/${ns}/web:80`);

    const killedAt = Date.now();
    await leader.stop('SIGKILL');
    await follower.waitFor((e) => e.msg === 'became leader', 25_000);
    const takeoverMs = Date.now() - killedAt;
    assert.ok(takeoverMs < 20_000, `took over in ${takeoverMs} ms (lease 15 s)`);

    await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: ingress(['/', '/v2']) });
    await eventually('proxies converge on the new leader', async () => {
      const f = await fleetReport(follower);
      return f.convergence?.converged === 2 && fleet.proxies.every((p) => routeOf(p.name, '/v2/x') === `backend/${ns}/web:80`);
    }, 30_000);
    const wroteBeforeLeading = follower.lines.findIndex((l) => l.includes('Ingress status written'));
    const becameLeader = follower.lines.findIndex((l) => l.includes('became leader'));
    assert.ok(wroteBeforeLeading === -1 || wroteBeforeLeading > becameLeader, 'the follower wrote no status before it led');
  } finally {
    await follower.stop();
  }
});
