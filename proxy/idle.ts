/**
 * Idle timeouts for the fast path's sockets on one coarse clock instead of a socket timer each.
 * Node re-arms a socket's timer on every read and write (a timer-list move), which showed up
 * in profiles at ~3 % of a worker's CPU; here an owner marks activity with a field store and a
 * sweep every `tickMs` turns marks into new deadlines. A limit never fires early and fires at
 * most two ticks late.
 */
import { performance } from 'node:perf_hooks';

/** IdleWatched is an owner of a socket with an idle limit. */
export interface IdleWatched {
  /** Set by the owner on activity (a read, a write); the sweep clears it. */
  active: boolean;
  /** Owned by the sweeper; 0 (the initial value) while not watched. */
  idleLimitMs: number;
  idleDeadline: number;
  /** Nothing happened for the limit; the item is no longer watched. */
  idleTimedOut(): void;
}

export interface IdleClock {
  now(): number;
  /** every runs `sweep` each `ms` without keeping the process alive; the result stops it. */
  every(ms: number, sweep: () => void): () => void;
}

const realClock: IdleClock = {
  now: () => performance.now(),
  every(ms, sweep) {
    const timer = setInterval(sweep, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};

export class IdleSweeper {
  readonly tickMs: number;
  private readonly clock: IdleClock;
  private readonly watched = new Set<IdleWatched>();
  private stop: (() => void) | null = null;
  /** Time of the last sweep (or of the start). */
  private now = 0;

  constructor(tickMs: number, clock: IdleClock = realClock) {
    this.tickMs = tickMs;
    this.clock = clock;
  }

  /** watch starts (or restarts) `item`'s idle limit, counted from now. */
  watch(item: IdleWatched, limitMs: number): void {
    if (this.stop === null) {
      this.now = this.clock.now();
      this.stop = this.clock.every(this.tickMs, () => this.sweep());
    }
    // Connections are re-watched after every request: the set is touched only when they join it.
    if (item.idleLimitMs === 0) this.watched.add(item);
    item.idleLimitMs = limitMs;
    // Counted from the last sweep plus a tick, so never early wherever in the tick this runs,
    // and without reading the clock on the request path.
    item.idleDeadline = this.now + this.tickMs + limitMs;
    item.active = false;
  }

  unwatch(item: IdleWatched): void {
    item.idleLimitMs = 0;
    if (this.watched.delete(item) && this.watched.size === 0) this.halt();
  }

  get size(): number { return this.watched.size; }

  sweep(): void {
    const now = this.clock.now();
    this.now = now;
    for (const item of this.watched) {
      if (item.active) {
        item.active = false;
        item.idleDeadline = now + item.idleLimitMs;
      } else if (now >= item.idleDeadline) {
        this.watched.delete(item);
        item.idleLimitMs = 0;
        item.idleTimedOut();
      }
    }
    if (this.watched.size === 0) this.halt();
  }

  private halt(): void {
    this.stop?.();
    this.stop = null;
  }
}

/** IDLE_TICK_MS: timeouts fire up to 200 ms late, which no timeout of seconds notices. */
export const IDLE_TICK_MS = 100;

/** idleSweeper is the process's one clock for fast-path sockets. */
export const idleSweeper = new IdleSweeper(IDLE_TICK_MS);
