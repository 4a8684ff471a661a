import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { compile, Compiler, canonicalJson, type KubeObject, type HashedResource } from '../../../core/index.ts';
import { ingress, service, externalService, slice, tlsSecret, canary } from '../../support/objects.ts';
import { selfSigned } from '../../support/tls.ts';

function world(): KubeObject[] {
  const { cert, key } = selfSigned('shop.test');
  return [
    service('web'), service('api', 'default', [{ name: 'grpc', port: 9000 }, { name: 'http', port: 80 }]), service('web-v2'),
    externalService('ext', 'example.net'),
    slice('web-a', 'web', [{ ip: '192.0.2.2' }, { ip: '192.0.2.1' }, { ip: '192.0.2.3', ready: false, serving: true, terminating: true }]),
    slice('api-a', 'api', [{ ip: '192.0.2.9' }], { port: 8081 }),
    slice('web-v2-a', 'web-v2', [{ ip: '192.0.2.20' }]),
    tlsSecret('shop-tls', cert, key),
    caSecret('backend-ca', selfSigned('backend-ca.test')), caSecret('client-ca', selfSigned('client-ca.test')),
    ingress({ name: 'shop', created: '2024-01-01T00:00:00Z', annotations: { 'vane.dev/backend-tls-secret': 'backend-ca', 'vane.dev/auth-tls-secret': 'client-ca' }, tls: [{ hosts: ['shop.test'], secretName: 'shop-tls' }], rules: [{ host: 'shop.test', paths: [{ path: '/', service: 'web' }, { path: '/api', service: 'api', port: 'http' }, { path: '/ext', service: 'ext' }] }] }),
    ingress({ name: 'blog', created: '2024-02-01T00:00:00Z', rules: [{ host: 'blog.test', paths: [{ path: '/', service: 'web' }] }] }),
    canary('web', { ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web-v2' }, traffic: { weight: 10 } }),
  ];
}

/** caSecret holds a CA with its key pair (as cert-manager writes one): every kind of key material a Secret brings. */
function caSecret(name: string, ca: { cert: string; key: string }): KubeObject {
  return { ...tlsSecret(name, ca.cert, ca.key), data: { ...tlsSecret(name, ca.cert, ca.key).data, 'ca.crt': Buffer.from(ca.cert).toString('base64') } } as KubeObject;
}

function serialise(resources: ReadonlyMap<string, HashedResource>): string {
  return canonicalJson([...resources.values()].map((r) => [r.resource.name, r.hash]).sort());
}

function shuffled<T>(items: T[], seed: number): T[] {
  const out = items.slice();
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

test('output is byte-identical whatever the input order', () => {
  const objects = world();
  const first = compile(objects);
  for (let seed = 1; seed <= 10; seed++) {
    const again = compile(shuffled(objects, seed));
    assert.equal(again.root, first.root);
    assert.equal(serialise(again.resources), serialise(first.resources));
  }
});

test('a second process compiles the examples to the same root', () => {
  const script = `
    import { compile } from './core/index.ts';
    import { loadManifests } from './lib/manifests.ts';
    const m = await loadManifests(['examples']);
    console.log(compile(m.objects.map((o) => o.object)).root);`;
  const run = () => execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('../../../', import.meta.url).pathname }).toString().trim();
  const a = run();
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.equal(run(), a);
});

test('resources: one vhost per host, backends with ports by number and name, ready endpoints only tagged', () => {
  const { resources } = compile(world());
  const names = [...resources.keys()].sort();
  assert.deepEqual(names.filter((n) => n.startsWith('vhost/')), ['vhost/blog.test', 'vhost/shop.test']);
  assert.ok(names.includes('backend/default/api:http'));
  assert.ok(names.includes('backend/default/web-v2:80'), 'the canary backend is a resource');
  const ep = resources.get('endpoints/default/web:80')!.resource;
  assert.equal(ep.type, 'endpoints');
  if (ep.type !== 'endpoints') return;
  assert.deepEqual(ep.spec.addresses.map((a) => [a.address, a.port, a.ready, a.terminating]), [
    ['192.0.2.1', 8080, true, false], ['192.0.2.2', 8080, true, false], ['192.0.2.3', 8080, false, true],
  ]);
  const api = resources.get('endpoints/default/api:http')!.resource;
  assert.ok(api.type === 'endpoints' && api.spec.addresses[0]!.port === 8081, 'port by name resolves through the slice port of the same name');
  const ext = resources.get('backend/default/ext:80')!.resource;
  assert.ok(ext.type === 'backend' && ext.spec.externalName === 'example.net' && ext.spec.externalPort === 80);
  assert.equal(resources.get('endpoints/default/ext:80'), undefined, 'ExternalName backends have no endpoints');
});

test('an EndpointSlice change touches only endpoint resources', () => {
  const compiler = new Compiler();
  for (const o of world()) compiler.set(o);
  compiler.build();
  compiler.set(slice('web-a', 'web', [{ ip: '192.0.2.1' }, { ip: '192.0.2.4' }]));
  const { changed } = compiler.build();
  assert.deepEqual(changed, { upserts: ['endpoints/default/web:80'], removals: [] });
});

test('no non-secret resource contains key material: serving pairs, backend CAs and client certificates, client CAs', () => {
  const { resources } = compile(world());
  const pairs = ['shop.test', 'backend-ca.test', 'client-ca.test'].map((n) => selfSigned(n));
  let secrets = 0;
  for (const r of resources.values()) {
    const text = canonicalJson(r.resource);
    if (r.resource.type === 'secret') { secrets++; continue; }
    assert.ok(!text.includes('PRIVATE KEY'), `${r.resource.name} has a PEM key header`);
    for (const { key, cert } of pairs) {
      assert.ok(!text.includes(key.split('\n').slice(1, 3).join('').slice(0, 40)), `${r.resource.name} has key bytes`);
      assert.ok(!text.includes(cert.split('\n')[1]!), `${r.resource.name} has certificate bytes`);
    }
  }
  assert.equal(secrets, 3);
  const vhost = resources.get('vhost/shop.test')!.resource;
  assert.ok(vhost.type === 'vhost' && vhost.spec.tls?.secret === 'secret/default/shop-tls');
});

test('a missing or malformed TLS Secret: the host uses the default certificate and the Ingress says why', () => {
  const { cert } = selfSigned('shop.test');
  const other = selfSigned('other.test');
  const cases: [string, KubeObject[], RegExp][] = [
    ['missing', [], /Secret default\/shop-tls: Secret not found/],
    ['wrong type', [{ ...tlsSecret('shop-tls', cert, other.key), type: 'Opaque' }], /want kubernetes.io\/tls/],
    ['key of another cert', [tlsSecret('shop-tls', cert, other.key)], /does not belong/],
    ['garbage cert', [tlsSecret('shop-tls', 'not a cert', other.key)], /not a PEM certificate/],
  ];
  for (const [why, secrets, message] of cases) {
    const objects = [service('web'), ...secrets, ingress({ name: 'shop', tls: [{ hosts: ['shop.test'], secretName: 'shop-tls' }], rules: [{ host: 'shop.test', paths: [{ service: 'web' }] }] })];
    const result = compile(objects);
    const vhost = result.resources.get('vhost/shop.test')!.resource;
    assert.ok(vhost.type === 'vhost' && vhost.spec.tls?.secret === null, why);
    assert.equal([...result.resources.keys()].filter((n) => n.startsWith('secret/')).length, 0, `${why}: no secret resource`);
    const status = result.statuses.get('Ingress/default/shop')!;
    const p = status.problems.find((x) => x.reason === 'TLSSecretInvalid');
    assert.ok(p && message.test(p.message) && p.field === 'spec.tls[0].secretName', `${why}: ${JSON.stringify(status.problems)}`);
    assert.ok(!p.message.includes('BEGIN'), 'messages never carry key material');
  }
});

test('secretsMetadataOnly (the webhook\'s verdicts): a TLS Secret is judged by existence and type, never by its data', () => {
  const { cert } = selfSigned('shop.test');
  const other = selfSigned('other.test');
  const metadataOnly = { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'shop-tls', namespace: 'default', uid: 'u1', resourceVersion: '7' } } as KubeObject;
  const cases: [string, KubeObject[], RegExp | null][] = [
    ['missing', [], /Secret default\/shop-tls: Secret not found/],
    ['wrong type', [{ ...metadataOnly, type: 'Opaque' } as KubeObject], /want kubernetes.io\/tls/],
    ['metadata only', [metadataOnly], null],
    // Only the operator, which reads the data, can tell; its status condition says so.
    ['key of another cert', [tlsSecret('shop-tls', cert, other.key)], null],
    ['garbage cert', [tlsSecret('shop-tls', 'not a cert', other.key)], null],
  ];
  for (const [why, secrets, message] of cases) {
    const objects = [service('web'), ...secrets, ingress({ name: 'shop', tls: [{ hosts: ['shop.test'], secretName: 'shop-tls' }], rules: [{ host: 'shop.test', paths: [{ service: 'web' }] }] })];
    const result = compile(objects, { secretsMetadataOnly: true });
    assert.equal([...result.resources.keys()].filter((n) => n.startsWith('secret/')).length, 0, `${why}: no secret resource, whatever the data`);
    const p = result.statuses.get('Ingress/default/shop')!.problems.find((x) => x.reason === 'TLSSecretInvalid');
    if (message) assert.ok(p && message.test(p.message), `${why}: ${JSON.stringify(p)}`);
    else assert.equal(p, undefined, `${why}: no TLS problem`);
  }
  // Without the option the same garbage Secret is a problem: that is the operator's verdict.
  const full = compile([service('web'), tlsSecret('shop-tls', 'not a cert', other.key), ingress({ name: 'shop', tls: [{ hosts: ['shop.test'], secretName: 'shop-tls' }], rules: [{ host: 'shop.test', paths: [{ service: 'web' }] }] })]);
  assert.ok(full.statuses.get('Ingress/default/shop')!.problems.some((x) => x.reason === 'TLSSecretInvalid'));
});

