/**
 * Coalescer: the one rule for bursts of changes, used by the manifest watcher and the
 * operator's pipeline. As Contour does for watch events, the work runs once `quietMs` has
 * passed without another change, but never later than `maxHoldMs` after the first change of
 * a burst, so a steady trickle of edits cannot hold a version off for ever.
 */
import { VaneError } from '../core/index.ts';

export interface CoalesceOptions {
  /** Quiet time after the last change before the work runs. */
  quietMs: number;
  /** Longest a burst's first change waits, however busy the burst. */
  maxHoldMs: number;
  now?: () => number;
}

export const DEFAULT_COALESCE: Readonly<Required<Omit<CoalesceOptions, 'now'>>> = { quietMs: 100, maxHoldMs: 500 };

/** checkCoalesce throws on knobs that would make the rule meaningless, naming them. */
export function checkCoalesce(o: Pick<CoalesceOptions, 'quietMs' | 'maxHoldMs'>): void {
  if (!Number.isFinite(o.quietMs) || o.quietMs < 0) throw new VaneError('EOPTION', `quietMs must be a number ≥ 0, got ${o.quietMs}`);
  if (!Number.isFinite(o.maxHoldMs) || o.maxHoldMs < o.quietMs) throw new VaneError('EOPTION', `maxHoldMs must not be below quietMs (${o.quietMs}), got ${o.maxHoldMs}`);
}

export class Coalescer {
  private readonly quietMs: number;
  private readonly maxHoldMs: number;
  private readonly now: () => number;
  private readonly fire: (burstStartedAt: number) => void;
  private timer: NodeJS.Timeout | null = null;
  private since = 0;
  private closed = false;

  /** fire runs the work, told when the first change folded into it arrived. */
  constructor(options: Partial<CoalesceOptions>, fire: (burstStartedAt: number) => void) {
    this.quietMs = options.quietMs ?? DEFAULT_COALESCE.quietMs;
    this.maxHoldMs = options.maxHoldMs ?? DEFAULT_COALESCE.maxHoldMs;
    checkCoalesce({ quietMs: this.quietMs, maxHoldMs: this.maxHoldMs });
    this.now = options.now ?? Date.now;
    this.fire = fire;
  }

  /** changed notes one change: the work runs after the quiet time or the hold-off, whichever is first. */
  changed(): void {
    if (this.closed) return;
    const now = this.now();
    if (!this.since) this.since = now;
    if (this.timer) clearTimeout(this.timer);
    const holdLeft = this.maxHoldMs - (now - this.since);
    this.timer = setTimeout(() => this.fire(this.take()), Math.max(0, Math.min(this.quietMs, holdLeft)));
  }

  /** take cancels the pending run, for a caller doing the work now; returns when its burst began (0: none). */
  take(): number {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const since = this.since;
    this.since = 0;
    return since;
  }

  close(): void {
    this.closed = true;
    this.take();
  }
}
