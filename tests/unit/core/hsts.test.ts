/** HSTS annotations (issue #19): validation with field paths, and what a TLS host carries (only the fields set). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compile, validate, formatProblem, type KubeObject } from '../../../core/index.ts';
import { ingress, service } from '../../support/objects.ts';

const shop = (annotations: Record<string, string>): KubeObject =>
  ingress({ name: 'shop', annotations, tls: [{ hosts: ['shop.test'] }], rules: [{ host: 'shop.test', paths: [{ service: 'web' }] }] });

test('bad HSTS annotations are errors naming the annotation', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ 'vane.dev/hsts': 'yes' }, /^metadata\.annotations\["vane\.dev\/hsts"\]: must be "true" or "false"/],
    [{ 'vane.dev/hsts-max-age': '1y' }, /^metadata\.annotations\["vane\.dev\/hsts-max-age"\]: must be whole seconds from 0 to 63072000/],
    [{ 'vane.dev/hsts-max-age': '63072001' }, /hsts-max-age"\]: must be whole seconds/],
    [{ 'vane.dev/hsts-include-subdomains': '1' }, /hsts-include-subdomains"\]: must be "true" or "false"/],
    [{ 'vane.dev/hsts-preload': 'on' }, /hsts-preload"\]: must be "true" or "false"/],
  ];
  for (const [annotations, want] of cases) {
    const errors = validate(shop(annotations)).errors.map(formatProblem);
    assert.ok(errors.some((e) => want.test(e)), `${want}: got ${JSON.stringify(errors)}`);
  }
});

test('a TLS host carries only the HSTS fields its Ingress sets; none leaves the spec as it was', () => {
  const set = compile([service('web'), shop({ 'vane.dev/hsts-max-age': '600', 'vane.dev/hsts-preload': 'true' })]).resources.get('vhost/shop.test')!.resource;
  assert.ok(set.type === 'vhost');
  assert.deepEqual(set.spec.tls, { hsts: { maxAgeSec: 600, preload: true }, secret: null, sslRedirect: true });
  const none = compile([service('web'), shop({})]).resources.get('vhost/shop.test')!.resource;
  assert.ok(none.type === 'vhost');
  assert.deepEqual(none.spec.tls, { secret: null, sslRedirect: true });
});
