/**
 * An open-loop HTTP/1.1 load generator for latency at a fixed rate (wrk2 is not packaged in
 * Debian): requests are scheduled at exact intervals and latency is measured from the
 * scheduled time, so a stalled proxy is charged for the requests it delayed (no
 * coordinated omission; the 1 ms scheduling tick adds at most 1 ms to every figure, the
 * same for each proxy). Keep-alive connections, one request in flight per connection,
 * responses framed by Content-Length. Loopback only.
 *
 * Usage: node bench/proxy/fixed-rate.ts PORT HOST RATE SECONDS CONNECTIONS
 * Prints one JSON line: { sent, completed, errors, p50Ms, p90Ms, p99Ms, p999Ms, maxMs, rate }.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

const [portText, host, rateText, secondsText, connText] = process.argv.slice(2);
const port = Number(portText);
const rate = Number(rateText);
const seconds = Number(secondsText);
const connections = Number(connText ?? 50);
if (!port || !host || !(rate > 0) || !(seconds > 0 && seconds <= 120)) {
  console.error('usage: fixed-rate.ts PORT HOST RATE SECONDS [CONNECTIONS]');
  process.exit(2);
}

const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
const latencies = new Float64Array(Math.ceil(rate * seconds) + 16);
let completed = 0;
let errors = 0;

const HEAD_END = Buffer.from('\r\n\r\n');
const LENGTH = /content-length:\s*(\d+)/i;

class Conn {
  readonly socket: Socket;
  scheduledAt = 0;
  /** Bytes of a response not complete yet; bodies are never decoded, to keep the generator cheap. */
  private buf: Buffer | null = null;
  private need = -1;

  constructor() {
    this.socket = connect({ port, host: '127.0.0.1', noDelay: true });
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('error', () => { errors++; });
  }

  send(scheduledAt: number): void {
    this.scheduledAt = scheduledAt;
    this.socket.write(request);
  }

  private onData(d: Buffer): void {
    let buf = this.buf === null ? d : Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.need < 0) {
        const end = buf.indexOf(HEAD_END);
        if (end < 0) break;
        const head = buf.toString('latin1', 0, end);
        if (!head.startsWith('HTTP/1.1 2')) errors++;
        const m = LENGTH.exec(head);
        this.need = end + 4 + (m ? Number(m[1]) : 0);
      }
      if (buf.length < this.need) break;
      buf = buf.subarray(this.need);
      this.need = -1;
      latencies[completed++] = performance.now() - this.scheduledAt;
      if (qHead < queue.length) this.send(queue[qHead++]!); else idle.push(this);
    }
    this.buf = buf.length > 0 ? buf : null;
  }
}

const conns = Array.from({ length: connections }, () => new Conn());
const idle: Conn[] = [...conns];
const queue: number[] = [];
let qHead = 0;

const total = Math.floor(rate * seconds);
const intervalMs = 1000 / rate;
let sent = 0;
const start = performance.now() + 200;

function tick(): void {
  const now = performance.now();
  while (sent < total && start + sent * intervalMs <= now) {
    const at = start + sent * intervalMs;
    sent++;
    const c = idle.pop();
    if (c) c.send(at); else queue.push(at);
  }
  // A 1 ms timer, not a busy loop: the generator shares its core with the upstream.
  if (sent < total) setTimeout(tick, 1);
}

setTimeout(tick, 200);
const deadline = setTimeout(finish, 200 + seconds * 1000 + 5_000);

const done = setInterval(() => { if (completed >= total) finish(); }, 50);

function finish(): void {
  clearInterval(done);
  clearTimeout(deadline);
  const lat = latencies.subarray(0, completed).sort();
  const q = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! : NaN);
  const round = (v: number) => Math.round(v * 100) / 100;
  console.log(JSON.stringify({
    sent, completed, errors, rate,
    p50Ms: round(q(0.5)), p90Ms: round(q(0.9)), p99Ms: round(q(0.99)), p999Ms: round(q(0.999)), maxMs: round(lat[lat.length - 1] ?? NaN),
  }));
  for (const c of conns) c.socket.destroy();
  process.exit(0);
}