test('the default certificate: operator option, else the oldest host-less spec.tls entry, else none (fake)', () => {
  const a = selfSigned('a.test');
  const b = selfSigned('b.test');
  const base = [service('web'), tlsSecret('a', a.cert, a.key), tlsSecret('b', b.cert, b.key)];
  const newer = ingress({ name: 'newer', created: '2024-03-01T00:00:00Z', tls: [{ secretName: 'b' }], rules: [{ host: 'n.test', paths: [{ service: 'web' }] }] });
  const older = ingress({ name: 'older', created: '2024-01-01T00:00:00Z', tls: [{ secretName: 'a' }], rules: [{ host: 'o.test', paths: [{ service: 'web' }] }] });
  const listener = (objs: KubeObject[], opts = {}) => {
    const r = compile(objs, opts).resources.get('listener/default')!.resource;
    return r.type === 'listener' ? r.spec.defaultCertificate : 'wrong type';
  };
  assert.equal(listener([...base, newer, older]), 'secret/default/a');
  assert.equal(listener([...base, newer, older], { defaultCertificate: 'default/b' }), 'secret/default/b');
  assert.equal(listener(base), null);
});

test('invalid objects become status problems naming the field; the rest still builds', () => {
  const result = compile([service('web'),
    ingress({ name: 'bad', rules: [{ host: '10.0.0.1', paths: [{ service: 'web' }] }] }),
    ingress({ name: 'bad-path', rules: [{ host: 'p.test', paths: [{ path: 'nope', pathType: 'Prefix', service: 'web' }] }] }),
    ingress({ name: 'bad-annotation', annotations: { 'vane.dev/connect-timeout': 'soon' }, rules: [{ host: 'q.test', paths: [{ service: 'web' }] }] }),
    ingress({ name: 'good', rules: [{ host: 'g.test', paths: [{ service: 'web' }] }] }),
  ]);
  const problem = (key: string) => result.statuses.get(`Ingress/default/${key}`)!.problems[0]!;
  assert.deepEqual([problem('bad').field, problem('bad').severity], ['spec.rules[0].host', 'error']);
  assert.match(problem('bad').message, /must be a DNS name, not an IP address/);
  assert.equal(problem('bad-path').field, 'spec.rules[0].http.paths[0].path');
  assert.equal(problem('bad-annotation').field, 'metadata.annotations["vane.dev/connect-timeout"]');
  assert.deepEqual([...result.resources.keys()].filter((n) => n.startsWith('vhost/')), ['vhost/g.test']);
  assert.deepEqual(result.statuses.get('Ingress/default/good')!.problems, []);
});

