/**
 * TLS Secrets: read and checked once per Secret version (the certificate parses, the key
 * parses and belongs to it), so a malformed Secret is a status condition, never a handshake
 * failure in a proxy.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { Secret } from './objects.ts';
import type { SecretSpec } from './resources.ts';

/** spec is null when only the Secret's metadata was seen (checkTlsSecretMetadata): usable as far as anyone can tell. */
export type SecretVerdict = { ok: true; spec: SecretSpec | null } | { ok: false; message: string };

function field(secret: Secret, key: string): string | null {
  const s = secret.stringData?.[key];
  if (typeof s === 'string') return s;
  const d = secret.data?.[key];
  if (typeof d !== 'string') return null;
  return Buffer.from(d, 'base64').toString('utf8');
}

const NOT_FOUND: SecretVerdict = { ok: false, message: 'Secret not found' };

function checkType(secret: Secret | undefined): SecretVerdict | null {
  if (!secret) return NOT_FOUND;
  if (secret.type !== 'kubernetes.io/tls') return { ok: false, message: `Secret has type ${JSON.stringify(secret.type ?? '')}, want kubernetes.io/tls` };
  return null;
}

const METADATA_ONLY: SecretVerdict = { ok: true, spec: null };

/**
 * checkTlsSecretMetadata judges a Secret by what its metadata shows: it exists and is of type
 * `kubernetes.io/tls`. Its data is never read, so a malformed certificate passes here.
 */
export function checkTlsSecretMetadata(secret: Secret | undefined): SecretVerdict {
  return checkType(secret) ?? METADATA_ONLY;
}

/** readTlsSecret checks a `kubernetes.io/tls` Secret; the message never contains key material. */
export function readTlsSecret(secret: Secret | undefined): SecretVerdict {
  const wrong = checkType(secret);
  if (wrong || !secret) return wrong ?? NOT_FOUND;
  const cert = field(secret, 'tls.crt');
  const key = field(secret, 'tls.key');
  if (!cert || !key) return { ok: false, message: 'Secret lacks tls.crt or tls.key' };
  const cacheKey = `${cert}\0${key}`;
  const cached = verdicts.get(cacheKey);
  if (cached) return cached;
  const verdict = checkPair(cert, key);
  if (verdicts.size >= MAX_CACHED_VERDICTS) verdicts.clear();
  verdicts.set(cacheKey, verdict);
  return verdict;
}

/**
 * Parsing and matching a key pair costs far more than anything else per Secret, and many
 * Secrets carry the same pair (one wildcard certificate copied to every namespace), so the
 * verdict is memoised by content — a pure function's cache, bounded.
 */
const verdicts = new Map<string, SecretVerdict>();
const MAX_CACHED_VERDICTS = 4096;

function checkPair(cert: string, key: string): SecretVerdict {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    return { ok: false, message: 'tls.crt is not a PEM certificate' };
  }
  try {
    const privateKey = createPrivateKey(key);
    if (!x509.checkPrivateKey(privateKey)) return { ok: false, message: 'tls.key does not belong to the certificate in tls.crt' };
  } catch {
    return { ok: false, message: 'tls.key is not a PEM private key' };
  }
  return { ok: true, spec: { certificatePem: cert, privateKeyPem: key } };
}
