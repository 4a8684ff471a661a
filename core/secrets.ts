/**
 * TLS Secrets: read and checked once per Secret version (the certificate parses, the key
 * parses and belongs to it; `ca.crt`, when there, is a bundle of certificates), so a
 * malformed Secret is a status condition, never a handshake failure in a proxy. One Secret
 * may serve a host (its pair), verify backends or clients (its CA) and be a client
 * certificate (its pair), so the verdict says what of it is usable.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { Secret } from './objects.ts';
import type { SecretSpec } from './resources.ts';

/**
 * spec is null when only the Secret's metadata was seen (checkTlsSecretMetadata): usable as far as
 * anyone can tell. ok is false when nothing in the Secret is usable; otherwise pairProblem and
 * caProblem say why its pair or its CA is not.
 */
export type SecretVerdict =
  | { ok: true; spec: SecretSpec | null; pairProblem?: string; caProblem?: string }
  | { ok: false; message: string; caMessage?: string };

/** pairProblem says why a Secret's key pair cannot be used (to serve a host, or as a client certificate); null: it can. */
export function pairProblem(v: SecretVerdict): string | null {
  return v.ok ? v.pairProblem ?? null : v.message;
}

/** caProblem says why a Secret's `ca.crt` cannot verify peers; null: it can. */
export function caProblem(v: SecretVerdict): string | null {
  return v.ok ? v.caProblem ?? null : v.caMessage ?? v.message;
}

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
  const cert = field(secret, 'tls.crt') ?? '';
  const key = field(secret, 'tls.key') ?? '';
  const ca = field(secret, 'ca.crt') ?? '';
  const cacheKey = `${cert}\0${key}\0${ca}`;
  const cached = verdicts.get(cacheKey);
  if (cached) return cached;
  const verdict = combine(cert && key ? checkPair(cert, key) : 'Secret lacks tls.crt or tls.key', ca ? checkCa(ca) : 'Secret lacks ca.crt', cert, key, ca);
  if (verdicts.size >= MAX_CACHED_VERDICTS) verdicts.clear();
  verdicts.set(cacheKey, verdict);
  return verdict;
}

function combine(pair: string | null, caCheck: string | null, cert: string, key: string, ca: string): SecretVerdict {
  if (pair !== null && caCheck !== null) return { ok: false, message: pair, caMessage: caCheck };
  const spec: SecretSpec = caCheck === null ? { caPem: ca } : {};
  if (pair === null) { spec.certificatePem = cert; spec.privateKeyPem = key; }
  return { ok: true, spec, ...(pair !== null ? { pairProblem: pair } : {}), ...(caCheck !== null ? { caProblem: caCheck } : {}) };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** checkCa: ca.crt must be one or more PEM certificates, every one of them parsable. */
function checkCa(ca: string): string | null {
  const blocks = ca.match(PEM_CERTIFICATE);
  if (!blocks) return 'ca.crt holds no PEM certificate';
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch {
      return 'ca.crt holds a certificate that does not parse';
    }
  }
  return null;
}

/**
 * Parsing and matching a key pair costs far more than anything else per Secret, and many
 * Secrets carry the same pair (one wildcard certificate copied to every namespace), so the
 * verdict is memoised by content — a pure function's cache, bounded.
 */
const verdicts = new Map<string, SecretVerdict>();
const MAX_CACHED_VERDICTS = 4096;

/** checkPair: null when the key belongs to the certificate, else why not. */
function checkPair(cert: string, key: string): string | null {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    return 'tls.crt is not a PEM certificate';
  }
  try {
    const privateKey = createPrivateKey(key);
    if (!x509.checkPrivateKey(privateKey)) return 'tls.key does not belong to the certificate in tls.crt';
  } catch {
    return 'tls.key is not a PEM private key';
  }
  return null;
}
