/**
 * The per-Canary fragment: the Canary's spec validated on its own, and the split it asks
 * compile() to attach. The effective weight comes from status (written by the leader's
 * canary controller) so that every operator replica compiles the same routes.
 *
 * The checks here say what crds/canaries.vane.dev.yaml says (schema and CEL rules), with the
 * same field paths, so that `vane validate`, the admission webhook and the API server agree;
 * tests/unit/canary/crd-types.test.ts holds them to it. Only RE2 compilation of the header
 * regex is beyond what the CRD can express.
 */
import type { Canary, CanaryAnalysis, CanarySpec } from './objects.ts';
import { namespaceOf } from './objects.ts';
import { CANARY_DEFAULTS, PROMOTION_STRATEGIES, WEBHOOK_TYPES } from './canary-types.gen.ts';
import type { HeaderRule } from './resources.ts';
import { compileUserRegex } from './regex.ts';
import { parseDurationMs } from './units.ts';
import { error, warning, type Problem } from './problems.ts';

export { PROMOTION_STRATEGIES, WEBHOOK_TYPES };
export const MIN_ANALYSIS_INTERVAL_MS = 10_000;
export const MAX_ANALYSIS_INTERVAL_MS = 86_400_000;
export const MIN_WEBHOOK_TIMEOUT_MS = 1_000;
export const MAX_WEBHOOK_TIMEOUT_MS = 60_000;
export const MAX_STEPS = 20;
export const MAX_METRICS = 16;
export const MAX_WEBHOOKS = 16;
export const MAX_THRESHOLD = 1000;
export const MAX_MIN_REQUESTS = 1_000_000_000;
export const BUILT_IN_METRICS = ['success-rate', 'latency-p50', 'latency-p90', 'latency-p99'] as const;

/** Bounds shared with the CRD's schema; the drift test compares them. */
export const CANARY_LIMITS = {
  intervalMs: [MIN_ANALYSIS_INTERVAL_MS, MAX_ANALYSIS_INTERVAL_MS],
  webhookTimeoutMs: [MIN_WEBHOOK_TIMEOUT_MS, MAX_WEBHOOK_TIMEOUT_MS],
  stepWeights: MAX_STEPS,
  metrics: MAX_METRICS,
  webhooks: MAX_WEBHOOKS,
  threshold: MAX_THRESHOLD,
  minRequests: MAX_MIN_REQUESTS,
} as const;

/** Patterns shared with the CRD's schema, by field path; the drift test compares them. */
export const CANARY_PATTERNS = {
  dnsLabel: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  dnsSubdomain: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
  httpToken: "^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$",
  duration: '^([0-9]{1,6}(\\.[0-9]{1,6})?(ms|s|m|h)){1,4}$',
  url: '^https?://[^\\s/]+',
} as const;

const DNS_LABEL = new RegExp(CANARY_PATTERNS.dnsLabel);
const DNS_SUBDOMAIN = new RegExp(CANARY_PATTERNS.dnsSubdomain);
const HTTP_TOKEN = new RegExp(CANARY_PATTERNS.httpToken);
const DURATION = new RegExp(CANARY_PATTERNS.duration);
const URL_PATTERN = new RegExp(CANARY_PATTERNS.url);

export interface CanaryFragment {
  key: string;
  namespace: string;
  name: string;
  created: string;
  ingress: string;
  service: string;
  canaryService: string;
  /** Port of the canary Service; null means: the same port the stable route uses. */
  canaryPort: number | string | null;
  /** Effective weight: status.weight when the controller wrote one; else spec.traffic.weight in manual mode. */
  weight: number;
  header?: HeaderRule;
  cookie?: { name: string };
  sticky: boolean;
  /** A Failed canary routes nothing: header, cookie, weight and sticky all off. */
  failed: boolean;
  problems: Problem[];
  valid: boolean;
}

function isLabel(v: unknown, max = 63): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= max && DNS_LABEL.test(v);
}

