/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: a 15 s lease,
 * renewed every 2 s, given up when it could not be renewed for 10 s — so a deposed leader
 * stops acting (serving the stream, writing status) at least 5 s before another replica
 * can take the lease. Expiry is judged by this replica's own clock from when it last saw
 * the lease change, never by comparing clocks across machines. Every call to the API server
 * is bounded by a third of the renew deadline, so a black-holed API server costs an attempt,
 * never the deadline. The deadline itself is a timer armed at every renewal: leadership ends
 * when it fires, whatever the attempt in flight is doing, so the stream stops at the same
 * moment the write fence closes.
 */
import type { Logger } from '../lib/log.ts';
import { createLease, kubeOf, microTime, readLease, updateLease, type Kube, type KubeConfig, type Lease } from '../lib/kube/index.ts';

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  logger: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  now?: () => number;
}

export class LeaderElector {
  private readonly kube: Kube;
  /** Bound of each Lease call: two of them fit in the renew deadline with time to spare. */
  private readonly callTimeoutMs: number;
  private readonly o: Required<LeaderOptions>;
  private leading = false;
  private lastRenewAt = 0;
  private observed: { holder: string; renewTime: string } | null = null;
  private observedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private closed = false;

  constructor(kube: KubeConfig | Kube, options: LeaderOptions) {
    this.kube = kubeOf(kube);
    this.o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, now: Date.now, ...options };
    this.callTimeoutMs = Math.max(200, Math.min(this.kube.requestTimeoutMs, Math.floor(this.o.renewDeadlineMs / 3)));
  }

  /** fence is isLeader as a lib/kube Fence: pass it to writes that only the leader may send. */
  readonly fence = (): boolean => this.isLeader();

  /** isLeader is true only while the lease was renewed within the renew deadline: check it right before every write. */
  isLeader(): boolean {
    return this.leading && this.o.now() - this.lastRenewAt < this.o.renewDeadlineMs;
  }

  get identity(): string { return this.o.identity; }

  start(): void {
    this.tick();
  }

  /** close steps down and, when leading, releases the lease so a follower takes over at once. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.deadline) clearTimeout(this.deadline);
    await this.running;
    if (!this.leading) return;
    this.stepDown('shutting down');
    try {
      const lease = await readLease(this.kube, this.o.namespace, this.o.name, { timeoutMs: this.callTimeoutMs });
      if (lease?.spec?.holderIdentity === this.o.identity) {
        lease.spec.holderIdentity = '';
        lease.spec.leaseDurationSeconds = 1;
        await updateLease(this.kube, lease, { timeoutMs: this.callTimeoutMs });
      }
    } catch (err) {
      this.o.logger.warn({ lease: `${this.o.namespace}/${this.o.name}`, err: (err as Error).message }, 'releasing the lease failed; it expires by itself');
    }
  }

  private tick(): void {
    if (this.closed) return;
    this.running = this.attempt()
      .catch((err: Error) => this.o.logger.warn({ lease: `${this.o.namespace}/${this.o.name}`, err: err.message }, 'leader election attempt failed'))
      .finally(() => {
        this.running = null;
        if (this.leading && !this.isLeader()) this.stepDown('could not renew the lease within the renew deadline');
        if (!this.closed) this.timer = setTimeout(() => this.tick(), this.o.retryPeriodMs);
      });
  }

  private async attempt(): Promise<void> {
    const now = this.o.now();
    const call = { timeoutMs: this.callTimeoutMs };
    const lease: Lease | null = await readLease(this.kube, this.o.namespace, this.o.name, call);
    const spec = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
      renewTime: microTime(now),
    };
    if (!lease) {
      await createLease(this.kube, this.o.namespace, this.o.name, { ...spec, acquireTime: spec.renewTime, leaseTransitions: 0 }, call);
      this.renewed(now);
      return;
    }
    const holder = lease.spec?.holderIdentity ?? '';
    const renewTime = lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime().toString() : '';
    if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== renewTime) {
      this.observed = { holder, renewTime };
      this.observedAt = now;
    }
    const durationMs = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
    const held = holder !== '' && holder !== this.o.identity && now < this.observedAt + durationMs;
    if (held) {
      if (this.leading) this.stepDown(`lease is held by ${holder}`);
      return;
    }
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === this.o.identity ? 0 : 1);
    lease.spec = {
      ...lease.spec,
      ...spec,
      leaseTransitions: transitions,
      // MicroTime needs six fractional digits on the wire; a plain Date would send three.
      acquireTime: holder === this.o.identity && lease.spec?.acquireTime ? microTime(new Date(lease.spec.acquireTime).getTime()) : spec.renewTime,
    };
    await updateLease(this.kube, lease, call);
    this.renewed(now);
  }

  private renewed(at: number): void {
    this.lastRenewAt = at;
    this.observed = { holder: this.o.identity, renewTime: at.toString() };
    this.observedAt = at;
    this.armDeadline();
    if (!this.leading) {
      this.leading = true;
      this.o.logger.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity }, 'became leader');
      this.o.onStartedLeading();
    }
  }

  /** armDeadline steps down when the renew deadline passes; a renewal re-arms it first. */
  private armDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    const leftMs = this.lastRenewAt + this.o.renewDeadlineMs - this.o.now();
    // The clock may read a millisecond short of the deadline when the timer fires: wait out the rest.
    this.deadline = setTimeout(() => { this.deadline = null; if (this.isLeader()) this.armDeadline(); else this.stepDown('could not renew the lease within the renew deadline'); }, Math.max(1, leftMs));
  }

  private stepDown(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    if (this.deadline) { clearTimeout(this.deadline); this.deadline = null; }
    this.o.logger.warn({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity, why }, 'stopped leading');
    this.o.onStoppedLeading();
  }
}
