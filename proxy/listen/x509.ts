/**
 * The proxy's self-signed certificates (the "fake" default certificate, test fixtures),
 * minted with lib/certs — the one X.509 encoder the webhook and the stream also use.
 */
import { isIP } from 'node:net';
import { createCertificate, generateKeyPair, privateKeyPem } from '../../lib/certs/index.ts';

export interface SelfSignedCertificate {
  certificatePem: string;
  privateKeyPem: string;
}

export interface SelfSignedRequest {
  commonName: string;
  /** DNS names and IP addresses for subjectAltName; defaults to the common name. */
  altNames?: string[];
  days?: number;
  /** Backdate validity (tests of expiry use a negative `days`). */
  now?: Date;
}

/** selfSignedCertificate mints a key pair and a certificate signed by it. */
export function selfSignedCertificate(req: SelfSignedRequest): SelfSignedCertificate {
  const keys = generateKeyPair();
  const now = req.now ?? new Date();
  const names = req.altNames ?? [req.commonName];
  const certificatePem = createCertificate({
    commonName: req.commonName,
    publicKey: keys.publicKey,
    notBefore: new Date(now.getTime() - 3_600_000),
    notAfter: new Date(now.getTime() + (req.days ?? 365) * 86_400_000),
    isCA: false,
    dnsNames: names.filter((n) => !isIP(n)),
    ipAddresses: names.filter((n) => isIP(n)),
  }, { privateKey: keys.privateKey });
  return { certificatePem, privateKeyPem: privateKeyPem(keys.privateKey) };
}
