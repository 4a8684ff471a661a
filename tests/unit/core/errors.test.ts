/** One error root: every error class Vane raises on purpose is a VaneError with a stable code. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VaneError, isVaneError } from '../../../core/index.ts';
import { CertError } from '../../../lib/certs/index.ts';
import { NetnsError } from '../../../devtools/netns.ts';
import { ControlPlaneError, NodeClusterError } from '../../../devtools/controlplane/index.ts';
import { PluginError } from '../../../cli/kubectl-vane.ts';
import { UsageError } from '../../../cli/explain.ts';
import { foreignError } from '../../support/errors.ts';

test('VaneError carries its code, message and cause; isVaneError narrows by code', () => {
  const cause = new Error('socket hang up');
  const err = new VaneError('EEXAMPLE', 'the example failed', { cause });
  assert.equal(err.code, 'EEXAMPLE');
  assert.equal(err.message, 'the example failed');
  assert.equal(err.cause, cause);
  assert.ok(err instanceof Error);
  assert.equal(isVaneError(err), true);
  assert.equal(isVaneError(err, 'EEXAMPLE', 'EOTHER'), true);
  assert.equal(isVaneError(err, 'EOTHER'), false);
  assert.equal(isVaneError(foreignError('x', { code: 'EEXAMPLE' }), 'EEXAMPLE'), false, 'a plain Error with a code property is not one of ours');
});

const ERRORS: [string, VaneError, string][] = [
  ['CertError', new CertError('ECONFLICT', 'lost a race'), 'ECONFLICT'],
  ['NetnsError', new NetnsError('ENETNS_FAILED', 'ip failed'), 'ENETNS_FAILED'],
  ['ControlPlaneError', new ControlPlaneError('etcd: not ready'), 'ECONTROLPLANE'],
  ['NodeClusterError', new NodeClusterError('no containerd'), 'ENODE'],
  ['PluginError', new PluginError('NotFound', 'no such Canary'), 'NotFound'],
  ['UsageError', new UsageError('give a URL'), 'EUSAGE'],
];

for (const [name, err, code] of ERRORS) {
  test(`${name} is a VaneError with code ${code} and its own name`, () => {
    assert.ok(err instanceof VaneError);
    assert.equal(err.code, code);
    assert.equal(err.name, name);
    assert.equal(isVaneError(err, code), true);
  });
}
