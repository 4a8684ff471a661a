/**
 * The operator's file mode runs on the same manifest pipeline as the proxy's
 * (lib/manifest-watch.ts): an invalid object is logged with the line `vane validate` prints,
 * file included, and dropped while the rest builds a version; an alias bomb in one file is
 * reported and holds up no change in another. Real files, fs.watch and the stream's TLS
 * listener on port 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { Operator, FileObjectSource } from '../../operator/index.ts';
import { CLOSE, type KubeObject } from '../../core/index.ts';
import { ingress, ingressClass, service, slice } from '../support/objects.ts';
import { selfSigned } from '../support/tls.ts';
import { eventually } from '../support/wait.ts';
import { ALIAS_BOMB } from '../support/hostile-manifests.ts';

function yaml(objects: KubeObject[]): string {
  return objects.map((o) => stringify(o)).join('---\n');
}

test('operator file mode: invalid objects logged with their file and dropped, an alias bomb skipped, the rest applied', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vane-operator-files-'));
  const logs: { level: number; msg: string; file?: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => { logs.push(JSON.parse(line) as { level: number; msg: string }); } });
  writeFileSync(join(dir, 'backends.yaml'), yaml([ingressClass('vane'), service('web'), slice('web-1', 'web', [{ ip: '192.0.2.1' }])]));
  writeFileSync(join(dir, 'shop.yaml'), yaml([ingress({ name: 'shop', rules: [{ host: 'shop.test', paths: [{ path: '/', service: 'web' }] }] })]));
  const cert = selfSigned('localhost');
  const operator = new Operator({
    source: new FileObjectSource([dir], logger), logger, tls: { cert: cert.cert, key: cert.key }, fileMode: true, quietMs: 10, maxHoldMs: 50,
    authenticate: async () => ({ ok: false, code: CLOSE.unauthenticated, reason: 'no proxies in this test' }),
  });
  await operator.start();
  try {
    const first = operator.current!;
    assert.ok(first, 'a version from the first read');

    const file = join(dir, 'shop.yaml');
    writeFileSync(file, yaml([
      ingress({ name: 'shop', rules: [{ host: 'shop.test', paths: [{ path: '/', service: 'web' }, { path: '/new', service: 'web' }] }] }),
      ingress({ name: 'bad', annotations: { 'vane.dev/load-balance': 'random' }, rules: [{ host: 'bad.test', paths: [{ path: '/', service: 'web' }] }] }),
    ]));
    const line = await eventually('the invalid Ingress logged with its file', () => logs.find((l) => l.level === 50 && l.msg.startsWith(`${file}: Ingress default/bad: metadata.annotations["vane.dev/load-balance"]`)), 5_000);
    assert.equal(line.file, file);
    await eventually('a version with the valid change', () => operator.current!.root !== first.root, 5_000);
    assert.ok(![...operator.current!.resources.keys()].some((name) => name.includes('bad.test')), 'the invalid Ingress has no routes');

    const before = operator.current!.root;
    writeFileSync(join(dir, 'bomb.yaml'), ALIAS_BOMB);
    writeFileSync(join(dir, 'more.yaml'), yaml([ingress({ name: 'more', rules: [{ host: 'more.test', paths: [{ path: '/', service: 'web' }] }] })]));
    await eventually('the change beside the bomb applied', () => operator.current!.root !== before && [...operator.current!.resources.keys()].some((name) => name.includes('more.test')), 5_000);
    assert.ok(logs.some((l) => l.level === 50 && l.msg.startsWith(`${join(dir, 'bomb.yaml')}: refused: `)), JSON.stringify(logs.map((l) => l.msg)));
  } finally {
    await operator.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
