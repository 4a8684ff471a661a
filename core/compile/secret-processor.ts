/**
 * The Secret processor: Secret changes → one TLS verdict per Secret, and the resources
 * that read it.
 *
 * Invariants:
 * - Once the processor has run, verdict(key) is the verdict on the stored Secret (or "not
 *   found"), computed once per Secret version: checking a key pair is the costliest thing a
 *   compile does per object.
 * - With secretsMetadataOnly (the webhook) a Secret is judged by existence and type only,
 *   and the verdict carries no key material, so no secret resource can be built from it.
 * - A changed Secret makes pending its own `secret/…` resource and every owner (virtual
 *   host, listener) that reads it, and the listener when it is the configured default
 *   certificate.
 */
import { LISTENER_NAME } from '../resources.ts';
import type { Secret } from '../objects.ts';
import { checkTlsSecretMetadata, readTlsSecret, type SecretVerdict } from '../secrets.ts';
import { FragmentMemo, type Processor, type StageContext } from './processor.ts';

const NOT_FOUND: SecretVerdict = { ok: false, message: 'Secret not found' };

export class SecretProcessor implements Processor {
  private readonly memo = new FragmentMemo<SecretVerdict, Secret>();
  private readonly c: StageContext;
  private readonly check: (obj: Secret) => SecretVerdict;

  constructor(context: StageContext) {
    this.c = context;
    this.check = context.options.secretsMetadataOnly ? checkTlsSecretMetadata : readTlsSecret;
  }

  verdict(key: string): SecretVerdict {
    return this.memo.get(key) ?? NOT_FOUND;
  }

  run(): void {
    const { store, indexes, pending, options } = this.c;
    for (const key of pending.secrets) {
      const obj = store.get<Secret>('Secret', key);
      if (obj) this.memo.of(key, obj, this.check);
      else this.memo.delete(key);
      pending.secretResources.add(key);
      for (const owner of indexes.secretUsers.to(key)) {
        if (owner === LISTENER_NAME) pending.listener = true;
        else pending.hosts.add(owner.slice('vhost/'.length));
      }
      if (key === options.defaultCertificate) pending.listener = true;
    }
    pending.secrets.clear();
  }
}
