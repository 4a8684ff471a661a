/**
 * The per-Canary fragment: the Canary's spec validated on its own, and the split it asks
 * compile() to attach. The effective weight comes from status (written by the leader's
 * canary controller) so that every operator replica compiles the same routes.
 */
import type { Canary } from './objects.ts';
import { namespaceOf } from './objects.ts';
import type { HeaderRule } from './resources.ts';
import { compileUserRegex } from './regex.ts';
import { parseDurationMs } from './units.ts';
import { error, warning, type Problem } from './problems.ts';

export const MIN_ANALYSIS_INTERVAL_MS = 10_000;
export const BUILT_IN_METRICS = ['success-rate', 'latency-p50', 'latency-p90', 'latency-p99'] as const;
export const WEBHOOK_TYPES = ['pre-rollout', 'rollout', 'confirm-promotion', 'post-rollout', 'rollback', 'event'] as const;
export const PROMOTION_STRATEGIES = ['Hold', 'UpdateIngress'] as const;

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

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function isName(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 63 && DNS_LABEL.test(v);
}

function isWeight(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 100;
}

/** stepWeightsOf lists the weights a progressive run walks through, or null when unreachable. */
export function stepWeightsOf(analysis: NonNullable<NonNullable<Canary['spec']>['analysis']>): number[] | null {
  if (Array.isArray(analysis.stepWeights)) return analysis.stepWeights.slice();
  const step = analysis.stepWeight;
  const max = analysis.maxWeight;
  if (typeof step !== 'number' || typeof max !== 'number' || step < 1 || max < step || max % step !== 0) return null;
  const out: number[] = [];
  for (let w = step; w <= max; w += step) out.push(w);
  return out;
}

