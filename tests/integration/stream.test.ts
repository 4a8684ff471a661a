import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { stringify } from 'yaml';
import { Operator, FileObjectSource, tokenFileAuthenticator } from '../../operator/index.ts';
import { StreamSource } from '../../proxy/source/stream.ts';
import type { RoutingUpdate } from '../../proxy/source/source.ts';
import { buildRouteTable, match, compile, hashValue, SUBPROTOCOL, CLOSE, type KubeObject, type HashedResource } from '../../core/index.ts';
import { ingress, service, slice, tlsSecret } from '../support/objects.ts';
import { eventually } from '../support/wait.ts';
import { selfSigned } from '../support/tls.ts';
import { createLogger } from '../../lib/log.ts';

const logger = createLogger('test', 'silent');

let dir: string;
let tokens: string;
let operator: Operator;
const cert = selfSigned('shop.test');

function writeWorld(paths: string[]): void {
  const objects: KubeObject[] = [
    service('web'), service('api'),
    slice('web-1', 'web', [{ ip: '192.0.2.1' }]),
    slice('api-1', 'api', [{ ip: '192.0.2.2' }]),
    tlsSecret('shop-tls', cert.cert, cert.key),
    ingress({ name: 'shop', tls: [{ hosts: ['shop.test'], secretName: 'shop-tls' }], rules: [{ host: 'shop.test', paths: paths.map((p) => ({ path: p, service: p === '/' ? 'web' : 'api' })) }] }),
  ];
  writeFileSync(join(dir, 'world.yaml'), objects.map((o) => stringify(o)).join('---\n'));
}

function url(): string {
  return `ws://127.0.0.1:${operator.streamAddress.port}/stream`;
}

function client(name: string, token: string | null, extra: Partial<ConstructorParameters<typeof StreamSource>[0]> = {}): StreamSource {
  return new StreamSource({ allowPlaintext: true, url: url(), proxyName: name, token: async () => token, logger, initialBackoffMs: 50, maxBackoffMs: 200, ...extra });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vane-stream-'));
  tokens = join(dir, 'tokens');
  writeFileSync(tokens, 'proxy-a token-a\nproxy-b token-b\n');
  writeWorld(['/']);
  operator = new Operator({
    allowPlaintext: true, source: new FileObjectSource([dir], logger), authenticate: await tokenFileAuthenticator(tokens), expectedProxies: ['proxy-a', 'proxy-b'], logger, quietMs: 20, maxHoldMs: 100,
  });
  await operator.start();
});

after(async () => {
  await operator.close();
  rmSync(dir, { recursive: true, force: true });
});

test('every proxy receives the routing, verifies it, ACKs, and follows live edits with deltas', async () => {
  const updates: RoutingUpdate[] = [];
  const a = client('proxy-a', 'token-a');
  const b = client('proxy-b', 'token-b');
  await Promise.all([a.start((u) => { updates.push(u); }), b.start(() => undefined)]);
  try {
    const first = updates[0]!;
    assert.equal(first.root, operator.current!.root);
    const table = buildRouteTable(first.resources);
    assert.equal(match(table, { host: 'shop.test', target: '/', scheme: 'https' }).backend, 'backend/default/web:80');

    await eventually('convergence', () => operator.fleetReport().convergence?.converged === 2);
    const sendsBefore = await operator.metrics.sends.get();
    writeWorld(['/', '/api']);
    const changed = await eventually('the edit to arrive', () => updates.find((u) => u.changed.upserts.includes('vhost/shop.test') && u !== first));
    assert.deepEqual(changed.changed.removals, []);
    assert.ok(changed.changed.upserts.length <= 3, `a delta, not everything: ${changed.changed.upserts.join(', ')}`);
    const routed = match(buildRouteTable(changed.resources), { host: 'shop.test', target: '/api/x', scheme: 'https' });
    assert.equal(routed.backend, 'backend/default/api:80');
    await eventually('both proxies to ACK the new version', () => {
      const c = operator.fleetReport().convergence;
      return c && c.converged === 2 && c.root === changed.root;
    });
    const sendsAfter = await operator.metrics.sends.get();
    const delta = (m: typeof sendsAfter) => m.values.find((v) => v.labels.kind === 'delta')?.value ?? 0;
    assert.ok(delta(sendsAfter) - delta(sendsBefore) >= 2, 'the edit went out as deltas');
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

async function closeReason(headers: Record<string, string>, protocol = SUBPROTOCOL, hello?: unknown): Promise<{ code: number; reason: string; messages: number }> {
  const ws = new WebSocket(url(), protocol, { headers });
  let messages = 0;
  ws.on('message', () => { messages++; });
  if (hello) ws.on('open', () => ws.send(JSON.stringify(hello)));
  return new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString(), messages })));
}

