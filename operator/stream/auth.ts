/**
 * Stream authentication. In file mode proxies present a token from a token file; the
 * operator's file lists `proxy-name token` per line, so a token is bound to one proxy name.
 * In a cluster, see kube-auth.ts (TokenReview with the `vane-stream` audience).
 */
import { readFile } from 'node:fs/promises';
import { timingSafeEqual, createHash } from 'node:crypto';
import { CLOSE } from '../../core/index.ts';
import type { Authenticator } from './server.ts';

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** parseTokenFile reads `name token` lines; blank lines and `#` comments are skipped. */
export function parseTokenFile(text: string): Map<string, string> {
  const tokens = new Map<string, string>();
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [name, token, ...rest] = trimmed.split(/\s+/);
    if (!name || !token || rest.length > 0) throw new Error(`token file: each line must be "proxy-name token", got a line with ${trimmed.split(/\s+/).length} fields`);
    tokens.set(name, token);
  }
  return tokens;
}

/** tokenFileAuthenticator accepts a token listed in `path` and names its proxy. */
export async function tokenFileAuthenticator(path: string): Promise<Authenticator> {
  const tokens = parseTokenFile(await readFile(path, 'utf8'));
  const byDigest = new Map<string, string>();
  for (const [name, token] of tokens) byDigest.set(digest(token).toString('hex'), name);
  return async (token) => {
    if (!token) return { ok: false, code: CLOSE.unauthenticated, reason: 'unauthenticated: a bearer token is required' };
    const d = digest(token);
    for (const [hex, name] of byDigest) {
      if (timingSafeEqual(Buffer.from(hex, 'hex'), d)) return { ok: true, proxy: name };
    }
    return { ok: false, code: CLOSE.unauthenticated, reason: 'unauthenticated: unknown token' };
  };
}
