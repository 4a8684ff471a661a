/**
 * Load for the reliability scenarios: a load-balancer model in front of the proxies and a
 * rate-paced HTTP client that judges every answer.
 *
 * The balancer is how a cloud load balancer or kube-proxy sees a proxy fleet: it health-checks
 * each proxy's /readyz every `pollMs` and keeps sending to a proxy for `lagMs` after it saw it
 * unready (a health check needs several failures in a row before a target leaves rotation).
 * A proxy that never answered ready is not sent to.
 */
import { Agent, request } from 'node:http';

export interface Target { name: string; http: number; admin: number }

interface TargetState { target: Target; agent: Agent; ready: boolean; seenUnreadyAt: number | null; everReady: boolean }

export interface BalancerOptions { pollMs: number; lagMs: number }

/** httpStatus sends one GET to 127.0.0.1 and resolves with its status, 0 when it failed. */
export function httpStatus(port: number, path: string, timeoutMs = 1_000, host = 'localhost'): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs, headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

export class Balancer {
  private readonly states = new Map<string, TargetState>();
  private next = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly o: BalancerOptions;

  constructor(o: BalancerOptions) { this.o = o; }

  /** add puts a target behind the balancer; it enters rotation once its /readyz says 200. */
  add(target: Target): void {
    this.states.set(target.name, { target, agent: new Agent({ keepAlive: true, maxSockets: 64 }), ready: false, seenUnreadyAt: null, everReady: false });
  }

  start(): void {
    const tick = async (): Promise<void> => {
      await this.poll();
      if (!this.closed) this.timer = setTimeout(() => void tick(), this.o.pollMs);
    };
    void tick();
  }

  async poll(): Promise<void> {
    await Promise.all([...this.states.values()].map(async (s) => {
      const ready = (await httpStatus(s.target.admin, '/readyz')) === 200;
      if (ready) { s.ready = true; s.everReady = true; s.seenUnreadyAt = null; return; }
      s.seenUnreadyAt ??= Date.now();
      s.ready = false;
    }));
  }

  private inRotation(s: TargetState, now: number): boolean {
    if (s.ready) return true;
    return s.everReady && s.seenUnreadyAt !== null && now - s.seenUnreadyAt < this.o.lagMs;
  }

  /** pick is the next target in rotation (round-robin), or null when none is. */
  pick(): { target: Target; agent: Agent } | null {
    const all = [...this.states.values()];
    const now = Date.now();
    for (let i = 0; i < all.length; i++) {
      const s = all[(this.next + i) % all.length]!;
      if (this.inRotation(s, now)) {
        this.next = (this.next + i + 1) % all.length;
        return { target: s.target, agent: s.agent };
      }
    }
    return null;
  }

  /** rotation names the targets the balancer sends to now. */
  rotation(): string[] {
    const now = Date.now();
    return [...this.states.values()].filter((s) => this.inRotation(s, now)).map((s) => s.target.name);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.states.values()) s.agent.destroy();
  }
}

/** Reply is an answer, or (status 0) the error that stood in for one. */
export interface Reply { status: number; backend: string | null; path: string | null; body: string; error?: string }

export interface Sent { method: string; path: string; host: string; headers?: Record<string, string>; body?: string }

/** Verdict on one answer: null when it is good, else why it is a failure (its class, counted). */
export type Check = (reply: Reply, sent: Sent, ctx: { sentAt: number; doneAt: number; proxy: string }) => string | null;

export interface LoadOptions {
  balancer: Balancer;
  /** Requests per second, paced over `concurrency` loops (each waits for its answer). */
  rate: number;
  concurrency: number;
  /** Hard bounds: the load stops at whichever comes first. */
  maxMs: number;
  maxRequests: number;
  /** next builds request number i. */
  next: (i: number) => Sent;
  check?: Check;
  timeoutMs?: number;
}

