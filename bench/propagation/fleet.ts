/**
 * A process of simulated proxies for the propagation benchmark: each runs the real stream
 * client (StreamSource: apply, re-hash, verify the root, ACK) and reports every applied
 * version to the parent over IPC. Started by bench/propagation/run.ts.
 */
import { StreamSource } from '../../proxy/source/stream.ts';
import { createLogger } from '../../lib/log.ts';

interface Start { url: string; names: string[] }

const logger = createLogger('bench-fleet', 'silent');
const clients: StreamSource[] = [];

process.on('message', (msg: Start | { stop: true }) => {
  if ('stop' in msg) {
    void Promise.all(clients.map((c) => c.close())).then(() => process.exit(0));
    return;
  }
  for (const name of msg.names) {
    const client = new StreamSource({ url: msg.url, allowPlaintext: true, proxyName: name, token: async () => `token-${name}`, logger, initialBackoffMs: 100, maxBackoffMs: 1000 });
    clients.push(client);
    void client.start((update) => {
      process.send?.({ name, root: update.root, at: performance.timeOrigin + performance.now() });
    });
  }
});
