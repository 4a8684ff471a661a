/**
 * 6. Slow clients, slow bodies, slow backends and a connection flood against one proxy (file
 * mode, loopback upstreams in this process), while ordinary clients from another address are
 * served: zero of theirs may fail, and the proxy's memory (primary and worker RSS, sampled)
 * stays under a bound; its peak is reported.
 *
 * Then weakness 1 of issue 18 on its own: an endpoint whose two connections are pinned by
 * trickled bodies (pinnedEndpoint).
 *
 * The abusers come from 127.0.0.3 and the ordinary clients from 127.0.0.1, as they would be
 * different hosts: a per-client limit is allowed to refuse the abusers, never the others.
 */
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  runProxy, startUpstream, tempDir, writeManifests, ingress, service, INGRESS_CLASS, echo, type Upstream,
} from '../../../tests/integration/proxy/harness.ts';
import { Balancer, startLoad } from '../load.ts';
import { failureProblems, percentile, type Result } from '../report.ts';
import { get, metric } from '../world.ts';
import type { World } from '../world.ts';
import type { Scale } from './scale.ts';

const ABUSER = '127.0.0.3';
/** The slow backend's clients are patient, not abusive: an address of their own. */
const SLOW_CLIENT = '127.0.0.4';
const FLOOD = 1_000;
const SLOWLORIS = 100;
const SLOW_BODIES = 50;
const SLOW_BACKEND_REQUESTS = 40;
const SLOW_READERS = 20;
const BIG_BYTES = 4 * 1024 * 1024;
const RSS_BOUND_MB = 512;
const PER_CLIENT = 500;

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** open makes a connection from the abusers' address; errors only end it. */
function open(port: number, first?: string): Promise<Socket> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: ABUSER }, () => { if (first) s.write(first); resolve(s); });
    s.on('error', () => resolve(s));
    s.on('data', () => undefined);
  });
}

/**
 * pinnedEndpoint is weakness 1 of issue 18 as the issue states it: with --upstream-connections 2,
 * two clients trickling a body hold both connections of the endpoint. Ordinary requests to it
 * queue; the body's total timeout (3 s here) frees the connections, so they are served, late.
 */
async function pinnedEndpoint(manifests: string, problems: string[]): Promise<string> {
  const proxy = await runProxy(manifests, ['--upstream-connections', '2', '--client-body-total-timeout', '3s']);
  const trickles = await Promise.all([0, 1].map(() => open(proxy.http, 'POST /upload HTTP/1.1\r\nHost: fast.test\r\nContent-Length: 1000\r\n\r\nx')));
  const answers: string[] = trickles.map(() => '');
  trickles.forEach((sock, i) => sock.on('data', (c: Buffer) => { answers[i] += c.toString('latin1'); }));
  const drip = setInterval(() => { for (const sock of trickles) sock.write('x'); }, 500);
  const t = Date.now();
  const ordinary = await Promise.all(Array.from({ length: 10 }, () => get(proxy.http, '/', { host: 'fast.test' }, 10_000).then((r) => ({ status: r.status, ms: Date.now() - t }), (err: Error) => ({ status: 0, ms: Date.now() - t, err: err.message }))));
  clearInterval(drip);
  for (const sock of trickles) sock.destroy();
  await proxy.stop();
  const bad = ordinary.filter((o) => o.status !== 200);
  if (bad.length > 0) problems.push(`weakness 1: ${bad.length} of 10 ordinary requests to an endpoint pinned by two trickled bodies failed: ${JSON.stringify(bad)}`);
  const timedOut = answers.filter((a) => a.startsWith('HTTP/1.1 408')).length;
  if (timedOut !== 2) problems.push(`weakness 1: ${timedOut} of 2 trickled bodies got 408: ${JSON.stringify(answers.map((a) => a.slice(0, 40)))}`);
  return `--upstream-connections 2 pinned by 2 bodies trickled at 2 bytes/s: ${ordinary.filter((o) => o.status === 200).length}/10 ordinary requests served, the last after ${Math.max(...ordinary.map((o) => o.ms))} ms; the trickles got 408 (--client-body-total-timeout 3s)`;
}