function checkAnalysis(spec: NonNullable<Canary['spec']>, problems: Problem[]): void {
  const a = spec.analysis;
  if (a === undefined || a === null) return;
  const f = 'spec.analysis';
  if (a.interval !== undefined) {
    const ms = typeof a.interval === 'string' ? parseDurationMs(a.interval) : null;
    if (ms === null) problems.push(error('InvalidCanary', `${f}.interval`, `must be a duration such as "30s", got ${JSON.stringify(a.interval)}`));
    else if (ms < MIN_ANALYSIS_INTERVAL_MS) problems.push(error('InvalidCanary', `${f}.interval`, `must be at least ${MIN_ANALYSIS_INTERVAL_MS / 1000}s`));
  }
  const hasList = a.stepWeights !== undefined;
  const hasStep = a.stepWeight !== undefined || a.maxWeight !== undefined;
  if (hasList === hasStep) {
    problems.push(error('InvalidCanary', f, 'exactly one of stepWeights or stepWeight with maxWeight is required'));
  } else if (hasList) {
    const list = a.stepWeights;
    if (!Array.isArray(list) || list.length === 0) problems.push(error('InvalidCanary', `${f}.stepWeights`, 'must be a non-empty list'));
    else {
      list.forEach((w, i) => {
        if (!isWeight(w) || w < 1) problems.push(error('InvalidCanary', `${f}.stepWeights[${i}]`, `must be an integer from 1 to 100, got ${JSON.stringify(w)}`));
        else if (i > 0 && w <= (list[i - 1] as number)) problems.push(error('InvalidCanary', `${f}.stepWeights[${i}]`, 'step weights must be strictly increasing'));
      });
    }
  } else {
    const { stepWeight, maxWeight } = a;
    if (!isWeight(stepWeight) || stepWeight < 1) problems.push(error('InvalidCanary', `${f}.stepWeight`, `must be an integer from 1 to 100, got ${JSON.stringify(stepWeight ?? null)}`));
    else if (!isWeight(maxWeight) || maxWeight < 1) problems.push(error('InvalidCanary', `${f}.maxWeight`, `must be an integer from 1 to 100, got ${JSON.stringify(maxWeight ?? null)}`));
    else if (maxWeight < stepWeight || maxWeight % stepWeight !== 0) {
      problems.push(error('InvalidCanary', `${f}.maxWeight`, `steps of ${stepWeight} never reach ${maxWeight}: maxWeight must be a multiple of stepWeight`));
    }
  }
  if (a.threshold !== undefined && (!Number.isInteger(a.threshold) || a.threshold < 1)) {
    problems.push(error('InvalidCanary', `${f}.threshold`, `must be an integer ≥ 1, got ${JSON.stringify(a.threshold)}`));
  }
  if (a.minRequests !== undefined && (!Number.isInteger(a.minRequests) || a.minRequests < 1)) {
    problems.push(error('InvalidCanary', `${f}.minRequests`, `must be an integer ≥ 1, got ${JSON.stringify(a.minRequests)}`));
  }
  (Array.isArray(a.metrics) ? a.metrics : []).forEach((m, i) => {
    const mf = `${f}.metrics[${i}]`;
    if (typeof m?.name !== 'string' || m.name === '') { problems.push(error('InvalidCanary', `${mf}.name`, 'is required')); return; }
    if (m.prometheus) {
      if (typeof m.prometheus.query !== 'string' || m.prometheus.query.trim() === '') problems.push(error('InvalidCanary', `${mf}.prometheus.query`, 'is required'));
      if (m.min === undefined && m.max === undefined) problems.push(error('InvalidCanary', mf, 'a Prometheus metric needs min or max'));
      return;
    }
    if (m.name === 'success-rate') {
      if (typeof m.min !== 'number' || m.min < 0 || m.min > 100) problems.push(error('InvalidCanary', `${mf}.min`, 'success-rate needs min, a percentage from 0 to 100'));
    } else if (m.name.startsWith('latency-p') && (BUILT_IN_METRICS as readonly string[]).includes(m.name)) {
      if (typeof m.maxMs !== 'number' || m.maxMs <= 0) problems.push(error('InvalidCanary', `${mf}.maxMs`, `${m.name} needs maxMs, a positive number of milliseconds`));
    } else {
      problems.push(error('InvalidCanary', `${mf}.name`, `unknown built-in metric "${m.name}"; built in are ${BUILT_IN_METRICS.join(', ')}, or give a prometheus query`));
    }
  });
  (Array.isArray(a.webhooks) ? a.webhooks : []).forEach((w, i) => {
    const wf = `${f}.webhooks[${i}]`;
    if (!(WEBHOOK_TYPES as readonly string[]).includes(w?.type ?? '')) problems.push(error('InvalidCanary', `${wf}.type`, `must be one of ${WEBHOOK_TYPES.join(', ')}`));
    if (typeof w?.url !== 'string' || !/^https?:\/\/[^\s/]+/.test(w.url)) problems.push(error('InvalidCanary', `${wf}.url`, 'must be an http:// or https:// URL'));
    if (w?.timeout !== undefined && (typeof w.timeout !== 'string' || parseDurationMs(w.timeout) === null)) problems.push(error('InvalidCanary', `${wf}.timeout`, 'must be a duration such as "10s"'));
  });
}

