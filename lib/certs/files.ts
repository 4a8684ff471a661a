/**
 * Certificates someone else manages (cert-manager, a mounted Secret): tls.crt and tls.key in
 * a directory, re-read when they change. A pair that does not parse or does not match is
 * ignored with a warning, and the last good pair keeps serving.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import { CertError } from './errors.ts';

export interface KeyPairPem { certPem: string; keyPem: string }

/** loadKeyPair reads DIR/tls.crt and DIR/tls.key; rejects with CertError when missing or mismatched. */
export async function loadKeyPair(dir: string): Promise<KeyPairPem> {
  let certPem: string;
  let keyPem: string;
  try {
    certPem = await readFile(join(dir, 'tls.crt'), 'utf8');
    keyPem = await readFile(join(dir, 'tls.key'), 'utf8');
  } catch (err) {
    throw new CertError('ENOTFOUND', `cannot read ${dir}/tls.crt and tls.key: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  try {
    if (!new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem))) throw new Error('mismatch');
  } catch {
    throw new CertError('EINVALID', `${dir}/tls.key does not parse or does not belong to ${dir}/tls.crt`);
  }
  return { certPem, keyPem };
}

/** watchKeyPair polls dir every intervalMs and calls onChange with each new valid pair; returns a stop function. */
export function watchKeyPair(dir: string, initial: KeyPairPem, onChange: (pair: KeyPairPem) => void, intervalMs = 10_000, log?: Logger): () => void {
  let last = `${initial.certPem}\0${initial.keyPem}`;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    loadKeyPair(dir).then((pair) => {
      const now = `${pair.certPem}\0${pair.keyPem}`;
      if (now === last) return;
      last = now;
      log?.info({ dir }, 'serving certificate changed on disk; reloaded');
      onChange(pair);
    }, (err: unknown) => {
      log?.warn({ dir, code: (err as CertError).code, message: (err as Error).message }, 'serving certificate on disk unusable; keeping the previous one');
    }).finally(() => { busy = false; });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
