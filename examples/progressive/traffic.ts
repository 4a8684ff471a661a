/**
 * Demo traffic for examples/progressive: a steady rate of requests spread over the proxies
 * `vane up` started, printing once a second which backend answered (the echo servers say
 * who they are), so the canary's share can be watched as its weight moves.
 *
 *   node examples/progressive/traffic.ts [--proxies 8080,8081] [--rps 40] [--seconds 120]
 *
 * Only loopback targets are accepted, and every run is bounded (--seconds, default 10 min).
 */
import { request, Agent } from 'node:http';
import { parseArgs } from 'node:util';

export interface TrafficOptions {
  /** Proxy ports on 127.0.0.1; requests go round-robin. */
  ports: number[];
  host: string;
  path: string;
  rps: number;
  durationMs: number;
  headers?: Record<string, string>;
  /** Called once a second with that second's counts. */
  onSecond?: (s: SecondStats) => void;
  signal?: AbortSignal;
}

export interface SecondStats {
  second: number;
  byBackend: Record<string, number>;
  /** 5xx answers and failed requests. */
  errors: number;
}

export interface TrafficTotals {
  requests: number;
  byBackend: Record<string, number>;
  errors: number;
  seconds: SecondStats[];
}

function once(agent: Agent, port: number, o: TrafficOptions): Promise<{ backend: string | null; error: boolean }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: o.path, agent, headers: { host: o.host, ...o.headers }, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let backend: string | null = null;
        try { backend = (JSON.parse(Buffer.concat(chunks).toString()) as { backend?: string }).backend ?? null; } catch { backend = null; }
        resolve({ backend, error: (res.statusCode ?? 0) >= 500 });
      });
      res.on('error', () => resolve({ backend: null, error: true }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ backend: null, error: true }));
    req.end();
  });
}

/** runTraffic sends `rps` requests a second for durationMs (whole seconds), or until signal aborts. */
export async function runTraffic(o: TrafficOptions): Promise<TrafficTotals> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const totals: TrafficTotals = { requests: 0, byBackend: {}, errors: 0, seconds: [] };
  const started = Date.now();
  const inflight = new Set<Promise<void>>();
  let n = 0;
  try {
    const seconds = Math.ceil(o.durationMs / 1000);
    for (let second = 0; second < seconds && !o.signal?.aborted; second++) {
      const current: SecondStats = { second, byBackend: {}, errors: 0 };
      const secondStart = started + second * 1000;
      for (let i = 0; i < o.rps && !o.signal?.aborted; i++) {
        const at = secondStart + (i * 1000) / o.rps;
        const wait = at - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const port = o.ports[n++ % o.ports.length]!;
        const p = once(agent, port, o).then(({ backend, error }) => {
          totals.requests++;
          if (error) { totals.errors++; current.errors++; }
          if (backend) {
            totals.byBackend[backend] = (totals.byBackend[backend] ?? 0) + 1;
            current.byBackend[backend] = (current.byBackend[backend] ?? 0) + 1;
          }
        });
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
      const end = secondStart + 1000 - Date.now();
      if (end > 0 && !o.signal?.aborted) await new Promise((r) => setTimeout(r, end));
      totals.seconds.push(current);
      o.onSecond?.(current);
    }
    await Promise.all(inflight);
  } finally {
    agent.destroy();
  }
  return totals;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      proxies: { type: 'string', default: '8080,8081' },
      rps: { type: 'string', default: '40' },
      seconds: { type: 'string', default: '600' },
      host: { type: 'string', default: 'shop.example.com' },
      path: { type: 'string', default: '/checkout' },
    },
  });
  const ports = values.proxies.split(',').map(Number);
  const rps = Number(values.rps);
  const seconds = Number(values.seconds);
  if (ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535) || !(rps > 0 && rps <= 1000) || !(seconds > 0 && seconds <= 3600)) {
    console.error('usage: traffic.ts [--proxies 8080,8081] [--rps 1–1000] [--seconds 1–3600]');
    process.exitCode = 2;
    return;
  }
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  await runTraffic({
    ports, host: values.host, path: values.path, rps, durationMs: seconds * 1000, signal: ac.signal,
    onSecond: (s) => {
      const total = Object.values(s.byBackend).reduce((a, b) => a + b, 0);
      const canary = Object.entries(s.byBackend).filter(([b]) => b.endsWith('-v2')).reduce((a, [, n]) => a + n, 0);
      const parts = Object.entries(s.byBackend).sort().map(([b, n]) => `${b} ${n}`).join('  ');
      console.log(`t=${String(s.second).padStart(3)}s  ${parts || 'no answers'}  canary ${total ? Math.round((100 * canary) / total) : 0}%  errors ${s.errors}`);
    },
  });
}

if (import.meta.main) await main(process.argv.slice(2));
