/**
 * TLS for the HTTPS listener: one SecureContext per certificate version, built when the
 * Secret resource arrives and looked up by SNI through core's host matching — never built
 * during a handshake. Hosts without a usable Secret, and clients without SNI, get the
 * default certificate: the listener's (from --default-ssl-certificate or a host-less TLS
 * entry, as core resolves it), else the self-generated one.
 *
 * A host that asks for client certificates (vane.dev/auth-tls-secret) gets a context of its
 * own, with its CA as the trust store and the list of acceptable CAs, a session id context
 * of its own and no tickets: a session is never resumed into it from another host's. Those
 * are built on the first handshake that needs one, once per version of the certificate and
 * the CA, as only a host's SNI says which pair it needs.
 */
import { constants, createHash } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { findHost, normalizeHost, LISTENER_NAME, type ClientAuthSpec, type HashedResource, type SecretSpec } from '../../core/index.ts';
import type { RoutingState } from '../source/routing.ts';

export interface KeyPair { certificatePem: string; privateKeyPem: string }

interface Entry { hash: string; context: SecureContext; pair: KeyPair }

export class TlsStore {
  private readonly contexts = new Map<string, Entry>();
  private readonly fallback: Entry;
  private defaultEntry: Entry;
  private readonly onBuilt: () => void;
  /** Client-auth contexts by `vhost certificate version, CA version`; cleared when a Secret changes. */
  private readonly clientAuth = new Map<string, SecureContext>();
  private resources: ReadonlyMap<string, HashedResource> = new Map();
  /** --tls-* (options.ts tlsPolicyOptions), on every context as on the servers. */
  private readonly policy: SecureContextOptions;

  constructor(fake: KeyPair, onBuilt: () => void, policy: SecureContextOptions = {}) {
    this.policy = policy;
    this.onBuilt = onBuilt;
    this.fallback = this.build('', fake);
    this.defaultEntry = this.fallback;
  }

  private build(hash: string, pair: KeyPair): Entry {
    this.onBuilt();
    return { hash, pair, context: createSecureContext({ ...this.policy, cert: pair.certificatePem, key: pair.privateKeyPem }) };
  }

  /** update rebuilds contexts for changed secrets; it returns true when the default certificate changed. */
  update(resources: ReadonlyMap<string, HashedResource>, secrets: string[]): boolean {
    this.resources = resources;
    if (secrets.length > 0) this.clientAuth.clear();
    for (const name of secrets) {
      const r = resources.get(name);
      const spec = r?.resource.type === 'secret' ? r.resource.spec as SecretSpec : null;
      // A Secret without a pair only verifies peers (its ca.crt): it serves no host.
      if (!spec?.certificatePem || !spec.privateKeyPem) { this.contexts.delete(name); continue; }
      if (this.contexts.get(name)?.hash === r!.hash) continue;
      try {
        this.contexts.set(name, this.build(r!.hash, { certificatePem: spec.certificatePem, privateKeyPem: spec.privateKeyPem }));
      } catch {
        // core checked the pair; a context OpenSSL still refuses leaves the host on the default.
        this.contexts.delete(name);
      }
    }
    const listener = resources.get(LISTENER_NAME);
    const wanted = listener?.resource.type === 'listener' ? listener.resource.spec.defaultCertificate : null;
    const next = (wanted && this.contexts.get(wanted)) || this.fallback;
    const changed = next !== this.defaultEntry;
    this.defaultEntry = next;
    return changed;
  }

  get defaultPair(): KeyPair { return this.defaultEntry.pair; }

  /** contextFor answers an SNI name: the host's certificate or the default. */
  contextFor(state: RoutingState | null, servername: string): SecureContext {
    if (state && servername) {
      const vhost = findHost(state.table, normalizeHost(servername));
      const secret = vhost?.spec.tls?.secret;
      const auth = vhost?.spec.clientAuth;
      if (auth) return this.clientAuthContext(secret ? this.contexts.get(secret) ?? this.defaultEntry : this.defaultEntry, auth);
      if (secret) {
        const e = this.contexts.get(secret);
        if (e) return e.context;
      }
    }
    return this.defaultEntry.context;
  }

  /** clientAuthContext is the host's pair with its client CA; without a usable CA it trusts nothing, so no certificate verifies. */
  private clientAuthContext(pair: Entry, auth: ClientAuthSpec): SecureContext {
    const ca = this.resources.get(auth.secret);
    const caPem = ca?.resource.type === 'secret' ? ca.resource.spec.caPem : undefined;
    const key = `${pair.hash} ${auth.secret} ${caPem !== undefined ? ca!.hash : ''}`;
    let context = this.clientAuth.get(key);
    if (context === undefined) {
      this.onBuilt();
      context = createSecureContext({
        ...this.policy,
        cert: pair.pair.certificatePem, key: pair.pair.privateKeyPem,
        ...(caPem !== undefined ? { ca: caPem } : {}),
        sessionIdContext: createHash('sha256').update(key).digest('hex').slice(0, 32),
        secureOptions: constants.SSL_OP_NO_TICKET,
      });
      this.clientAuth.set(key, context);
    }
    return context;
  }
}
