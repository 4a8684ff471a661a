/**
 * What a refusal costs the operator (issue 18: bound the size, time and CPU of every byte
 * from the stream), with real sockets. A proxy holding a newer generation than the leader's
 * (a predecessor's clock was ahead) with other content must end up on the leader's content
 * without refusing anything; a proxy that refuses every version (NACK or resync) is answered
 * with backoff and disconnected after a few, never in a loop.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket, { WebSocketServer } from 'ws';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { Operator, MemoryObjectSource, tokenFileAuthenticator } from '../../operator/index.ts';
import { StreamSource } from '../../proxy/source/stream.ts';
import { SUBPROTOCOL, CLOSE, compile, type KubeObject } from '../../core/index.ts';
import { ingress, service, slice } from '../support/objects.ts';
import { eventually } from '../support/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'vane-stream-nack-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function world(paths: string[]): KubeObject[] {
  return [
    service('web'), slice('web-1', 'web', [{ ip: '192.0.2.1' }]),
    ingress({ name: 'shop', rules: [{ host: 'shop.test', paths: paths.map((path) => ({ path, service: 'web' })) }] }),
  ];
}

function capture(): { logger: Logger; lines: { msg: string; [k: string]: unknown }[] } {
  const lines: { msg: string }[] = [];
  return { lines, logger: pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as { msg: string }); } }) };
}

async function start(logger: Logger = pino({ level: 'silent' })): Promise<{ operator: Operator; url: string }> {
  const tokens = join(dir, `tokens-${Math.random()}`);
  writeFileSync(tokens, 'proxy-a token-a\n');
  const operator = new Operator({
    allowPlaintext: true, source: new MemoryObjectSource(world(['/'])), authenticate: await tokenFileAuthenticator(tokens),
    expectedProxies: ['proxy-a'], logger, quietMs: 10, maxHoldMs: 50,
  });
  await operator.start();
  return { operator, url: `ws://127.0.0.1:${operator.streamAddress.port}/stream` };
}

async function sent(operator: Operator): Promise<number> {
  return (await operator.metrics.sends.get()).values.reduce((n, v) => n + v.value, 0);
}

async function metric(operator: Operator, text: RegExp): Promise<string | null> {
  return text.exec(await operator.metrics.registry.metrics())?.[1] ?? null;
}

interface Frame { type: string; generation: number; root: string; at: number }
interface Client { ws: WebSocket; frames: Frame[]; closed: { code: number; reason: string } | null }

/** dial connects as proxy-a, says hello (holding `held`, or nothing), and answers every frame it receives with the messages `answer` returns. */
async function dial(url: string, answer: (frame: Frame) => unknown[], held: { version: { generation: number; root: string }; resources: [string, string][] } | null = null): Promise<Client> {
  const ws = new WebSocket(url, SUBPROTOCOL, { headers: { authorization: 'Bearer token-a' } });
  const frames: Frame[] = [];
  ws.on('message', (d) => {
    const frame = { ...(JSON.parse(d.toString()) as Frame), at: performance.now() };
    frames.push(frame);
    for (const msg of answer(frame)) ws.send(JSON.stringify(msg));
  });
  ws.on('error', () => undefined);
  const client: Client = { ws, frames, closed: null };
  ws.once('close', (code, reason) => { client.closed = { code, reason: reason.toString() }; });
  await new Promise((resolve) => ws.once('open', resolve));
  ws.send(JSON.stringify({ type: 'hello', protocol: 1, proxy: { name: 'proxy-a' }, version: held?.version ?? null, resources: held?.resources ?? [] }));
  return client;
}

/** closedAfterFewSends waits for the operator to close `client`, failing as soon as it has been sent more than `limit` versions. */
async function closedAfterFewSends(client: Client, limit: number): Promise<{ code: number; reason: string }> {
  return eventually('the operator to close the connection', () => {
    assert.ok(client.frames.length <= limit, `${client.frames.length} versions sent to a proxy that refuses them, ${client.frames.filter((f) => f.at - client.frames[0]!.at < 1000).length} in the first second`);
    return client.closed;
  }, 10_000);
}

test('a proxy holding a newer generation with other content (its last leader\'s clock was ahead) moves to this leader\'s content, without a refusal', async () => {
  const ahead = Date.now() + 60_000;
  const stateDir = join(dir, 'state-ahead');
  mkdirSync(stateDir);
  const previous = compile(world(['/', '/old']));
  const savedAt = Date.now();
  writeFileSync(join(stateDir, 'routing.json'), JSON.stringify({ generation: ahead, root: previous.root, savedAt, resources: [...previous.resources.values()] }));
  writeFileSync(join(stateDir, 'secrets.json'), JSON.stringify({ generation: ahead, root: previous.root, savedAt, resources: [] }));

  const { operator, url } = await start();
  const proxy = new StreamSource({ allowPlaintext: true, url, proxyName: 'proxy-a', token: async () => 'token-a', stateDir, logger: pino({ level: 'silent' }) });
  try {
    await proxy.start(() => undefined);
    assert.equal(proxy.status.version?.root, previous.root, 'serving its last-known-good state first');
    let sends = 0;
    const converged = await eventually('the proxy to serve the leader\'s content', async () => {
      sends = await sent(operator);
      const c = operator.fleetReport().convergence;
      return c?.converged === 1 && proxy.status.version?.root === operator.current!.root ? operator.current : null;
    }, 5000, { detail: () => `proxy holds ${JSON.stringify(proxy.status.version)}, operator ${operator.current!.generation}; ${sends} versions sent meanwhile` });
    assert.ok(converged.generation > ahead, `the leader's version ${converged.generation} is above the proxy's ${ahead}`);
    assert.equal(converged.root, compile(world(['/'])).root, 'the leader\'s content, not the proxy\'s');
    assert.equal(await metric(operator, /^vane_operator_nacks_total (\d+)/m), '0');
    assert.equal(await sent(operator), 1, 'one delta to the leader\'s content');
  } finally {
    await proxy.close();
    await operator.close();
  }
});

