/**
 * The coarse idle clock of the fast path's sockets: a limit never fires early, fires within two
 * ticks after it, activity postpones it, and the sweep stops when nothing is watched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IdleSweeper, type IdleClock, type IdleWatched } from '../../../proxy/idle.ts';

const TICK = 100;

/** A clock the test moves by hand; `advance` runs the sweeps that would have run meanwhile. */
class ManualClock implements IdleClock {
  t = 1_000;
  private sweep: (() => void) | null = null;
  private next = 0;
  now(): number { return this.t; }
  every(ms: number, sweep: () => void): () => void {
    this.sweep = sweep;
    this.next = this.t + ms;
    return () => { this.sweep = null; };
  }
  get running(): boolean { return this.sweep !== null; }
  advance(ms: number, step = 1): void {
    const end = this.t + ms;
    while (this.t < end) {
      this.t = Math.min(end, this.t + step);
      while (this.sweep !== null && this.t >= this.next) { this.next += TICK; this.sweep(); }
    }
  }
}

class Item implements IdleWatched {
  active = false;
  idleLimitMs = 0;
  idleDeadline = 0;
  firedAt = -1;
  private readonly clock: ManualClock;
  constructor(clock: ManualClock) { this.clock = clock; }
  idleTimedOut(): void { this.firedAt = this.clock.t; }
}

test('a limit fires after it has passed, never before, and at most two ticks late', () => {
  for (const offset of [0, 1, 37, 99]) {
    for (const limit of [50, 300, 1_000]) {
      const clock = new ManualClock();
      const sweeper = new IdleSweeper(TICK, clock);
      const anchor = new Item(clock);
      sweeper.watch(anchor, 60_000);
      clock.advance(offset);
      const item = new Item(clock);
      const start = clock.t;
      sweeper.watch(item, limit);
      clock.advance(limit + 3 * TICK);
      assert.ok(item.firedAt >= start + limit, `limit ${limit} watched ${offset} ms into a tick fired ${item.firedAt - start} ms after`);
      assert.ok(item.firedAt <= start + limit + 2 * TICK, `limit ${limit} watched ${offset} ms into a tick fired ${item.firedAt - start} ms after`);
    }
  }
});

test('activity postpones the limit; silence afterwards still ends it', () => {
  const clock = new ManualClock();
  const sweeper = new IdleSweeper(TICK, clock);
  const item = new Item(clock);
  sweeper.watch(item, 300);
  for (let i = 0; i < 20; i++) { clock.advance(150); item.active = true; }
  assert.equal(item.firedAt, -1, 'active every 150 ms, under a 300 ms limit');
  const last = clock.t;
  clock.advance(1_000);
  assert.ok(item.firedAt >= last + 300 && item.firedAt <= last + 300 + 2 * TICK, `fired ${item.firedAt - last} ms after the last activity`);
});

test('watching again restarts the limit with the new value; unwatch cancels it', () => {
  const clock = new ManualClock();
  const sweeper = new IdleSweeper(TICK, clock);
  const item = new Item(clock);
  sweeper.watch(item, 200);
  clock.advance(150);
  sweeper.watch(item, 5_000);
  clock.advance(1_000);
  assert.equal(item.firedAt, -1, 'the longer limit replaced the short one');
  sweeper.unwatch(item);
  clock.advance(10_000);
  assert.equal(item.firedAt, -1);
});

test('the sweep runs only while something is watched', () => {
  const clock = new ManualClock();
  const sweeper = new IdleSweeper(TICK, clock);
  assert.equal(clock.running, false);
  const a = new Item(clock);
  const b = new Item(clock);
  sweeper.watch(a, 100);
  sweeper.watch(b, 400);
  assert.equal(clock.running, true);
  clock.advance(350);
  assert.notEqual(a.firedAt, -1);
  assert.equal(b.firedAt, -1);
  assert.equal(sweeper.size, 1);
  clock.advance(500);
  assert.notEqual(b.firedAt, -1);
  assert.equal(sweeper.size, 0);
  assert.equal(clock.running, false, 'stopped once nothing was left');
  const c = new Item(clock);
  sweeper.watch(c, 100);
  assert.equal(clock.running, true, 'started again');
  clock.advance(400);
  assert.notEqual(c.firedAt, -1);
});

test('an item is watched again after it timed out or was unwatched (keep-alive connections come back)', () => {
  const clock = new ManualClock();
  const sweeper = new IdleSweeper(TICK, clock);
  const item = new Item(clock);
  sweeper.watch(item, 100);
  sweeper.watch(item, 100);
  assert.equal(sweeper.size, 1, 'watching twice is one entry');
  clock.advance(400);
  assert.notEqual(item.firedAt, -1);
  assert.equal(sweeper.size, 0);
  item.firedAt = -1;
  sweeper.watch(item, 100);
  assert.equal(sweeper.size, 1, 'back after timing out');
  clock.advance(400);
  assert.notEqual(item.firedAt, -1, 'and its new limit fires');
  item.firedAt = -1;
  sweeper.watch(item, 100);
  sweeper.unwatch(item);
  sweeper.watch(item, 100);
  assert.equal(sweeper.size, 1, 'back after unwatch');
  clock.advance(400);
  assert.notEqual(item.firedAt, -1);
});
