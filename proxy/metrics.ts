/**
 * Metrics. The request path only bumps numbers in preallocated arrays (no label hashing,
 * no allocation); prom-client reads them at scrape time through metric objects whose
 * get() builds the values. Workers send their metrics as prom-client JSON to the primary,
 * which merges them with AggregatorRegistry.aggregate — counters and histograms summed —
 * and keeps the last figures of exited workers so that counters never go backwards.
 */
import { AggregatorRegistry, Registry, collectDefaultMetrics } from 'prom-client';

/** Upper bounds (seconds) of the request latency histogram buckets; fixed, so histograms merge. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

type Labels = Record<string, string>;

/** Protocol is the one a client spoke, as request metrics label it. */
export type Protocol = 'http/1.1' | 'h2';
type Aggregator = 'sum' | 'max' | 'min' | 'first' | 'omit';
interface MetricValueJson { labels: Labels; value: number; metricName?: string }
type Values = MetricValueJson[];

/** MetricJson is prom-client's getMetricsAsJSON() form of one metric, what workers send. */
export interface MetricJson {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: MetricValueJson[];
}


/** RequestStats holds one label set's request counts by status class and its latency histogram. */
export class RequestStats {
  readonly labels: Labels;
  /** Index 0: other, 1–5: 1xx–5xx. */
  readonly byClass = new Float64Array(6);
  readonly buckets = new Float64Array(LATENCY_BUCKETS.length);
  count = 0;
  sumSeconds = 0;

  constructor(labels: Labels) { this.labels = labels; }

  record(status: number, seconds: number): void {
    const c = (status / 100) | 0;
    this.byClass[c >= 1 && c <= 5 ? c : 0]!++;
    this.count++;
    this.sumSeconds += seconds;
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
      if (seconds <= LATENCY_BUCKETS[i]!) { this.buckets[i]!++; break; }
    }
  }
}

const CLASS_NAMES = ['other', '1xx', '2xx', '3xx', '4xx', '5xx'];

class Metric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator: Aggregator;
  private readonly read: () => Values;
  constructor(name: string, help: string, type: Metric['type'], aggregator: Aggregator, read: () => Values) {
    this.name = name; this.help = help; this.type = type; this.aggregator = aggregator; this.read = read;
  }
  get(): MetricJson {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.read() };
  }
}

