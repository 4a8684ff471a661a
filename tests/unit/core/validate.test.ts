import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validate, formatProblem, type KubeObject } from '../../../core/index.ts';
import { ingress, service, canary } from '../../support/objects.ts';

const messages = (obj: KubeObject, objects?: KubeObject[]) => {
  const v = validate(obj, objects ? { objects } : {});
  return { errors: v.errors.map(formatProblem), warnings: v.warnings.map(formatProblem) };
};

test('Ingress errors name the field', () => {
  const cases: [KubeObject, RegExp][] = [
    [ingress({ name: 'a', rules: [{ host: '*', paths: [{ service: 'web' }] }] }), /^spec\.rules\[0\]\.host: a bare "\*" is not a valid host/],
    [ingress({ name: 'a', rules: [{ host: 'a.test:80', paths: [{ service: 'web' }] }] }), /^spec\.rules\[0\]\.host: .*must not contain a port/],
    [ingress({ name: 'a', rules: [{ host: 'a.*.test', paths: [{ service: 'web' }] }] }), /^spec\.rules\[0\]\.host: .*wildcard is only allowed as the whole first label/],
    [ingress({ name: 'a', rules: [{ host: 'A.test', paths: [{ service: 'web' }] }] }), /not a valid lower-case DNS name/],
    [ingress({ name: 'a', rules: [{ host: 'a.test', paths: [{ path: '/a/../b', service: 'web' }] }] }), /^spec\.rules\[0\]\.http\.paths\[0\]\.path: must be normalised/],
    [ingress({ name: 'a', rules: [{ host: 'a.test', paths: [{ pathType: 'Fuzzy', service: 'web' }] }] }), /^spec\.rules\[0\]\.http\.paths\[0\]\.pathType: must be one of/],
    [ingress({ name: 'a', rules: [{ host: 'a.test', paths: [{ service: 'web', port: 70000 }] }] }), /service\.port\.number: must be an integer between 1 and 65535/],
    [ingress({ name: 'a', annotations: { 'vane.dev/use-regex': 'true' }, rules: [{ host: 'a.test', paths: [{ path: '(a+)+$(', pathType: 'ImplementationSpecific', service: 'web' }] }] }), /path: invalid regular expression \(RE2 syntax\)/],
    [ingress({ name: 'a', annotations: { 'vane.dev/use-regex': 'true' }, rules: [{ host: 'a.test', paths: [{ path: '/(?=lookahead)', pathType: 'ImplementationSpecific', service: 'web' }] }] }), /invalid regular expression/],
    [ingress({ name: 'a', annotations: { 'vane.dev/use-regex': 'true' }, rules: [{ host: 'a.test', paths: [{ path: '/' + 'a{1000}'.repeat(5), pathType: 'ImplementationSpecific', service: 'web' }] }] }), /(instructions; the limit is|invalid regular expression)/],
    // Issue #18: 15 characters, 3004 instructions; each 15 KB path cost 0.7 s of CPU.
    [ingress({ name: 'a', annotations: { 'vane.dev/use-regex': 'true' }, rules: [{ host: 'a.test', paths: [{ path: '/(.*a){600}x', pathType: 'ImplementationSpecific', service: 'web' }] }] }), /^spec\.rules\[0\]\.http\.paths\[0\]\.path: regular expression compiles to 3004 RE2 instructions; the limit is 100/],
    [ingress({ name: 'a', annotations: { 'vane.dev/use-regex': 'true' }, rules: [{ host: 'a.test', paths: [{ path: '/[a-z0-9-]{1,63}/items', pathType: 'ImplementationSpecific', service: 'web' }] }] }), /path: regular expression compiles to \d+ RE2 instructions; the limit is 100 .*write repetitions like \{1,63\} as \+ or \*/],
    [ingress({ name: 'a', annotations: { 'vane.dev/read-timeout': '2h' }, rules: [{ host: 'a.test', paths: [{ service: 'web' }] }] }), /^metadata\.annotations\["vane\.dev\/read-timeout"\]: must be between/],
    [ingress({ name: 'a', annotations: { 'vane.dev/server-snippet': 'x' }, rules: [{ host: 'a.test', paths: [{ service: 'web' }] }] }), /configuration snippets are not supported/],
    [ingress({ name: 'a' }), /^spec: either spec\.defaultBackend or spec\.rules is required/],
  ];
  for (const [obj, want] of cases) {
    const { errors } = messages(obj);
    assert.ok(errors.some((e) => want.test(e)), `${want}: got ${JSON.stringify(errors)}`);
  }
});

