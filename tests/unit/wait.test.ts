/** tests/support/wait.ts's eventually: what it returns, and what its failures say. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually } from '../support/wait.ts';

test('eventually returns the first truthy value, asking again after a falsy one or a throw', async () => {
  let n = 0;
  const answers = [() => false, () => { throw new Error('not up yet'); }, () => 0, () => 'ready'];
  assert.equal(await eventually('the third answer', () => answers[n++]!(), 1_000, { intervalMs: 1 }), 'ready');
  assert.equal(n, 4);
});

test('a timeout names what was awaited, the probe\'s last error and the caller\'s detail', async () => {
  await assert.rejects(
    eventually('the count to reach 3', () => { throw new Error('the count is 2'); }, 30, { intervalMs: 5, detail: () => 'the log said nothing' }),
    { message: 'timed out after 30 ms waiting for the count to reach 3; last error: the count is 2; the log said nothing' },
  );
});

test('a timeout shows a last value that says more than false', async () => {
  await assert.rejects(eventually('a non-empty queue', () => 0, 20, { intervalMs: 5 }), { message: 'timed out after 20 ms waiting for a non-empty queue; last value 0' });
  await assert.rejects(eventually('a flag', () => false, 20, { intervalMs: 5 }), { message: 'timed out after 20 ms waiting for a flag' });
});

test('giveUp ends the wait at once, with its reason', async () => {
  const started = Date.now();
  await assert.rejects(eventually('the server to listen', () => null, 10_000, { giveUp: () => 'it exited with 1' }), { message: 'gave up waiting for the server to listen: it exited with 1' });
  assert.ok(Date.now() - started < 1_000);
});