test('a path claimed twice: the oldest wins, the loser is told who won, and both are marked', () => {
  const result = compile([service('a'), service('b'),
    ingress({ name: 'young', namespace: 'team-b', created: '2024-05-01T00:00:00Z', rules: [{ host: 'h.test', paths: [{ path: '/x', service: 'b' }] }] }),
    ingress({ name: 'old', namespace: 'team-a', created: '2024-01-01T00:00:00Z', rules: [{ host: 'h.test', paths: [{ path: '/x', service: 'a' }] }] }),
  ].map((o) => (o.kind === 'Service' ? o : o)));
  const loser = result.statuses.get('Ingress/team-b/young')!.problems;
  assert.equal(loser.length >= 1, true);
  const conflict = loser.find((p) => p.reason === 'HostConflict')!;
  assert.match(conflict.message, /already served by Ingress team-a\/old/);
  assert.equal(conflict.field, 'spec.rules[0].http.paths[0]');
  // Issue 17: every party to a conflict is marked, the winner too (as Contour does).
  const winner = result.statuses.get('Ingress/team-a/old')!.problems.filter((p) => p.reason === 'HostConflict');
  assert.deepEqual(winner.map((p) => [p.field, p.severity]), [['spec.rules[0].http.paths[0]', 'warning']]);
  assert.match(winner[0]!.message, /claimed by Ingresses team-a\/old, team-b\/young; this one is the oldest and serves it/);
  const route = result.resources.get('vhost/h.test')!.resource;
  assert.ok(route.type === 'vhost' && route.spec.routes.length === 1 && route.spec.routes[0]!.ingress === 'team-a/old', 'the oldest still serves the path');
});

