/**
 * CertManager keeps one CertStore and its CaBundleTargets in line with a CertPolicy: on
 * start, then every resyncMs. Each pass reads the store, plans (rotation.ts), writes with
 * compare-and-swap (losing a race means adopting the winner's bundle), publishes the CA
 * bundle to every target, and hands a changed serving certificate to onChange. Failures
 * are logged and retried on the next pass; the last good certificate keeps serving.
 */
import { X509Certificate } from 'node:crypto';
import type { Logger } from '../log.ts';
import { CertError, isCertError } from './errors.ts';
import { planRotation, policyOf, type CertBundle, type CertPolicy } from './rotation.ts';
import type { CertStore } from './stores.ts';

/** A CaBundleTarget is an object whose trust must follow the bundle, e.g. a ValidatingWebhookConfiguration's caBundle. */
export interface CaBundleTarget {
  /** sync makes the target trust exactly caBundlePem; true when it had to change something. Rejects with CertError. */
  sync(caBundlePem: string): Promise<boolean>;
  describe(): string;
}

export interface ServingCertificate {
  certPem: string;
  keyPem: string;
  caBundlePem: string;
  notAfter: Date;
}

export interface ReconcileResult {
  serving: ServingCertificate;
  /** Reasons the bundle was rewritten this pass; empty when it was not. */
  rotated: string[];
  /** Targets this pass had to change. */
  patched: string[];
}

export interface CertManagerOptions {
  store: CertStore;
  policy: Partial<CertPolicy> & Pick<CertPolicy, 'commonName'>;
  targets?: readonly CaBundleTarget[];
  /** Milliseconds since the epoch; a test passes a fake clock. */
  clock?: () => number;
  resyncMs?: number;
  log?: Logger;
  onChange?: (serving: ServingCertificate) => void;
}

const MAX_RACES = 5;

export class CertManager {
  private readonly store: CertStore;
  private readonly policy: CertPolicy;
  private readonly targets: readonly CaBundleTarget[];
  private readonly clock: () => number;
  private readonly resyncMs: number;
  private readonly log: Logger | undefined;
  private readonly onChange: ((serving: ServingCertificate) => void) | undefined;
  private published: string | null = null;
  private emitted: string | null = null;
  private servingNow: ServingCertificate | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private halt = new AbortController();
  private running: Promise<ReconcileResult> | null = null;

  constructor(options: CertManagerOptions) {
    this.policy = policyOf(options.policy);
    this.store = options.store;
    this.targets = options.targets ?? [];
    this.clock = options.clock ?? Date.now;
    this.resyncMs = options.resyncMs ?? 30_000;
    if (!(this.resyncMs >= 10)) throw new CertError('EINVALID', 'resyncMs must be at least 10');
    this.log = options.log;
    this.onChange = options.onChange;
  }

  /** current is the serving certificate of the last successful pass, or null before the first. */
  current(): ServingCertificate | null {
    return this.servingNow;
  }

  /** reconcile runs one pass; concurrent calls share it. */
  reconcile(): Promise<ReconcileResult> {
    this.running ??= this.pass().finally(() => { this.running = null; });
    return this.running;
  }

  private async pass(): Promise<ReconcileResult> {
    let bundle: CertBundle | null = null;
    let rotated: string[] = [];
    for (let race = 0; race < MAX_RACES && !bundle; race++) {
      const stored = await this.store.read();
      const plan = planRotation({ stored: stored?.bundle ?? null, now: this.clock(), policy: this.policy, published: this.published });
      if (!plan.next) { bundle = stored!.bundle; break; }
      try {
        const written = stored ? await this.store.replace(plan.next, stored.version) : await this.store.create(plan.next);
        bundle = written.bundle;
        rotated = plan.reasons;
        this.log?.info({ store: this.store.describe(), reasons: plan.reasons }, 'certificates written');
      } catch (err) {
        if (!isCertError(err, 'EEXIST', 'ECONFLICT')) throw err;
        this.log?.info({ store: this.store.describe() }, 'another replica wrote the certificates first; adopting its bundle');
      }
    }
    if (!bundle) throw new CertError('ECONFLICT', `${this.store.describe()} kept changing under ${MAX_RACES} consecutive attempts`);

    const patched: string[] = [];
    for (const target of this.targets) {
      if (await target.sync(bundle.caBundlePem)) patched.push(target.describe());
    }
    if (patched.length) this.log?.info({ targets: patched }, 'caBundle updated');
    this.published = bundle.caBundlePem;

    const serving: ServingCertificate = {
      certPem: bundle.certPem,
      keyPem: bundle.keyPem,
      caBundlePem: bundle.caBundlePem,
      notAfter: new Date(new X509Certificate(bundle.certPem).validTo),
    };
    this.servingNow = serving;
    const fingerprint = `${bundle.certPem}\0${bundle.caBundlePem}`;
    if (fingerprint !== this.emitted) {
      this.emitted = fingerprint;
      this.onChange?.(serving);
    }
    return { serving, rotated, patched };
  }

  /**
   * start runs passes until one succeeds (backing off up to 30 s between failures), then
   * keeps reconciling every resyncMs, jittered by ±10 %. stop() ends a bootstrap still
   * retrying: start then rejects with the last error.
   */
  async start(): Promise<ServingCertificate> {
    this.stopped = false;
    this.halt = new AbortController();
    let delayMs = 250;
    for (;;) {
      try {
        const { serving } = await this.reconcile();
        this.schedule();
        return serving;
      } catch (err) {
        if (this.stopped) throw err;
        this.log?.warn({ err: describeError(err), retryMs: delayMs }, 'certificate bootstrap failed; retrying');
        await sleep(delayMs, this.halt.signal);
        if (this.stopped) throw err;
        delayMs = Math.min(delayMs * 2, 30_000);
      }
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    const jitter = 0.9 + Math.random() * 0.2;
    this.timer = setTimeout(() => {
      this.reconcile()
        .catch((err: unknown) => this.log?.warn({ err: describeError(err) }, 'certificate resync failed; the current certificate keeps serving'))
        .finally(() => this.schedule());
    }, Math.round(this.resyncMs * jitter));
    this.timer.unref();
  }

  /** stop ends the resync loop and any bootstrap retry; a pass in flight completes. */
  stop(): void {
    this.stopped = true;
    this.halt.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function describeError(err: unknown): { code?: string; message: string } {
  const e = err as { code?: unknown; message?: unknown };
  return { ...(typeof e?.code === 'string' ? { code: e.code } : {}), message: typeof e?.message === 'string' ? e.message : String(err) };
}
