/**
 * Real proxies on the real API server, under load: two `vane proxy --operator` processes
 * route to an echo backend in a network namespace while the operator's leader is killed
 * (a follower takes over) and while no operator runs at all (a proxy restarted meanwhile
 * serves from its persisted state). Every response is counted; none may fail.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request, Agent } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, freePortRange } from '../../support/wait.ts';
import { cluster, e2eSkip, netnsSkip, fileNamespace, startEchoBackend, type Cluster, type EchoBackend } from '../harness/index.ts';
import { setupFleet, startOperator, startProxy, fleetReport, type Fleet, type ProxyProcess } from '../harness/vane.ts';

const skip = e2eSkip || netnsSkip;
let c: Cluster;
let ns: string;
let fleet: Fleet;
let backend: EchoBackend;
const stops: (() => Promise<void>)[] = [];
const agent = new Agent({ keepAlive: true, maxSockets: 4 });

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: { host: 'fleet.e2e.test' }, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** load sends requests to every port in turn until stopped, counting status codes (bounded: 60 s, 100k requests). */
function load(ports: number[]): { stop: () => Promise<Map<number, number>> } {
  const counts = new Map<number, number>();
  let running = true;
  const deadline = Date.now() + 60_000;
  const loops = ports.map(async (port) => {
    for (let n = 0; running && n < 100_000 && Date.now() < deadline; n++) {
      const status = await get(port, '/load');
      counts.set(status, (counts.get(status) ?? 0) + 1);
    }
  });
  return { stop: async () => { running = false; await Promise.all(loops); return counts; } };
}

before(async () => {
  if (skip) return;
  c = await cluster();
  ns = await fileNamespace(import.meta.url);
  fleet = await setupFleet(c, ns, 2);
  backend = await startEchoBackend('fleet-web');
  stops.push(() => backend.close());
  await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: ns }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-1', namespace: ns, labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints: [{ addresses: [backend.address], conditions: { ready: true } }] },
    { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'fleet', namespace: ns },
      spec: { ingressClassName: 'vane', rules: [{ host: 'fleet.e2e.test', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] } },
  ] }) });
});

after(async () => {
  if (skip) return;
  agent.destroy();
  for (const stop of stops.reverse()) await stop();
  fleet?.cleanup();
});

test('kill the leader under load: zero failed requests, the follower takes over, proxies converge on it', { skip }, async () => {
  const a = await startOperator(fleet, ns, 'fleet-a');
  stops.push(() => a.stop());
  await a.waitFor((e) => e.msg === 'became leader');
  const b = await startOperator(fleet, ns, 'fleet-b');
  stops.push(() => b.stop());
  const base = await freePortRange(6);
  const proxies: ProxyProcess[] = [];
  for (let i = 0; i < 2; i++) {
    const p = await startProxy(c, fleet, ns, fleet.proxies[i]!, [a.streamUrl, b.streamUrl], { http: base + i * 3, https: base + i * 3 + 1, admin: base + i * 3 + 2 });
    stops.push(() => p.stop());
    proxies.push(p);
  }
  await eventually('both proxies serve', async () => (await get(proxies[0]!.http, '/')) === 200 && (await get(proxies[1]!.http, '/')) === 200);
  await eventually('the fleet converges', async () => (await fleetReport(a)).convergence?.converged === 2);

  const traffic = load(proxies.map((p) => p.http));
  await new Promise((r) => setTimeout(r, 1000));
  await a.stop('SIGKILL');
  await b.waitFor((e) => e.msg === 'became leader', 25_000);
  await eventually('proxies converge on the new leader', async () => (await fleetReport(b)).convergence?.converged === 2, 30_000);
  await c.kubectlOk(['-n', ns, 'annotate', 'ingress', 'fleet', 'vane.dev/read-timeout=20s', '--overwrite']);
  const root = (await fleetReport(b)).version!.root;
  await eventually('the new leader\'s edit to reach both proxies', async () => {
    const f = await fleetReport(b);
    return f.version!.root !== root && f.convergence?.converged === 2;
  });
  const counts = await traffic.stop();
  const total = [...counts.values()].reduce((s, n) => s + n, 0);
  assert.ok(total > 100, `enough load: ${total} requests`);
  assert.deepEqual([...counts.keys()], [200], `every response was 200: ${JSON.stringify([...counts])}`);
  for (const p of proxies) await p.stop();
  await b.stop();
});

test('operator killed under load: zero failed requests; a proxy restarted meanwhile serves from its persisted state', { skip }, async () => {
  const op = await startOperator(fleet, ns, 'fleet-c');
  stops.push(() => op.stop());
  await op.waitFor((e) => e.msg === 'became leader', 25_000);
  const base = await freePortRange(6);
  const state = mkdtempSync(join(tmpdir(), 'vane-lkg-'));
  stops.push(async () => rmSync(state, { recursive: true, force: true }));
  let proxy = await startProxy(c, fleet, ns, fleet.proxies[0]!, [op.streamUrl], { http: base, https: base + 1, admin: base + 2 }, state);
  stops.push(() => proxy.stop());
  await eventually('the proxy serves', async () => (await get(proxy.http, '/')) === 200);
  await eventually('the proxy ACKed', async () => (await fleetReport(op)).connected.some((x) => x.proxy === fleet.proxies[0]!.name));

  const traffic = load([proxy.http]);
  await new Promise((r) => setTimeout(r, 500));
  await op.stop('SIGKILL');
  await new Promise((r) => setTimeout(r, 1500));
  const during = await traffic.stop();
  assert.deepEqual([...during.keys()], [200], `with the operator dead, every response was 200: ${JSON.stringify([...during])}`);

  await proxy.stop();
  proxy = await startProxy(c, fleet, ns, fleet.proxies[0]!, [op.streamUrl], { http: base, https: base + 1, admin: base + 2 }, state);
  await proxy.waitFor((e) => String(e.msg).includes('last-known-good'), 20_000);
  assert.equal(await eventually('the restarted proxy serves without an operator', async () => (await get(proxy.http, '/')) === 200 ? 200 : null), 200);
  await proxy.stop();
});
