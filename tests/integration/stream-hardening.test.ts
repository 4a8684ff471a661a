/**
 * The stream against hostile and unlucky clients (issue 18, weaknesses 4–6), with real
 * sockets: a hello that claims an impossible generation, a second connection under one proxy's
 * name, floods of failed authentications, leadership lost while a client is half-way in, and
 * plain ws:// refused unless it is asked for.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { Operator, MemoryObjectSource, tokenFileAuthenticator, type Authenticator } from '../../operator/index.ts';
import { StreamServer } from '../../operator/stream/server.ts';
import { StreamSource } from '../../proxy/source/stream.ts';
import { SUBPROTOCOL, CLOSE, type KubeObject } from '../../core/index.ts';
import { ingress, service, slice } from '../support/objects.ts';
import { selfSigned } from '../support/tls.ts';
import { eventually } from '../support/wait.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'vane-stream-hardening-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** logs collects the operator's log lines, parsed. */
function capture(): { logger: Logger; lines: { msg: string; [k: string]: unknown }[] } {
  const lines: { msg: string }[] = [];
  return { lines, logger: pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as { msg: string }); } }) };
}

function world(paths: string[]): KubeObject[] {
  return [
    service('web'), slice('web-1', 'web', [{ ip: '192.0.2.1' }]),
    ingress({ name: 'shop', rules: [{ host: 'shop.test', paths: paths.map((path) => ({ path, service: 'web' })) }] }),
  ];
}

async function tokens(): Promise<Authenticator> {
  const file = join(dir, `tokens-${Math.random()}`);
  writeFileSync(file, 'proxy-a token-a\nproxy-b token-b\n');
  return tokenFileAuthenticator(file);
}

async function plainOperator(o: Partial<ConstructorParameters<typeof Operator>[0]> = {}): Promise<{ operator: Operator; source: MemoryObjectSource; url: string }> {
  const source = new MemoryObjectSource(world(['/']));
  const operator = new Operator({ allowPlaintext: true, source, authenticate: await tokens(), logger: pino({ level: 'silent' }), quietMs: 10, maxHoldMs: 50, ...o });
  await operator.start();
  return { operator, source, url: `ws://127.0.0.1:${operator.streamAddress.port}/stream` };
}

interface Client { ws: WebSocket; frames: { type: string; generation: number; root: string }[]; closed: Promise<{ code: number; reason: string }>; open: Promise<void> }

function dial(url: string, token: string | null): Client {
  const ws = new WebSocket(url, SUBPROTOCOL, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const frames: Client['frames'] = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString()) as Client['frames'][number]));
  ws.on('error', () => undefined);
  return {
    ws, frames,
    open: new Promise((resolve) => ws.once('open', () => resolve())),
    closed: new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
  };
}

function hello(name: string, version: { generation: number; root: string } | null = null): string {
  return JSON.stringify({ type: 'hello', protocol: 1, proxy: { name }, version, resources: [] });
}

async function metric(operator: Operator, text: RegExp): Promise<string | null> {
  const body = await operator.metrics.registry.metrics();
  return text.exec(body)?.[1] ?? null;
}

test('a hello claiming generation 2^53−1 is refused naming the field, and the operator\'s generations stay safe: later versions reach the fleet', async () => {
  const { operator, source, url } = await plainOperator();
  try {
    const liar = dial(url, 'token-a');
    await liar.open;
    liar.ws.send(hello('proxy-a', { generation: Number.MAX_SAFE_INTEGER, root: operator.current!.root }));
    const closed = await liar.closed;
    assert.equal(closed.code, CLOSE.protocol);
    assert.match(closed.reason, /^hello\.version\.generation: 9007199254740991 is ahead of any generation/);
    assert.equal(await metric(operator, /^vane_operator_stream_rejections_total\{reason="protocol"\} (\d+)/m), '1');

    const honest = new StreamSource({ allowPlaintext: true, url, proxyName: 'proxy-b', token: async () => 'token-b', logger: pino({ level: 'silent' }) });
    let served = '';
    await honest.start((u) => { served = u.root; });
    try {
      const initial = operator.current!;
      source.set(world(['/', '/api'])[2]!);
      const next = await eventually('a new version', () => (operator.current!.root !== initial.root ? operator.current : null));
      assert.ok(Number.isSafeInteger(next.generation + 1), `generation ${next.generation} leaves room to grow`);
      assert.ok(next.generation <= Date.now() + 1000, `generation ${next.generation} follows the clock, not the claim`);
      await eventually('the honest proxy to serve the new version', () => served === next.root && honest.status.version?.generation === next.generation);
    } finally {
      await honest.close();
    }
  } finally {
    await operator.close();
  }
});