function isToken(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 256 && HTTP_TOKEN.test(v);
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

function isWeight(v: unknown): v is number {
  return isInt(v, 0, 100);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** durationMsOf reads a duration as the CRD's pattern admits it; null otherwise. */
export function durationMsOf(v: unknown): number | null {
  return typeof v === 'string' && v.length <= 32 && DURATION.test(v) ? parseDurationMs(v) : null;
}

/**
 * withCanaryDefaults returns a copy of spec with the CRD's defaults filled in, as the API
 * server stores it, so that a Canary read from a file and the same Canary read from the
 * cluster run identically (and hash identically: see runHashOf in rollout.ts).
 */
export function withCanaryDefaults(spec: CanarySpec | undefined): CanarySpec {
  const out = structuredClone(isObject(spec) ? spec : {}) as Record<string, unknown>;
  for (const [path, value] of Object.entries(CANARY_DEFAULTS)) {
    const segments = path.split('.').slice(1);
    applyDefault([out], segments, value);
  }
  return out as CanarySpec;
}

function applyDefault(parents: unknown[], segments: string[], value: unknown): void {
  const [head, ...rest] = segments;
  if (head === undefined) return;
  const list = head.endsWith('[]');
  const key = list ? head.slice(0, -2) : head;
  for (const parent of parents) {
    if (!isObject(parent)) continue;
    if (rest.length === 0 && !list) {
      if (parent[key] === undefined) parent[key] = structuredClone(value);
    } else {
      const child = parent[key];
      applyDefault(list ? (Array.isArray(child) ? child : []) : [child], rest, value);
    }
  }
}

/** stepWeightsOf lists the weights a progressive run walks through, or null when unreachable. */
export function stepWeightsOf(analysis: CanaryAnalysis): number[] | null {
  if (Array.isArray(analysis.stepWeights)) return analysis.stepWeights.slice();
  const step = analysis.stepWeight;
  const max = analysis.maxWeight;
  if (typeof step !== 'number' || typeof max !== 'number' || step < 1 || max < step || max % step !== 0) return null;
  const out: number[] = [];
  for (let w = step; w <= max; w += step) out.push(w);
  return out;
}

function seconds(ms: number): string {
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : `${ms / 1000}s`;
}

function checkDuration(v: unknown, field: string, minMs: number, maxMs: number, problems: Problem[]): void {
  if (v === undefined) return;
  const ms = durationMsOf(v);
  if (ms === null) problems.push(error('InvalidCanary', field, `must be a duration such as "30s" or "1m30s", got ${JSON.stringify(v)}`));
  else if (ms < minMs) problems.push(error('InvalidCanary', field, `must be at least ${seconds(minMs)}`));
  else if (ms > maxMs) problems.push(error('InvalidCanary', field, `must be at most ${seconds(maxMs)}`));
}

function checkCount(v: unknown, field: string, max: number, problems: Problem[]): void {
  if (v === undefined) return;
  if (!isInt(v, 1, Number.MAX_SAFE_INTEGER)) problems.push(error('InvalidCanary', field, `must be an integer ≥ 1, got ${JSON.stringify(v)}`));
  else if (v > max) problems.push(error('InvalidCanary', field, `must be at most ${max}`));
}

function checkSteps(a: CanaryAnalysis, f: string, problems: Problem[]): void {
  const hasList = a.stepWeights !== undefined;
  if (hasList === (a.stepWeight !== undefined || a.maxWeight !== undefined)) {
    problems.push(error('InvalidCanary', f, 'exactly one of stepWeights or stepWeight with maxWeight is required'));
    return;
  }
  if (hasList) {
    const list: unknown = a.stepWeights;
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_STEPS) {
      problems.push(error('InvalidCanary', `${f}.stepWeights`, `must be a list of 1 to ${MAX_STEPS} weights`));
      return;
    }
    list.forEach((w: unknown, i) => {
      if (!isInt(w, 1, 100)) problems.push(error('InvalidCanary', `${f}.stepWeights[${i}]`, `must be an integer from 1 to 100, got ${JSON.stringify(w)}`));
      else if (i > 0 && typeof list[i - 1] === 'number' && w <= list[i - 1]) problems.push(error('InvalidCanary', `${f}.stepWeights[${i}]`, 'step weights must be strictly increasing'));
    });
    return;
  }
  const { stepWeight, maxWeight } = a;
  if (stepWeight === undefined) problems.push(error('InvalidCanary', `${f}.stepWeight`, 'is required with maxWeight'));
  else if (!isInt(stepWeight, 1, 100)) problems.push(error('InvalidCanary', `${f}.stepWeight`, `must be an integer from 1 to 100, got ${JSON.stringify(stepWeight)}`));
  if (maxWeight === undefined) problems.push(error('InvalidCanary', `${f}.maxWeight`, 'is required with stepWeight'));
  else if (!isInt(maxWeight, 1, 100)) problems.push(error('InvalidCanary', `${f}.maxWeight`, `must be an integer from 1 to 100, got ${JSON.stringify(maxWeight)}`));
  else if (isInt(stepWeight, 1, 100) && maxWeight % stepWeight !== 0) {
    problems.push(error('InvalidCanary', `${f}.maxWeight`, `steps of ${stepWeight} never reach ${maxWeight}: maxWeight must be a multiple of stepWeight`));
  }
}

function checkMetrics(metrics: unknown, f: string, problems: Problem[]): void {
  if (metrics === undefined) return;
  if (!Array.isArray(metrics) || metrics.length > MAX_METRICS) {
    problems.push(error('InvalidCanary', f, `must be a list of at most ${MAX_METRICS} metrics`));
    return;
  }
  const seen = new Set<string>();
  metrics.forEach((m: unknown, i) => {
    const mf = `${f}[${i}]`;
    if (!isObject(m)) { problems.push(error('InvalidCanary', mf, 'must be an object')); return; }
    if (!isLabel(m.name)) { problems.push(error('InvalidCanary', `${mf}.name`, 'is required: a lower-case name of at most 63 characters')); return; }
    if (seen.has(m.name)) problems.push(error('InvalidCanary', `${mf}.name`, `duplicate metric "${m.name}"`));
    seen.add(m.name);
    for (const k of ['min', 'max', 'maxMs'] as const) {
      if (m[k] !== undefined && (typeof m[k] !== 'number' || !Number.isFinite(m[k]))) problems.push(error('InvalidCanary', `${mf}.${k}`, 'must be a number'));
    }
    if (typeof m.maxMs === 'number' && m.maxMs <= 0) problems.push(error('InvalidCanary', `${mf}.maxMs`, 'must be greater than 0'));
    if (m.prometheus !== undefined) {
      const p = m.prometheus;
      if (!isObject(p) || typeof p.query !== 'string' || p.query.trim() === '' || p.query.length > 4096) {
        problems.push(error('InvalidCanary', `${mf}.prometheus.query`, 'is required: a PromQL query of at most 4096 characters'));
      }
      if (isObject(p) && p.address !== undefined && (typeof p.address !== 'string' || p.address.length > 2048 || !URL_PATTERN.test(p.address))) {
        problems.push(error('InvalidCanary', `${mf}.prometheus.address`, 'must be an http:// or https:// URL'));
      }
      if (m.min === undefined && m.max === undefined) problems.push(error('InvalidCanary', mf, 'a Prometheus metric needs min or max'));
      return;
    }
    if (!(BUILT_IN_METRICS as readonly string[]).includes(m.name)) {
      problems.push(error('InvalidCanary', `${mf}.name`, `unknown built-in metric; built in are ${BUILT_IN_METRICS.join(', ')}, or give a prometheus query`));
    } else if (m.name === 'success-rate') {
      if (typeof m.min !== 'number' || m.min < 0 || m.min > 100) problems.push(error('InvalidCanary', `${mf}.min`, 'success-rate needs min, a percentage from 0 to 100'));
    } else if (m.maxMs === undefined) {
      problems.push(error('InvalidCanary', `${mf}.maxMs`, 'latency metrics need maxMs, a positive number of milliseconds'));
    }
  });
}

function checkWebhooks(webhooks: unknown, f: string, problems: Problem[]): void {
  if (webhooks === undefined) return;
  if (!Array.isArray(webhooks) || webhooks.length > MAX_WEBHOOKS) {
    problems.push(error('InvalidCanary', f, `must be a list of at most ${MAX_WEBHOOKS} webhooks`));
    return;
  }
  const seen = new Set<string>();
  webhooks.forEach((w: unknown, i) => {
    const wf = `${f}[${i}]`;
    if (!isObject(w)) { problems.push(error('InvalidCanary', wf, 'must be an object')); return; }
    if (!isLabel(w.name)) problems.push(error('InvalidCanary', `${wf}.name`, 'is required: a lower-case name of at most 63 characters'));
    else if (seen.has(w.name)) problems.push(error('InvalidCanary', `${wf}.name`, `duplicate webhook "${w.name}"`));
    else seen.add(w.name);
    if (!(WEBHOOK_TYPES as readonly unknown[]).includes(w.type)) problems.push(error('InvalidCanary', `${wf}.type`, `must be one of ${WEBHOOK_TYPES.join(', ')}`));
    if (typeof w.url !== 'string' || w.url.length > 2048 || !URL_PATTERN.test(w.url)) problems.push(error('InvalidCanary', `${wf}.url`, 'must be an http:// or https:// URL'));
    checkDuration(w.timeout, `${wf}.timeout`, MIN_WEBHOOK_TIMEOUT_MS, MAX_WEBHOOK_TIMEOUT_MS, problems);
    if (w.metadata !== undefined) {
      const md = w.metadata;
      if (!isObject(md) || Object.keys(md).length > 32 || Object.values(md).some((v) => typeof v !== 'string' || v.length > 1024)) {
        problems.push(error('InvalidCanary', `${wf}.metadata`, 'must map at most 32 keys to strings of at most 1024 characters'));
      }
    }
  });
}

function checkAnalysis(spec: CanarySpec, problems: Problem[]): void {
  const a: unknown = spec.analysis;
  if (a === undefined || a === null) return;
  const f = 'spec.analysis';
  if (!isObject(a)) { problems.push(error('InvalidCanary', f, 'must be an object')); return; }
  const analysis = a as CanaryAnalysis;
  checkDuration(analysis.interval, `${f}.interval`, MIN_ANALYSIS_INTERVAL_MS, MAX_ANALYSIS_INTERVAL_MS, problems);
  checkSteps(analysis, f, problems);
  checkCount(analysis.threshold, `${f}.threshold`, MAX_THRESHOLD, problems);
  checkCount(analysis.minRequests, `${f}.minRequests`, MAX_MIN_REQUESTS, problems);
  checkMetrics(analysis.metrics, `${f}.metrics`, problems);
  checkWebhooks(analysis.webhooks, `${f}.webhooks`, problems);
}

interface TrafficRules {
  header?: HeaderRule;
  cookie?: { name: string };
}

function checkTraffic(traffic: unknown, problems: Problem[]): TrafficRules {
  const rules: TrafficRules = {};
  if (traffic === undefined) return rules;
  if (!isObject(traffic)) { problems.push(error('InvalidCanary', 'spec.traffic', 'must be an object')); return rules; }
  if (traffic.weight !== undefined && !isWeight(traffic.weight)) {
    problems.push(error('InvalidCanary', 'spec.traffic.weight', `must be an integer from 0 to 100, got ${JSON.stringify(traffic.weight)}`));
  }
  const h = traffic.header;
  if (h !== undefined) {
    if (!isObject(h)) problems.push(error('InvalidCanary', 'spec.traffic.header', 'must be an object'));
    else if (!isToken(h.name)) problems.push(error('InvalidCanary', 'spec.traffic.header.name', 'must be an HTTP header name'));
    else if (h.value !== undefined && h.regex !== undefined) problems.push(error('InvalidCanary', 'spec.traffic.header', 'value and regex are mutually exclusive'));
    else if (h.regex !== undefined) {
      const compiled = typeof h.regex === 'string' ? compileUserRegex(h.regex) : { ok: false as const, message: 'must be a string' };
      if (!compiled.ok) problems.push(error('InvalidCanary', 'spec.traffic.header.regex', compiled.message));
      else rules.header = { name: h.name.toLowerCase(), regex: h.regex as string };
    } else if (h.value !== undefined && (typeof h.value !== 'string' || h.value.length > 4096)) {
      problems.push(error('InvalidCanary', 'spec.traffic.header.value', 'must be a string of at most 4096 characters'));
    } else rules.header = h.value === undefined ? { name: h.name.toLowerCase() } : { name: h.name.toLowerCase(), value: h.value as string };
  }
  const c = traffic.cookie;
  if (c !== undefined) {
    if (!isObject(c) || !isToken(c.name)) problems.push(error('InvalidCanary', 'spec.traffic.cookie.name', 'must be a cookie name'));
    else rules.cookie = { name: c.name };
  }
  if (traffic.sticky !== undefined && typeof traffic.sticky !== 'boolean') problems.push(error('InvalidCanary', 'spec.traffic.sticky', 'must be true or false'));
  return rules;
}

function checkPort(port: unknown, problems: Problem[]): number | string | null {
  if (port === undefined) return null;
  if (!isObject(port)) { problems.push(error('InvalidCanary', 'spec.canaryService.port', 'must be an object')); return null; }
  const { number, name } = port;
  if ((number === undefined) === (name === undefined)) problems.push(error('InvalidCanary', 'spec.canaryService.port', 'exactly one of number or name is required'));
  else if (number !== undefined) {
    if (isInt(number, 1, 65535)) return number;
    problems.push(error('InvalidCanary', 'spec.canaryService.port.number', 'must be an integer between 1 and 65535'));
  } else if (isLabel(name, 15)) return name;
  else problems.push(error('InvalidCanary', 'spec.canaryService.port.name', 'must be a port name'));
  return null;
}

/** canaryProblems validates a Canary's spec on its own, as the CRD and the webhook do. */
export function canaryProblems(canary: Canary): { problems: Problem[]; rules: TrafficRules; canaryPort: number | string | null } {
  const problems: Problem[] = [];
  const raw: unknown = canary.spec;
  if (!isObject(raw)) {
    problems.push(error('InvalidCanary', 'spec', 'is required'));
    return { problems, rules: {}, canaryPort: null };
  }
  const spec = raw as CanarySpec;
  const ingress = spec.ingressRef?.name;
  if (!(typeof ingress === 'string' && ingress.length <= 253 && DNS_SUBDOMAIN.test(ingress))) {
    problems.push(error('InvalidCanary', 'spec.ingressRef.name', 'must name an Ingress in the same namespace'));
  }
  if (!isLabel(spec.service)) problems.push(error('InvalidCanary', 'spec.service', 'must name the stable Service as the Ingress names it'));
  const cs = spec.canaryService;
  if (!isLabel(cs?.name)) problems.push(error('InvalidCanary', 'spec.canaryService.name', 'must name the canary Service'));
  else if (cs.name === spec.service) problems.push(error('InvalidCanary', 'spec.canaryService.name', 'must differ from spec.service: a canary of a service onto itself splits nothing'));
  const canaryPort = isObject(cs) ? checkPort(cs.port, problems) : null;
  if (spec.revision !== undefined && (typeof spec.revision !== 'string' || spec.revision.length > 253)) {
    problems.push(error('InvalidCanary', 'spec.revision', 'must be a string of at most 253 characters'));
  }
  const rules = checkTraffic(spec.traffic, problems);
  checkAnalysis(spec, problems);
  const promotion: unknown = spec.promotion;
  if (promotion !== undefined && (!isObject(promotion) || (promotion.strategy !== undefined && !(PROMOTION_STRATEGIES as readonly unknown[]).includes(promotion.strategy)))) {
    problems.push(error('InvalidCanary', 'spec.promotion.strategy', `must be one of ${PROMOTION_STRATEGIES.join(', ')}`));
  }
  if (spec.paused !== undefined && typeof spec.paused !== 'boolean') problems.push(error('InvalidCanary', 'spec.paused', 'must be true or false'));
  if (spec.analysis && isObject(spec.traffic) && spec.traffic.weight !== undefined && spec.traffic.weight !== 0) {
    problems.push(warning('WeightIgnored', 'spec.traffic.weight', 'ignored while spec.analysis drives the weight'));
  }
  return { problems, rules, canaryPort };
}

/** parseCanary builds the fragment of one Canary; it never throws, whatever the input. */
export function parseCanary(canary: Canary): CanaryFragment {
  const namespace = namespaceOf(canary);
  const name = canary.metadata?.name ?? '';
  const { problems, rules, canaryPort } = canaryProblems(canary);
  const spec: CanarySpec = isObject(canary.spec) ? canary.spec : {};
  const traffic = isObject(spec.traffic) ? spec.traffic : {};
  const status = isObject(canary.status) ? canary.status : {};
  const failed = status.phase === 'Failed';
  let weight = 0;
  if (isWeight(status.weight)) weight = status.weight;
  else if (!spec.analysis && isWeight(traffic.weight)) weight = traffic.weight;
  const valid = !problems.some((p) => p.severity === 'error');
  return {
    key: `${namespace}/${name}`,
    namespace,
    name,
    created: typeof canary.metadata?.creationTimestamp === 'string' ? canary.metadata.creationTimestamp : '',
    ingress: typeof spec.ingressRef?.name === 'string' ? spec.ingressRef.name : '',
    service: typeof spec.service === 'string' ? spec.service : '',
    canaryService: typeof spec.canaryService?.name === 'string' ? spec.canaryService.name : '',
    canaryPort,
    weight: failed ? 0 : weight,
    ...(rules.header && !failed ? { header: rules.header } : {}),
    ...(rules.cookie && !failed ? { cookie: rules.cookie } : {}),
    sticky: !failed && traffic.sticky === true,
    failed,
    problems,
    valid,
  };
}
