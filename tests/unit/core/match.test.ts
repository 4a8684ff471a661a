import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ingress, ingressClass, service, canary, tlsSecret } from '../../support/objects.ts';
import { selfSigned } from '../../support/tls.ts';
import { decider, where } from './harness.ts';

const svcs = ['exact', 'prefix', 'root', 'other', 'wild', 'any', 'fallback', 'deflt', 'stable', 'canary', 'a', 'b'].map((n) => service(n));

test('pathType Exact: byte-exact, case-sensitive, no trailing-slash leniency', () => {
  const route = decider([...svcs, ingress({ name: 'i', rules: [{ host: 'h.test', paths: [{ path: '/foo', pathType: 'Exact', service: 'exact' }] }] })]);
  const cases: [string, string][] = [
    ['/foo', 'exact /foo'],
    ['/foo/', 'not-found'],
    ['/FOO', 'not-found'],
    ['/foo/bar', 'not-found'],
    ['/fo', 'not-found'],
    ['/foo?x=1', 'exact /foo?x=1'],
  ];
  for (const [target, want] of cases) assert.equal(where(route({ host: 'h.test', target })), want, target);
});

test('pathType Prefix: element-wise, trailing slash on rule or request ignored', () => {
  const route = decider([...svcs, ingress({
    name: 'i', rules: [{ host: 'h.test', paths: [
      { path: '/foo', pathType: 'Prefix', service: 'prefix' },
      { path: '/aaa/bbb/', pathType: 'Prefix', service: 'other' },
    ] }],
  })]);
  const cases: [string, string][] = [
    ['/foo', 'prefix /foo'],
    ['/foo/', 'prefix /foo/'],
    ['/foo/bar', 'prefix /foo/bar'],
    ['/foobar', 'not-found'],
    ['/FOO', 'not-found'],
    ['/aaa/bbb', 'other /aaa/bbb'],
    ['/aaa/bbb/ccc', 'other /aaa/bbb/ccc'],
    ['/aaa/bbbxyz', 'not-found'],
    ['/aaa', 'not-found'],
  ];
  for (const [target, want] of cases) assert.equal(where(route({ host: 'h.test', target })), want, target);
});

test('Prefix / matches everything; longest match wins; on equal length Exact beats Prefix', () => {
  const route = decider([...svcs, ingress({
    name: 'i', rules: [{ host: 'h.test', paths: [
      { path: '/', pathType: 'Prefix', service: 'root' },
      { path: '/foo', pathType: 'Prefix', service: 'prefix' },
      { path: '/foo', pathType: 'Exact', service: 'exact' },
      { path: '/foo/bar', pathType: 'Prefix', service: 'other' },
    ] }],
  })]);
  const cases: [string, string][] = [
    ['/', 'root /'],
    ['/anything/at/all', 'root /anything/at/all'],
    ['/foo', 'exact /foo'],
    ['/foo/', 'prefix /foo/'],
    ['/foo/baz', 'prefix /foo/baz'],
    ['/foo/bar/baz', 'other /foo/bar/baz'],
    ['/foobar', 'root /foobar'],
  ];
  for (const [target, want] of cases) assert.equal(where(route({ host: 'h.test', target })), want, target);
});

test('query string never takes part in matching and is forwarded unchanged', () => {
  const route = decider([...svcs, ingress({ name: 'i', rules: [{ host: 'h.test', paths: [{ path: '/a', pathType: 'Exact', service: 'exact' }] }] })]);
  assert.equal(where(route({ host: 'h.test', target: '/a?/b=../c' })), 'exact /a?/b=../c');
  assert.equal(where(route({ host: 'h.test', target: '/b?/a' })), 'not-found');
});

test('bypass attempts are normalised before matching, and the upstream gets the matched path', () => {
  const route = decider([...svcs, ingress({
    name: 'i', rules: [{ host: 'h.test', paths: [
      { path: '/public', pathType: 'Prefix', service: 'root' },
      { path: '/admin', pathType: 'Prefix', service: 'other' },
    ] }],
  })]);
  const cases: [string, string][] = [
    ['/public/../admin', 'other /admin'],
    ['/public/%2e%2e/admin', 'other /admin'],
    ['//admin', 'other /admin'],
    ['/public//../admin/x', 'other /admin/x'],
    ['/admin%2F..', 'not-found'],
    ['/public/..%2Fadmin', 'root /public/..%2Fadmin'],
    ['/public/%2e%2e%2fadmin', 'root /public/..%2Fadmin'],
    ['/bad%zz', 'bad-request'],
  ];
  for (const [target, want] of cases) assert.equal(where(route({ host: 'h.test', target })), want, target);
});

