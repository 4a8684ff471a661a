/**
 * A TCP relay on 127.0.0.1 in front of the API server that a scenario can turn into a black
 * hole: connections accepted and never answered, the way a partitioned network looks to a
 * client (nothing is refused, calls just hang until their own bounds end them).
 */
import { createServer, connect, type Socket } from 'node:net';

export interface Relay {
  port: number;
  /**
   * partition black-holes open and new connections alike (bytes are dropped, nothing is
   * closed); heal closes the connections that lost bytes and forwards new ones again.
   */
  partition(): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startRelay(target: URL): Promise<Relay> {
  let holed = false;
  const open = new Set<Socket>();
  const track = (s: Socket): void => {
    open.add(s);
    s.on('error', () => undefined);
    s.on('close', () => open.delete(s));
  };
  const server = createServer((client) => {
    track(client);
    if (holed) return;
    const upstream = connect(Number(target.port), target.hostname);
    track(upstream);
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.on('data', (d: Buffer) => { if (!holed) upstream.write(d); });
    upstream.on('data', (d: Buffer) => { if (!holed) client.write(d); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const dropAll = (): void => { for (const s of open) s.destroy(); };
  return {
    port: (server.address() as { port: number }).port,
    partition() { holed = true; },
    heal() { holed = false; dropAll(); },
    close: async () => { dropAll(); await new Promise((r) => server.close(r)); },
  };
}
