/**
 * X.509 v3 certificates for Vane's own CA: an ECDSA P-256 CA and the serving certificates it
 * signs, with the extensions Go's crypto/x509 (the kube-apiserver's verifier) and OpenSSL
 * (Node's) require — basicConstraints, keyUsage, extKeyUsage, subjectAltName, key identifiers.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject, type X509Certificate } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import {
  tlv, sequence, set, contextExplicit, integer, boolean, octetString, bitString, utf8String, oid, time,
} from './der.ts';

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

export type ExtKeyUsage = 'serverAuth' | 'clientAuth';

export interface KeyPair { privateKey: KeyObject; publicKey: KeyObject }

/** generateKeyPair makes an ECDSA P-256 key: fast to generate, accepted by every TLS stack Vane meets. */
export function generateKeyPair(): KeyPair {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

export interface CertificateRequest {
  commonName: string;
  organization?: string;
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  isCA: boolean;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  extKeyUsage?: readonly ExtKeyUsage[];
}

export interface Issuer {
  certificate: X509Certificate;
  privateKey: KeyObject;
}

interface Element { tag: number; start: number; end: number; headerStart: number }

/** readElement reads one DER element header at offset; enough to walk a certificate we made or received. */
function readElement(der: Buffer, offset: number): Element {
  const tag = der[offset]!;
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + der[start + i]!;
    start += n;
  }
  if (start + length > der.length) throw new Error('truncated DER element');
  return { tag, start, end: start + length, headerStart: offset };
}

function children(der: Buffer, parent: Element): Element[] {
  const out: Element[] = [];
  for (let at = parent.start; at < parent.end;) {
    const e = readElement(der, at);
    out.push(e);
    at = e.end;
  }
  return out;
}

/** subjectDer returns the encoded subject Name of a certificate, which a child's issuer must repeat byte for byte. */
export function subjectDer(cert: X509Certificate): Buffer {
  const der = cert.raw;
  const tbs = children(der, readElement(der, 0))[0]!;
  const fields = children(der, tbs);
  const offset = fields[0]!.tag === 0xa0 ? 1 : 0;
  const subject = fields[offset + 4]!;
  return der.subarray(subject.headerStart, subject.end);
}

/** keyIdentifier is RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const parts = children(spki, readElement(spki, 0));
  const bits = parts[1]!;
  return createHash('sha1').update(spki.subarray(bits.start + 1, bits.end)).digest();
}

/** ipBytes encodes an IPv4 or IPv6 address as an iPAddress SAN wants it; null when it is not one. */
export function ipBytes(address: string): Buffer | null {
  if (isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  if (!isIPv6(address)) return null;
  let text = address.split('%')[0]!;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, -v4[1]!.length)}${((a! << 8) | b!).toString(16)}:${((c! << 8) | d!).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const fill = rest === undefined ? [] : Array.from({ length: 8 - left.length - right.length }, () => '0');
  for (const group of [...left, ...fill, ...right]) {
    const n = parseInt(group, 16);
    tail.push(n >> 8, n & 0xff);
  }
  return tail.length === 16 ? Buffer.from(tail) : null;
}

function name(commonName: string, organization?: string): Buffer {
  const rdns = [];
  if (organization) rdns.push(set(sequence(oid(OID.organization), utf8String(organization))));
  rdns.push(set(sequence(oid(OID.commonName), utf8String(commonName))));
  return sequence(...rdns);
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value));
}

function serialNumber(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes;
}

const SIGNATURE_ALGORITHM = sequence(oid(OID.ecdsaWithSha256));

/**
 * createCertificate signs a certificate for req with issuer (self-signed when issuer is
 * absent, which only a CA may be). Returns PEM. Throws on a request that cannot be encoded.
 */
export function createCertificate(req: CertificateRequest, issuer: Issuer | { privateKey: KeyObject }): string {
  if (req.commonName.length === 0 || req.commonName.length > 64) throw new Error('commonName must be 1 to 64 characters');
  if (!(req.notAfter > req.notBefore)) throw new Error('notAfter must be after notBefore');
  const signer = issuer.privateKey;
  if (signer.asymmetricKeyType !== 'ec') throw new Error('the issuer key must be an EC key');
  const subject = name(req.commonName, req.organization);
  const issuerName = 'certificate' in issuer ? subjectDer(issuer.certificate) : subject;
  const issuerKeyId = 'certificate' in issuer ? keyIdentifier(issuer.certificate.publicKey) : keyIdentifier(req.publicKey);

  const extensions: Buffer[] = [];
  if (req.isCA) {
    extensions.push(extension(OID.basicConstraints, true, sequence(boolean(true), integer(0))));
    // digitalSignature (bit 0), keyCertSign (5), cRLSign (6): 1000 0110, one unused bit.
    extensions.push(extension(OID.keyUsage, true, bitString(Buffer.from([0x86]), 1)));
  } else {
    extensions.push(extension(OID.basicConstraints, true, sequence()));
    // digitalSignature only (bit 0): an ECDSA key signs the handshake, it never enciphers keys.
    extensions.push(extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)));
    const usages = req.extKeyUsage ?? ['serverAuth'];
    extensions.push(extension(OID.extKeyUsage, false, sequence(...usages.map((u) => oid(OID[u])))));
  }
  const altNames: Buffer[] = [];
  for (const dns of req.dnsNames ?? []) {
    if (!/^[\x21-\x7e]+$/.test(dns)) throw new Error(`not a DNS name: ${JSON.stringify(dns)}`);
    altNames.push(tlv(0x82, Buffer.from(dns, 'ascii')));
  }
  for (const ip of req.ipAddresses ?? []) {
    const bytes = ipBytes(ip);
    if (!bytes) throw new Error(`not an IP address: ${JSON.stringify(ip)}`);
    altNames.push(tlv(0x87, bytes));
  }
  if (altNames.length > 0) extensions.push(extension(OID.subjectAltName, false, sequence(...altNames)));
  extensions.push(extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(req.publicKey))));
  extensions.push(extension(OID.authorityKeyIdentifier, false, sequence(tlv(0x80, issuerKeyId))));

  const tbs = sequence(
    contextExplicit(0, integer(2)),
    integer(serialNumber()),
    SIGNATURE_ALGORITHM,
    issuerName,
    sequence(time(req.notBefore), time(req.notAfter)),
    subject,
    req.publicKey.export({ type: 'spki', format: 'der' }),
    contextExplicit(3, sequence(...extensions)),
  );
  const signature = sign('sha256', tbs, signer);
  const der = sequence(tbs, SIGNATURE_ALGORITHM, bitString(signature));
  return toPem('CERTIFICATE', der);
}

export function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** splitPemCertificates returns each CERTIFICATE block of a PEM bundle, in order. */
export function splitPemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)?.map((b) => (b.endsWith('\n') ? b : `${b}\n`)) ?? [];
}

/** privateKeyPem exports a key as PKCS#8 PEM, the form kubernetes.io/tls Secrets and Go accept. */
export function privateKeyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}
