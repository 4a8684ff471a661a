/** Test certificates made with the openssl CLI, cached per process: real PEM, never committed. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createCertificate, generateKeyPair, privateKeyPem } from '../../lib/certs/index.ts';

export interface TestCert { cert: string; key: string }

const cache = new Map<string, TestCert>();

/** selfSigned returns a self-signed certificate for the given DNS names (first is the CN). */
export function selfSigned(...names: string[]): TestCert {
  const id = names.join(',');
  const hit = cache.get(id);
  if (hit) return hit;
  const dir = mkdtempSync(join(tmpdir(), 'vane-cert-'));
  try {
    const san = names.map((n) => (/^[\d.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
      '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${san}`,
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'pipe' });
    const out = { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
    cache.set(id, out);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface TestCa {
  /** The CA's certificate, PEM: what a `ca.crt` holds. */
  cert: string;
  /** issue signs a leaf for the DNS names (first is the CN): a server's, or with `client` a client's; `expired` ended yesterday. */
  issue(names: string[], opts?: { client?: boolean; expired?: boolean }): TestCert;
}

/** testCa makes a CA with lib/certs (no openssl), for chains a verifying peer checks. */
export function testCa(commonName: string): TestCa {
  const caKeys = generateKeyPair();
  const now = Date.now();
  const day = 86_400_000;
  const cert = createCertificate({ commonName, publicKey: caKeys.publicKey, notBefore: new Date(now - day), notAfter: new Date(now + 2 * day), isCA: true }, { privateKey: caKeys.privateKey });
  const issuer = { certificate: new X509Certificate(cert), privateKey: caKeys.privateKey };
  return {
    cert,
    issue(names, opts = {}) {
      const keys = generateKeyPair();
      const notAfter = opts.expired ? new Date(now - day) : new Date(now + day);
      const leaf = createCertificate({
        commonName: names[0]!, publicKey: keys.publicKey, notBefore: new Date(now - 2 * day), notAfter, isCA: false,
        dnsNames: names, extKeyUsage: [opts.client ? 'clientAuth' : 'serverAuth'],
      }, issuer);
      return { cert: leaf, key: privateKeyPem(keys.privateKey) };
    },
  };
}
