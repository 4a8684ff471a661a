/**
 * Tunnels: two sockets piped both ways with an idle limit — upgraded connections (WebSocket and
 * the like) after their 101, and TLS pass-through.
 */
import type { Duplex } from 'node:stream';

/** tunnel pipes two sockets until either side closes or both stay idle for idleMs. */
export function tunnel(a: Duplex, b: Duplex, idleMs: number, onClose: () => void): void {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    a.destroy();
    b.destroy();
    onClose();
  };
  a.on('error', close).on('close', close);
  b.on('error', close).on('close', close);
  const timeout = (s: Duplex) => { const sock = s as Duplex & { setTimeout?: (ms: number, cb: () => void) => void }; sock.setTimeout?.(idleMs, close); };
  timeout(a);
  timeout(b);
  a.pipe(b);
  b.pipe(a);
}