test('slash merging can be turned off', () => {
  const route = decider([...svcs, ingress({ name: 'i', rules: [{ host: 'h.test', paths: [{ path: '/admin', pathType: 'Prefix', service: 'other' }] }] })], { mergeSlashes: false });
  assert.equal(where(route({ host: 'h.test', target: '//admin' })), 'not-found');
  assert.equal(where(route({ host: 'h.test', target: '/admin' })), 'other /admin');
});

test('hosts: exact and case-insensitive, port ignored, wildcard one label, precise > wildcard > host-less', () => {
  const route = decider([...svcs, ingress({
    name: 'i', rules: [
      { host: 'foo.bar.com', paths: [{ service: 'exact' }] },
      { host: '*.bar.com', paths: [{ service: 'wild' }] },
      { paths: [{ service: 'any' }] },
    ],
  })]);
  const cases: [string | undefined, string][] = [
    ['foo.bar.com', 'exact /x'],
    ['FOO.Bar.com:8080', 'exact /x'],
    ['baz.bar.com', 'wild /x'],
    ['bar.com', 'any /x'],
    ['a.b.bar.com', 'any /x'],
    ['other.test', 'any /x'],
    ['127.0.0.1', 'any /x'],
    [undefined, 'any /x'],
  ];
  for (const [host, want] of cases) assert.equal(where(route({ host, target: '/x' })), want, String(host));
});

test('an unmatched path on a known host does not fall through to host-less rules; defaultBackend catches it', () => {
  const objects = [...svcs,
    ingress({ name: 'i', created: '2024-01-01T00:00:00Z', rules: [{ host: 'h.test', paths: [{ path: '/app', service: 'a' }] }, { paths: [{ path: '/', service: 'any' }] }] }),
  ];
  assert.equal(where(decider(objects)({ host: 'h.test', target: '/other' })), 'not-found');
  const withDefault = [...objects, ingress({ name: 'd', created: '2024-02-01T00:00:00Z', defaultBackend: { service: 'deflt' } })];
  assert.equal(where(decider(withDefault)({ host: 'h.test', target: '/other' })), 'deflt /other');
  assert.equal(where(decider(withDefault)({ host: 'h.test', target: '/app/1' })), 'a /app/1');
});

test('spec.defaultBackend: the oldest Ingress with one catches everything no rule matches', () => {
  const route = decider([...svcs,
    ingress({ name: 'newer', created: '2024-03-01T00:00:00Z', defaultBackend: { service: 'b' } }),
    ingress({ name: 'older', created: '2024-01-01T00:00:00Z', defaultBackend: { service: 'deflt' } }),
  ]);
  assert.equal(where(route({ host: 'anything.test', target: '/' })), 'deflt /');
  assert.equal(where(decider(svcs)({ host: 'x.test', target: '/' })), 'not-found', 'no match and no default → 404');
});

test('an Ingress defaultBackend is the fallback on its own hosts', () => {
  const route = decider([...svcs, ingress({ name: 'i', defaultBackend: { service: 'fallback' }, rules: [{ host: 'h.test', paths: [{ path: '/api', service: 'a' }] }] })]);
  assert.equal(where(route({ host: 'h.test', target: '/api/x' })), 'a /api/x');
  assert.equal(where(route({ host: 'h.test', target: '/web' })), 'fallback /web');
});

test('IngressClass: ingressClassName, legacy annotation, default class; other classes ignored entirely', () => {
  const rule = (service: string, host: string) => [{ host, paths: [{ service }] }];
  const objects = [...svcs,
    ingressClass('vane-internal', 'vane.dev/ingress-controller'),
    ingressClass('nginx', 'k8s.io/ingress-nginx'),
    ingress({ name: 'named', className: 'vane', rules: rule('a', 'named.test') }),
    ingress({ name: 'by-class-object', className: 'vane-internal', rules: rule('a', 'internal.test') }),
    ingress({ name: 'legacy', className: null, annotations: { 'kubernetes.io/ingress.class': 'vane' }, rules: rule('a', 'legacy.test') }),
    ingress({ name: 'foreign', className: 'nginx', rules: rule('a', 'foreign.test') }),
    ingress({ name: 'classless', className: null, rules: rule('a', 'classless.test') }),
  ];
  const route = decider(objects);
  assert.equal(where(route({ host: 'named.test', target: '/' })), 'a /');
  assert.equal(where(route({ host: 'internal.test', target: '/' })), 'a /');
  assert.equal(where(route({ host: 'legacy.test', target: '/' })), 'a /');
  assert.equal(where(route({ host: 'foreign.test', target: '/' })), 'not-found');
  assert.equal(where(route({ host: 'classless.test', target: '/' })), 'not-found', 'class-less needs a default class');
  const withDefault = decider([...objects, ingressClass('vane-default', 'vane.dev/ingress-controller', true)]);
  assert.equal(where(withDefault({ host: 'classless.test', target: '/' })), 'a /');
  const foreignDefault = decider([...objects, ingressClass('nginx-default', 'k8s.io/ingress-nginx', true)]);
  assert.equal(where(foreignDefault({ host: 'classless.test', target: '/' })), 'not-found');
});

