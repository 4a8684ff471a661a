/**
 * Fleet statistics for the operator (docs/stream-protocol.md, `stats`): every few seconds
 * the primary turns its merged request metrics into counts since the previous report —
 * requests, failures (5xx, which includes the proxy's own 502/503/504 and connect
 * failures) and latency histogram buckets — per Ingress, backend and canary side. Canary
 * sides carry the Canary's key, read from the routing being served.
 */
import { STATS_BUCKETS_MS, type BackendStats, type ResourceMap } from '../../core/index.ts';
import { LATENCY_BUCKETS, type MetricsSnapshot } from '../metrics.ts';

interface Cumulative { ingress: string; backend: string; side: string; requests: number; failures: number; buckets: number[] }

if (LATENCY_BUCKETS.length !== STATS_BUCKETS_MS.length || LATENCY_BUCKETS.some((s, i) => Math.abs(s * 1000 - STATS_BUCKETS_MS[i]!) > 1e-9)) {
  throw new Error('proxy latency buckets and stream statistics buckets must be the same');
}

function cumulative(snapshots: MetricsSnapshot[]): Map<string, Cumulative> {
  const out = new Map<string, Cumulative>();
  const entry = (labels: Record<string, string>): Cumulative | null => {
    if (!labels.service) return null;
    const key = `${labels.ingress}\0${labels.service}\0${labels.canary}`;
    let e = out.get(key);
    if (!e) {
      e = { ingress: labels.ingress ?? '', backend: `backend/${labels.service}`, side: labels.canary ?? 'none', requests: 0, failures: 0, buckets: new Array<number>(STATS_BUCKETS_MS.length + 1).fill(0) };
      out.set(key, e);
    }
    return e;
  };
  for (const snapshot of snapshots) {
    for (const metric of snapshot) {
      if (metric.name === 'vane_proxy_requests_total') {
        for (const v of metric.values) {
          const e = entry(v.labels);
          if (!e) continue;
          e.requests += v.value;
          if (v.labels.code === '5xx') e.failures += v.value;
        }
      } else if (metric.name === 'vane_proxy_request_duration_seconds') {
        for (const v of metric.values) {
          if (v.metricName !== 'vane_proxy_request_duration_seconds_bucket') continue;
          const e = entry(v.labels);
          if (!e) continue;
          const le = v.labels.le === '+Inf' ? STATS_BUCKETS_MS.length : LATENCY_BUCKETS.indexOf(Number(v.labels.le));
          if (le >= 0) e.buckets[le]! += v.value;
        }
      }
    }
  }
  for (const e of out.values()) {
    // Prometheus buckets are cumulative; the stream carries counts per bucket.
    for (let i = e.buckets.length - 1; i > 0; i--) e.buckets[i] = e.buckets[i]! - e.buckets[i - 1]!;
  }
  return out;
}

function canaryKeys(resources: ResourceMap | null): Map<string, string> {
  const keys = new Map<string, string>();
  if (!resources) return keys;
  for (const r of resources.values()) {
    if (r.resource.type !== 'vhost') continue;
    for (const route of r.resource.spec.routes) {
      if (!route.canary) continue;
      keys.set(`${route.ingress}\0${route.backend}\0stable`, route.canary.canary);
      keys.set(`${route.ingress}\0${route.canary.backend}\0canary`, route.canary.canary);
    }
  }
  return keys;
}

/** StatsReporter remembers the last totals and reports what happened since. */
export class StatsReporter {
  private previous = new Map<string, Cumulative>();

  take(snapshots: MetricsSnapshot[], resources: ResourceMap | null): Record<string, BackendStats> {
    const now = cumulative(snapshots);
    const canaries = canaryKeys(resources);
    const report: Record<string, BackendStats> = {};
    for (const [key, e] of now) {
      const before = this.previous.get(key);
      const requests = e.requests - (before?.requests ?? 0);
      if (requests <= 0) continue;
      const failures = Math.max(0, Math.min(requests, e.failures - (before?.failures ?? 0)));
      const latency = e.buckets.map((n, i) => Math.max(0, n - (before?.buckets[i] ?? 0)));
      const canary = e.side === 'none' ? undefined : canaries.get(`${e.ingress}\0${e.backend}\0${e.side}`);
      report[`${e.backend}|${e.ingress}|${e.side}`] = {
        backend: e.backend,
        ...(canary ? { canary, side: e.side as 'stable' | 'canary' } : {}),
        stats: { requests, failures, latency },
      };
    }
    this.previous = now;
    return report;
  }
}
