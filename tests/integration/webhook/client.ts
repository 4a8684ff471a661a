/** A real TLS client for the webhook tests: node:https, the CA bundle as its only trust. */
import { request, type Agent } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { AdmissionReviewResponse } from '../../../webhook/index.ts';

export interface Reply {
  status: number;
  body: string;
  /** SHA-256 fingerprint of the certificate the server presented. */
  fingerprint: string;
  reusedSocket: boolean;
  json<T = AdmissionReviewResponse>(): T;
}

export interface CallOptions {
  ca: string;
  method?: string;
  path?: string;
  body?: string | Buffer;
  agent?: Agent;
  headers?: Record<string, string>;
  /** Host to connect to; the certificate must name it (IP SAN for 127.0.0.1). */
  host?: string;
  /** Name the certificate is checked against instead of host (SNI and identity). */
  servername?: string;
}

export function call(port: number, options: CallOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: options.host ?? '127.0.0.1',
      port,
      method: options.method ?? 'POST',
      path: options.path ?? '/validate?timeout=10s',
      ca: options.ca,
      ...(options.servername ? { servername: options.servername } : {}),
      agent: options.agent ?? false,
      headers: { 'content-type': 'application/json', ...options.headers },
      timeout: 10_000,
    }, (res) => {
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256 ?? '';
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          body,
          fingerprint,
          reusedSocket: req.reusedSocket,
          json: <T>() => JSON.parse(body) as T,
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}