test('unauthenticated, unknown-token and wrong-proxy clients get nothing and a clear close reason', async () => {
  const none = await closeReason({});
  assert.deepEqual([none.code, none.messages], [4001, 0]);
  assert.match(none.reason, /bearer token is required/);
  const wrong = await closeReason({ authorization: 'Bearer nope' });
  assert.deepEqual([wrong.code, wrong.messages], [4001, 0]);
  assert.match(wrong.reason, /unknown token/);
  const impostor = await closeReason({ authorization: 'Bearer token-a' }, SUBPROTOCOL, { type: 'hello', protocol: 1, proxy: { name: 'proxy-b' }, version: null, resources: [] });
  assert.deepEqual([impostor.code, impostor.messages], [4003, 0]);
  assert.match(impostor.reason, /belongs to proxy proxy-a/);
});

test('malformed, oversized and out-of-order messages close only that connection; the operator is unharmed', async () => {
  const cases: unknown[] = ['not json', { type: 'ack', generation: 1, root: 'x' }, { type: 'hello', protocol: 99, proxy: { name: 'proxy-a' }, version: null, resources: [] }];
  for (const hello of cases) {
    const ws = new WebSocket(url(), SUBPROTOCOL, { headers: { authorization: 'Bearer token-a' } });
    ws.on('open', () => ws.send(typeof hello === 'string' ? hello : JSON.stringify(hello)));
    const code = await new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
    assert.equal(code, 4002, JSON.stringify(hello));
  }
  const huge = new WebSocket(url(), SUBPROTOCOL, { headers: { authorization: 'Bearer token-a' } });
  huge.on('open', () => huge.send('x'.repeat(33 * 1024 * 1024)));
  const hugeCode = await new Promise<number>((resolve) => huge.on('close', (c) => resolve(c)));
  assert.equal(hugeCode, 1009);

  const ok = client('proxy-a', 'token-a');
  let got: RoutingUpdate | undefined;
  await ok.start((u) => { got = u; });
  assert.equal(got!.root, operator.current!.root);
  await ok.close();
});

test('a restarted operator with no history sends only the difference to a proxy that has the routing', async () => {
  const state = mkdtempSync(join(tmpdir(), 'vane-lkg-'));
  const a = client('proxy-a', 'token-a', { stateDir: state });
  await a.start(() => undefined);
  await eventually('ACK', () => operator.fleetReport().connected.find((c) => c.proxy === 'proxy-a')?.acked?.root === operator.current!.root);
  await a.close();

  const second = new Operator({ allowPlaintext: true, source: new FileObjectSource([dir], logger), authenticate: await tokenFileAuthenticator(tokens), expectedProxies: ['proxy-a'], logger, quietMs: 20 });
  await second.start();
  try {
    const b = new StreamSource({ allowPlaintext: true, url: `ws://127.0.0.1:${second.streamAddress.port}/stream`, proxyName: 'proxy-a', token: async () => 'token-a', logger, stateDir: state });
    await b.start(() => undefined);
    await eventually('ACK from the LKG proxy', () => second.fleetReport().convergence?.converged === 1);
    const sends = await second.metrics.sends.get();
    assert.equal(sends.values.find((v) => v.labels.kind === 'full')?.value ?? 0, 0, 'no full snapshot was needed');
    assert.equal(sends.values.find((v) => v.labels.kind === 'delta')?.value, 1);
    await b.close();
  } finally {
    await second.close();
    rmSync(state, { recursive: true, force: true });
  }
});