test('Ingress warnings: unknown and misspelled annotations, TLS host without rule', () => {
  const { errors, warnings } = messages(ingress({
    name: 'a',
    annotations: { 'vane.dev/rewrite-targte': '/', 'nginx.ingress.kubernetes.io/canary-wieght': '10' },
    tls: [{ hosts: ['other.test'], secretName: 'x' }],
    rules: [{ host: 'a.test', paths: [{ service: 'web' }] }],
  }));
  assert.deepEqual(errors, []);
  assert.ok(warnings.some((w) => w.startsWith('metadata.annotations["vane.dev/rewrite-targte"]: unknown Vane annotation')));
  assert.ok(warnings.some((w) => w.includes('canary-wieght') && w.includes('misspelled')));
  assert.ok(warnings.some((w) => w.startsWith('spec.tls[0].hosts[0]: no rule of this Ingress serves host "other.test"')));
});

test('Canary errors the schema cannot express', () => {
  const base = { ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web-v2' } };
  const cases: [KubeObject, RegExp][] = [
    [canary('c', { ...base, canaryService: { name: 'web' } }), /^spec\.canaryService\.name: must differ from spec\.service/],
    [canary('c', { ...base, traffic: { weight: 101 } }), /^spec\.traffic\.weight: must be an integer from 0 to 100/],
    [canary('c', { ...base, traffic: { header: { name: 'X-A', value: 'a', regex: 'b' } } }), /^spec\.traffic\.header: value and regex are mutually exclusive/],
    [canary('c', { ...base, traffic: { header: { name: 'X-A', regex: '(' } } }), /^spec\.traffic\.header\.regex: invalid regular expression/],
    [canary('c', { ...base, traffic: { header: { name: 'X-A', regex: '(.*a){600}x' } } }), /^spec\.traffic\.header\.regex: regular expression compiles to 3003 RE2 instructions; the limit is 100/],
    [canary('c', { ...base, analysis: { interval: '30s', stepWeight: 20, maxWeight: 50 } }), /^spec\.analysis\.maxWeight: steps of 20 never reach 50/],
    [canary('c', { ...base, analysis: { interval: '30s', stepWeights: [10, 10, 50] } }), /^spec\.analysis\.stepWeights\[1\]: step weights must be strictly increasing/],
    [canary('c', { ...base, analysis: { interval: '1s', stepWeights: [10] } }), /^spec\.analysis\.interval: must be at least 10s/],
    [canary('c', { ...base, analysis: { stepWeights: [10], stepWeight: 10, maxWeight: 10 } }), /^spec\.analysis: exactly one of stepWeights or stepWeight/],
    [canary('c', { ...base, analysis: { stepWeights: [10], minRequests: 0 } }), /^spec\.analysis\.minRequests: must be an integer ≥ 1/],
  ];
  for (const [obj, want] of cases) {
    const { errors } = messages(obj);
    assert.ok(errors.some((e) => want.test(e)), `${want}: got ${JSON.stringify(errors)}`);
  }
});

test('with context, validate reports what involves other objects — as compile status does', () => {
  const shop = ingress({ name: 'shop', rules: [{ host: 's.test', paths: [{ service: 'web' }] }] });
  const c = canary('c', { ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web-v2' } });
  assert.deepEqual(messages(c, [service('web'), service('web-v2'), shop]), { errors: [], warnings: [] });
  const { warnings } = messages(c, [service('web')]);
  assert.ok(warnings.includes('spec.ingressRef.name: Ingress default/shop not found; the canary routes nothing until it exists'));
  assert.ok(warnings.includes('spec.canaryService.name: Service default/web-v2 not found; canary requests answer 503'));
  const lonely = messages(shop, []);
  assert.ok(lonely.warnings.some((w) => w.includes('Service default/web not found')));
});

test('validate never throws and refuses what it does not validate', () => {
  for (const junk of [null, 5, 'x', [], {}, { kind: 'Pod', apiVersion: 'v1' }, { kind: 'Ingress', apiVersion: 'networking.k8s.io/v1' }]) {
    const v = validate(junk as KubeObject);
    assert.ok(v.errors.length >= 1, JSON.stringify(junk));
  }
});