test('several Ingresses on one host merge; the same host+path goes to the oldest', () => {
  const route = decider([...svcs,
    ingress({ name: 'young', created: '2024-05-01T00:00:00Z', rules: [{ host: 'h.test', paths: [{ path: '/x', service: 'b' }, { path: '/y', service: 'b' }] }] }),
    ingress({ name: 'old', created: '2024-01-01T00:00:00Z', rules: [{ host: 'h.test', paths: [{ path: '/x', service: 'a' }] }] }),
  ]);
  assert.equal(where(route({ host: 'h.test', target: '/x' })), 'a /x');
  assert.equal(where(route({ host: 'h.test', target: '/y' })), 'b /y');
});

test('TLS hosts redirect plain HTTP with 308 unless ssl-redirect is off', () => {
  const { cert, key } = selfSigned('secure.test');
  const objects = [...svcs, tlsSecret('secure-tls', cert, key),
    ingress({ name: 's', tls: [{ hosts: ['secure.test'], secretName: 'secure-tls' }], rules: [{ host: 'secure.test', paths: [{ service: 'a' }] }] }),
    ingress({ name: 'n', annotations: { 'vane.dev/ssl-redirect': 'false' }, tls: [{ hosts: ['open.test'], secretName: 'secure-tls' }], rules: [{ host: 'open.test', paths: [{ service: 'b' }] }] }),
  ];
  const route = decider(objects);
  assert.equal(where(route({ host: 'secure.test', target: '/p?q=1' })), 'redirect https://secure.test/p?q=1');
  assert.equal(where(route({ host: 'secure.test', target: '/p', scheme: 'https' })), 'a /p');
  assert.equal(where(route({ host: 'open.test', target: '/p' })), 'b /p');
});

test('rewrite-target: prefix replacement, and capture groups with regex paths', () => {
  const route = decider([...svcs,
    ingress({ name: 'p', annotations: { 'vane.dev/rewrite-target': '/' }, rules: [{ host: 'p.test', paths: [{ path: '/api', service: 'a' }] }] }),
    ingress({ name: 'r', annotations: { 'vane.dev/use-regex': 'true', 'vane.dev/rewrite-target': '/v2/$2' }, rules: [{ host: 'r.test', paths: [{ path: '/api(/|$)(.*)', pathType: 'ImplementationSpecific', service: 'b' }] }] }),
  ]);
  assert.equal(where(route({ host: 'p.test', target: '/api/users?id=1' })), 'a /users?id=1');
  assert.equal(where(route({ host: 'p.test', target: '/api' })), 'a /');
  assert.equal(where(route({ host: 'r.test', target: '/api/users/7' })), 'b /v2/users/7');
  assert.equal(where(route({ host: 'r.test', target: '/apiary' })), 'not-found');
});

test('regex paths are anchored at the start, RE2 syntax, and lose to a longer prefix', () => {
  const route = decider([...svcs, ingress({
    name: 'r', annotations: { 'vane.dev/use-regex': 'true' }, rules: [{ host: 'r.test', paths: [
      { path: '/items/[0-9]+', pathType: 'ImplementationSpecific', service: 'a' },
      { path: '/items/special/long', pathType: 'Prefix', service: 'b' },
    ] }],
  })]);
  assert.equal(where(route({ host: 'r.test', target: '/items/42' })), 'a /items/42');
  assert.equal(where(route({ host: 'r.test', target: '/x/items/42' })), 'not-found');
  assert.equal(where(route({ host: 'r.test', target: '/items/special/long/1' })), 'b /items/special/long/1');
});

