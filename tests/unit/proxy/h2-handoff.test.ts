/**
 * H2Front takes sockets from the listeners and the fast path. Without shared reads the fast path
 * reads an h2c preface through the socket and puts it back (unshift); node:http2 reads a
 * net.Socket's handle directly, so the preface was lost and the session failed (PROTOCOL_ERROR).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { H2Front, type H2Host } from '../../../proxy/http/h2.ts';
import { WorkerMetrics } from '../../../proxy/metrics.ts';
import { DEFAULT_OPTIONS } from '../../../proxy/options.ts';
import type { ClientInfo } from '../../../proxy/listen/listeners.ts';

const metrics = new WorkerMetrics();
const stats = metrics.requestStats('', '', 'none', null, 'h2');
const host: H2Host = {
  state: null, metrics, outlier: DEFAULT_OPTIONS.outlier, retries: 0, httpsRedirectPort: 8443, draining: false,
  routeStats: () => stats, unrouted: stats, unroutedH2: stats,
  begin: () => undefined, end: () => undefined, trackCanaryTunnel: () => () => undefined,
  clientBodyTimeoutMs: 30_000, clientBodyTotalTimeoutMs: 0, maxHeaderBytes: 16_384, clientKeepAliveTimeoutMs: 5_000,
};
const info: ClientInfo = { address: '127.0.0.1', trusted: false, port: '80', scheme: 'http', overLimit: false };
const front = new H2Front(host, 100);
const sockets = new Set<Socket>();
const server = createServer((socket) => {
  sockets.add(socket);
  // What the fast path does without shared reads: read the preface, put it back, hand the socket over.
  socket.once('data', (first: Buffer) => {
    socket.pause();
    socket.unshift(first);
    front.serve(socket, info);
    socket.resume();
  });
});

after(() => {
  for (const s of sockets) s.destroy();
  server.close();
});

test('a plain socket whose preface was read and put back still speaks HTTP/2', async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    const status = await new Promise<number>((resolve, reject) => {
      const req = client.request({ ':path': '/', ':authority': 'a.test' });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      client.on('error', reject);
      req.resume();
    });
    // No routing loaded in this worker: the proxy's own 503, over HTTP/2.
    assert.equal(status, 503);
  } finally {
    client.close();
  }
});