export async function abuse(_w: World, s: Scale): Promise<Result> {
  const dir = await tempDir();
  const upstreams: Upstream[] = [];
  const sockets: Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  const problems: string[] = [];
  const notes: string[] = [];
  const fast = await startUpstream('fast');
  const slow = await startUpstream('slow', (req, res, up) => { const t = setTimeout(() => echo(req, res, up), 3_000); timers.push(t); });
  const big = await startUpstream('big', (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG_BYTES });
    res.end(Buffer.alloc(BIG_BYTES, 120));
  });
  upstreams.push(fast, slow, big);
  await writeManifests(dir.dir, 'all.json', [
    INGRESS_CLASS,
    ingress({ name: 'fast', host: 'fast.test', paths: [{ path: '/', service: 'fast' }] }),
    ingress({ name: 'slow', host: 'slow.test', paths: [{ path: '/', service: 'slow' }] }),
    ingress({ name: 'big', host: 'big.test', paths: [{ path: '/', service: 'big' }] }),
    ...service('fast', [{ port: fast.port }]), ...service('slow', [{ port: slow.port }]), ...service('big', [{ port: big.port }]),
  ]);
  const proxy = await runProxy(dir.dir, ['--client-header-timeout', '5s', '--max-connections-per-client', String(PER_CLIENT)]);
  const balancer = new Balancer({ pollMs: 500, lagMs: 0 });
  balancer.add({ name: 'file-proxy', http: proxy.http, admin: proxy.admin });
  await balancer.poll();
  const latencies: number[] = [];
  const load = startLoad({
    balancer, rate: s.rate, concurrency: s.concurrency, maxMs: 10 * 60_000, maxRequests: 5_000_000,
    next: () => ({ method: 'GET', path: '/', host: 'fast.test' }),
    check: (r, _sent, ctx) => {
      latencies.push(ctx.doneAt - ctx.sentAt);
      if (r.error) return r.error;
      return r.status === 200 && r.body.includes('"name":"fast"') ? null : `status ${r.status}`;
    },
  });
  const pids = async (): Promise<number[]> => {
    const r = JSON.parse((await get(proxy.admin, '/readyz')).body) as { workers?: { pid: number }[] };
    return [proxy.child.pid ?? 0, ...(r.workers ?? []).map((x) => x.pid)];
  };
  let peakMb = 0;
  const baseMb = (await pids()).reduce((sum, pid) => sum + rssMb(pid), 0);
  const sampler = setInterval(() => {
    void pids().then((ps) => { peakMb = Math.max(peakMb, ps.reduce((sum, pid) => sum + rssMb(pid), 0)); }, () => undefined);
  }, 250);
  const slowAnswers: number[] = [];
  try {
    for (let i = 0; i < FLOOD; i++) sockets.push(await open(proxy.http));
    for (let i = 0; i < SLOWLORIS; i++) {
      const sock = await open(proxy.http, 'GET / HTTP/1.1\r\nHost: fast.test\r\n');
      sockets.push(sock);
      timers.push(setInterval(() => sock.write('X-Slow: 1\r\n'), 1_000));
    }
    for (let i = 0; i < SLOW_BODIES; i++) {
      const sock = await open(proxy.http, 'POST /upload HTTP/1.1\r\nHost: fast.test\r\nContent-Length: 100000\r\n\r\n');
      sockets.push(sock);
      timers.push(setInterval(() => sock.write('x'), 1_000));
    }
    for (let i = 0; i < SLOW_READERS; i++) {
      const sock = await open(proxy.http, 'GET /big HTTP/1.1\r\nHost: big.test\r\n\r\n');
      sock.pause();
      sockets.push(sock);
    }
    const slowRequests = Array.from({ length: SLOW_BACKEND_REQUESTS }, () => new Promise<void>((resolve) => {
      const t = Date.now();
      const req = request({ host: '127.0.0.1', port: proxy.http, path: '/', localAddress: SLOW_CLIENT, agent: false, headers: { host: 'slow.test' } }, (res) => {
        res.resume();
        res.on('end', () => { slowAnswers.push(res.statusCode === 200 ? Date.now() - t : -1); resolve(); });
      });
      req.on('error', () => { slowAnswers.push(-1); resolve(); });
      req.end();
    }));
    await new Promise((r) => setTimeout(r, s.abuseMs));
    await Promise.all(slowRequests);
  } catch (err) {
    problems.push((err as Error).message);
  }
  const pinned = await pinnedEndpoint(dir.dir, problems);
  clearInterval(sampler);
  for (const t of timers) clearInterval(t);
  const stats = await load.stop();
  const alive = proxy.child.exitCode === null;
  const refused = await metric(proxy.admin, 'vane_proxy_client_limit_refusals_total').catch(() => -1);
  const stillOpen = sockets.filter((x) => !x.destroyed).length;
  for (const sock of sockets) sock.destroy();
  balancer.close();
  await proxy.stop();
  for (const u of upstreams) await u.close();
  await dir.remove();
  problems.push(...failureProblems('ordinary clients', stats));
  if (!alive) problems.push('the proxy exited under abuse');
  if (peakMb > RSS_BOUND_MB) problems.push(`proxy RSS peaked at ${peakMb.toFixed(0)} MB (bound ${RSS_BOUND_MB} MB)`);
  const slowOk = slowAnswers.filter((ms) => ms >= 0);
  if (slowOk.length !== SLOW_BACKEND_REQUESTS) problems.push(`${SLOW_BACKEND_REQUESTS - slowOk.length} of ${SLOW_BACKEND_REQUESTS} requests to the slow backend failed`);
  notes.push(`ordinary clients: p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms, max ${Math.max(0, ...latencies)} ms; proxy RSS ${baseMb.toFixed(0)} MB before, peak ${peakMb.toFixed(0)} MB (primary + worker)`);
  notes.push(pinned);
  notes.push(`slow backend (3 s): ${slowOk.length}/${SLOW_BACKEND_REQUESTS} answered, p50 ${percentile(slowOk, 50)} ms; of ${sockets.length} abusive connections ${stillOpen} were still open after ${s.abuseMs / 1000} s (--client-header-timeout 5s; --max-connections-per-client ${PER_CLIENT} refused ${refused} abusive connections)`);
  return {
    id: '6', name: 'slow clients, bodies, backends; flood', requests: stats.requests, durationMs: stats.durationMs,
    faults: `${FLOOD} idle conns, ${SLOWLORIS} slow heads, ${SLOW_BODIES} slow bodies, ${SLOW_READERS} stalled readers of 4 MB, ${SLOW_BACKEND_REQUESTS} to a 3 s backend`,
    failed: stats.failed, problems, notes,
  };
}
