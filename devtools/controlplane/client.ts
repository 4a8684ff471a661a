/**
 * A minimal HTTPS JSON client for the control plane's API server, authenticated with the
 * admin client certificate: enough for readiness checks and for tests that act as a
 * controller would (TokenRequest, TokenReview, EndpointSlices) without a client library.
 */
import { request } from 'node:https';
import { readFileSync } from 'node:fs';

export interface ApiCredentials { server: string; caFile: string; certFile: string; keyFile: string }

export interface ApiResponse<T = unknown> { status: number; body: T; text: string }

export interface ApiRequestOptions { timeoutMs?: number; contentType?: string; token?: string }

/** apiRequest sends one request; the body is JSON-encoded unless it is a string. Never throws on HTTP status. */
export function apiRequest<T = unknown>(creds: ApiCredentials, method: string, path: string, body?: unknown, opts: ApiRequestOptions = {}): Promise<ApiResponse<T>> {
  const url = new URL(path, creds.server);
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      ca: readFileSync(creds.caFile),
      // A bearer token (e.g. a ServiceAccount's) replaces the admin certificate.
      ...(opts.token ? {} : { cert: readFileSync(creds.certFile), key: readFileSync(creds.keyFile) }),
      agent: false,
      timeout: opts.timeoutMs ?? 10_000,
      headers: {
        accept: 'application/json',
        ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        ...(payload !== undefined ? { 'content-type': opts.contentType ?? 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        if ((res.headers['content-type'] ?? '').includes('json')) {
          try { parsed = JSON.parse(text); } catch { /* keep the text */ }
        }
        resolve({ status: res.statusCode ?? 0, body: parsed as T, text });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname}: no answer in ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}
