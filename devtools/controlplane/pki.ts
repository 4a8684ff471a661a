/**
 * The control plane's certificates and keys, made in-process with node:crypto and lib/certs
 * (ECDSA P-256; no openssl): a CA, the API server's serving certificate for 127.0.0.1 and
 * localhost, an admin client certificate in group system:masters, and the ServiceAccount
 * token signing key pair. Files are 0600 in DIR/pki; an existing set is reused, so a
 * restarted `vane local` keeps its kubeconfig valid.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCertificate, generateKeyPair, privateKeyPem } from '../../lib/certs/index.ts';

export interface PkiFiles {
  dir: string;
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

const VALIDITY_MS = 365 * 24 * 3600 * 1000;
// Backdated so that a clock a little behind on the verifying side still accepts them.
const BACKDATE_MS = 3600 * 1000;

export const ADMIN_USER = 'vane-admin';
export const ADMIN_GROUP = 'system:masters';

export function pkiFiles(dir: string): PkiFiles {
  const p = (f: string): string => join(dir, f);
  return {
    dir,
    caCert: p('ca.crt'), caKey: p('ca.key'),
    servingCert: p('apiserver.crt'), servingKey: p('apiserver.key'),
    adminCert: p('admin.crt'), adminKey: p('admin.key'),
    serviceAccountKey: p('sa.key'), serviceAccountPub: p('sa.pub'),
  };
}

/**
 * ensurePki returns DIR's certificate files, creating all of them unless every one exists.
 * servingIps are more addresses the API server's certificate names besides 127.0.0.1 (a real
 * node's address, the `kubernetes` Service's ClusterIP that pods dial).
 */
export function ensurePki(dir: string, opts: { now?: Date; servingIps?: readonly string[] } = {}): { files: PkiFiles; created: boolean } {
  const now = opts.now ?? new Date();
  const files = pkiFiles(dir);
  const paths = Object.entries(files).filter(([k]) => k !== 'dir').map(([, v]) => v);
  if (paths.every((f) => existsSync(f))) return { files, created: false };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const notAfter = new Date(now.getTime() + VALIDITY_MS);
  const write = (file: string, text: string): void => writeFileSync(file, text, { mode: 0o600 });

  const ca = generateKeyPair();
  const caPem = createCertificate({ commonName: 'vane-local-ca', publicKey: ca.publicKey, notBefore, notAfter, isCA: true }, { privateKey: ca.privateKey });
  const issuer = { certificate: new X509Certificate(caPem), privateKey: ca.privateKey };

  const serving = generateKeyPair();
  const servingPem = createCertificate({
    commonName: 'kube-apiserver', publicKey: serving.publicKey, notBefore, notAfter, isCA: false,
    dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
    ipAddresses: ['127.0.0.1', ...(opts.servingIps ?? [])],
    extKeyUsage: ['serverAuth'],
  }, issuer);

  const admin = generateKeyPair();
  const adminPem = createCertificate({
    commonName: ADMIN_USER, organization: ADMIN_GROUP, publicKey: admin.publicKey, notBefore, notAfter, isCA: false,
    extKeyUsage: ['clientAuth'],
  }, issuer);

  const sa = generateKeyPair();

  write(files.caCert, caPem);
  write(files.caKey, privateKeyPem(ca.privateKey));
  write(files.servingCert, servingPem);
  write(files.servingKey, privateKeyPem(serving.privateKey));
  write(files.adminCert, adminPem);
  write(files.adminKey, privateKeyPem(admin.privateKey));
  write(files.serviceAccountKey, privateKeyPem(sa.privateKey));
  write(files.serviceAccountPub, sa.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  return { files, created: true };
}
