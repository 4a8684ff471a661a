/**
 * The webhook's HTTPS server: POST /validate takes an AdmissionReview; GET /healthz, /readyz
 * and /metrics serve probes and Prometheus. The serving certificate can be swapped at any
 * time (rotation) without dropping connections; new handshakes use the new one.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { Logger } from '../lib/log.ts';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { uidFromHead } from './admission.ts';
import { oversized, reviewAdmission, type ReviewOptions, type ReviewOutcome } from './review.ts';

/**
 * MAX_BODY_BYTES: an UPDATE review carries object and oldObject, each up to etcd's 1.5 MiB
 * (more as JSON than as stored protobuf); 6 MiB admits every legitimate review and refuses
 * anything else before it is parsed.
 */
export const MAX_BODY_BYTES = 6 * 1024 * 1024;

export interface TlsPair { certPem: string; keyPem: string }

export interface WebhookServerOptions extends ReviewOptions {
  /** Address to listen on; default 127.0.0.1 (a cluster deployment passes 0.0.0.0). */
  host?: string;
  /** Port; 0 (the default) picks a free one, read back from WebhookServer.port. */
  port?: number;
  tls: TlsPair;
  maxBodyBytes?: number;
  log?: Logger;
}

export interface WebhookServer {
  readonly host: string;
  readonly port: number;
  /** url of a path on this server, e.g. url('/validate'). */
  url(path?: string): string;
  /** setCertificate swaps the serving certificate for new handshakes. Throws on a pair that does not match. */
  setCertificate(pair: TlsPair): void;
  /** setReady drives /readyz: false during shutdown, so load balancers stop sending before the listener closes. */
  setReady(ready: boolean): void;
  readonly metrics: Registry;
  /** close stops accepting, lets in-flight reviews finish, closes idle keep-alive connections. */
  close(): Promise<void>;
}

const DISCARD_LIMIT_BYTES = 64 * 1024 * 1024;

const TLS_OPTIONS = { minVersion: 'TLSv1.2' } as const;

function checkPair(pair: TlsPair): X509Certificate {
  const cert = new X509Certificate(pair.certPem);
  if (!cert.checkPrivateKey(createPrivateKey(pair.keyPem))) throw new Error('the TLS key does not belong to the certificate');
  return cert;
}