test('a proxy that NACKs every version is answered with growing delays and closed (4009) after a few, counted and logged with its identity', async () => {
  const { logger, lines } = capture();
  const { operator, url } = await start(logger);
  try {
    const client = await dial(url, (f) => [{ type: 'nack', generation: f.generation, root: f.root, reason: 'refusing everything' }]);
    const closed = await closedAfterFewSends(client, 5);
    assert.equal(closed.code, CLOSE.tooManyRefusals);
    assert.match(closed.reason, /^nack: 5 versions refused in a row/);
    assert.equal(client.frames.length, 5, 'the first version and a snapshot after each of the first 4 refusals');
    const gaps = client.frames.slice(1).map((f, i) => f.at - client.frames[i]!.at);
    for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i]! > gaps[i - 1]!, `the delays grow: ${gaps.map(Math.round).join(', ')} ms`);
    assert.ok(gaps[0]! >= 200, `no resend before the first delay: ${Math.round(gaps[0]!)} ms`);
    assert.equal(await metric(operator, /^vane_operator_stream_refusal_disconnects_total (\d+)/m), '1');
    const line = lines.find((l) => l.msg.startsWith('proxy refused 5 versions in a row'));
    assert.ok(line, 'the disconnect is logged');
    assert.deepEqual([line.proxy, line.remote], ['proxy-a', '127.0.0.1']);
  } finally {
    await operator.close();
  }
});

test('a proxy that ACKs each version and asks for a resync after it is bounded the same way', async () => {
  const { operator, url } = await start();
  try {
    const client = await dial(url, (f) => [{ type: 'ack', generation: f.generation, root: f.root }, { type: 'resync', reason: 'again, please' }]);
    const closed = await closedAfterFewSends(client, 5);
    assert.equal(closed.code, CLOSE.tooManyRefusals);
    assert.match(closed.reason, /^resync: 5 versions refused in a row/);
    assert.deepEqual(client.frames.slice(1).map((f) => f.type), ['snapshot', 'snapshot', 'snapshot', 'snapshot'], 'each resync answered with a full snapshot');
  } finally {
    await operator.close();
  }
});

test('a resync answers the version in flight: a full snapshot follows, not an ACK timeout', async () => {
  const { operator, url } = await start();
  try {
    let refused = false;
    const client = await dial(url, (f) => {
      if (refused) return [{ type: 'ack', generation: f.generation, root: f.root }];
      refused = true;
      return [{ type: 'resync', reason: 'delta applies to another root' }];
    });
    await eventually('a second send after the resync', () => client.frames.length >= 2, 5000);
    assert.equal(client.frames[1]!.type, 'snapshot');
    await eventually('the proxy counted as converged', () => operator.fleetReport().convergence?.converged === 1, 5000);
    client.ws.close();
  } finally {
    await operator.close();
  }
});

test('a proxy holding this leader\'s content at a newer generation is counted as converged', async () => {
  const { operator, url } = await start();
  try {
    const current = operator.current!;
    const ahead = Date.now() + 60_000;
    const resources = [...current.resources.values()].map((r) => [r.resource.name, r.hash] as [string, string]);
    const client = await dial(url, (f) => [{ type: 'ack', generation: f.generation, root: f.root }], { version: { generation: ahead, root: current.root }, resources });
    await eventually('the proxy counted as converged', () => operator.fleetReport().convergence?.converged === 1, 5000, { detail: () => JSON.stringify(operator.fleetReport()) });
    assert.ok(operator.current!.generation > ahead);
    assert.deepEqual(client.frames.map((f) => f.type), ['delta']);
    client.ws.close();
  } finally {
    await operator.close();
  }
});

test('a proxy whose versions are all refused backs off between connections: the back-off restarts on a verified version, not on any message', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const wss = new WebSocketServer({ server, handleProtocols: () => SUBPROTOCOL });
  const hellos: number[] = [];
  wss.on('connection', (ws) => ws.on('message', (d) => {
    const msg = JSON.parse(d.toString()) as { type: string };
    if (msg.type === 'hello') {
      hellos.push(performance.now());
      ws.send(JSON.stringify({ type: 'snapshot', generation: Date.now(), root: 'a'.repeat(64), resources: [] }));
    } else if (msg.type === 'nack') {
      ws.close(CLOSE.tooManyRefusals, 'nack: 5 versions refused in a row');
    }
  }));
  const proxy = new StreamSource({
    allowPlaintext: true, url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/stream`, proxyName: 'proxy-a', logger: pino({ level: 'silent' }), initialBackoffMs: 50,
  });
  void proxy.start(() => undefined);
  try {
    await eventually('six connections', () => hellos.length >= 6, 10_000);
    // Back-offs of 50, 100, 200, 400 and 800 ms, each jittered down to half at most.
    const elapsed = hellos[5]! - hellos[0]!;
    assert.ok(elapsed >= 775, `six connections in ${Math.round(elapsed)} ms`);
  } finally {
    await proxy.close();
    for (const ws of wss.clients) ws.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
