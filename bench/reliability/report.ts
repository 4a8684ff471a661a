/** The reliability suite's results and the table the runner and the test print. */
import type { LoadStats } from './load.ts';

export interface Result {
  /** The issue's scenario number; a scenario in parts has a letter per part (3a, 3b). */
  id: string;
  name: string;
  requests: number;
  durationMs: number;
  faults: string;
  /** Requests that failed or were answered wrongly (a check said why). */
  failed: number;
  /** failedDetail splits `failed` when some failures are the scenario's expected remainder. */
  failedDetail?: string;
  /** What breaks the scenario's promise; empty when it holds. */
  problems: string[];
  /** What the table cannot hold: timings, what remains, peaks. */
  notes: string[];
}

export function verdict(r: Result): 'pass' | 'FAIL' {
  return r.problems.length === 0 ? 'pass' : 'FAIL';
}

/** failureProblems turns a load's failures into problems, with the classes and first examples. */
export function failureProblems(what: string, stats: LoadStats): string[] {
  if (stats.failed === 0) return [];
  return [`${what}: ${stats.failed} of ${stats.requests} requests failed ${JSON.stringify(stats.failures)}; first: ${stats.examples.join(' | ')}`];
}

export function rate(requests: number, durationMs: number): string {
  return `${(requests / Math.max(durationMs / 1000, 0.001)).toFixed(0)}/s`;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** table renders the results as a fixed-width table, notes and problems below it. */
export function table(results: Result[]): string {
  const rows = [
    ['#', 'scenario', 'load held (requests, rate, time)', 'faults injected', 'failed', 'verdict'],
    ...results.map((r) => [r.id, r.name, `${r.requests}, ${rate(r.requests, r.durationMs)}, ${seconds(r.durationMs)}`, r.faults, `${r.failed}${r.failedDetail ? ` (${r.failedDetail})` : ''}`, verdict(r)]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]): string => `| ${row.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
  const out = [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)];
  const total = results.reduce((s, r) => s + r.durationMs, 0);
  out.push('', `load held in all: ${seconds(total)} (${(total / 60_000).toFixed(1)} min), ${results.reduce((s, r) => s + r.requests, 0)} requests`);
  for (const r of results) {
    for (const n of r.notes) out.push(`${r.id}. ${n}`);
    for (const p of r.problems) out.push(`${r.id}. PROBLEM: ${p}`);
  }
  return out.join('\n');
}
