import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compile, diff, type KubeObject } from '../../../core/index.ts';
import { Router } from '../../../proxy/source/routing.ts';
import { Endpoints } from '../../../proxy/upstream/endpoints.ts';
import { RequestStats, ClusterMetrics, LATENCY_BUCKETS } from '../../../proxy/metrics.ts';
import { Registry } from 'prom-client';

function objects(blueAddress: string, extraHost = false): KubeObject[] {
  const svc = (name: string, address: string): KubeObject[] => [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'ns' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } } as KubeObject,
    {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, namespace: 'ns', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4', ports: [{ name: 'http', port: 8080 }], endpoints: [{ addresses: [address], conditions: { ready: true } }],
    } as KubeObject,
  ];
  const ing = (name: string, host: string, service: string, annotations: Record<string, string> = {}): KubeObject => ({
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name, namespace: 'ns', annotations },
    spec: { ingressClassName: 'vane', rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port: { number: 80 } } } }] } }] },
  } as KubeObject);
  return [
    ...svc('blue', blueAddress), ...svc('green', '10.0.0.2'),
    ing('a', 'a.test', 'blue'), ing('p', 'p.test', 'green', { 'vane.dev/ssl-passthrough': 'true' }),
    ...(extraHost ? [ing('b', 'b.test', 'green')] : []),
  ];
}

test('Router: a delta rebuilds only the clusters it touches and keeps the rest by identity', () => {
  const registry = new Endpoints({ connections: 1, keepAliveMs: 1000, queue: 16, queueTimeoutMs: 1000, waiting: { count: 0 } });
  const router = new Router(registry);
  const first = compile(objects('10.0.0.1'));
  const s1 = router.apply({ upserts: [...first.resources.values()], removals: [], root: first.root, generation: 1, full: true }).state;
  assert.deepEqual([...s1.clusters.keys()].sort(), ['backend/ns/blue:80', 'backend/ns/green:80']);
  assert.deepEqual([...s1.passthrough], ['vhost/p.test']);
  assert.equal(registry.size, 2);

  const second = compile(objects('10.0.0.9', true));
  const d = diff(first.resources, second.resources);
  const s2 = router.apply({ upserts: d.upserts, removals: d.removals, root: second.root, generation: 2, full: false }).state;
  assert.equal(s2.clusters.get('backend/ns/green:80'), s1.clusters.get('backend/ns/green:80'), 'untouched backend keeps its cluster');
  assert.notEqual(s2.clusters.get('backend/ns/blue:80'), s1.clusters.get('backend/ns/blue:80'));
  assert.equal(s2.clusters.get('backend/ns/blue:80')!.candidates[0]!.address, '10.0.0.9');
  assert.equal(registry.size, 2, 'the old blue endpoint was released');
  assert.ok(s2.table.exactHosts.has('b.test'));
  assert.ok(!s1.table.exactHosts.has('b.test'), 'the previous table is untouched for in-flight requests');
  assert.equal(s2.generation, 2);
});

test('RequestStats: status classes and cumulative histogram buckets', () => {
  const s = new RequestStats({ ingress: 'ns/a', service: 'ns/blue:80', canary: 'none' });
  s.record(200, 0.003);
  s.record(503, 0.2);
  s.record(99, 50);
  assert.deepEqual([...s.byClass], [1, 0, 1, 0, 0, 1]);
  assert.equal(s.count, 3);
  assert.equal(s.buckets[LATENCY_BUCKETS.indexOf(0.005)], 1);
  assert.equal(s.buckets[LATENCY_BUCKETS.indexOf(0.25)], 1);
  assert.equal(s.buckets.reduce((a, b) => a + b, 0), 2, 'over the last bucket only +Inf counts it');
});

test('ClusterMetrics: a retired worker keeps its counters in the total, its gauges go', async () => {
  const m = new ClusterMetrics();
  const worker = (requests: number, conns: number) => [
    { name: 'vane_proxy_requests_total', help: 'h', type: 'counter', aggregator: 'sum', values: [{ labels: { code: '2xx' }, value: requests }] },
    { name: 'vane_proxy_active_connections', help: 'h', type: 'gauge', aggregator: 'sum', values: [{ labels: {}, value: conns }] },
  ];
  m.retire(worker(10, 3));
  const { text } = await m.render([worker(5, 2)], new Registry());
  assert.match(text, /vane_proxy_requests_total\{code="2xx"\} 15/);
  assert.match(text, /vane_proxy_active_connections 2/);
});