/** parseCanary builds the fragment of one Canary; it never throws, whatever the input. */
export function parseCanary(canary: Canary): CanaryFragment {
  const namespace = namespaceOf(canary);
  const name = canary.metadata?.name ?? '';
  const problems: Problem[] = [];
  const spec = canary.spec && typeof canary.spec === 'object' ? canary.spec : {};
  const ingress = spec.ingressRef?.name;
  if (!isName(ingress) && !(typeof ingress === 'string' && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(ingress))) {
    problems.push(error('InvalidCanary', 'spec.ingressRef.name', 'must name an Ingress in the same namespace'));
  }
  if (!isName(spec.service)) problems.push(error('InvalidCanary', 'spec.service', 'must name the stable Service as the Ingress names it'));
  const cs = spec.canaryService;
  if (!isName(cs?.name)) problems.push(error('InvalidCanary', 'spec.canaryService.name', 'must name the canary Service'));
  else if (cs.name === spec.service) problems.push(error('InvalidCanary', 'spec.canaryService.name', 'must differ from spec.service: a canary of a service onto itself splits nothing'));
  let canaryPort: number | string | null = null;
  if (cs?.port !== undefined && cs.port !== null) {
    const { number, name: portName } = cs.port;
    if ((number === undefined) === (portName === undefined)) problems.push(error('InvalidCanary', 'spec.canaryService.port', 'exactly one of number or name is required'));
    else if (number !== undefined) {
      if (!Number.isInteger(number) || number < 1 || number > 65535) problems.push(error('InvalidCanary', 'spec.canaryService.port.number', 'must be an integer between 1 and 65535'));
      else canaryPort = number;
    } else if (typeof portName !== 'string' || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(portName) || portName.length > 15) {
      problems.push(error('InvalidCanary', 'spec.canaryService.port.name', 'must be a port name'));
    } else canaryPort = portName;
  }
  const traffic = spec.traffic ?? {};
  if (traffic.weight !== undefined && !isWeight(traffic.weight)) {
    problems.push(error('InvalidCanary', 'spec.traffic.weight', `must be an integer from 0 to 100, got ${JSON.stringify(traffic.weight)}`));
  }
  let header: HeaderRule | undefined;
  if (traffic.header !== undefined && traffic.header !== null) {
    const h = traffic.header;
    if (typeof h.name !== 'string' || !HEADER_NAME.test(h.name)) problems.push(error('InvalidCanary', 'spec.traffic.header.name', 'must be an HTTP header name'));
    else if (h.value !== undefined && h.regex !== undefined) problems.push(error('InvalidCanary', 'spec.traffic.header', 'value and regex are mutually exclusive'));
    else if (h.regex !== undefined) {
      const compiled = typeof h.regex === 'string' ? compileUserRegex(h.regex) : { ok: false as const, message: 'must be a string' };
      if (!compiled.ok) problems.push(error('InvalidCanary', 'spec.traffic.header.regex', compiled.message));
      else header = { name: h.name.toLowerCase(), regex: h.regex };
    } else if (h.value !== undefined && (typeof h.value !== 'string' || h.value.length > 4096)) {
      problems.push(error('InvalidCanary', 'spec.traffic.header.value', 'must be a string of at most 4096 characters'));
    } else header = h.value === undefined ? { name: h.name.toLowerCase() } : { name: h.name.toLowerCase(), value: h.value };
  }
  let cookie: { name: string } | undefined;
  if (traffic.cookie !== undefined && traffic.cookie !== null) {
    if (typeof traffic.cookie.name !== 'string' || !COOKIE_NAME.test(traffic.cookie.name)) problems.push(error('InvalidCanary', 'spec.traffic.cookie.name', 'must be a cookie name'));
    else cookie = { name: traffic.cookie.name };
  }
  if (traffic.sticky !== undefined && typeof traffic.sticky !== 'boolean') problems.push(error('InvalidCanary', 'spec.traffic.sticky', 'must be true or false'));
  checkAnalysis(spec, problems);
  if (spec.promotion?.strategy !== undefined && !(PROMOTION_STRATEGIES as readonly string[]).includes(spec.promotion.strategy)) {
    problems.push(error('InvalidCanary', 'spec.promotion.strategy', `must be one of ${PROMOTION_STRATEGIES.join(', ')}`));
  }
  if (spec.analysis && traffic.weight !== undefined && traffic.weight !== 0) {
    problems.push(warning('WeightIgnored', 'spec.traffic.weight', 'ignored while spec.analysis drives the weight'));
  }

  const status = canary.status ?? {};
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
    ingress: typeof ingress === 'string' ? ingress : '',
    service: typeof spec.service === 'string' ? spec.service : '',
    canaryService: typeof cs?.name === 'string' ? cs.name : '',
    canaryPort,
    weight: failed ? 0 : weight,
    ...(header && !failed ? { header } : {}),
    ...(cookie && !failed ? { cookie } : {}),
    sticky: !failed && traffic.sticky === true,
    failed,
    problems,
    valid,
  };
}