test('a proxy restarted while the operator is down serves from its persisted state; no key in non-secret files', async () => {
  const state = mkdtempSync(join(tmpdir(), 'vane-lkg-'));
  try {
    const a = client('proxy-a', 'token-a', { stateDir: state });
    await a.start(() => undefined);
    await eventually('state files', () => { try { return statSync(join(state, 'routing.json')).size > 0; } catch { return false; } });
    await a.close();
    const routingText = readFileSync(join(state, 'routing.json'), 'utf8');
    assert.ok(!routingText.includes('PRIVATE KEY'), 'routing.json carries no key');
    assert.ok(readFileSync(join(state, 'secrets.json'), 'utf8').includes('PRIVATE KEY'));
    assert.equal(statSync(join(state, 'secrets.json')).mode & 0o777, 0o600);
    assert.equal(statSync(join(state, 'routing.json')).mode & 0o777, 0o600);

    const down = new StreamSource({ allowPlaintext: true, url: 'ws://127.0.0.1:9/stream', proxyName: 'proxy-a', token: async () => 'token-a', logger, stateDir: state, initialBackoffMs: 50 });
    let served: RoutingUpdate | undefined;
    await down.start((u) => { served = u; });
    assert.equal(served!.root, operator.current!.root);
    assert.equal(match(buildRouteTable(served!.resources), { host: 'shop.test', target: '/', scheme: 'https' }).result, 'routed');
    assert.equal(down.status.connected, false);
    await down.close();

    const stale = new StreamSource({ allowPlaintext: true, url: 'ws://127.0.0.1:9/stream', proxyName: 'proxy-a', token: async () => 'token-a', logger, stateDir: state, maxStateAgeMs: -1, initialBackoffMs: 50 });
    let staleServed = false;
    void stale.start(() => { staleServed = true; });
    await new Promise((r) => setImmediate(r));
    assert.equal(staleServed, false, 'state older than the maximum age is not served');
    await stale.close();
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});

/** A scripted operator: sends what the test tells it and records what the client answers. */
async function scriptedOperator(script: (ws: WebSocket, replies: unknown[]) => Promise<void>): Promise<{ url: string; done: Promise<void>; close: () => Promise<void> }> {
  const server: Server = createServer();
  const wss = new WebSocketServer({ server, handleProtocols: () => SUBPROTOCOL });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  let finish!: () => void;
  const done = new Promise<void>((r) => { finish = r; });
  wss.on('connection', (ws) => {
    const replies: unknown[] = [];
    ws.on('message', (d) => replies.push(JSON.parse(d.toString())));
    void script(ws, replies).then(finish);
  });
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/stream`,
    done,
    close: async () => { for (const c of wss.clients) c.terminate(); wss.close(); server.closeAllConnections(); await new Promise<void>((r) => server.close(() => r())); },
  };
}

test('a corrupted delta is refused (NACK) and never becomes the routing table; an older generation is refused', async () => {
  const v1 = compile([service('web'), ingress({ name: 'a', rules: [{ host: 'a.test', paths: [{ service: 'web' }] }] })]);
  const v2 = compile([service('web'), ingress({ name: 'a', rules: [{ host: 'a.test', paths: [{ path: '/', service: 'web' }, { path: '/x', service: 'web' }] }] })]);
  const snapshot = { type: 'snapshot', generation: 10, root: v1.root, resources: [...v1.resources.values()] };
  const good = v2.resources.get('vhost/a.test')!;
  const tampered: HashedResource = { resource: { ...good.resource, name: good.resource.name }, hash: hashValue({ other: true }) };
  const updates: RoutingUpdate[] = [];
  const op = await scriptedOperator(async (ws, replies) => {
    ws.send(JSON.stringify(snapshot));
    await eventually('ack 10', () => replies.find((r) => (r as { type: string }).type === 'ack'));
    ws.send(JSON.stringify({ type: 'delta', generation: 11, root: v2.root, baseRoot: v1.root, upserts: [tampered], removals: [] }));
    await eventually('nack 11', () => replies.find((r) => (r as { type: string; generation: number }).type === 'nack'));
    ws.send(JSON.stringify({ type: 'snapshot', generation: 9, root: v2.root, resources: [...v2.resources.values()] }));
    await eventually('nack 9', () => replies.filter((r) => (r as { type: string }).type === 'nack').length === 2);
    const nacks = replies.filter((r) => (r as { type: string }).type === 'nack');
    assert.match(JSON.stringify(nacks[0]), /does not match its hash/);
    assert.match(JSON.stringify(nacks[1]), /older than the held 10/);
  });
  const c = new StreamSource({ allowPlaintext: true, url: op.url, proxyName: 'p', logger });
  await c.start((u) => { updates.push(u); });
  await op.done;
  assert.equal(updates.length, 1, 'only the verified snapshot was applied');
  assert.equal(updates[0]!.root, v1.root);
  await c.close();
  await op.close();
});

test('a NACK or resync from a proxy is answered with a full snapshot, never another delta', async () => {
  const ws = new WebSocket(url(), SUBPROTOCOL, { headers: { authorization: 'Bearer token-b' } });
  const frames: { type: string; generation: number; root: string }[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString()) as { type: string; generation: number; root: string }));
  await new Promise((r) => ws.on('open', r));
  ws.send(JSON.stringify({ type: 'hello', protocol: 1, proxy: { name: 'proxy-b' }, version: null, resources: [] }));
  const first = await eventually('the first snapshot', () => frames[0]);
  assert.equal(first.type, 'snapshot');
  ws.send(JSON.stringify({ type: 'nack', generation: first.generation, root: first.root, reason: 'test: pretend the snapshot did not verify' }));
  const second = await eventually('the answer to the NACK', () => frames[1]);
  assert.equal(second.type, 'snapshot');
  assert.equal(second.root, operator.current!.root);
  ws.send(JSON.stringify({ type: 'ack', generation: second.generation, root: second.root }));
  ws.send(JSON.stringify({ type: 'resync', reason: 'test' }));
  const third = await eventually('the answer to the resync', () => frames[2]);
  assert.equal(third.type, 'snapshot');
  ws.close();
  const metrics = await (await fetch(`http://127.0.0.1:${operator.adminAddress.port}/metrics`)).text();
  assert.match(metrics, /^vane_operator_nacks_total [1-9]/m, 'NACKs are counted');
  assert.match(metrics, /^vane_operator_expected_proxies 2$/m);
  assert.match(metrics, /^vane_operator_propagation_seconds_count [1-9]/m, 'propagation latency is observed once the fleet converges');
  assert.match(metrics, /^vane_operator_sends_total\{kind="full"\} [1-9]/m);
});

