/**
 * lib/kube against the real API server, reached through a TCP relay on 127.0.0.1 that the test
 * can cut (every connection dropped, new ones refused) or turn into a black hole (connections
 * accepted, never answered):
 * - 410 Gone → relist, nothing lost: Events (which the API server serves from etcd, not its
 *   watch cache) change while the relay is cut, etcd is compacted past the reflector's
 *   resourceVersion, and the resumed watch's 410 makes it list again and deliver every add,
 *   change and delete it missed;
 * - a fenced write is refused once another holder took the lease;
 * - a leader whose API server turns into a black hole gives up within its renew deadline, each
 *   Lease call ending at its bound instead of hanging, and its stream server closes every
 *   proxy connection and refuses new ones the moment the fence closes;
 * - a silent watch is cut at its idle bound and resumed from its resourceVersion (no relist).
 * The API server restart is kube-adapter-restart.test.ts; a request timeout against a bare
 * black hole is tests/unit/kube/adapter.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { KubeConfig } from '@kubernetes/client-node';
import { Kube, RESOURCES, Reflector, isKubeError, readLease, updateLease, microTime, type ReflectedObject } from '../../../lib/kube/index.ts';
import WebSocket from 'ws';
import { LeaderElector, StatusWriter, Operator, MemoryObjectSource } from '../../../operator/index.ts';
import { CLOSE, SUBPROTOCOL } from '../../../core/index.ts';
import { cluster, e2eSkip, type Cluster } from '../harness/index.ts';
import { eventually } from '../../support/wait.ts';

let c: Cluster;
let ns: string;
const logger = pino({ level: 'silent' });

before(async () => {
  if (e2eSkip) return;
  c = await cluster();
  ns = await c.namespace('kube-adapter');
});

type Mode = 'forward' | 'cut' | 'blackhole';

/** Relay: 127.0.0.1:port → the API server, with the mode switchable; switching drops every open connection. */
interface Relay { port: number; set(mode: Mode): void; close(): Promise<void> }

async function relay(target: URL): Promise<Relay> {
  let mode: Mode = 'forward';
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    open.add(client);
    client.on('error', () => {});
    client.on('close', () => open.delete(client));
    if (mode === 'cut') { client.destroy(); return; }
    if (mode === 'blackhole') return;
    const upstream = connect(Number(target.port), target.hostname);
    open.add(upstream);
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => { open.delete(upstream); client.destroy(); });
    client.on('close', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    set(next) { mode = next; for (const s of open) s.destroy(); },
    close: async () => { for (const s of open) s.destroy(); await new Promise((r) => server.close(r)); },
  };
}

/** kubeVia: the admin kubeconfig with its server replaced by the relay's address (the serving certificate names 127.0.0.1). */
function kubeVia(r: Relay, options: ConstructorParameters<typeof Kube>[1] = {}): Kube {
  const kc = new KubeConfig();
  kc.loadFromFile(c.kubeconfig);
  kc.loadFromOptions({
    clusters: kc.clusters.map((cl) => ({ ...cl, server: `https://127.0.0.1:${r.port}` })),
    users: kc.users, contexts: kc.contexts, currentContext: kc.currentContext,
  });
  return new Kube(kc, options);
}

interface EventObj extends ReflectedObject { message?: string }

function event(name: string, message: string): object {
  return {
    apiVersion: 'v1', kind: 'Event', metadata: { name, namespace: ns },
    involvedObject: { apiVersion: 'v1', kind: 'ConfigMap', name: 'x', namespace: ns },
    reason: 'Test', message, type: 'Normal', source: { component: 'kube-adapter-test' },
  };
}

const relays: Relay[] = [];
after(async () => { for (const r of relays) await r.close(); });