test('a proxy whose generation is a little ahead of this clock (another replica\'s skew) is served, and later versions pass it', async () => {
  const { operator, source, url } = await plainOperator();
  try {
    const ahead = Date.now() + 60_000;
    const client = dial(url, 'token-a');
    await client.open;
    client.ws.send(hello('proxy-a', { generation: ahead, root: '0'.repeat(64) }));
    const first = await eventually('the first version', () => client.frames[0]);
    client.ws.send(JSON.stringify({ type: 'ack', generation: first.generation, root: first.root }));
    const initial = operator.current!;
    source.set(world(['/', '/v2'])[2]!);
    const next = await eventually('a new version', () => (operator.current!.root !== initial.root ? operator.current : null));
    assert.ok(next.generation > ahead, 'the next version is above what the proxy holds');
    client.ws.close();
  } finally {
    await operator.close();
  }
});

test('a frame quoting long Unicode (a message type, a proxy name) closes that connection with a reason clipped to a close frame\'s 123 bytes; the operator lives on', async () => {
  const { operator, url } = await plainOperator();
  try {
    const typed = dial(url, 'token-a');
    await typed.open;
    typed.ws.send(JSON.stringify({ type: 'é'.repeat(200) }));
    const byType = await typed.closed;
    assert.equal(byType.code, CLOSE.protocol);
    assert.match(byType.reason, /^unknown message type "éé/);
    assert.ok(Buffer.byteLength(byType.reason) <= 123, `${Buffer.byteLength(byType.reason)} bytes`);

    const named = dial(url, 'token-a');
    await named.open;
    named.ws.send(hello('ñ'.repeat(300)));
    const byName = await named.closed;
    assert.equal(byName.code, CLOSE.forbidden);
    assert.match(byName.reason, /^hello\.proxy\.name: token belongs to proxy proxy-a, not ññ/);
    assert.ok(Buffer.byteLength(byName.reason) <= 123, `${Buffer.byteLength(byName.reason)} bytes`);

    const honest = dial(url, 'token-b');
    await honest.open;
    honest.ws.send(hello('proxy-b'));
    assert.equal((await eventually('a version for the next proxy', () => honest.frames[0])).root, operator.current!.root);
    honest.ws.close();
  } finally {
    await operator.close();
  }
});

test('a second connection for a connected proxy replaces it, logged and counted, naming both ends', async () => {
  const { logger, lines } = capture();
  const { operator, url } = await plainOperator({ logger });
  try {
    const first = dial(url, 'token-a');
    await first.open;
    first.ws.send(hello('proxy-a'));
    await eventually('the first connection served', () => first.frames[0]);
    const second = dial(url, 'token-a');
    await second.open;
    second.ws.send(hello('proxy-a'));
    const closed = await first.closed;
    assert.equal(closed.code, CLOSE.protocol);
    assert.match(closed.reason, /replaced by a newer connection/);
    await eventually('the second connection served', () => second.frames[0]);
    const warning = lines.find((l) => l.msg === 'a second connection for a connected proxy; closing the earlier one');
    assert.ok(warning, 'the replacement is logged');
    assert.equal(warning.proxy, 'proxy-a');
    assert.equal((warning.previous as { remote: string }).remote, '127.0.0.1');
    assert.equal(await metric(operator, /^vane_operator_stream_replaced_connections_total (\d+)/m), '1');
    assert.deepEqual(operator.fleetReport().connected.map((c) => c.proxy), ['proxy-a']);
    second.ws.close();
  } finally {
    await operator.close();
  }
});

test('failed authentications are rate-limited per address (429 before any review); failures of the authenticator itself are not counted against the client', async () => {
  const good = await tokens();
  let reviews = 0;
  const authenticate: Authenticator = async (token, req) => {
    reviews++;
    if (token === 'flaky') throw new Error('TokenReview: ETIMEOUT');
    return good(token, req);
  };
  const { operator, url } = await plainOperator({ authenticate });
  try {
    for (let i = 0; i < 15; i++) {
      const c = dial(url, 'flaky');
      assert.equal((await c.closed).code, CLOSE.unauthenticated, `transient failure ${i}`);
    }
    for (let i = 0; i < 10; i++) {
      const c = dial(url, 'wrong');
      assert.equal((await c.closed).code, CLOSE.unauthenticated, `bad token ${i}`);
    }
    const reviewsBefore = reviews;
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(url, SUBPROTOCOL, { headers: { authorization: 'Bearer wrong' } });
      ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
      ws.on('error', () => undefined);
      ws.on('open', () => resolve(101));
    });
    assert.equal(refused, 429);
    assert.equal(reviews, reviewsBefore, 'a rate-limited client costs no review');
    assert.equal(await metric(operator, /^vane_operator_stream_rejections_total\{reason="rate_limited"\} (\d+)/m), '1');
    assert.equal(await metric(operator, /^vane_operator_stream_rejections_total\{reason="unauthenticated"\} (\d+)/m), '25');
  } finally {
    await operator.close();
  }
});

