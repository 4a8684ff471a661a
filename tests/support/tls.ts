/** Test certificates made with the openssl CLI, cached per process: real PEM, never committed. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
