/**
 * A rolled-back canary keeps no long-lived connections: when the split disappears from the
 * routing (the Canary turned Failed), WebSockets the proxy had opened to the canary backend
 * are closed, while those to the stable backend carry on.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketServer, WebSocket } from 'ws';
import { INGRESS_CLASS, ingress, service, startUpstream, tempDir, writeManifests, runProxy, type Upstream, type RunningProxy } from './harness.ts';
import { eventually } from '../../support/wait.ts';

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => { for (const c of cleanups.reverse()) await c(); });

async function wsUpstream(name: string): Promise<Upstream> {
  const up = await startUpstream(name, (_req, res) => { res.statusCode = 426; res.end(); });
  const wss = new WebSocketServer({ noServer: true });
  up.server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m) => ws.send(`${name}:${m.toString()}`))));
  cleanups.push(async () => { wss.close(); });
  return up;
}

function canary(phase?: string): object {
  return {
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'chat', namespace: 'default' },
    spec: { ingressRef: { name: 'chat' }, service: 'stable', canaryService: { name: 'canary' }, traffic: { weight: 0, header: { name: 'X-Canary' } } },
    ...(phase ? { status: { phase, weight: 0 } } : {}),
  };
}

async function open(proxy: RunningProxy, side: 'always' | 'never'): Promise<{ ws: WebSocket; first: string; closed: Promise<number> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${proxy.http}/chat`, { headers: { host: 'chat.test', 'x-canary': side } });
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const first = await new Promise<string>((resolve) => { ws.once('message', (m) => resolve(m.toString())); ws.send('hello'); });
  return { ws, first, closed };
}

test('rollback closes upgraded connections to the canary, and only those', async () => {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const stable = await wsUpstream('stable');
  const canaryUp = await wsUpstream('canary');
  cleanups.push(() => new Promise((r) => stable.server.close(r)), () => new Promise((r) => canaryUp.server.close(r)));
  const world = (phase?: string) => [
    INGRESS_CLASS,
    ingress({ name: 'chat', host: 'chat.test', paths: [{ path: '/', service: 'stable' }] }),
    ...service('stable', [{ port: stable.port }]),
    ...service('canary', [{ port: canaryUp.port }]),
    canary(phase),
  ];
  await writeManifests(dir.dir, 'all.json', world());
  const proxy = await runProxy(dir.dir);
  cleanups.push(() => proxy.stop());

  const toCanary = await open(proxy, 'always');
  const toStable = await open(proxy, 'never');
  assert.equal(toCanary.first, 'canary:hello');
  assert.equal(toStable.first, 'stable:hello');

  let canaryClosedAt = 0;
  void toCanary.closed.then(() => { canaryClosedAt = Date.now(); });
  const rolledBackAt = Date.now();
  await writeManifests(dir.dir, 'all.json', world('Failed'));
  await eventually('the canary WebSocket to close', () => canaryClosedAt > 0, 10_000);
  assert.ok(canaryClosedAt - rolledBackAt < 10_000);

  const still = await new Promise<string>((resolve) => { toStable.ws.once('message', (m) => resolve(m.toString())); toStable.ws.send('still there?'); });
  assert.equal(still, 'stable:still there?', 'the stable side keeps its connection');
  const after = await open(proxy, 'always');
  assert.equal(after.first, 'stable:hello', 'after the rollback, header always no longer reaches the canary');
  after.ws.close();
  toStable.ws.close();
});