/** WorkerMetrics is one worker's numbers and the registry that exposes them. */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly requests = new Map<string, RequestStats>();
  private readonly connectErrors = new Map<string, number>();
  private readonly ejections = new Map<string, number>();
  private readonly retries = new Map<string, number>();
  private readonly queueRejections = new Map<string, number>();
  readonly activeConnections = { http: 0, https: 0, passthrough: 0, upgraded: 0 };
  /** Client connections moved from the fast path to node:http (or node:http2 for h2c), by reason. */
  readonly handoffs = { request: 0, 'tls-backend': 0, h2c: 0 };
  /** HTTP/2 connections closed (GOAWAY ENHANCE_YOUR_CALM) for resetting too many streams (CVE-2023-44487). */
  http2RapidResetCloses = 0;
  /** The plain-HTTP listener reads into a shared buffer (listen/shared-reads.ts). */
  sharedReads = false;
  tlsContextsBuilt = 0;
  /** Requests waiting for an upstream connection now, shared with the worker's pools. */
  readonly upstreamWaiting = { count: 0 };
  /** Client connections over --max-connections-per-client. */
  clientLimitRefusals = 0;
  routingGeneration = 0;
  routingAppliedAtMs = 0;
  routingResources = 0;

  constructor() {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'vane_proxy_' });
    r.registerMetric(new Metric('vane_proxy_requests_total', 'Requests by Ingress, service, canary side, client protocol and status class.', 'counter', 'sum', () => {
      const out: Values = [];
      for (const s of this.requests.values()) {
        for (let c = 0; c < 6; c++) if (s.byClass[c]! > 0) out.push({ labels: { ...s.labels, code: CLASS_NAMES[c]! }, value: s.byClass[c]! });
      }
      return out;
    }) as never);
    r.registerMetric(new Metric('vane_proxy_request_duration_seconds', 'Time from request head to the end of the response.', 'histogram', 'sum', () => {
      const out: Values = [];
      for (const s of this.requests.values()) {
        let cumulative = 0;
        for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
          cumulative += s.buckets[i]!;
          out.push({ labels: { ...s.labels, le: String(LATENCY_BUCKETS[i]) }, value: cumulative, metricName: 'vane_proxy_request_duration_seconds_bucket' });
        }
        out.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: 'vane_proxy_request_duration_seconds_bucket' });
        out.push({ labels: s.labels, value: s.sumSeconds, metricName: 'vane_proxy_request_duration_seconds_sum' });
        out.push({ labels: s.labels, value: s.count, metricName: 'vane_proxy_request_duration_seconds_count' });
      }
      return out;
    }) as never);
    const byService = (map: Map<string, number>) => () => [...map].map(([service, value]) => ({ labels: { service }, value }));
    r.registerMetric(new Metric('vane_proxy_upstream_connect_errors_total', 'Failed connections to upstream endpoints, by service.', 'counter', 'sum', byService(this.connectErrors)) as never);
    r.registerMetric(new Metric('vane_proxy_outlier_ejections_total', 'Endpoints ejected after consecutive connect failures, by service.', 'counter', 'sum', byService(this.ejections)) as never);
    r.registerMetric(new Metric('vane_proxy_upstream_retries_total', 'Idempotent requests retried on another endpoint, by service.', 'counter', 'sum', byService(this.retries)) as never);
    r.registerMetric(new Metric('vane_proxy_upstream_queue_rejections_total', 'Requests answered 503 because the endpoint\'s queue for a connection was full or they waited too long, by service.', 'counter', 'sum', byService(this.queueRejections)) as never);
    r.registerMetric(new Metric('vane_proxy_upstream_waiting_requests', 'Requests waiting for a connection to an upstream endpoint (at most --upstream-queue per endpoint once its connections are taken).', 'gauge', 'sum',
      () => [{ labels: {}, value: this.upstreamWaiting.count }]) as never);
    r.registerMetric(new Metric('vane_proxy_client_limit_refusals_total', 'Client connections refused (503) over --max-connections-per-client.', 'counter', 'sum',
      () => [{ labels: {}, value: this.clientLimitRefusals }]) as never);
    r.registerMetric(new Metric('vane_proxy_active_connections', 'Open client connections by listener.', 'gauge', 'sum',
      () => Object.entries(this.activeConnections).map(([listener, value]) => ({ labels: { listener }, value }))) as never);
    r.registerMetric(new Metric('vane_proxy_fast_path_handoffs_total', 'Client connections moved from the fast path to node:http: a request it does not take, or a backend spoken to over TLS; h2c: to node:http2, an HTTP/2 preface with --h2c.', 'counter', 'sum',
      () => Object.entries(this.handoffs).map(([reason, value]) => ({ labels: { reason }, value }))) as never);
    r.registerMetric(new Metric('vane_proxy_fast_path_shared_reads_workers', 'Workers whose plain-HTTP listener reads into one shared buffer (0 if Node lacks the hook).', 'gauge', 'sum',
      () => [{ labels: {}, value: this.sharedReads ? 1 : 0 }]) as never);
    r.registerMetric(new Metric('vane_proxy_http2_rapid_reset_closes_total', 'HTTP/2 connections closed with GOAWAY (ENHANCE_YOUR_CALM) because their client reset too many streams (CVE-2023-44487).', 'counter', 'sum',
      () => [{ labels: {}, value: this.http2RapidResetCloses }]) as never);
    r.registerMetric(new Metric('vane_proxy_tls_contexts_built_total', 'TLS secure contexts built (once per certificate version, never per handshake).', 'counter', 'sum',
      () => [{ labels: {}, value: this.tlsContextsBuilt }]) as never);
    r.registerMetric(new Metric('vane_proxy_routing_generation', 'Generation of the routing resources being served (lowest over workers).', 'gauge', 'min',
      () => [{ labels: {}, value: this.routingGeneration }]) as never);
    r.registerMetric(new Metric('vane_proxy_routing_age_seconds', 'Seconds since the routing being served was applied (oldest over workers).', 'gauge', 'max',
      () => [{ labels: {}, value: this.routingAppliedAtMs ? (Date.now() - this.routingAppliedAtMs) / 1000 : 0 }]) as never);
    r.registerMetric(new Metric('vane_proxy_routing_resources', 'Routing resources held.', 'gauge', 'max',
      () => [{ labels: {}, value: this.routingResources }]) as never);
  }

  /**
   * requestStats finds (or creates) the stats of one label set; callers cache the result per route.
   * `protocol` is the client's: `http/1.1` or `h2` (ALPN's names; h2c counts as h2).
   */
  requestStats(ingress: string, service: string, canary: string, path: string | null, protocol: Protocol = 'http/1.1'): RequestStats {
    const key = path === null ? `${ingress}\0${service}\0${canary}\0${protocol}` : `${ingress}\0${service}\0${canary}\0${protocol}\0${path}`;
    let s = this.requests.get(key);
    if (!s) {
      s = new RequestStats(path === null ? { ingress, service, canary, protocol } : { ingress, service, canary, protocol, path });
      this.requests.set(key, s);
    }
    return s;
  }

  connectError(service: string): void { this.connectErrors.set(service, (this.connectErrors.get(service) ?? 0) + 1); }
  ejection(service: string): void { this.ejections.set(service, (this.ejections.get(service) ?? 0) + 1); }
  retry(service: string): void { this.retries.set(service, (this.retries.get(service) ?? 0) + 1); }
  queueRejected(service: string): void { this.queueRejections.set(service, (this.queueRejections.get(service) ?? 0) + 1); }

  async snapshot(): Promise<MetricsSnapshot> {
    return (await this.registry.getMetricsAsJSON()) as unknown as MetricsSnapshot;
  }
}