test('410 Gone after etcd compaction: the reflector lists again and delivers every add, change and delete it missed', { skip: e2eSkip }, async () => {
  const r = await relay(new URL(c.server));
  relays.push(r);
  const kube = kubeVia(r);
  const kc = new KubeConfig();
  kc.loadFromFile(c.kubeconfig);
  const direct = new Kube(kc);
  await direct.create(RESOURCES.Event, event('one', 'first'));
  await direct.create(RESOURCES.Event, event('two', 'second'));

  const seen = new Map<string, string>();
  const log: string[] = [];
  const reflector = new Reflector<EventObj>(kube, {
    type: RESOURCES.Event, namespace: ns, logger, initialBackoffMs: 100, maxBackoffMs: 400,
    onUpsert: (o) => { seen.set(o.metadata!.name!, o.message ?? ''); log.push(`upsert ${o.metadata!.name}`); },
    onDelete: (o) => { seen.delete(o.metadata!.name!); log.push(`delete ${o.metadata!.name}`); },
  });
  try {
    reflector.start();
    await reflector.listed;
    assert.deepEqual([...seen].sort(), [['one', 'first'], ['two', 'second']]);
    // The watch is live: a change arrives through it.
    await direct.mergePatch(RESOURCES.Event, { namespace: ns, name: 'one' }, { message: 'first, again' });
    await eventually('the watch to deliver the change', () => seen.get('one') === 'first, again');
    const before = { ...reflector.stats };
    const stale = reflector.lastResourceVersion;

    // Cut the reflector off; change everything behind its back, then compact etcd past where it stands.
    r.set('cut');
    await direct.mergePatch(RESOURCES.Event, { namespace: ns, name: 'one' }, { message: 'changed while away' });
    await direct.delete(RESOURCES.Event, { namespace: ns, name: 'two' });
    const three = await direct.create<EventObj>(RESOURCES.Event, event('three', 'born while away'));
    const revision = three.metadata!.resourceVersion!;
    assert.ok(Number(revision) > Number(stale));
    const etcd = `http://127.0.0.1:${c.controlPlane.state.ports.etcdClient}`;
    const compacted = await fetch(`${etcd}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision, physical: true }) });
    assert.equal(compacted.status, 200, await compacted.text());
    const old = await fetch(`${etcd}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/registry/events/').toString('base64'), revision: stale }) });
    assert.match(await old.text(), /compacted/, 'etcd no longer holds the reflector\'s resourceVersion');

    r.set('forward');
    await eventually('the reflector to catch up', () => seen.size === 2 && seen.get('one') === 'changed while away' && seen.get('three') === 'born while away', 30_000);
    assert.ok(!seen.has('two'), 'the delete it missed was delivered');
    assert.ok(reflector.stats.gone > before.gone, `a 410 was seen (${JSON.stringify(reflector.stats)})`);
    assert.ok(reflector.stats.lists > before.lists, 'and answered by a relist');
    assert.ok(log.includes('delete two'));

    // And it keeps watching after the relist.
    await direct.create(RESOURCES.Event, event('four', 'after'));
    await eventually('the new watch to deliver', () => seen.get('four') === 'after');
  } finally {
    reflector.close();
  }
});

test('a write fenced on the lease is refused once another holder took the lease', { skip: e2eSkip }, async () => {
  const kc = new KubeConfig();
  kc.loadFromFile(c.kubeconfig);
  const kube = new Kube(kc);
  await kube.create(RESOURCES.ConfigMap, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'fenced', namespace: ns }, data: { writer: 'none' } });
  let stopped = 0;
  const elector = new LeaderElector(kube, {
    namespace: ns, name: 'fence', identity: 'replica-a', logger,
    leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 200,
    onStartedLeading: () => {}, onStoppedLeading: () => { stopped++; },
  });
  const writer = new StatusWriter(kube, { isLeader: () => elector.isLeader(), addresses: [], logger });
  try {
    elector.start();
    await eventually('replica-a to lead', () => elector.isLeader());
    const patch = (value: string) => kube.mergePatch(RESOURCES.ConfigMap, { namespace: ns, name: 'fenced' }, { data: { writer: value } }, { fence: elector.fence });
    await patch('replica-a while leading');
    assert.equal(await writer.submit('probe', async () => {}), true, 'the StatusWriter runs writes while leading');

    // Another replica takes the lease (as one does after this one failed to renew in time).
    const lease = await readLease(kube, ns, 'fence');
    assert.equal(lease?.spec?.holderIdentity, 'replica-a');
    lease!.spec = { ...lease!.spec, holderIdentity: 'replica-b', renewTime: microTime(Date.now()), leaseDurationSeconds: 60 };
    await updateLease(kube, lease!);
    await eventually('replica-a to step down', () => !elector.isLeader() && stopped === 1, 5_000);

    await assert.rejects(patch('replica-a after losing the lease'), (e) => isKubeError(e, 'EFENCED'));
    assert.equal(await writer.submit('probe', async () => { throw new Error('must not run'); }), false, 'the StatusWriter drops writes');
    const cm = await kube.get<{ data: Record<string, string> }>(RESOURCES.ConfigMap, { namespace: ns, name: 'fenced' });
    assert.equal(cm.data.writer, 'replica-a while leading', 'nothing was written after the lease was lost');
    assert.equal((await readLease(kube, ns, 'fence'))?.spec?.holderIdentity, 'replica-b', 'and replica-a did not take it back');
  } finally {
    writer.close();
    await elector.close();
  }
});

