import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { WORKER_SEMI_SPACE_MB, workerExecArgv } from '../../../proxy/primary/worker-flags.ts';

test('workers get a fixed young generation after the primary’s own flags', () => {
  assert.deepEqual(workerExecArgv(['--enable-source-maps'], undefined), ['--enable-source-maps', `--min-semi-space-size=${WORKER_SEMI_SPACE_MB}`]);
  assert.deepEqual(workerExecArgv([], ''), [`--min-semi-space-size=${WORKER_SEMI_SPACE_MB}`]);
});

test('a young generation sized by the operator wins, in execArgv or NODE_OPTIONS, either spelling', () => {
  assert.deepEqual(workerExecArgv(['--max-semi-space-size=4'], undefined), ['--max-semi-space-size=4']);
  assert.deepEqual(workerExecArgv(['--min_semi_space_size=2'], undefined), ['--min_semi_space_size=2']);
  assert.deepEqual(workerExecArgv([], '--max-old-space-size=512 --max-semi-space-size=8'), []);
  assert.deepEqual(workerExecArgv([], '--max-old-space-size=512'), [`--min-semi-space-size=${WORKER_SEMI_SPACE_MB}`]);
});

test('this Node accepts the flag workers get (an unknown V8 flag would stop every worker at start)', () => {
  const r = spawnSync(process.execPath, [...workerExecArgv([], undefined), '-e', 'process.exit(0)'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /bad option|unknown/i);
});