export type MetricsSnapshot = MetricJson[];

/**
 * ClusterMetrics merges worker snapshots. Workers that exited keep contributing their last
 * counters and histograms (gauges are dropped), so totals stay monotonic across restarts.
 */
export class ClusterMetrics {
  private retired: MetricsSnapshot = [];

  /** retiredSnapshot is what exited workers had counted, kept so totals never go backwards. */
  get retiredSnapshot(): MetricsSnapshot { return this.retired; }

  retire(last: MetricsSnapshot | undefined): void {
    if (!last) return;
    const kept = last.filter((m) => m.type === 'counter' || m.type === 'histogram');
    this.retired = this.retired.length ? mergeSnapshots([this.retired, kept]) : kept;
  }

  async render(workers: MetricsSnapshot[], own: Registry): Promise<{ text: string; contentType: string }> {
    const all = [...workers, this.retired, (await own.getMetricsAsJSON()) as unknown as MetricsSnapshot].filter((s) => s.length > 0);
    const merged = AggregatorRegistry.aggregate(all as never);
    return { text: await merged.metrics(), contentType: merged.contentType };
  }
}

function mergeSnapshots(list: MetricsSnapshot[]): MetricsSnapshot {
  const byName = new Map<string, MetricsSnapshot>();
  for (const snap of list) for (const m of snap) { const l = byName.get(m.name) ?? []; l.push(m); byName.set(m.name, l); }
  const out: MetricsSnapshot = [];
  for (const metrics of byName.values()) {
    const sums = new Map<string, MetricValueJson>();
    for (const m of metrics) {
      for (const v of m.values) {
        const key = `${v.metricName ?? ''}|${JSON.stringify(Object.entries(v.labels).sort())}`;
        const prev = sums.get(key);
        if (prev) prev.value += v.value; else sums.set(key, { ...v });
      }
    }
    out.push({ ...metrics[0]!, values: [...sums.values()] });
  }
  return out;
}
