/** Generated request ids: ingress-nginx's shape (32 hex digits), distinct within and across processes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { newRequestId } from '../../../proxy/http/request-id.ts';

test('ids are 32 lower-case hex digits and never repeat in a process', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 100_000; i++) {
    const id = newRequestId();
    assert.match(id, /^[0-9a-f]{32}$/);
    seen.add(id);
  }
  assert.equal(seen.size, 100_000);
});

test('two processes (two workers, two pods) draw different ids', () => {
  const module = fileURLToPath(new URL('../../../proxy/http/request-id.ts', import.meta.url));
  const script = `import(${JSON.stringify(module)}).then((m) => console.log(m.newRequestId()))`;
  const a = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }).trim();
  const b = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }).trim();
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.notEqual(a, b, 'the first id of each process differs');
});
