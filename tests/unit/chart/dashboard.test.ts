/**
 * The Grafana dashboard (charts/vane/dashboards/vane.json) queries only metrics that Vane
 * really exports: every metric name in every PromQL expression must be registered somewhere in
 * proxy/, operator/ or webhook/ (histograms also as _bucket/_sum/_count).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DASHBOARD = join(ROOT, 'charts', 'vane', 'dashboards', 'vane.json');

/** exportedMetrics collects every quoted 'vane_…' name in the components' sources. */
function exportedMetrics(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (path.endsWith('.ts')) for (const m of readFileSync(path, 'utf8').matchAll(/['"`](vane_[a-z0-9_]+)['"`]/g)) names.add(m[1]!);
    }
  };
  for (const part of ['proxy', 'operator', 'webhook']) walk(join(ROOT, part));
  return names;
}

const PROMQL_WORDS = new Set([
  'sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group',
  'rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'histogram_quantile', 'time', 'vector', 'scalar', 'abs',
  'clamp_min', 'clamp_max', 'round', 'label_replace', 'label_values', 'by', 'without', 'on', 'ignoring', 'group_left',
  'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'absent', 'sort', 'sort_desc', 'max_over_time', 'min_over_time',
  'avg_over_time', 'sum_over_time', 'changes', 'resets',
]);

/** metricNames returns the identifiers of an expression that are neither PromQL words, label names nor strings. */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, ' ')                                         // string literals
    .replace(/\{[^}]*\}/g, ' ')                                                  // label matchers
    .replace(/\[[^\]]*\]/g, ' ')                                                 // range selectors
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\$\w+/g, ' ');                                                     // dashboard variables
  const ids = stripped.match(/[A-Za-z_:][A-Za-z0-9_:]*/g) ?? [];
  return [...new Set(ids.filter((id) => !PROMQL_WORDS.has(id)))];
}

function unknownMetrics(expr: string, exported: Set<string>): string[] {
  const known = (name: string) => exported.has(name) || [...['_bucket', '_sum', '_count']].some((s) => name.endsWith(s) && exported.has(name.slice(0, -s.length)));
  return metricNames(expr).filter((n) => !known(n));
}

/** queries lists every PromQL text in the dashboard: panel targets' expr and templating queries. */
function queries(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const n of node) queries(n, out);
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if ((k === 'expr' || k === 'definition') && typeof v === 'string') out.push(v);
      else if (k === 'query' && typeof v === 'string' && v.includes('(')) out.push(v);
      else queries(v, out);
    }
  }
  return out;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; panels: unknown[]; templating: unknown };
const exported = exportedMetrics();

test('the components export the metrics the dashboard is built on', () => {
  for (const m of ['vane_proxy_requests_total', 'vane_proxy_request_duration_seconds', 'vane_operator_leader', 'vane_operator_propagation_seconds', 'vane_webhook_reviews_total']) {
    assert.ok(exported.has(m), `${m} is registered`);
  }
});

test('every metric the dashboard queries is one Vane exports', () => {
  const exprs = queries(dashboard);
  assert.ok(exprs.length >= 20, `the dashboard has queries (${exprs.length})`);
  const used = new Set<string>();
  for (const expr of exprs) {
    const names = metricNames(expr.replace(/^label_values\(([^,]+),.*$/, '$1'));
    assert.ok(names.length > 0, `"${expr}" queries a metric`);
    assert.deepEqual(unknownMetrics(expr.replace(/^label_values\(([^,]+),.*$/, '$1'), exported), [], `"${expr}"`);
    for (const n of names) used.add(n.replace(/_(bucket|sum|count)$/, ''));
  }
  for (const prefix of ['vane_proxy_', 'vane_operator_', 'vane_webhook_']) {
    assert.ok([...used].some((n) => n.startsWith(prefix)), `the dashboard shows ${prefix}* metrics`);
  }
});

test('the check catches a metric nobody exports, and does not mistake labels or functions for metrics', () => {
  assert.deepEqual(unknownMetrics('sum by (code) (rate(vane_proxy_requests_totl{namespace=~"$namespace", code="5xx"}[$__rate_interval]))', exported), ['vane_proxy_requests_totl']);
  assert.deepEqual(unknownMetrics('histogram_quantile(0.99, sum by (le) (rate(vane_proxy_request_duration_seconds_bucket[5m])))', exported), []);
  assert.deepEqual(unknownMetrics('nginx_ingress_controller_requests', exported), ['nginx_ingress_controller_requests']);
});

test('every panel has a unique id and a data source; the dashboard has a stable uid', () => {
  assert.equal(dashboard.uid, 'vane-overview');
  const panels = dashboard.panels as { id: number; type: string; datasource?: unknown }[];
  assert.equal(new Set(panels.map((p) => p.id)).size, panels.length);
  for (const p of panels.filter((x) => x.type !== 'row')) assert.ok(p.datasource, `panel ${p.id} has a data source`);
});