function send(res: ServerResponse, status: number, body: string, type = 'application/json'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** startWebhookServer listens and resolves once the port is bound. */
export async function startWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const host = options.host ?? '127.0.0.1';
  const maxBodyBytes = options.maxBodyBytes ?? MAX_BODY_BYTES;
  if (!(Number.isInteger(maxBodyBytes) && maxBodyBytes >= 1024)) throw new RangeError('maxBodyBytes must be an integer ≥ 1024');
  const log = options.log;
  let ready = true;

  const metrics = new Registry();
  const reviews = new Counter({
    name: 'vane_webhook_reviews_total', help: 'Admission reviews by kind, operation and verdict.',
    labelNames: ['kind', 'operation', 'verdict'] as const, registers: [metrics],
  });
  const duration = new Histogram({
    name: 'vane_webhook_review_duration_seconds', help: 'Time from the first body byte to the response, by kind.',
    labelNames: ['kind'] as const, buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [metrics],
  });
  const expiry = new Gauge({
    name: 'vane_webhook_certificate_expiry_timestamp_seconds', help: 'notAfter of the serving certificate, seconds since the epoch.',
    registers: [metrics],
  });
  const noteCertificate = (pair: TlsPair) => expiry.set(Date.parse(checkPair(pair).validTo) / 1000);
  noteCertificate(options.tls);

  const review = (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    const chunks: Buffer[] = [];
    let bytes = 0;
    let head = '';
    const declared = Number(req.headers['content-length']);
    // Past the limit the body is read and dropped, not parsed, so the client can read the
    // denial; a sender that never stops is cut off at DISCARD_LIMIT_BYTES or requestTimeout.
    req.on('data', (chunk: Buffer) => {
      if (head.length < 4096) head += chunk.subarray(0, 4096).toString('latin1');
      bytes += chunk.length;
      if (bytes <= maxBodyBytes) chunks.push(chunk);
      else if (chunks.length) chunks.length = 0;
      if (bytes > DISCARD_LIMIT_BYTES) req.destroy();
    });
    req.on('error', () => { /* the socket is gone; there is nobody to answer */ });
    req.on('end', () => {
      let outcome: ReviewOutcome;
      if (bytes > maxBodyBytes || (Number.isFinite(declared) && declared > maxBodyBytes)) {
        outcome = oversized(bytes, maxBodyBytes, uidFromHead(head));
        res.shouldKeepAlive = false;
      } else {
        outcome = reviewAdmission(Buffer.concat(chunks, bytes).toString('utf8'), options);
      }
      send(res, outcome.httpStatus, JSON.stringify(outcome.review));
      const s = outcome.summary;
      const kind = s.kind === 'Canary' || s.kind === 'Ingress' ? s.kind : 'other';
      reviews.inc({ kind, operation: s.operation || 'none', verdict: s.verdict });
      duration.observe({ kind }, Number(process.hrtime.bigint() - started) / 1e9);
      const entry = { uid: s.uid, kind: s.kind, operation: s.operation, object: s.key, verdict: s.verdict, errors: s.errors, warnings: s.warnings, fields: s.fields.slice(0, 25), ...(s.note ? { note: s.note } : {}) };
      if (s.verdict === 'denied') log?.info(entry, 'admission denied');
      else if (s.verdict === 'invalid-request') log?.warn({ ...entry, bytes }, 'invalid admission request');
      else log?.debug(entry, 'admission reviewed');
    });
  };

  const server: Server = createServer({ ...TLS_OPTIONS, cert: options.tls.certPem, key: options.tls.keyPem }, (req, res) => {
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/validate') {
        if (req.method !== 'POST') { res.setHeader('allow', 'POST'); send(res, 405, '{"error":"POST an AdmissionReview"}'); req.resume(); return; }
        review(req, res);
        return;
      }
      req.resume();
      if (req.method !== 'GET' && req.method !== 'HEAD') { send(res, 405, '{"error":"method not allowed"}'); return; }
      if (path === '/healthz') send(res, 200, 'ok\n', 'text/plain');
      else if (path === '/readyz') send(res, ready ? 200 : 503, ready ? 'ok\n' : 'shutting down\n', 'text/plain');
      else if (path === '/metrics') {
        metrics.metrics().then((text) => send(res, 200, text, metrics.contentType), () => send(res, 500, '{"error":"metrics"}'));
      } else send(res, 404, '{"error":"not found"}');
    } catch (err) {
      log?.error({ err: (err as Error).message }, 'webhook request handler failed');
      if (!res.headersSent) send(res, 500, '{"error":"internal"}');
      else res.destroy();
    }
  });
  // Longer than Go's 90 s idle-connection timeout: the API server closes idle connections
  // first, so it never sends a review down a connection this side is closing.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.on('clientError', (_err, socket) => { if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n'); else socket.destroy(); });
  server.on('tlsClientError', (err) => log?.debug({ err: err.message }, 'TLS handshake failed'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  return {
    host,
    port,
    metrics,
    url: (path = '/validate') => `https://${urlHost}:${port}${path}`,
    setCertificate(pair: TlsPair) {
      checkPair(pair);
      server.setSecureContext({ ...TLS_OPTIONS, cert: pair.certPem, key: pair.keyPem });
      noteCertificate(pair);
    },
    setReady(value: boolean) { ready = value; },
    close: () => new Promise<void>((resolve) => {
      ready = false;
      server.close(() => resolve());
      server.closeIdleConnections();
    }),
  };
}
