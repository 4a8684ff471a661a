/** Polling with a deadline (never a sleep standing in for readiness) and free loopback ports. */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** eventually polls probe every intervalMs until it returns a truthy value, or throws after timeoutMs. */
export async function eventually<T>(what: string, probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 20_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value: T | null | undefined | false = null;
    try { value = await probe(); } catch { value = null; }
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** ephemeralLow is where the ports the kernel picks for outgoing connections start. */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return low > 12_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * freePortRange finds `count` consecutive free ports on 127.0.0.1, none in `taken`, and returns
 * the first. They lie below the ephemeral range: a port found free there can become the local
 * port of any outgoing connection before the test binds it (a proxy of the canary e2e tests
 * failed with EADDRINUSE that way, its ports picked seconds before it started).
 */
export async function freePortRange(count: number, taken: ReadonlySet<number> = new Set()): Promise<number> {
  const high = ephemeralLow() - count;
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 10_000 + Math.floor(Math.random() * (high - 10_000));
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = !taken.has(base + i) && await portFree(base + i);
    if (ok) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}