test('authentications in progress are capped: one more is answered 503 at once, before any review', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let release!: () => void;
  const held = new Promise<void>((resolve) => { release = resolve; });
  let pending = 0;
  const stream = new StreamServer({
    server, logger: pino({ level: 'silent' }), maxPendingAuthentications: 2, onRejected: (reason) => rejected.push(reason),
    authenticate: async () => { pending++; await held; return { ok: true, proxy: 'proxy-a' }; },
  });
  const rejected: string[] = [];
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/stream`;
  try {
    const waiting = [dial(url, 'a'), dial(url, 'b')];
    await eventually('two authentications in progress', () => pending === 2);
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(url, SUBPROTOCOL);
      ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
      ws.on('error', () => undefined);
      ws.on('open', () => resolve(101));
    });
    assert.equal(status, 503);
    assert.deepEqual(rejected, ['busy']);
    release();
    await Promise.all(waiting.map((c) => c.open));
    for (const c of waiting) c.ws.close();
  } finally {
    await stream.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** A Leadership the test drives: it leads until told otherwise. */
function manualLeadership(): { leadership: NonNullable<ConstructorParameters<typeof Operator>[0]['leadership']>; stop: () => void } {
  let leading = true;
  let events: { onStartedLeading: () => void; onStoppedLeading: () => void } | null = null;
  return {
    leadership: (e) => { events = e; return { isLeader: () => leading, start: () => e.onStartedLeading(), close: async () => {} }; },
    stop: () => { leading = false; events!.onStoppedLeading(); },
  };
}

test('losing leadership closes connections still waiting for their hello; a hello sent afterwards gets nothing', async () => {
  const manual = manualLeadership();
  const { operator, url } = await plainOperator({ leadership: manual.leadership });
  try {
    const early = dial(url, 'token-a');
    await early.open;
    manual.stop();
    early.ws.send(hello('proxy-a'));
    const closed = await early.closed;
    assert.equal(closed.code, CLOSE.notLeader);
    assert.deepEqual(early.frames, []);
    assert.deepEqual(operator.fleetReport().connected, []);
  } finally {
    await operator.close();
  }
});

test('leadership lost while a client is being authenticated: it is answered 4010, not served', async () => {
  const manual = manualLeadership();
  const good = await tokens();
  let release!: () => void;
  const reviewing = new Promise<void>((resolve) => { release = resolve; });
  let started!: () => void;
  const inReview = new Promise<void>((resolve) => { started = resolve; });
  const authenticate: Authenticator = async (token, req) => { started(); await reviewing; return good(token, req); };
  const { operator, url } = await plainOperator({ leadership: manual.leadership, authenticate });
  try {
    const c = dial(url, 'token-a');
    await inReview;
    manual.stop();
    release();
    const closed = await c.closed;
    assert.equal(closed.code, CLOSE.notLeader);
    assert.deepEqual(c.frames, []);
  } finally {
    await operator.close();
  }
});

test('plain ws:// is refused unless allowed: the operator needs TLS, the client a wss:// URL; allowed, it warns', async () => {
  const authenticate = await tokens();
  assert.throws(() => new Operator({ source: new MemoryObjectSource([]), authenticate, logger: pino({ level: 'silent' }) }), /stream: tls .* is required; allowPlaintext serves ws:\/\/ for local development only/);
  assert.throws(() => new StreamSource({ url: 'ws://127.0.0.1:7443/stream', proxyName: 'p', logger: pino({ level: 'silent' }) }), /stream: url: ws:\/\/127\.0\.0\.1:7443\/stream is plain ws:\/\/.*allowPlaintext/);
  assert.throws(() => new StreamSource({ url: ['wss://a/stream', 'http://b/stream'], proxyName: 'p', logger: pino({ level: 'silent' }) }), /stream: url: http:\/\/b\/stream must be a wss:\/\/ URL/);

  const cert = selfSigned('localhost', '127.0.0.1');
  const { logger, lines } = capture();
  const secure = new Operator({ tls: cert, source: new MemoryObjectSource(world(['/'])), authenticate: await tokens(), logger, quietMs: 10 });
  await secure.start();
  await secure.close();
  assert.ok(!lines.some((l) => /plain ws:\/\//.test(l.msg)), 'no warning with TLS');
  const { logger: plainLogger, lines: plainLines } = capture();
  const { operator } = await plainOperator({ logger: plainLogger });
  await operator.close();
  assert.ok(plainLines.some((l) => l.level === 40 && /plain ws:\/\/ \(allowPlaintext\)/.test(l.msg)), 'allowed, it warns');
});
