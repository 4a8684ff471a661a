/**
 * lib/kube without an API server: the one status function, paths, fenced patches, MicroTime,
 * and the transport's bounds against real sockets on port 0 — a black hole that accepts and
 * never answers, a server that answers a watch and then falls silent, a Status error body,
 * and a fence that keeps a write from being sent. The API-server behaviour (410, restarts,
 * the lease) is tests/e2e/suite/kube-adapter.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import {
  Kube, KubeError, RESOURCES, apiStatusOf, apiMessageOf, fencedPatch, fieldPatch, microTime, pathOf, watch, isKubeError, type WatchEnd,
} from '../../../lib/kube/index.ts';
import { foreignError } from '../../support/errors.ts';

function configFor(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

/** blackHole accepts TCP connections and never sends a byte. */
async function blackHole(): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: TcpServer = createTcpServer((s) => { accepted++; sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    accepted: () => accepted,
    close: async () => { for (const s of sockets) s.destroy(); await new Promise((r) => server.close(r)); },
  };
}

async function httpServer(handler: Parameters<typeof createHttpServer>[1]): Promise<{ url: string; server: HttpServer; close: () => Promise<void> }> {
  const server = createHttpServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    server,
    close: async () => { server.closeAllConnections(); await new Promise((r) => server.close(r)); },
  };
}

test('apiStatusOf reads the status of every error shape a Kubernetes call throws, and nothing else', () => {
  const cases: [string, unknown, number | undefined][] = [
    ['KubeError EHTTP', new KubeError('EHTTP', 'x', { status: 409 }), 409],
    ['KubeError ETIMEOUT', new KubeError('ETIMEOUT', 'x'), undefined],
    ['client-node ApiException', new ApiException(404, 'Not Found', '{"message":"nope"}', {}), 404],
    ['client-node Watch error', foreignError('Gone', { statusCode: 410 }), 410],
    ['response.statusCode', { response: { statusCode: 503 } }, 503],
    ['a system error (string code)', foreignError('refused', { code: 'ECONNREFUSED' }), undefined],
    ['a plain Error', new Error('x'), undefined],
    ['null', null, undefined],
    ['a string', 'HTTP 500', undefined],
  ];
  for (const [name, err, want] of cases) assert.equal(apiStatusOf(err), want, name);
  assert.equal(apiMessageOf(new ApiException(404, 'Not Found', '{"message":"canaries.vane.dev \\"x\\" not found"}', {})), 'canaries.vane.dev "x" not found');
});

test('pathOf: collections, objects and subresources of core, grouped and cluster-scoped kinds', () => {
  assert.equal(pathOf(RESOURCES.Secret), '/api/v1/secrets');
  assert.equal(pathOf(RESOURCES.Secret, { namespace: 'ns' }), '/api/v1/namespaces/ns/secrets');
  assert.equal(pathOf(RESOURCES.Ingress, { namespace: 'shop', name: 'web' }, 'status'), '/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web/status');
  assert.equal(pathOf(RESOURCES.Canary, { namespace: 'shop', name: 'checkout' }), '/apis/vane.dev/v1alpha1/namespaces/shop/canaries/checkout');
  assert.equal(pathOf(RESOURCES.IngressClass, { namespace: 'ignored', name: 'vane' }), '/apis/networking.k8s.io/v1/ingressclasses/vane');
  assert.equal(pathOf(RESOURCES.Lease, { namespace: '', name: 'l' }), '/apis/coordination.k8s.io/v1/namespaces/default/leases/l');
  assert.throws(() => pathOf(RESOURCES.Pod, { namespace: 'ns', name: '' }), /needs a name/);
});

test('fencedPatch and fieldPatch: a resourceVersion test first, the difference after, nothing when equal', () => {
  assert.deepEqual(fencedPatch([{ op: 'add', path: '/a', value: 1 }], '42'), [
    { op: 'test', path: '/metadata/resourceVersion', value: '42' }, { op: 'add', path: '/a', value: 1 },
  ]);
  assert.deepEqual(fencedPatch([{ op: 'add', path: '/a', value: 1 }], undefined), [{ op: 'add', path: '/a', value: 1 }]);
  assert.deepEqual(fieldPatch('status', undefined, { x: 1 }, '7'), [
    { op: 'test', path: '/metadata/resourceVersion', value: '7' }, { op: 'add', path: '/status', value: { x: 1 } },
  ]);
  assert.deepEqual(fieldPatch('data', { a: '1' }, { a: '1', b: '2' }, '7'), [
    { op: 'test', path: '/metadata/resourceVersion', value: '7' }, { op: 'add', path: '/data/b', value: '2' },
  ]);
  assert.deepEqual(fieldPatch('data', { a: '1' }, { a: '1' }, '7'), []);
});

