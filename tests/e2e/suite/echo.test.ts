/**
 * devtools/echo.ts on loopback (no cluster needed): what it reports, and its failure switch,
 * which canary demos and tests rely on to be exact.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { parseFailure, startEcho } from '../../../devtools/echo.ts';
import { httpJson } from '../harness/echo-backend.ts';

const echo = await startEcho({ name: 'stable' });
const url = `http://127.0.0.1:${echo.port}`;
after(() => echo.close());

test('echo reports backend, method, raw path, host and headers', async () => {
  const r = await httpJson<{ backend: string; method: string; path: string; host: string; headers: Record<string, string> }>(
    `${url}/x/./y/%2F?q=1`, { method: 'DELETE', headers: { host: 'a.example.com', 'x-one': '1' } },
  );
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-echo-backend'], 'stable');
  assert.deepEqual([r.body.backend, r.body.method, r.body.path, r.body.host, r.body.headers['x-one']], ['stable', 'DELETE', '/x/./y/%2F?q=1', 'a.example.com', '1']);
});

test('the failure switch fails exactly the given share of requests until /__echo/ok', async () => {
  assert.equal((await httpJson(`${url}/__echo/fail`, { method: 'POST', body: { status: 502, ratio: 0.25 } })).status, 200);
  assert.deepEqual(echo.failure(), { status: 502, ratio: 0.25 });
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) statuses.push((await httpJson(`${url}/`)).status);
  assert.deepEqual(statuses, [200, 200, 200, 502, 200, 200, 200, 502]);
  const failed = await httpJson<{ failed: boolean; backend: string }>(`${url}/__echo/fail`, { method: 'POST', body: { status: 500 } });
  assert.equal(failed.status, 200);
  const all = await httpJson<{ failed: boolean; backend: string }>(`${url}/`);
  assert.deepEqual([all.status, all.body.failed, all.body.backend], [500, true, 'stable'], 'ratio defaults to 1');
  assert.equal((await httpJson<{ failure: unknown }>(`${url}/__echo/state`)).body.failure !== null, true);
  assert.equal((await httpJson(`${url}/__echo/ok`, { method: 'POST' })).status, 200);
  assert.equal((await httpJson(`${url}/`)).status, 200);
  assert.equal(echo.failure(), null);
});

test('bad failure switches are refused and change nothing', async () => {
  for (const [body, message] of [
    ['{"status": 700}', /status must be an integer from 100 to 599/],
    ['{"ratio": 0}', /ratio must be a number in \(0, 1\]/],
    ['{"ratio": 1.5}', /ratio must be/],
    ['[1]', /JSON object/],
    ['not json', /body must be JSON/],
  ] as const) {
    assert.match(String(parseFailure(body)), message);
    const r = await httpJson<{ error: string }>(`${url}/__echo/fail`, { method: 'POST', body });
    assert.equal(r.status, 400);
    assert.match(r.body.error, message);
  }
  assert.equal(echo.failure(), null);
  assert.equal((await httpJson(`${url}/__echo/fail`)).status, 405);
  assert.equal((await httpJson(`${url}/__echo/nope`, { method: 'POST' })).status, 404);
});