/**
 * An operator replica behind one Service URL: it closes the first `followerAnswers`
 * connections with 4010 as a follower does (upgrade, then close) and serves the ones after
 * (Infinity: no replica leads). It records when each connection arrived and when a hello came.
 */
async function replicasBehindOneService(followerAnswers: number): Promise<{ url: string; attempts: number[]; hellos: number[]; close: () => Promise<void> }> {
  const world = compile([service('web'), ingress({ name: 'a', rules: [{ host: 'a.test', paths: [{ service: 'web' }] }] })]);
  const server: Server = createServer();
  const wss = new WebSocketServer({ server, handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false) });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const attempts: number[] = [];
  const hellos: number[] = [];
  wss.on('connection', (ws) => {
    attempts.push(Date.now());
    if (attempts.length <= followerAnswers) { ws.close(CLOSE.notLeader, 'not the leader; try another operator replica'); return; }
    ws.on('message', (d) => {
      if ((JSON.parse(d.toString()) as { type: string }).type !== 'hello') return;
      hellos.push(Date.now());
      ws.send(JSON.stringify({ type: 'snapshot', generation: 1, root: world.root, resources: [...world.resources.values()] }));
    });
  });
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/stream`,
    attempts,
    hellos,
    close: async () => { for (const c of wss.clients) c.terminate(); wss.close(); server.closeAllConnections(); await new Promise<void>((r) => server.close(() => r())); },
  };
}

test('through one Service URL, a proxy that keeps landing on the follower (4010) reaches the leader within about a second per try', async () => {
  // Five 4010s in a row. The ordinary back-off (default 250 ms doubling, jittered 50-100 %)
  // would spend at least 125+250+500+1000+2000 = 3875 ms before the sixth attempt, the last
  // wait alone at least 2 s; the 4010 retry is at most 100+200+400+800+1000 = 2500 ms.
  const op = await replicasBehindOneService(5);
  const c = new StreamSource({ allowPlaintext: true, url: op.url, proxyName: 'p', logger });
  try {
    void c.start(() => undefined);
    await eventually('the first connection', () => op.attempts.length > 0);
    const first = op.attempts[0]!;
    await eventually('the hello after five 4010s', () => op.hellos.length > 0, first + 3500 - Date.now());
    assert.equal(op.attempts.length, 6);
    const gaps = op.attempts.slice(1).map((t, i) => t - op.attempts[i]!);
    assert.ok(Math.max(...gaps) < 1500, `no wait after a 4010 is longer than ~1 s: ${gaps.join(', ')} ms`);
    await eventually('connected', () => c.status.connected && c.status.version !== null);
  } finally {
    await c.close();
    await op.close();
  }
});

test('when no replica leads (every connection answered 4010), retries stay bounded: one URL or several', async () => {
  const single = await replicasBehindOneService(Infinity);
  const pair = [await replicasBehindOneService(Infinity), await replicasBehindOneService(Infinity)];
  const a = new StreamSource({ allowPlaintext: true, url: single.url, proxyName: 'p', logger });
  const b = new StreamSource({ allowPlaintext: true, url: pair.map((s) => s.url), proxyName: 'p', logger });
  try {
    void a.start(() => undefined);
    void b.start(() => undefined);
    const windowMs = 3000;
    const deadline = Date.now() + windowMs;
    await eventually('the window to pass', () => Date.now() >= deadline, windowMs + 1000);
    const pairAttempts = pair[0]!.attempts.length + pair[1]!.attempts.length;
    assert.ok(single.attempts.length >= 3, `keeps retrying: ${single.attempts.length} attempts in ${windowMs} ms`);
    assert.ok(single.attempts.length <= 15, `one URL: ${single.attempts.length} attempts in ${windowMs} ms`);
    assert.ok(pairAttempts <= 15, `two URLs: ${pairAttempts} attempts in ${windowMs} ms`);
  } finally {
    await a.close();
    await b.close();
    await single.close();
    for (const s of pair) await s.close();
  }
});
