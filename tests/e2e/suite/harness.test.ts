/**
 * The harness itself against the real kube-apiserver + etcd: kubectl, RBAC, ServiceAccount
 * tokens with the vane-stream audience, the ValidatingAdmissionWebhook chain on loopback,
 * and echo backends in network namespaces named by EndpointSlices.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createCertificate, generateKeyPair, privateKeyPem } from '../../../lib/certs/index.ts';
import { STREAM_AUDIENCE, toolVersions } from '../../../devtools/controlplane/index.ts';
import { cluster, e2eSkip, fileNamespace, httpJson, netnsSkip, startEchoBackend, type Cluster } from '../harness/index.ts';
import { eventually } from '../../support/wait.ts';

let c: Cluster;
let ns: string;

before(async () => {
  if (e2eSkip) return;
  c = await cluster();
  ns = await fileNamespace(import.meta.url);
});

test('kubectl get --raw /readyz is ok and the server reports the pinned version', { skip: e2eSkip }, async () => {
  assert.equal(await c.kubectlOk(['get', '--raw', '/readyz']), 'ok');
  const version = JSON.parse(await c.kubectlOk(['get', '--raw', '/version'])) as { gitVersion: string };
  assert.equal(version.gitVersion, toolVersions().kubernetes);
});

test('kubectl apply of a Service and an Ingress round-trips through etcd', { skip: e2eSkip }, async () => {
  const manifests = `
apiVersion: v1
kind: Service
metadata: { name: web }
spec:
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: { name: web }
spec:
  rules:
    - host: web.example.com
      http:
        paths:
          - { path: /, pathType: Prefix, backend: { service: { name: web, port: { name: http } } } }
`;
  const out = await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: manifests });
  assert.match(out, /service\/web created/);
  assert.match(out, /ingress\.networking\.k8s\.io\/web created/);
  const ingress = JSON.parse(await c.kubectlOk(['-n', ns, 'get', 'ingress', 'web', '-o', 'json'])) as { spec: { rules: { host: string }[] } };
  assert.equal(ingress.spec.rules[0]!.host, 'web.example.com');
  const service = JSON.parse(await c.kubectlOk(['-n', ns, 'get', 'service', 'web', '-o', 'json'])) as { spec: { clusterIP: string } };
  assert.match(service.spec.clusterIP, /^203\.0\.113\./, 'ClusterIPs come from TEST-NET-3, never a routable range');
  assert.match(await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: manifests }), /service\/web unchanged/);
});

test('RBAC: a ServiceAccount token is authenticated but forbidden until a RoleBinding allows it', { skip: e2eSkip }, async () => {
  await c.kubectlOk(['-n', ns, 'create', 'serviceaccount', 'reader']);
  const token = (await c.kubectlOk(['-n', ns, 'create', 'token', 'reader', '--duration=10m'])).trim();
  const path = `/api/v1/namespaces/${ns}/services`;
  assert.equal((await c.api('GET', path, undefined, { token })).status, 403);
  // A Role of its own: the aggregated ClusterRoles (view, edit) stay empty without kube-controller-manager.
  await c.kubectlOk(['-n', ns, 'create', 'role', 'service-reader', '--verb=get,list,watch', '--resource=services']);
  await c.kubectlOk(['-n', ns, 'create', 'rolebinding', 'reader', '--role=service-reader', `--serviceaccount=${ns}:reader`]);
  let status = 0;
  await eventually('the RoleBinding to take effect', async () => (status = (await c.api('GET', path, undefined, { token })).status) === 200, 10_000, {
    intervalMs: 100, detail: () => `last status ${status}`,
  });
});

test('TokenRequest with audience vane-stream, checked by TokenReview with that audience', { skip: e2eSkip }, async () => {
  await c.kubectlOk(['-n', ns, 'create', 'serviceaccount', 'proxy']);
  const token = (await c.kubectlOk(['-n', ns, 'create', 'token', 'proxy', `--audience=${STREAM_AUDIENCE}`, '--duration=10m'])).trim();
  const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { aud: string[]; sub: string };
  assert.deepEqual(payload.aud, [STREAM_AUDIENCE]);

  type Review = { status: { authenticated?: boolean; user?: { username?: string }; audiences?: string[]; error?: string } };
  const review = async (audiences: string[]): Promise<Review['status']> => {
    const r = await c.api<Review>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } });
    assert.equal(r.status, 201, r.text);
    return r.body.status;
  };
  const ok = await review([STREAM_AUDIENCE]);
  assert.equal(ok.authenticated, true, ok.error);
  assert.equal(ok.user?.username, `system:serviceaccount:${ns}:proxy`);
  assert.deepEqual(ok.audiences, [STREAM_AUDIENCE]);

  const wrong = await review(['some-other-audience']);
  assert.notEqual(wrong.authenticated, true);
  assert.match(wrong.error ?? '', /audience/);

  // The API server's own audience is the issuer only: a stream token is no API credential.
  assert.notEqual((await review([])).authenticated, true);
  assert.equal((await c.api('GET', `/api/v1/namespaces/${ns}/services`, undefined, { token })).status, 401);
});

test('ValidatingAdmissionWebhook on loopback: the API server calls it and enforces its denial', { skip: e2eSkip }, async () => {
  const now = Date.now();
  const caKey = generateKeyPair();
  const caPem = createCertificate({ commonName: 'e2e-webhook-ca', publicKey: caKey.publicKey, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000), isCA: true }, { privateKey: caKey.privateKey });
  const key = generateKeyPair();
  const certPem = createCertificate({
    commonName: 'e2e-webhook', publicKey: key.publicKey, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000), isCA: false, ipAddresses: ['127.0.0.1'],
  }, { certificate: new X509Certificate(caPem), privateKey: caKey.privateKey });
  const seen: string[] = [];
  const server = createServer({ cert: certPem, key: privateKeyPem(key.privateKey) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (ch: Buffer) => chunks.push(ch));
    req.on('end', () => {
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request: { uid: string; name: string; object: { data?: Record<string, string> } } };
      seen.push(review.request.name);
      const deny = review.request.object.data?.verdict === 'deny';
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({
        apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
        response: { uid: review.request.uid, allowed: !deny, ...(deny ? { status: { code: 403, message: 'e2e webhook says no' } } : {}) },
      }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const name = `e2e-${ns}`;
  try {
    await c.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name },
        webhooks: [{
          name: 'e2e.vane.dev',
          clientConfig: { url: `https://127.0.0.1:${port}/validate`, caBundle: Buffer.from(caPem).toString('base64') },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
          // Only this file's namespace, so no other test's writes meet this webhook.
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } },
          failurePolicy: 'Fail', sideEffects: 'None', admissionReviewVersions: ['v1'], timeoutSeconds: 5,
        }],
      }),
    });
    // Webhook configurations reach the admission chain through an informer: poll until the denial shows.
    let attempt = 0;
    const denied = await eventually('the webhook denial to take effect', async () => {
      const r = await c.kubectl(['-n', ns, 'create', 'configmap', `refused-${attempt++}`, '--from-literal=verdict=deny']);
      return r.code !== 0 ? r : null;
    }, 15_000, { intervalMs: 100 });
    assert.match(denied.stderr, /admission webhook "e2e\.vane\.dev" denied the request: e2e webhook says no/);
    await c.kubectlOk(['-n', ns, 'create', 'configmap', 'allowed', '--from-literal=verdict=allow']);
    assert.ok(seen.includes('allowed'), `the webhook saw ${seen.join(', ')}`);
  } finally {
    await c.kubectl(['delete', 'validatingwebhookconfiguration', name, '--ignore-not-found']);
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test('a request from the host reaches an echo backend in a network namespace, which an EndpointSlice can name', { skip: netnsSkip }, async () => {
  const backend = await startEchoBackend('storefront');
  try {
    assert.match(backend.address, /^198\.51\.100\.\d+$/);
    assert.equal(backend.netns.name.length <= 15, true);
    const r = await httpJson<{ backend: string; method: string; path: string; host: string; headers: Record<string, string> }>(
      `${backend.url}/a/%2Fb/../c?x=1`, { headers: { host: 'shop.example.com', 'x-test': 'yes' } },
    );
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-echo-backend'], 'storefront');
    assert.deepEqual([r.body.backend, r.body.method, r.body.path, r.body.host, r.body.headers['x-test']], ['storefront', 'GET', '/a/%2Fb/../c?x=1', 'shop.example.com', 'yes']);

    // The failure switch: a ratio of 0.5 fails exactly every second request, until /__echo/ok.
    await backend.fail(503, 0.5);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await httpJson(`${backend.url}/`)).status);
    assert.deepEqual(statuses, [200, 503, 200, 503]);
    await backend.ok();
    assert.equal((await httpJson(`${backend.url}/`)).status, 200);

    await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1', kind: 'List', items: [
          { apiVersion: 'v1', kind: 'Service', metadata: { name: 'storefront' }, spec: { ports: [{ name: 'http', port: 80, targetPort: backend.port }] } },
          {
            apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
            metadata: { name: 'storefront-1', labels: { 'kubernetes.io/service-name': 'storefront' } },
            addressType: 'IPv4',
            ports: [{ name: 'http', port: backend.port, protocol: 'TCP' }],
            endpoints: [{ addresses: [backend.address], conditions: { ready: true } }],
          },
        ],
      }),
    });
    const slice = JSON.parse(await c.kubectlOk(['-n', ns, 'get', 'endpointslice', 'storefront-1', '-o', 'json'])) as { endpoints: { addresses: string[] }[] };
    assert.deepEqual(slice.endpoints[0]!.addresses, [backend.address]);

    // Why the backends live in namespaces: the API server refuses loopback endpoints.
    const loopback = await c.kubectl(['-n', ns, 'apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
        metadata: { name: 'storefront-loopback', labels: { 'kubernetes.io/service-name': 'storefront' } },
        addressType: 'IPv4', endpoints: [{ addresses: ['127.0.0.1'] }],
      }),
    });
    assert.notEqual(loopback.code, 0);
    assert.match(loopback.stderr, /loopback/);
  } finally {
    await backend.close();
  }
  assert.equal((await httpJson(`${backend.url}/`, { timeoutMs: 500 }).catch(() => null)), null, 'the backend is gone after close()');
});

test('echo backends in separate namespaces get separate addresses and answer with their own names', { skip: netnsSkip }, async () => {
  const [a, b] = await Promise.all([startEchoBackend('checkout'), startEchoBackend('checkout-v2')]);
  try {
    assert.notEqual(a.address, b.address);
    assert.equal(((await httpJson<{ backend: string }>(`${a.url}/`)).body).backend, 'checkout');
    assert.equal(((await httpJson<{ backend: string }>(`${b.url}/`)).body).backend, 'checkout-v2');
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});
