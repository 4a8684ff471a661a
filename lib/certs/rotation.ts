/**
 * What to store next: a pure function of the stored bundle, the clock and the policy, so
 * every replica that reads the same Secret at the same time plans the same thing, and the
 * whole rotation schedule is testable with a fake clock.
 *
 * Schedule (defaults): the CA lives 5 years and a successor is added to the trust bundle a
 * year before it expires; serving certificates live 90 days and are re-issued 30 days
 * before expiry. A new CA only signs serving certificates once the bundle that contains it
 * has been published to every target (the webhook's caBundle) and has settled for a few
 * minutes, so an API server never sees a certificate from a CA it does not trust yet. Old
 * CAs stay in the bundle until they expire.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { CertError } from './errors.ts';
import { createCertificate, generateKeyPair, ipBytes, privateKeyPem, splitPemCertificates, type ExtKeyUsage } from './x509.ts';

/** CertBundle is what a store keeps (PEM text). caBundlePem is what clients trust: the signing CA first. */
export interface CertBundle {
  caBundlePem: string;
  caKeyPem: string;
  certPem: string;
  keyPem: string;
}

export interface CertPolicy {
  /** Subject CN of the serving certificate; the CA is named after it. */
  commonName: string;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
  extKeyUsage?: readonly ExtKeyUsage[];
  caValidityMs: number;
  caRenewBeforeMs: number;
  servingValidityMs: number;
  servingRenewBeforeMs: number;
  /** How long a published new CA waits before it signs: time for every API server to load the new caBundle. */
  caSettleMs: number;
}

const DAY_MS = 86_400_000;

export const DEFAULT_DURATIONS = {
  caValidityMs: 5 * 365 * DAY_MS,
  caRenewBeforeMs: 365 * DAY_MS,
  servingValidityMs: 90 * DAY_MS,
  servingRenewBeforeMs: 30 * DAY_MS,
  caSettleMs: 5 * 60_000,
} as const;

/** BACKDATE_MS: notBefore lies this far in the past, so a peer whose clock is behind still accepts a fresh certificate. */
export const BACKDATE_MS = 60 * 60_000;

/** policyOf fills in default durations and checks the policy; throws CertError EINVALID on one that cannot work. */
export function policyOf(partial: Partial<CertPolicy> & Pick<CertPolicy, 'commonName'>): CertPolicy {
  const policy: CertPolicy = { dnsNames: [], ipAddresses: [], ...DEFAULT_DURATIONS, ...partial };
  if (policy.dnsNames.length + policy.ipAddresses.length === 0) throw new CertError('EINVALID', 'a serving certificate needs at least one DNS name or IP address');
  for (const ip of policy.ipAddresses) if (!ipBytes(ip)) throw new CertError('EINVALID', `not an IP address: ${JSON.stringify(ip)}`);
  for (const dns of policy.dnsNames) {
    if (!/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(dns)) throw new CertError('EINVALID', `not a DNS name: ${JSON.stringify(dns)}`);
  }
  const pairs: [keyof CertPolicy, keyof CertPolicy][] = [['caRenewBeforeMs', 'caValidityMs'], ['servingRenewBeforeMs', 'servingValidityMs']];
  for (const [before, validity] of pairs) {
    const b = policy[before] as number;
    const v = policy[validity] as number;
    if (!(b > 0 && v > b)) throw new CertError('EINVALID', `${before} must be positive and less than ${validity}`);
  }
  if (!(policy.caRenewBeforeMs > policy.servingRenewBeforeMs)) {
    // Otherwise a serving certificate cut short by its CA's expiry would be due again at once.
    throw new CertError('EINVALID', 'caRenewBeforeMs must be greater than servingRenewBeforeMs');
  }
  if (!(policy.caSettleMs >= 0)) throw new CertError('EINVALID', 'caSettleMs must be ≥ 0');
  return policy;
}

export interface CertInfo {
  cert: X509Certificate;
  notBefore: number;
  notAfter: number;
}

function info(cert: X509Certificate): CertInfo {
  return { cert, notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) };
}

export interface Inspected {
  cas: CertInfo[];
  caKey: KeyObject;
  serving: (CertInfo & { key: KeyObject }) | { problem: string };
}

/** inspect parses a stored bundle; throws CertError EINVALID naming what is unusable (never key material). */
export function inspect(bundle: CertBundle): Inspected {
  const blocks = splitPemCertificates(bundle.caBundlePem);
  if (blocks.length === 0) throw new CertError('EINVALID', 'ca.crt holds no certificate');
  let cas: CertInfo[];
  let caKey: KeyObject;
  try {
    cas = blocks.map((b) => info(new X509Certificate(b)));
    caKey = createPrivateKey(bundle.caKeyPem);
  } catch {
    throw new CertError('EINVALID', 'ca.crt or ca.key does not parse');
  }
  if (!cas[0]!.cert.ca) throw new CertError('EINVALID', 'the first certificate of ca.crt is not a CA');
  if (!cas[0]!.cert.checkPrivateKey(caKey)) throw new CertError('EINVALID', 'ca.key does not belong to the first certificate of ca.crt');
  let serving: Inspected['serving'];
  try {
    const cert = new X509Certificate(bundle.certPem);
    const key = createPrivateKey(bundle.keyPem);
    serving = cert.checkPrivateKey(key) ? { ...info(cert), key } : { problem: 'tls.key does not belong to tls.crt' };
  } catch {
    serving = { problem: 'tls.crt or tls.key does not parse' };
  }
  return { cas, caKey, serving };
}

