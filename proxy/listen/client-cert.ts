/**
 * Client certificates: what a TLS connection to a host with `vane.dev/auth-tls-secret` proved,
 * read once at the handshake, and the verdict a request on it gets (core's ClientAuthSpec).
 *
 * A request is judged by the handshake that carried it, so a connection whose SNI chose one
 * host cannot be used for another host's requests when that host asks for certificates: the
 * handshake applied the SNI host's policy (its CA, or none), not the Host header's. Those
 * requests get 421 Misdirected Request (RFC 9110 §15.5.20), as from nginx, and a
 * client retries them on a connection of their own.
 *
 * Resumed sessions never count as verified: a resumption skips the certificate exchange, and a
 * session's verdict could come from another host's CA. The listener gives client-auth hosts a
 * server of their own that issues no tickets, so their clients always do a full handshake.
 */
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { ClientAuthSpec } from '../../core/index.ts';

/** ClientCertificate is what one handshake showed of the client's certificate. */
export interface ClientCertificate {
  /** The client sent a certificate in a full handshake. */
  present: boolean;
  /** OpenSSL verified its chain against the host's CA. */
  verified: boolean;
  /** Why not, when present and not verified (OpenSSL's code). */
  error: string;
  /** Certificates above the client's in the verified chain, the CA's included. */
  depth: number;
  raw: Buffer | null;
}

const NONE: ClientCertificate = Object.freeze({ present: false, verified: false, error: '', depth: 0, raw: null });

/** readClientCertificate reads a handshake's client certificate; never throws. */
export function readClientCertificate(socket: TLSSocket): ClientCertificate {
  if (socket.isSessionReused()) return NONE;
  const peer = socket.getPeerCertificate(true) as DetailedPeerCertificate | null;
  if (!peer || !peer.raw) return NONE;
  let depth = 0;
  const seen = new Set<DetailedPeerCertificate>([peer]);
  for (let c = peer.issuerCertificate; c && !seen.has(c); c = c.issuerCertificate) { seen.add(c); depth++; }
  const error = socket.authorizationError;
  return { present: true, verified: socket.authorized, error: error ? String((error as unknown as { code?: string }).code ?? error) : '', depth, raw: peer.raw };
}

export type ClientAuthVerdict =
  | { ok: true; headers: string[] }
  | { ok: false; status: 400 | 403 | 421; detail: string };

/**
 * judgeClientCertificate decides a request to a host with client certificate authentication:
 * `tlsHost` is the virtual host its connection's SNI chose (undefined for plain HTTP), `cert`
 * what the handshake showed. The headers (name/value pairs) go to the upstream.
 */
export function judgeClientCertificate(auth: ClientAuthSpec, vhost: string, tlsHost: string | null | undefined, cert: ClientCertificate | undefined): ClientAuthVerdict {
  if (tlsHost === undefined) {
    if (auth.mode !== 'on') return { ok: true, headers: ['ssl-client-verify', 'NONE'] };
    return { ok: false, status: 403, detail: 'this host requires a client certificate: use HTTPS' };
  }
  if (tlsHost !== vhost) return { ok: false, status: 421, detail: 'this host asks for client certificates: connect with its name as SNI' };
  const c = cert ?? NONE;
  if (!c.present) {
    if (auth.mode === 'on') return { ok: false, status: 400, detail: 'no required TLS client certificate was sent' };
    return { ok: true, headers: ['ssl-client-verify', 'NONE'] };
  }
  let failure = '';
  if (!c.verified) failure = c.error || 'UNABLE_TO_VERIFY';
  else if (c.depth > auth.depth) failure = `CHAIN_TOO_LONG (depth ${c.depth}, allowed ${auth.depth})`;
  if (failure !== '' && auth.mode !== 'optional_no_ca') return { ok: false, status: 400, detail: `the TLS client certificate was not verified: ${failure}` };
  return { ok: true, headers: certificateHeaders(c, failure, auth.passCertificate) };
}

function certificateHeaders(c: ClientCertificate, failure: string, pass: boolean): string[] {
  const x = new X509Certificate(c.raw!);
  const headers = [
    'ssl-client-verify', failure === '' ? 'SUCCESS' : `FAILED:${headerSafe(failure)}`,
    'ssl-client-subject-dn', distinguishedName(x.subject),
    'ssl-client-issuer-dn', distinguishedName(x.issuer),
    'ssl-client-san', headerSafe(x.subjectAltName ?? ''),
    'ssl-client-fingerprint-sha256', x.fingerprint256.replaceAll(':', '').toLowerCase(),
  ];
  if (pass) headers.push('ssl-client-cert', encodeURIComponent(x.toString()));
  return headers;
}

/** distinguishedName writes Node's one-attribute-a-line name in RFC 4514's order (most specific first), as nginx's $ssl_client_s_dn. */
function distinguishedName(lines: string): string {
  return headerSafe(lines.split('\n').filter((l) => l !== '').reverse().join(','));
}

/** headerSafe percent-encodes what a header value may not carry (controls, non-ASCII): certificate text is the client's. */
function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/gu, (ch) => [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}

/** headerLines writes name/value pairs as HTTP/1.1 header lines, for the fast path's request head. */
export function headerLines(pairs: readonly string[]): string {
  let out = '';
  for (let i = 0; i < pairs.length; i += 2) out += `${pairs[i]}: ${pairs[i + 1]}\r\n`;
  return out;
}