test('microTime has the six fractional digits a MicroTime needs', () => {
  assert.equal(microTime(Date.UTC(2030, 0, 1, 12, 0, 0, 123)), '2030-01-01T12:00:00.123000Z');
});

test('a request to a black-holed API server (accepts, never answers) fails with ETIMEOUT within its bound', async () => {
  const hole = await blackHole();
  try {
    const kube = new Kube(configFor(`https://127.0.0.1:${hole.port}`), { requestTimeoutMs: 400 });
    for (const call of [
      () => kube.get(RESOURCES.Lease, { namespace: 'vane-system', name: 'vane-operator' }),
      () => kube.patchStatus(RESOURCES.Ingress, { namespace: 'a', name: 'b' }, [{ op: 'add', path: '/status', value: {} }]),
      () => kube.list(RESOURCES.Secret, { timeoutMs: 400 }),
    ]) {
      const t = Date.now();
      await assert.rejects(call(), (e) => isKubeError(e, 'ETIMEOUT') && /no answer within 400 ms/.test(e.message));
      const took = Date.now() - t;
      assert.ok(took >= 350 && took < 2_000, `gave up after ${took} ms`);
    }
    assert.ok(hole.accepted() >= 3, 'the requests did reach the black hole');

    // A watch is bounded until its headers arrive by the same request timeout.
    const t = Date.now();
    const end = await new Promise<WatchEnd>((resolve) => watch(kube, RESOURCES.Ingress, { resourceVersion: '1' }, () => {}, resolve));
    assert.equal(end.reason, 'error');
    assert.ok(end.reason === 'error' && end.error.code === 'ETIMEOUT', JSON.stringify(end));
    assert.ok(Date.now() - t < 2_000);
  } finally {
    await hole.close();
  }
});

test('a watch that answers and then falls silent is cut after its idle bound; a 410 answer ends it as gone', async () => {
  let requests = 0;
  const srv = await httpServer((req, res) => {
    requests++;
    const url = new URL(req.url!, 'http://x');
    assert.equal(req.headers.authorization, 'Bearer test-token');
    if (url.searchParams.get('resourceVersion') === 'old') {
      res.writeHead(410, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 1 (5)' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a', resourceVersion: '6' } } })}\n`);
    // … and nothing more, with the connection open.
  });
  try {
    const kube = new Kube(configFor(srv.url), { requestTimeoutMs: 1_000 });
    const events: string[] = [];
    const t = Date.now();
    const end = await new Promise<WatchEnd>((resolve) => watch<{ metadata: { name: string } }>(kube, RESOURCES.Ingress, { resourceVersion: '5', idleTimeoutMs: 300 }, (e) => events.push(`${e.type} ${e.object.metadata.name}`), resolve));
    assert.deepEqual(events, ['ADDED a']);
    assert.equal(end.reason, 'idle');
    const took = Date.now() - t;
    assert.ok(took >= 250 && took < 2_000, `cut after ${took} ms`);

    const gone = await new Promise<WatchEnd>((resolve) => watch(kube, RESOURCES.Ingress, { resourceVersion: 'old' }, () => {}, resolve));
    assert.equal(gone.reason, 'gone');
    assert.equal(requests, 2);
  } finally {
    await srv.close();
  }
});

test('an error answer becomes KubeError EHTTP with the Status; a false fence keeps the write from being sent', async () => {
  const seen: string[] = [];
  const srv = await httpServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers['content-type'] ?? ''}`);
    res.writeHead(422, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 422, reason: 'Invalid', message: 'the server rejected our request due to an error in our request' }));
  });
  try {
    const kube = new Kube(configFor(srv.url));
    const ops = fencedPatch([{ op: 'add', path: '/status', value: {} }], '3');
    await assert.rejects(kube.patchStatus(RESOURCES.Ingress, { namespace: 'a', name: 'b' }, ops), (e) => {
      assert.ok(isKubeError(e, 'EHTTP'));
      assert.equal(e.status, 422);
      assert.equal(e.reason, 'Invalid');
      assert.equal(apiStatusOf(e), 422);
      return true;
    });
    assert.deepEqual(seen, ['PATCH /apis/networking.k8s.io/v1/namespaces/a/ingresses/b/status application/json-patch+json']);
    await assert.rejects(kube.patchStatus(RESOURCES.Ingress, { namespace: 'a', name: 'b' }, ops, { fence: () => false }), (e) => isKubeError(e, 'EFENCED'));
    assert.equal(seen.length, 1, 'the fenced write never reached the server');
  } finally {
    await srv.close();
  }
});
