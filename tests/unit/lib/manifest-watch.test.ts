/**
 * lib/manifest-watch.ts, the one file-mode pipeline, on real files in a temporary directory
 * watched with fs.watch: a bad file (an alias bomb, broken YAML) is reported and skipped while
 * the other files keep applying; a file that turns bad keeps its last good objects; a
 * removed file's objects are deleted; an object defined twice is taken once. And lib/coalesce.ts,
 * the one coalescer, on mocked timers.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ManifestWatcher, type ObjectChanges } from '../../../lib/manifest-watch.ts';
import { Coalescer } from '../../../lib/coalesce.ts';
import { eventually } from '../../support/wait.ts';
import { ALIAS_BOMB } from '../../support/hostile-manifests.ts';

function service(name: string, port = 80): string {
  return `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: default}\nspec: {ports: [{port: ${port}}]}\n`;
}

interface Log { level: number; msg: string; file?: string }

/** watched runs a watcher on a fresh directory and keeps the objects it holds, as a compiler would. */
async function watched(files: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'vane-watch-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const logs: Log[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => { logs.push(JSON.parse(line) as Log); } });
  const objects = new Map<string, string>();
  let last: ObjectChanges | null = null;
  let rounds = 0;
  const watcher = new ManifestWatcher({ paths: [dir], logger, quietMs: 10, maxHoldMs: 50 });
  await watcher.start((changes) => {
    rounds++;
    last = changes;
    for (const o of changes.set) objects.set(`${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`, JSON.stringify((o as { spec?: unknown }).spec));
    for (const d of changes.deleted) objects.delete(`${d.kind}/${d.key}`);
  });
  return {
    dir, logs, objects, watcher,
    rounds: () => rounds,
    files: () => last!.files,
    port: (name: string) => { const s = objects.get(`Service/default/${name}`); return s ? (JSON.parse(s) as { ports: { port: number }[] }).ports[0]!.port : null; },
    errorFor: (file: string) => logs.find((l) => l.level >= 50 && l.file === join(dir, file)),
    async [Symbol.asyncDispose]() { await watcher.close(); rmSync(dir, { recursive: true, force: true }); },
  };
}

test('an alias bomb in one file is reported and skipped; changes to the other files keep applying', async () => {
  await using w = await watched({ 'a.yaml': service('a') });
  writeFileSync(join(w.dir, 'bomb.yaml'), ALIAS_BOMB);
  await eventually('the bomb reported', () => w.errorFor('bomb.yaml'), 5_000);
  assert.match(w.errorFor('bomb.yaml')!.msg, new RegExp(`^${join(w.dir, 'bomb.yaml')}: refused: .*alias`, 'i'));
  writeFileSync(join(w.dir, 'a.yaml'), service('a', 8080));
  writeFileSync(join(w.dir, 'b.yaml'), service('b'));
  await eventually('the change beside the bomb applied', () => w.port('a') === 8080 && w.port('b') === 80, 5_000);
});

test('a file that turns bad keeps its last good objects until it is fixed; a removed file\'s objects go', async () => {
  await using w = await watched({ 'a.yaml': service('a') + '---\n' + service('a2'), 'b.yaml': service('b') });
  writeFileSync(join(w.dir, 'a.yaml'), 'kind: Service\nmetadata: {name: a\n');
  await eventually('the broken file reported', () => w.logs.some((l) => l.msg === `${join(w.dir, 'a.yaml')}: not applied; the 2 object(s) of its last good version keep applying`), 5_000);
  assert.ok(w.errorFor('a.yaml')!.msg.startsWith(`${join(w.dir, 'a.yaml')}: line `), w.errorFor('a.yaml')!.msg);
  assert.equal(w.port('a'), 80);
  assert.equal(w.port('a2'), 80);
  assert.equal(w.files().get('Service/default/a'), join(w.dir, 'a.yaml'));

  writeFileSync(join(w.dir, 'a.yaml'), service('a', 9090));
  await eventually('the fix applied', () => w.port('a') === 9090 && w.port('a2') === null, 5_000);

  unlinkSync(join(w.dir, 'b.yaml'));
  await eventually('the removed file\'s object deleted', () => w.port('b') === null, 5_000);
});

test('an object defined in two files is taken from the first, the other copy reported', async () => {
  await using w = await watched({ 'a.yaml': service('same', 81), 'b.yaml': service('same', 82) });
  assert.equal(w.port('same'), 81);
  assert.equal(w.errorFor('b.yaml')!.msg, `${join(w.dir, 'b.yaml')}: Service default/same: also defined in ${join(w.dir, 'a.yaml')}; this copy is ignored`);
});

test('a problem is logged once, not on every read while it stays', async () => {
  await using w = await watched({ 'bad.yaml': 'a: [\n', 'ok.yaml': service('ok') });
  for (let port = 1; port <= 3; port++) {
    writeFileSync(join(w.dir, 'ok.yaml'), service('ok', port));
    await eventually(`port ${port} applied`, () => w.port('ok') === port, 5_000);
  }
  assert.equal(w.logs.filter((l) => l.file === join(w.dir, 'bad.yaml') && l.msg.includes(': line ')).length, 1, JSON.stringify(w.logs));
});

test('a file named directly is watched alone: its edits apply, a file beside it is not read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vane-watch-file-'));
  const file = join(dir, 'one.manifest');
  writeFileSync(file, service('one'));
  writeFileSync(join(dir, 'other.yaml'), service('other'));
  const names: string[] = [];
  const watcher = new ManifestWatcher({ paths: [file], logger: pino({ level: 'silent' }), quietMs: 10, maxHoldMs: 50 });
  try {
    await watcher.start((changes) => { for (const o of changes.set) names.push(`${o.metadata?.name}:${JSON.stringify((o as { spec?: unknown }).spec)}`); });
    assert.deepEqual(names, ['one:{"ports":[{"port":80}]}']);
    writeFileSync(file, service('one', 81));
    await eventually('the edit applied', () => names.includes('one:{"ports":[{"port":81}]}'), 5_000);
    assert.ok(!names.some((n) => n.startsWith('other:')));
  } finally {
    await watcher.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the coalescer runs after a quiet time, and a steady trickle of changes waits no longer than the hold-off', () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  try {
    const runs: number[] = [];
    const c = new Coalescer({ quietMs: 100, maxHoldMs: 500 }, (since) => runs.push(since));
    c.changed();
    mock.timers.tick(99);
    assert.deepEqual(runs, []);
    mock.timers.tick(1);
    assert.deepEqual(runs, [0], 'one run, told when its burst began');
    for (let t = 0; t < 600; t += 50) { c.changed(); mock.timers.tick(50); }
    assert.equal(runs.length, 2, 'a change every 50 ms still runs at the 500 ms hold-off');
    assert.equal(runs[1], 100);
    c.changed();
    assert.equal(c.take(), 600, 'take cancels the pending run, telling when its burst began');
    mock.timers.tick(1_000);
    assert.equal(runs.length, 2);
  } finally {
    mock.timers.reset();
  }
});