/** sanSet normalises subjectAltName entries (`DNS:x`, `IP:hex`) so that names compare whatever the textual IP form. */
function sanSet(dnsNames: readonly string[], ips: readonly string[]): Set<string> {
  return new Set([...dnsNames.map((d) => `DNS:${d.toLowerCase()}`), ...ips.map((ip) => `IP:${ipBytes(ip)?.toString('hex') ?? ip}`)]);
}

function certSans(cert: X509Certificate): Set<string> {
  const dns: string[] = [];
  const ips: string[] = [];
  for (const entry of (cert.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) dns.push(entry.slice(4));
    else if (entry.startsWith('IP Address:')) ips.push(entry.slice(11).toLowerCase());
  }
  return sanSet(dns, ips);
}

function sameSet(a: Set<string>, b: Set<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

function newCa(policy: CertPolicy, now: number): { cert: string; key: string } {
  const pair = generateKeyPair();
  const stamp = new Date(now).toISOString().slice(0, 19).replace(/[-:]/g, '');
  const cert = createCertificate({
    commonName: `${policy.commonName.slice(0, 40)} CA ${stamp}`,
    organization: 'vane',
    publicKey: pair.publicKey,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + policy.caValidityMs),
    isCA: true,
  }, pair);
  return { cert, key: privateKeyPem(pair.privateKey) };
}

function issueServing(policy: CertPolicy, now: number, ca: CertInfo, caKey: KeyObject): { cert: string; key: string } {
  const pair = generateKeyPair();
  const cert = createCertificate({
    commonName: policy.commonName,
    publicKey: pair.publicKey,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(Math.min(now + policy.servingValidityMs, ca.notAfter)),
    isCA: false,
    dnsNames: policy.dnsNames,
    ipAddresses: policy.ipAddresses,
    extKeyUsage: policy.extKeyUsage ?? ['serverAuth'],
  }, { certificate: ca.cert, privateKey: caKey });
  return { cert, key: privateKeyPem(pair.privateKey) };
}

export interface RotationInput {
  /** What the store holds now; null when nothing or nothing usable is stored. */
  stored: CertBundle | null;
  now: number;
  policy: CertPolicy;
  /** The caBundle every target confirmed holding, or null when not (yet) confirmed. */
  published: string | null;
}

export interface RotationPlan {
  /** The bundle to store, or null when the stored one is fine as it is. */
  next: CertBundle | null;
  /** Why, one line each, for logs; never key material. */
  reasons: string[];
}

function fresh(policy: CertPolicy, now: number, reason: string): RotationPlan {
  const ca = newCa(policy, now);
  const caInfo = info(new X509Certificate(ca.cert));
  const serving = issueServing(policy, now, caInfo, createPrivateKey(ca.key));
  return { next: { caBundlePem: ca.cert, caKeyPem: ca.key, certPem: serving.cert, keyPem: serving.key }, reasons: [reason] };
}

/** planRotation decides the next bundle. It generates keys when it must, and reads nothing but its input. */
export function planRotation(input: RotationInput): RotationPlan {
  const { stored, now, policy } = input;
  if (!stored) return fresh(policy, now, 'no certificates stored: created a CA and a serving certificate');
  let inspected: Inspected;
  try {
    inspected = inspect(stored);
  } catch (err) {
    return fresh(policy, now, `stored certificates are unusable (${(err as Error).message}): created a new CA and serving certificate`);
  }
  const reasons: string[] = [];
  let signer = inspected.cas[0]!;
  let signerKey = inspected.caKey;
  let caKeyPem = stored.caKeyPem;
  let cas = inspected.cas.filter((c, i) => i === 0 || c.notAfter > now);
  if (cas.length < inspected.cas.length) reasons.push(`dropped ${inspected.cas.length - cas.length} expired CA certificate(s) from the bundle`);
  if (signer.notAfter - now <= policy.caRenewBeforeMs) {
    const ca = newCa(policy, now);
    signer = info(new X509Certificate(ca.cert));
    signerKey = createPrivateKey(ca.key);
    caKeyPem = ca.key;
    cas = [signer, ...cas.filter((c) => c.notAfter > now)];
    reasons.push(`CA expires ${new Date(inspected.cas[0]!.notAfter).toISOString()}: added a new CA to the bundle`);
  }
  const caBundlePem = cas.map((c) => c.cert.toString()).join('');
  const s = inspected.serving;
  let why: string | null = null;
  if ('problem' in s) why = s.problem;
  else if (!cas.some((c) => s.cert.checkIssued(c.cert) && s.cert.verify(c.cert.publicKey))) why = 'serving certificate is not signed by a CA in the bundle';
  else if (s.notAfter - now <= policy.servingRenewBeforeMs) why = `serving certificate expires ${new Date(s.notAfter).toISOString()}`;
  else if (!sameSet(certSans(s.cert), sanSet(policy.dnsNames, policy.ipAddresses))) why = 'serving certificate names differ from the configured DNS names and IP addresses';
  else if (!(s.cert.checkIssued(signer.cert) && s.cert.verify(signer.cert.publicKey))
    && input.published === caBundlePem && now >= signer.notBefore + BACKDATE_MS + policy.caSettleMs) {
    why = 'the new CA is published and settled: serving certificate moves to it';
  }
  let certPem = stored.certPem;
  let keyPem = stored.keyPem;
  if (why) {
    const serving = issueServing(policy, now, signer, signerKey);
    certPem = serving.cert;
    keyPem = serving.key;
    reasons.push(`${why}: issued a new serving certificate`);
  }
  if (reasons.length === 0) return { next: null, reasons };
  return { next: { caBundlePem, caKeyPem, certPem, keyPem }, reasons };
}
