/**
 * Status and Events, written by the leader only. Every write is fenced on the lease
 * (checked right before it is sent), rate-limited by a token bucket, and skipped when the
 * object already says what we would write. Ingress status is an RFC 6902 JSON patch on the
 * status subresource, computed with fast-json-patch and guarded by a `test` of the
 * resourceVersion, so a concurrent writer makes the patch fail instead of being overwritten. Events are deduplicated per object and reason.
 * Every request goes through lib/kube, bounded in time and fenced on the lease once more right
 * before it is sent.
 */
import type { Ingress, ObjectStatus } from '../core/index.ts';
import { formatProblem } from '../core/index.ts';
import type { Logger } from '../lib/log.ts';
import { RESOURCES, eventBody, fieldPatch, kubeOf, recordEvent, type Kube, type KubeConfig } from '../lib/kube/index.ts';

export { eventBody };

/** An address published in status.loadBalancer.ingress. */
export interface LoadBalancerIngress { ip?: string; hostname?: string; ports?: { port: number; protocol: string; error?: string }[] }

export interface StatusWriterOptions {
  isLeader: () => boolean;
  /** What to publish in status.loadBalancer.ingress of Vane's Ingresses. */
  addresses: LoadBalancerIngress[];
  logger: Logger;
  writesPerSecond?: number;
  burst?: number;
  /** Component name on Events. */
  component?: string;
}

/** EVENT_REASONS documents every reason the operator emits (docs/operator.md lists them too). */
export const EVENT_REASONS = {
  Synced: 'the Ingress is compiled and served',
  InvalidIngress: 'the Ingress has errors; its routes are not served',
  HostConflict: 'a host+path of this Ingress is claimed by another Ingress too: every party gets it, the oldest (which serves the path) included',
  Warning: 'the Ingress is served, with a warning',
  ProxyNack: 'a proxy refused a routing version',
} as const;

type Job = { key: string; run: () => Promise<void>; done?: (ran: boolean) => void };

export class StatusWriter {
  private readonly kube: Kube;
  private readonly o: Required<StatusWriterOptions>;
  private readonly queue = new Map<string, Job>();
  private tokens: number;
  private lastRefill: number;
  private pumping = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly lastEvent = new Map<string, string>();
  private closed = false;
  writes = 0;

  constructor(kube: KubeConfig | Kube, options: StatusWriterOptions) {
    this.kube = kubeOf(kube);
    this.o = { writesPerSecond: 10, burst: 20, component: 'vane-operator', ...options };
    this.tokens = this.o.burst;
    this.lastRefill = Date.now();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const job of this.queue.values()) job.done?.(false);
    this.queue.clear();
  }

  /** fence is the lease check as a lib/kube Fence, for writes sent through submit(). */
  readonly fence = (): boolean => !this.closed && this.o.isLeader();

  /**
   * submit queues a write of another component (the canary controller) under the same lease
   * fence and rate limit. It resolves true once `run` ran, false when the write was dropped:
   * not the leader, closed, or replaced by a newer write with the same key.
   */
  submit(key: string, run: () => Promise<void>): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise((done) => {
      this.queue.get(key)?.done?.(false);
      this.queue.set(key, { key, run, done });
      void this.pump();
    });
  }

  /** ingress makes sure an Ingress of Vane's class publishes our address. */
  ingress(ing: Ingress): void {
    const ns = ing.metadata?.namespace ?? 'default';
    const name = ing.metadata?.name ?? '';
    const current = (ing as { status?: { loadBalancer?: { ingress?: unknown[] } } }).status?.loadBalancer?.ingress ?? [];
    if (JSON.stringify(current) === JSON.stringify(this.o.addresses)) return;
    this.enqueue(`ingress-status ${ns}/${name}`, async () => {
      const status = (ing as { status?: Record<string, unknown> }).status;
      const ops = fieldPatch('status', status, { ...(status ?? {}), loadBalancer: { ingress: this.o.addresses } }, ing.metadata?.resourceVersion);
      if (ops.length === 0) return;
      await this.kube.patchStatus(RESOURCES.Ingress, { namespace: ns, name }, ops, { fence: this.fence });
      this.o.logger.info({ ingress: `${ns}/${name}`, addresses: this.o.addresses }, 'Ingress status written');
    });
  }

  /** problems turns a compile status into Events: one per distinct reason and message. */
  problems(ing: Ingress, status: ObjectStatus | undefined): void {
    const problems = status?.problems ?? [];
    const errors = problems.filter((p) => p.severity === 'error');
    if (errors.length > 0) {
      this.event(ing, 'Warning', 'InvalidIngress', errors.map(formatProblem).join('; '));
      return;
    }
    const conflicts = problems.filter((p) => p.reason === 'HostConflict');
    if (conflicts.length > 0) this.event(ing, 'Warning', 'HostConflict', conflicts.map(formatProblem).join('; '));
    const warnings = problems.filter((p) => p.reason !== 'HostConflict');
    if (warnings.length > 0) this.event(ing, 'Warning', 'Warning', warnings.map(formatProblem).join('; '));
    if (conflicts.length === 0 && warnings.length === 0) this.event(ing, 'Normal', 'Synced', 'compiled and served by Vane');
  }

  /** event records a Kubernetes Event on an object, once per (object, reason, message). */
  event(obj: { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string } }, type: 'Normal' | 'Warning', reason: keyof typeof EVENT_REASONS, message: string): void {
    const ns = obj.metadata?.namespace ?? 'default';
    const name = obj.metadata?.name ?? '';
    const id = `${obj.kind}/${ns}/${name}/${reason}`;
    const text = message.slice(0, 1000);
    if (this.lastEvent.get(id) === text) return;
    this.lastEvent.set(id, text);
    if (reason === 'Synced' || reason === 'InvalidIngress') {
      for (const other of ['Synced', 'InvalidIngress']) if (other !== reason) this.lastEvent.delete(`${obj.kind}/${ns}/${name}/${other}`);
    }
    this.enqueue(`event ${id} ${text}`, async () => {
      const involved = { apiVersion: obj.apiVersion ?? '', kind: obj.kind ?? '', name, namespace: ns, ...(obj.metadata?.uid ? { uid: obj.metadata.uid } : {}) };
      await recordEvent(this.kube, involved, type, reason, text, this.o.component, { fence: this.fence });
    });
  }

  private enqueue(key: string, run: () => Promise<void>): void {
    if (this.closed) return;
    this.queue.set(key, { key, run });
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.size > 0 && !this.closed) {
        this.refill();
        if (this.tokens < 1) {
          const waitMs = Math.ceil((1 - this.tokens) * 1000 / this.o.writesPerSecond);
          this.timer = setTimeout(() => { this.timer = null; void this.pump(); }, waitMs);
          return;
        }
        const job = this.queue.values().next().value!;
        this.queue.delete(job.key);
        if (!this.o.isLeader()) {
          this.o.logger.debug({ job: job.key }, 'not the leader; write dropped');
          job.done?.(false);
          continue;
        }
        this.tokens -= 1;
        try {
          await job.run();
          this.writes++;
        } catch (err) {
          this.o.logger.warn({ job: job.key, err: (err as Error).message }, 'status write failed');
        }
        job.done?.(true);
      }
    } finally {
      this.pumping = false;
    }
  }

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(this.o.burst, this.tokens + ((now - this.lastRefill) / 1000) * this.o.writesPerSecond);
    this.lastRefill = now;
  }
}
