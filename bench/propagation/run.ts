/**
 * Propagation benchmark (issue 6): change one Ingress in a 10k-route configuration and
 * time until every proxy has applied, verified and ACKed it — with 100 and 1000 simulated
 * proxies (the real stream client, many per process). Resource-level deltas are compared
 * side by side with full snapshots (the baseline), and a leader restart is measured with
 * every proxy reconnecting.
 *
 *   node bench/propagation/run.ts [--proxies 100,1000] [--hosts 500] [--paths 20] [--updates 10]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Operator, MemoryObjectSource, tokenFileAuthenticator } from '../../operator/index.ts';
import { buildWorld } from '../support/world.ts';
import { eventually } from '../../tests/support/wait.ts';
import { createLogger } from '../../lib/log.ts';

const { values } = parseArgs({ options: {
  proxies: { type: 'string', default: '100,1000' }, hosts: { type: 'string', default: '500' }, paths: { type: 'string', default: '20' },
  updates: { type: 'string', default: '10' }, processes: { type: 'string', default: '8' }, 'quiet-ms': { type: 'string', default: '10' },
} });
const world = buildWorld({ ingresses: Number(values.hosts), pathsPerIngress: Number(values.paths), endpointsPerService: 2, tlsShare: 0, canaryShare: 0 });
const logger = createLogger('bench', 'silent');
const dir = mkdtempSync(join(tmpdir(), 'vane-prop-'));
const now = () => performance.timeOrigin + performance.now();

function percentile(xs: number[], p: number): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** POLL asks every millisecond: how soon a change is seen is what this benchmark measures. */
const POLL = { intervalMs: 1 };

async function scenario(proxies: number, fullSendsOnly: boolean, port: number): Promise<void> {
  const names = Array.from({ length: proxies }, (_, i) => `proxy-${i}`);
  const tokens = join(dir, `tokens-${proxies}`);
  writeFileSync(tokens, names.map((n) => `${n} token-${n}`).join('\n'));
  const authenticate = await tokenFileAuthenticator(tokens);
  const source = new MemoryObjectSource(world.objects);
  const quietMs = Number(values['quiet-ms']);
  const start = (fullOnly: boolean) => new Operator({ source, authenticate, expectedProxies: names, logger, allowPlaintext: true, streamPort: port, quietMs, maxHoldMs: 100, fullSendsOnly: fullOnly });
  let operator = start(fullSendsOnly);
  await operator.start();
  const applied = new Map<string, { root: string; at: number }>();
  const processes = Math.min(Number(values.processes), proxies);
  const children: ChildProcess[] = [];
  for (let p = 0; p < processes; p++) {
    const child = fork(new URL('./fleet.ts', import.meta.url).pathname, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (m: { name: string; root: string; at: number }) => applied.set(m.name, { root: m.root, at: m.at }));
    child.send({ url: `ws://127.0.0.1:${port}/stream`, names: names.filter((_, i) => i % processes === p) });
    children.push(child);
  }
  const label = `${proxies} proxies, ${fullSendsOnly ? 'full snapshots (baseline)' : 'deltas'}`;
  try {
    const t0 = now();
    await eventually('initial sync', () => operator.fleetReport().convergence?.converged === proxies, 600_000, POLL);
    console.log(`[${label}] initial sync of ${operator.current!.resources.size} resources to every proxy: ${((now() - t0) / 1000).toFixed(1)} s`);
    const latencies: number[] = [];
    const publishLatencies: number[] = [];
    const bytes: number[] = [];
    // The full-snapshot baseline moves megabytes per proxy per update: fewer rounds, more time.
    const updates = fullSendsOnly ? Math.min(3, Number(values.updates)) : Number(values.updates);
    const ackTimeoutMs = fullSendsOnly ? 600_000 : 60_000;
    for (let rev = 1; rev <= updates; rev++) {
      const before = (await operator.metrics.sendBytes.get()).values.reduce((s, v) => s + v.value, 0);
      const changedAt = now();
      source.set(world.changedIngress(rev * 7, rev));
      await eventually('a new version', () => operator.current!.changed.upserts.includes(`vhost/${world.hosts[rev * 7]}`) && operator.current!.changeStartedAt >= changedAt - 1, 10_000, POLL);
      const root = operator.current!.root;
      const publishedAt = operator.current!.builtAt;
      await eventually('every ACK', () => { const c = operator.fleetReport().convergence; return c !== null && c.root === root && c.converged === proxies; }, ackTimeoutMs, POLL);
      await eventually('every apply report', () => [...applied.values()].filter((a) => a.root === root).length === proxies, 10_000, POLL);
      const last = Math.max(...[...applied.values()].map((a) => a.at));
      latencies.push(last - changedAt);
      publishLatencies.push(last - publishedAt);
      const after = (await operator.metrics.sendBytes.get()).values.reduce((s, v) => s + v.value, 0);
      bytes.push((after - before) / proxies);
    }
    console.log(`[${label}] change one Ingress → every proxy applied+verified: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms (from publish: p50 ${percentile(publishLatencies, 50).toFixed(1)} ms, p99 ${percentile(publishLatencies, 99).toFixed(1)} ms); ${Math.round(percentile(bytes, 50))} bytes sent per proxy per update`);

    if (!fullSendsOnly) {
      await operator.close();
      const restartAt = now();
      operator = start(false);
      await operator.start();
      await eventually('reconvergence after leader restart', () => operator.fleetReport().convergence?.converged === proxies, 300_000, POLL);
      const sends = await operator.metrics.sends.get();
      const sendBytes = (await operator.metrics.sendBytes.get()).values.reduce((s, v) => s + v.value, 0);
      const full = sends.values.find((v) => v.labels.kind === 'full')?.value ?? 0;
      console.log(`[${label}] leader restart: all ${proxies} proxies reconnected and converged in ${((now() - restartAt) / 1000).toFixed(2)} s; ${full} full sends, ${Math.round(sendBytes / proxies)} bytes per proxy`);
    }
  } finally {
    for (const c of children) c.send({ stop: true });
    await Promise.all(children.map((c) => new Promise((r) => c.once('exit', r))));
    await operator.close();
  }
}

try {
  let port = 17443;
  for (const n of values.proxies.split(',').map(Number)) {
    await scenario(n, false, port++);
    await scenario(n, true, port++);
  }
  console.log(`goals: p99 < 100 ms at 100 proxies, < 500 ms at 1000 (operator quiet period ${values['quiet-ms']} ms included)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