export interface LoadStats {
  requests: number;
  failed: number;
  /** Failures by class (what the check said: "status 502", "ECONNRESET", …). */
  failures: Record<string, number>;
  /** The first few failures, each with when and where. */
  examples: string[];
  byBackend: Record<string, number>;
  byStatus: Record<string, number>;
  durationMs: number;
}

export interface Load {
  stats: LoadStats;
  /** mark notes that a fault was injected now; failures list the last mark before them. */
  mark(what: string): void;
  stop(): Promise<LoadStats>;
}

const failed = (error: string): Reply => ({ status: 0, backend: null, path: null, body: '', error });

/** defaultCheck fails errors and answers other than 2xx. */
export const defaultCheck: Check = (r) => r.error ?? (r.status >= 200 && r.status < 300 ? null : `status ${r.status}`);

function send(sent: Sent, target: Target, agent: Agent, timeoutMs: number): Promise<Reply> {
  return new Promise((resolve) => {
    const body = sent.body;
    const req = request({
      host: '127.0.0.1', port: target.http, method: sent.method, path: sent.path, agent, timeout: timeoutMs,
      headers: { host: sent.host, ...sent.headers, ...(body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: { backend?: string; path?: string } = {};
        try { parsed = JSON.parse(text) as typeof parsed; } catch { parsed = {}; }
        resolve({ status: res.statusCode ?? 0, backend: parsed.backend ?? null, path: parsed.path ?? null, body: text });
      });
      res.on('error', (err: NodeJS.ErrnoException) => resolve(failed(err.code ?? err.message)));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(failed(err.code ?? err.message)));
    req.end(body);
  });
}

/** startLoad runs the load until stop() or its bounds; every answer is judged as it arrives. */
export function startLoad(o: LoadOptions): Load {
  const stats: LoadStats = { requests: 0, failed: 0, failures: {}, examples: [], byBackend: {}, byStatus: {}, durationMs: 0 };
  const started = Date.now();
  const deadline = started + o.maxMs;
  const periodMs = (1000 * o.concurrency) / o.rate;
  let running = true;
  let issued = 0;
  let lastMark = 'start';
  const fail = (why: string, detail: string): void => {
    stats.failed++;
    stats.failures[why] = (stats.failures[why] ?? 0) + 1;
    if (stats.examples.length < 10) stats.examples.push(`${why}: ${detail} (+${Date.now() - started} ms, after ${lastMark})`);
  };
  const loop = async (k: number): Promise<void> => {
    let due = started + (k * periodMs) / o.concurrency;
    while (running && Date.now() < deadline && issued < o.maxRequests) {
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      due = Math.max(due + periodMs, Date.now() - periodMs);
      if (!running) break;
      const i = issued++;
      const sent = o.next(i);
      stats.requests++;
      const picked = o.balancer.pick();
      if (!picked) { fail('no proxy in rotation', `${sent.method} ${sent.path}`); continue; }
      const sentAt = Date.now();
      const r = await send(sent, picked.target, picked.agent, o.timeoutMs ?? 10_000);
      const doneAt = Date.now();
      const status = r.error ?? String(r.status);
      stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
      if (r.backend) stats.byBackend[r.backend] = (stats.byBackend[r.backend] ?? 0) + 1;
      const problem = (o.check ?? defaultCheck)(r, sent, { sentAt, doneAt, proxy: picked.target.name });
      if (problem) fail(problem, `${sent.method} ${sent.host}${sent.path} via ${picked.target.name} → ${status} ${r.backend ?? ''} ${r.path ?? r.body.slice(0, 120)}`);
    }
  };
  const loops = Array.from({ length: o.concurrency }, (_, k) => loop(k));
  return {
    stats,
    mark(what) { lastMark = `${what} at +${Date.now() - started} ms`; },
    async stop() {
      running = false;
      await Promise.all(loops);
      stats.durationMs = Math.min(Date.now(), deadline) - started;
      return stats;
    },
  };
}
