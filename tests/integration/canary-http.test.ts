/**
 * The canary controller's outbound HTTP against real servers on 127.0.0.1: gating webhooks
 * (2xx approves; anything else, a timeout, a refused connection or a redirect does not) and
 * Prometheus instant queries (the HTTP API's JSON, errors, time parameter).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { callWebhook, queryPrometheus, type WebhookCall } from '../../operator/canary/index.ts';
import { WEBHOOK_API_VERSION } from '../../core/index.ts';

let server: Server;
let base: string;
const seen: { path: string; body: string; headers: IncomingMessage['headers']; query: URLSearchParams }[] = [];

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      seen.push({ path: url.pathname, body: Buffer.concat(chunks).toString(), headers: req.headers, query: url.searchParams });
      switch (url.pathname) {
        case '/approve': res.writeHead(204).end(); return;
        case '/refuse': res.writeHead(403, { 'content-type': 'text/plain' }).end('release frozen until Monday\n'); return;
        case '/redirect': res.writeHead(302, { location: '/approve' }).end(); return;
        case '/slow': setTimeout(() => { if (!res.destroyed) res.writeHead(200).end(); }, 3000); return;
        case '/big': res.writeHead(500).end('x'.repeat(100_000)); return;
        case '/prom/api/v1/query': {
          const q = url.searchParams.get('query');
          if (q === 'bad(') { res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error at char 5' })); return; }
          if (q === 'empty') { res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [] } })); return; }
          res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: { job: 'vane' }, value: [Number(url.searchParams.get('time')), '0.5'] }] } }));
          return;
        }
        default: res.writeHead(404).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

function call(path: string, timeoutMs = 2000): WebhookCall {
  return {
    type: 'CallWebhook', key: `1/0/confirm-promotion/${path}`, gating: true, name: 'gate', hookType: 'confirm-promotion', url: `${base}${path}`, timeoutMs,
    body: {
      apiVersion: WEBHOOK_API_VERSION, kind: 'CanaryWebhookRequest', type: 'confirm-promotion', webhook: 'gate', canary: { namespace: 'shop', name: 'checkout', uid: 'u' },
      revision: '2.4.0', run: 1, phase: 'Progressing', weight: 50, step: 3, stepCount: 3, failedChecks: 0, checks: [], metadata: { team: 'payments' },
    },
  };
}

test('a 2xx approves; the body is the versioned JSON request', async () => {
  const r = await callWebhook(call('/approve'));
  assert.deepEqual(r, { key: '1/0/confirm-promotion//approve', approved: true, message: 'HTTP 204' });
  const got = seen.at(-1)!;
  assert.equal(got.headers['content-type'], 'application/json');
  const body = JSON.parse(got.body);
  assert.equal(body.apiVersion, 'vane.dev/v1alpha1');
  assert.equal(body.kind, 'CanaryWebhookRequest');
  assert.deepEqual(body.metadata, { team: 'payments' });
});

test('a non-2xx refuses, and says why (capped)', async () => {
  const r = await callWebhook(call('/refuse'));
  assert.equal(r.approved, false);
  assert.equal(r.message, 'HTTP 403: release frozen until Monday');
  const big = await callWebhook(call('/big'));
  assert.equal(big.approved, false);
  assert.ok(big.message!.length < 300);
});

test('a redirect is not followed and does not approve', async () => {
  const before = seen.length;
  const r = await callWebhook(call('/redirect'));
  assert.equal(r.approved, false);
  assert.match(r.message!, /^HTTP 302/);
  assert.equal(seen.length, before + 1);
});

test('no answer within the timeout does not approve, and returns on time', async () => {
  const t0 = Date.now();
  const r = await callWebhook(call('/slow', 1000));
  assert.equal(r.approved, false);
  assert.equal(r.message, 'no answer within 1s');
  assert.ok(Date.now() - t0 < 2500);
});

test('a refused connection does not approve', async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const r = await callWebhook({ ...call('/x'), url: `http://127.0.0.1:${port}/x` });
  assert.equal(r.approved, false);
  assert.equal(r.message, 'ECONNREFUSED');
});

test('an aborted controller stops waiting at once', async () => {
  const ac = new AbortController();
  const pending = callWebhook(call('/slow', 10_000), ac.signal);
  setTimeout(() => ac.abort(), 50);
  const t0 = Date.now();
  const r = await pending;
  assert.equal(r.approved, false);
  assert.ok(Date.now() - t0 < 1000);
});

test('Prometheus: the first sample at the given time, behind a path prefix; errors and empty results', async () => {
  const at = Date.parse('2025-03-01T12:00:10Z');
  assert.deepEqual(await queryPrometheus(`${base}/prom`, 'sum(rate(vane_proxy_requests_total[1m]))', at, 2000), { value: 0.5 });
  const q = seen.at(-1)!.query;
  assert.equal(q.get('query'), 'sum(rate(vane_proxy_requests_total[1m]))');
  assert.equal(q.get('time'), '1740830410.000');
  assert.deepEqual(await queryPrometheus(`${base}/prom/`, 'empty', at, 2000), { value: null });
  const bad = await queryPrometheus(`${base}/prom`, 'bad(', at, 2000);
  assert.equal(bad.value, null);
  assert.equal(bad.error, 'HTTP 400: parse error at char 5');
  const missing = await queryPrometheus(`${base}/nothing`, 'up', at, 2000);
  assert.match(missing.error ?? '', /^HTTP 404: not JSON/);
});
