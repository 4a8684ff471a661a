/**
 * `kubectl vane` through the real kubectl (which finds the plugin on PATH) against the real
 * API server and operator: pause, resume, set-weight, promote --full, abort and retry take
 * effect in status and in the proxies' routing; rejected commands and unknown canaries fail
 * with a clear message and exit code 1; status prints a table, a detail view and JSON.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eSkip, netnsSkip } from '../harness/index.ts';
import { canaryFile, converged, NAME } from './canary-support.ts';
import type { Canary } from '../../../core/index.ts';

const skip = e2eSkip || netnsSkip;
const CANARY = `${NAME}-v2`;
const world = canaryFile(import.meta.url, skip);


async function vaneOk(args: string[]): Promise<string> {
  const r = await world().vane(args);
  assert.equal(r.code, 0, `kubectl vane ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('pause, resume, set-weight, promote --full, abort and retry drive the canary; the proxies follow', { skip, timeout: 120_000 }, async () => {
  // minRequests no test traffic reaches: the run holds on no data until a command moves it.
  await world().apply({
    ingressRef: { name: 'shop' }, service: NAME, canaryService: { name: CANARY },
    analysis: { interval: '10s', stepWeights: [10, 50], minRequests: 100000, metrics: [{ name: 'success-rate', min: 99 }] },
  });
  await world().until('the first step', (c) => c.status?.weight === 10 && converged(c));

  assert.match(await vaneOk(['pause', NAME]), /^canary\.vane\.dev\/checkout pause: paused at weight 10$/m);
  assert.deepEqual(((await world().get()).status ?? {}).phase, 'Paused');
  assert.match(await vaneOk(['status', NAME]), /^Phase:\s+Paused \(stage Analysing, run 1\)$/m);

  assert.match(await vaneOk(['resume', NAME]), /resumed with a fresh interval/);
  assert.equal((await world().get()).status?.phase, 'Progressing');

  assert.match(await vaneOk(['set-weight', NAME, '40']), /weight 10 → 40, paused until resume or promote/);
  await world().until('weight 40 served', (c) => c.status?.weight === 40 && c.status?.phase === 'Paused' && converged(c));

  assert.match(await vaneOk(['promote', NAME, '--full']), /promoting without further analysis/);
  await world().until('promotion', (c) => c.status?.phase === 'Promoted' && converged(c));
  assert.deepEqual((await world().send(50)).byBackend, { [CANARY]: 50 });

  assert.match(await vaneOk(['abort', NAME]), /rolling back now/);
  await world().until('the rollback served', (c) => c.status?.phase === 'Failed' && converged(c));
  assert.deepEqual((await world().send(50)).byBackend, { [NAME]: 50 }, 'abort sends everything back to stable');

  const rejected = await world().vane(['resume', NAME]);
  assert.equal(rejected.code, 1);
  assert.match(rejected.stderr, /^error: canary\.vane\.dev\/checkout resume rejected: not paused$/m);

  assert.match(await vaneOk(['retry', NAME]), /starting a new run/);
  const retried = await world().until('a new run', (c) => c.status?.run === 2 && c.status?.weight === 10);
  assert.equal(retried.status?.lastCommand?.result, 'Accepted');

  const reasons = (await world().events()).map((e) => e.reason);
  assert.equal(reasons.filter((r) => r === 'CommandAccepted').length, 6, reasons.join(' '));
  assert.equal(reasons.filter((r) => r === 'CommandRejected').length, 1, reasons.join(' '));
});

test('status: a table, JSON, and clear errors for what is not there', { skip }, async () => {
  const table = await vaneOk(['status']);
  assert.match(table, /^NAME\s+PHASE\s+WEIGHT\s+STEP\s+CHECKS\s+PROXIES\s+AGE$/m);
  assert.match(table, new RegExp(`^${NAME}\\s+Progressing\\s+10\\s+1/2\\s+`, 'm'));
  const list = JSON.parse(await vaneOk(['status', '-o', 'json'])) as { kind: string; items: Canary[] };
  assert.equal(list.kind, 'List');
  assert.equal(list.items[0]?.status?.run, 2);
  const one = JSON.parse(await vaneOk(['status', NAME, '-o', 'json'])) as Canary;
  assert.equal(one.metadata?.name, NAME);

  const missing = await world().vane(['status', 'nope']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, new RegExp(`^error: canary "nope" not found in namespace "${world().ns}"$`, 'm'));
  const noCommand = await world().vane(['promote', 'nope']);
  assert.equal(noCommand.code, 1);
  assert.match(noCommand.stderr, /canary "nope" not found/);
});
