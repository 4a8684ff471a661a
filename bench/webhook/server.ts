/**
 * The two servers bench/webhook/run.ts measures, each in its own process so the client's
 * work never shares a thread with them:
 *   vane — startWebhookServer with an object cache, as `vane webhook` runs it;
 *   bare — node:https that reads the body, JSON.parse()s it and echoes the uid: the floor
 *          any HTTPS webhook in Node pays, whatever it validates.
 * Certificate and key come in VANE_BENCH_CERT / VANE_BENCH_KEY; prints {"port":N} when listening.
 */
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KubeObject } from '../../core/index.ts';
import { loadManifests } from '../../lib/manifests.ts';
import { startWebhookServer, MemoryObjectCache } from '../../webhook/index.ts';
import { benchServices } from './payloads.ts';

const mode = process.argv[2];
const certPem = process.env.VANE_BENCH_CERT ?? '';
const keyPem = process.env.VANE_BENCH_KEY ?? '';

if (mode === 'vane') {
  const root = new URL('../../', import.meta.url).pathname;
  const objects: KubeObject[] = (await loadManifests([`${root}examples/quickstart`])).objects.map((o) => o.object);
  const cache = new MemoryObjectCache([...objects, ...benchServices()]);
  const server = await startWebhookServer({ host: '127.0.0.1', port: 0, tls: { certPem, keyPem }, cache });
  console.log(JSON.stringify({ port: server.port }));
} else if (mode === 'bare') {
  const server = createServer({ cert: certPem, key: keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request: { uid: string } };
      const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request.uid, allowed: true } });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 120_000;
  server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: (server.address() as AddressInfo).port })));
} else {
  console.error('usage: server.ts vane|bare');
  process.exit(2);
}