test('a leader whose API server turns into a black hole steps down within its renew deadline; no Lease call outlives its bound', { skip: e2eSkip }, async () => {
  const r = await relay(new URL(c.server));
  relays.push(r);
  const kube = kubeVia(r);
  let stoppedAt = 0;
  const renewDeadlineMs = 3_000;
  const elector = new LeaderElector(kube, {
    namespace: ns, name: 'blackhole', identity: 'replica-a', logger,
    leaseDurationMs: 4_500, renewDeadlineMs, retryPeriodMs: 200,
    onStartedLeading: () => {}, onStoppedLeading: () => { stoppedAt = Date.now(); },
  });
  try {
    elector.start();
    await eventually('replica-a to lead', () => elector.isLeader());
    await new Promise((res) => setTimeout(res, 500));
    const holeAt = Date.now();
    r.set('blackhole');
    // Its fence closes at the renew deadline, whatever the calls in flight do …
    await eventually('the fence to close', () => !elector.isLeader(), renewDeadlineMs + 1_000);
    assert.ok(Date.now() - holeAt <= renewDeadlineMs + 500, `fence closed after ${Date.now() - holeAt} ms`);
    // … and the elector itself notices: each call ends at a third of the deadline, so an attempt ends and it steps down.
    await eventually('onStoppedLeading', () => stoppedAt > 0, renewDeadlineMs + 2_000);
    assert.ok(stoppedAt - holeAt < renewDeadlineMs + 2_000, `stepped down after ${stoppedAt - holeAt} ms`);
    const t = Date.now();
    await elector.close();
    assert.ok(Date.now() - t < 2_500, `close() waited ${Date.now() - t} ms for the attempt in flight`);
  } finally {
    r.set('forward');
    await elector.close();
  }
});

test('a leader whose API server turns into a black hole stops serving the stream when its fence closes, not when a Lease call ends', { skip: e2eSkip }, async () => {
  const r = await relay(new URL(c.server));
  relays.push(r);
  const operator = new Operator({
    source: new MemoryObjectSource([]), allowPlaintext: true, logger,
    authenticate: async (token) => (token === 'token-a' ? { ok: true, proxy: 'proxy-a' } : { ok: false, code: CLOSE.unauthenticated, reason: 'unknown token' }),
    // Each Lease call is bounded by 1 s, so without a timer of its own the elector would notice
    // the deadline only when the attempt in flight ends, about 0.6 s after the fence closed.
    leadership: (events) => new LeaderElector(kubeVia(r), {
      namespace: ns, name: 'stream-deadline', identity: 'replica-a', logger, leaseDurationMs: 4_500, renewDeadlineMs: 3_000, retryPeriodMs: 200, ...events,
    }),
  });
  const url = () => `ws://127.0.0.1:${operator.streamAddress.port}/stream`;
  const dial = () => {
    const ws = new WebSocket(url(), SUBPROTOCOL, { headers: { authorization: 'Bearer token-a' } });
    ws.on('error', () => {});
    const frames: unknown[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', protocol: 1, proxy: { name: 'proxy-a' }, version: null, resources: [] })));
    const closed = new Promise<{ code: number; at: number }>((resolve) => ws.on('close', (code) => resolve({ code, at: Date.now() })));
    return { frames, closed };
  };
  try {
    await operator.start();
    await eventually('replica-a to lead', () => operator.isLeader());
    const proxy = dial();
    await eventually('the proxy to receive the routing', () => proxy.frames.length > 0);
    r.set('blackhole');
    const fenceClosedAt = (await eventually('the fence to close', () => !operator.isLeader() && Date.now(), 5_000, { intervalMs: 5 }));
    const late = dial();
    const closed = await proxy.closed;
    assert.equal(closed.code, CLOSE.notLeader);
    assert.ok(closed.at - fenceClosedAt < 250, `the stream closed ${closed.at - fenceClosedAt} ms after the fence`);
    assert.equal((await late.closed).code, CLOSE.notLeader, 'a proxy arriving after the deadline is turned away');
    assert.deepEqual(late.frames, []);
  } finally {
    r.set('forward');
    await operator.close();
  }
});

test('a silent watch is cut at its idle bound and resumed from its resourceVersion, without a relist or a warning', { skip: e2eSkip }, async () => {
  const kc = new KubeConfig();
  kc.loadFromFile(c.kubeconfig);
  const kube = new Kube(kc);
  const quiet = await c.namespace('kube-adapter-idle');
  const seen: string[] = [];
  const warnings: string[] = [];
  const warnLogger = pino({ level: 'warn' }, { write: (line: string) => { warnings.push(line); } });
  const reflector = new Reflector<ReflectedObject>(kube, {
    type: RESOURCES.ConfigMap, namespace: quiet, logger: warnLogger, idleTimeoutMs: 700,
    onUpsert: (o) => { seen.push(o.metadata!.name!); }, onDelete: () => {},
  });
  try {
    reflector.start();
    await reflector.listed;
    await eventually('three idle cut-offs', () => reflector.stats.watches >= 4, 10_000);
    assert.equal(reflector.stats.lists, 1, 'resumed, not relisted');
    await kube.create(RESOURCES.ConfigMap, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'late', namespace: quiet } });
    await eventually('the resumed watch to deliver', () => seen.includes('late'));
    assert.deepEqual(warnings, []);
  } finally {
    reflector.close();
  }
});
