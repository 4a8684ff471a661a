/** Polling with a deadline (never a sleep standing in for readiness) and free loopback ports. */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Probe answers a truthy value once what is awaited holds; a falsy one or a throw means not yet. */
export type Probe<T> = () => Promise<T | null | undefined | false> | T | null | undefined | false;

export interface EventuallyOptions {
  intervalMs?: number;
  /** detail is appended to the timeout's message: what the caller knows that the probe does not say (a process's last log lines). */
  detail?: () => string;
  /** giveUp names a reason to stop waiting at once (the process that should answer has exited), or returns nothing. */
  giveUp?: () => string | null | undefined | false;
}

/**
 * eventually polls probe until it returns a truthy value, and throws after timeoutMs. A probe
 * that throws is asked again (what it reads may not be up yet), so a probe may assert: the
 * timeout's message carries its last error, or its last value when that says more than
 * `false`, so that a failure shows how far the wait got.
 */
export async function eventually<T>(what: string, probe: Probe<T>, timeoutMs = 20_000, options: EventuallyOptions = {}): Promise<T> {
  const { intervalMs = 50, detail, giveUp } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let last: string | null = null;
    try {
      const value = await probe();
      if (value) return value;
      if (value !== false && value !== null && value !== undefined) last = `last value ${JSON.stringify(value)}`;
    } catch (err) {
      last = `last error: ${err instanceof Error ? err.message : String(err)}`;
    }
    const reason = giveUp?.();
    const failure = reason ? `gave up waiting for ${what}: ${reason}` : Date.now() > deadline ? `timed out after ${timeoutMs} ms waiting for ${what}` : null;
    if (failure) throw new Error([failure, last, detail?.()].filter(Boolean).join('; '));
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
