/**
 * The fleet as the leader sees it: which proxies are expected to serve (ready proxy pods,
 * or the configured names in file mode — not merely the connected ones), which version each
 * ACKed, and the mergeable statistics they report. Convergence means: every expected proxy
 * ACKed the current version.
 */
import { emptySideStats, mergeSideStats, type BackendStats, type SideStats, type Version } from '../core/index.ts';

export interface Convergence {
  generation: number;
  root: string;
  expected: number;
  converged: number;
  /** Expected proxies that have not ACKed the current version, sorted. */
  stragglers: string[];
}

interface StatsSlot { second: number; byKey: Map<string, SideStats> }

export class Fleet {
  private expected = new Set<string>();
  private readonly acked = new Map<string, Version>();
  private readonly lastSeq = new Map<string, string>();
  private readonly slots: StatsSlot[] = [];
  private readonly retainSeconds: number;

  constructor(retainSeconds = 900) {
    this.retainSeconds = retainSeconds;
  }

  setExpected(names: Iterable<string>): void { this.expected = new Set(names); }
  get expectedNames(): string[] { return [...this.expected].sort(); }

  ack(proxy: string, version: Version): void { this.acked.set(proxy, version); }
  forget(proxy: string): void { this.acked.delete(proxy); }
  ackedBy(proxy: string): Version | null { return this.acked.get(proxy) ?? null; }

  convergence(current: Version): Convergence {
    const stragglers: string[] = [];
    for (const name of this.expected) {
      const v = this.acked.get(name);
      if (!v || v.root !== current.root || v.generation < current.generation) stragglers.push(name);
    }
    stragglers.sort();
    return { generation: current.generation, root: current.root, expected: this.expected.size, converged: this.expected.size - stragglers.length, stragglers };
  }

  /**
   * addStats folds one report into per-second slots, keyed by `backend` and by
   * `canary namespace/name side`. A report repeated (same proxy process and seq) is
   * counted once; reports carry counts since the previous report, so a proxy that
   * restarts mid-interval simply starts a new series.
   */
  addStats(proxy: string, report: { seq: number; startedAt: number; backends: Record<string, BackendStats> }, nowMs: number): void {
    const id = `${report.startedAt}:${report.seq}`;
    const seqKey = `${proxy}@${report.startedAt}`;
    if (this.lastSeq.get(seqKey) === id) return;
    this.lastSeq.set(seqKey, id);
    const second = Math.floor(nowMs / 1000);
    let slot = this.slots[this.slots.length - 1];
    if (!slot || slot.second !== second) {
      slot = { second, byKey: new Map() };
      this.slots.push(slot);
      while (this.slots.length > 0 && this.slots[0]!.second < second - this.retainSeconds) this.slots.shift();
    }
    for (const [key, b] of Object.entries(report.backends)) {
      const keys = [`backend ${b.backend ?? key}`];
      if (b.canary && b.side) keys.push(`canary ${b.canary} ${b.side}`);
      for (const key of keys) slot.byKey.set(key, mergeSideStats(slot.byKey.get(key) ?? emptySideStats(), b.stats));
    }
  }

  /** statsSince merges every report received at or after sinceMs for one canary side. */
  canaryStats(canary: string, side: 'stable' | 'canary', sinceMs: number): SideStats {
    return this.merged(`canary ${canary} ${side}`, sinceMs);
  }

  backendStats(backend: string, sinceMs: number): SideStats {
    return this.merged(`backend ${backend}`, sinceMs);
  }

  private merged(key: string, sinceMs: number): SideStats {
    const since = Math.floor(sinceMs / 1000);
    let total = emptySideStats();
    for (const slot of this.slots) {
      if (slot.second < since) continue;
      const s = slot.byKey.get(key);
      if (s) total = mergeSideStats(total, s);
    }
    return total;
  }
}