const split = (traffic: NonNullable<Parameters<typeof canary>[1]>['traffic'], status?: { weight?: number; phase?: string }) => [
  ...svcs,
  ingress({ name: 'shop', rules: [{ host: 'shop.test', paths: [{ path: '/pay', service: 'stable' }, { path: '/other', service: 'a' }] }, { host: 'elsewhere.test', paths: [{ path: '/', service: 'stable' }] }] }),
  ingress({ name: 'unrelated', rules: [{ host: 'unrelated.test', paths: [{ path: '/', service: 'stable' }] }] }),
  canary('c', { ingressRef: { name: 'shop' }, service: 'stable', canaryService: { name: 'canary' }, traffic }, status ? { status } : {}),
];

test('canary precedence: header, then cookie, then weight (ingress-nginx semantics)', () => {
  const route = decider(split({ weight: 0, header: { name: 'X-Canary' }, cookie: { name: 'canary' } }));
  const cases: [Record<string, string>, Record<string, string>, number, string][] = [
    [{ 'X-Canary': 'always' }, {}, 99, 'canary'],
    [{ 'X-Canary': 'never' }, { canary: 'always' }, 0, 'stable'],
    [{ 'X-Canary': 'maybe' }, { canary: 'always' }, 99, 'canary'],
    [{}, { canary: 'always' }, 99, 'canary'],
    [{}, { canary: 'never' }, 0, 'stable'],
    [{}, { canary: 'other' }, 0, 'stable'],
  ];
  for (const [headers, cookies, bucket, want] of cases) {
    const d = route({ host: 'shop.test', target: '/pay', headers, cookies, bucket });
    assert.equal(d.canary, want, JSON.stringify({ headers, cookies }));
    assert.equal(d.backend, want === 'canary' ? 'backend/default/canary:80' : 'backend/default/stable:80');
  }
});

test('canary header with an explicit value: always/never lose their meaning; regex matches unanchored', () => {
  const byValue = decider(split({ weight: 0, header: { name: 'X-Canary', value: 'yes' } }));
  assert.equal(byValue({ host: 'shop.test', target: '/pay', headers: { 'x-canary': 'yes' } }).canary, 'canary');
  assert.equal(byValue({ host: 'shop.test', target: '/pay', headers: { 'x-canary': 'always' } }).canary, 'stable');
  assert.equal(byValue({ host: 'shop.test', target: '/pay', headers: { 'x-canary': 'YES' } }).canary, 'stable', 'value is case-sensitive');
  const byRegex = decider(split({ weight: 100, header: { name: 'X-User', regex: 'beta-[0-9]+' } }));
  assert.equal(byRegex({ host: 'shop.test', target: '/pay', headers: { 'x-user': 'id=beta-17' } }).canary, 'canary');
  assert.equal(byRegex({ host: 'shop.test', target: '/pay', headers: { 'x-user': 'never' }, bucket: 99.5 }).canary, 'canary', 'never is not final with a pattern: it falls through to weight 100');
});

test('canary weight splits by bucket; the split is scoped to the canary Ingress routes to its service', () => {
  const route = decider(split({ weight: 30 }));
  assert.equal(route({ host: 'shop.test', target: '/pay', bucket: 29.9 }).canary, 'canary');
  assert.equal(route({ host: 'shop.test', target: '/pay', bucket: 30 }).canary, 'stable');
  assert.equal(route({ host: 'elsewhere.test', target: '/', bucket: 0 }).canary, 'canary', 'every route of the Ingress to the service');
  assert.equal(route({ host: 'shop.test', target: '/other', bucket: 0 }).canary, null, 'other services are untouched');
  assert.equal(route({ host: 'unrelated.test', target: '/', bucket: 0 }).canary, null, 'never leaks to other Ingresses sharing the service');
});

test('canary effective weight comes from status; a Failed canary turns every rule off', () => {
  const fromStatus = decider(split({ weight: 5 }, { weight: 60, phase: 'Progressing' }));
  assert.equal(fromStatus({ host: 'shop.test', target: '/pay', bucket: 50 }).canary, 'canary');
  const failed = decider(split({ weight: 50, header: { name: 'X-Canary' }, cookie: { name: 'canary' }, sticky: true }, { weight: 50, phase: 'Failed' }));
  const d = failed({ host: 'shop.test', target: '/pay', headers: { 'x-canary': 'always' }, cookies: { canary: 'always' }, bucket: 0 });
  assert.equal(d.canary, null);
  assert.equal(d.backend, 'backend/default/stable:80');
});

test('a canary never creates a route of its own', () => {
  const route = decider([...svcs, canary('c', { ingressRef: { name: 'missing' }, service: 'stable', canaryService: { name: 'canary' }, traffic: { weight: 100 } })]);
  assert.equal(where(route({ host: 'shop.test', target: '/pay', bucket: 0 })), 'not-found');
});