test('a host conflict marks every party to it, each message naming them all, sorted (regression: only the losers were marked)', () => {
  const claim = (name: string, namespace: string, created: string, extra: { path: string; service: string }[] = []) =>
    ingress({ name, namespace, created, rules: [{ host: 'h.test', paths: [{ path: '/x', service: 'a' }, ...extra] }] });
  const result = compile([service('a'), service('a', 'ns-a'), service('a', 'ns-z'), service('a', 'ns-m'),
    claim('zeta', 'ns-z', '2024-03-01T00:00:00Z'),
    claim('alpha', 'ns-a', '2024-02-01T00:00:00Z', [{ path: '/own', service: 'a' }]),
    claim('mid', 'ns-m', '2024-01-01T00:00:00Z'),
    ingress({ name: 'bystander', namespace: 'ns-a', created: '2023-01-01T00:00:00Z', rules: [{ host: 'h.test', paths: [{ path: '/other', service: 'a' }] }] }),
  ]);
  const conflicts = (key: string) => result.statuses.get(`Ingress/${key}`)!.problems.filter((p) => p.reason === 'HostConflict');
  for (const key of ['ns-a/alpha', 'ns-m/mid', 'ns-z/zeta']) {
    const marked = conflicts(key);
    assert.equal(marked.length, 1, `${key} is a party and is marked: ${JSON.stringify(marked)}`);
    assert.equal(marked[0]!.field, 'spec.rules[0].http.paths[0]');
    assert.match(marked[0]!.message, /^host "h\.test" path "\/x" \(Prefix\) is claimed by Ingresses ns-a\/alpha, ns-m\/mid, ns-z\/zeta; /);
  }
  assert.match(conflicts('ns-m/mid')[0]!.message, /this one is the oldest and serves it$/);
  assert.match(conflicts('ns-a/alpha')[0]!.message, /already served by Ingress ns-m\/mid \(spec\.rules\[0\]\.http\.paths\[0\]\), which is older; this path is ignored$/);
  assert.match(conflicts('ns-z/zeta')[0]!.message, /already served by Ingress ns-m\/mid/);
  assert.deepEqual(conflicts('ns-a/bystander'), [], 'an Ingress on the host that claims nothing twice is no party');
});

test('Canary statuses report a missing Ingress, a missing canary Service and a second canary on the same service', () => {
  const result = compile([service('web'), service('web-v2'),
    ingress({ name: 'shop', rules: [{ host: 's.test', paths: [{ service: 'web' }] }] }),
    canary('first', { ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web-v2' } }, { created: '2024-01-01T00:00:00Z' }),
    canary('second', { ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web-v3' } }, { created: '2024-02-01T00:00:00Z' }),
    canary('orphan', { ingressRef: { name: 'gone' }, service: 'web', canaryService: { name: 'web-v2' } }),
    canary('self', { ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web' } }),
  ]);
  const reasons = (name: string) => result.statuses.get(`Canary/default/${name}`)!.problems.map((p) => p.reason).sort();
  assert.deepEqual(reasons('first'), []);
  assert.deepEqual(reasons('second'), ['CanaryConflict', 'ServiceNotFound']);
  assert.deepEqual(reasons('orphan'), ['IngressNotFound']);
  assert.deepEqual(reasons('self'), ['InvalidCanary']);
});

test('compile never throws on malformed objects', () => {
  const junk: unknown[] = [
    { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'x' }, spec: { ingressClassName: 'vane', rules: 'nope' } },
    { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'y' }, spec: { ingressClassName: 'vane', rules: [null, { host: 5 }, { http: { paths: [null, { pathType: 'Prefix' }] } }], tls: [null, { hosts: [1] }] } },
    { apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'c' }, spec: { traffic: { header: { name: 3 }, weight: 'x' }, analysis: { stepWeights: 'no' } } },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', labels: { 'kubernetes.io/service-name': 'web' } }, endpoints: [{ addresses: [null] }], ports: 'x' },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { ports: [null] } },
    { kind: 'Ingress' },
  ];
  const result = compile([...junk as KubeObject[], ingress({ name: 'ok', rules: [{ host: 'ok.test', paths: [{ service: 'web' }] }] })]);
  assert.ok(result.resources.has('vhost/ok.test'));
  assert.ok(result.statuses.get('Ingress/default/x')!.problems.some((p) => p.field === 'spec.rules'));
});
