/**
 * The canary state machine: one pure function, step(), from a Canary (spec, status,
 * annotations, deletion) and what the controller observed (time, fleet convergence, the
 * interval's statistics, webhook answers, the Ingress) to the next status and the actions to
 * take. Time is passed in, never read; nothing here does I/O. docs/canary.md describes the
 * lifecycle this implements; tests/unit/canary/rollout.test.ts pins it rule by rule.
 *
 * The controller's contract:
 * - Call step() whenever the Canary, the fleet's convergence, a webhook answer or the Ingress
 *   changes, and at `wakeAt`. Write `status` (status subresource) when `changed`; only once
 *   that write succeeded, perform `actions`, so a write lost to a conflict never produces
 *   duplicate Events or notifications.
 * - `fleet` counts expected proxies that ACKed the routing version compiled from the status
 *   passed in; `metrics` holds the fleet's merged statistics since `status.intervalStart`
 *   (analysisWindow() says which side and since when) and the Prometheus results.
 * - Actions with a `key` (gating webhooks, UpdateIngress, finalizers) are re-emitted on every
 *   call while still wanted: run each key at most once at a time, and hand gating webhook
 *   answers back through `webhooks` by key.
 */
import type { Canary, CanaryCheckResult, CanaryCondition, CanarySpec, CanaryStage, CanaryStatus, CanaryWebhook } from './objects.ts';
import { namespaceOf } from './objects.ts';
import { CANARY_DEFAULTS, type CanaryPhase, type CanaryWebhookType, type RetireReason } from './canary-types.gen.ts';
import { canaryProblems, durationMsOf, stepWeightsOf, withCanaryDefaults } from './canary.ts';
import { percentileMs, type SideStats } from './protocol.ts';
import { hashValue } from './canonical.ts';
import { formatProblem } from './problems.ts';

/** Finalizer the controller keeps on every Canary so that deletion steps traffic down first. */
export const FINALIZER = 'vane.dev/retire';
/** Annotation carrying a command from `kubectl vane` (or a person): `verb [arg] [@id]`. */
export const COMMAND_ANNOTATION = 'vane.dev/command';
/** Step-down weights for a Canary without analysis (manual mode). */
export const DEFAULT_RETIRE_STEPS: readonly number[] = [5, 10, 25, 50];
/** A restart steps down first when the canary carries more than this share of the traffic. */
export const RESTART_STEP_DOWN_ABOVE = 50;
/** Version of the webhook request body; bumped on any incompatible change. */
export const WEBHOOK_API_VERSION = 'vane.dev/v1alpha1';

const DEFAULT_INTERVAL_MS = durationMsOf(CANARY_DEFAULTS['spec.analysis.interval']) ?? 30_000;
const DEFAULT_TIMEOUT_MS = durationMsOf(CANARY_DEFAULTS['spec.analysis.webhooks[].timeout']) ?? 10_000;
const MAX_STRAGGLERS_NAMED = 10;

export interface FleetInput {
  /** Ready proxy pods of the proxy Service (configured proxies in file mode). */
  expected: number;
  /** Expected proxies that ACKed the routing version compiled from the status passed in. */
  converged: number;
  /** Expected proxies that have not, by name. */
  stragglers: string[];
  /** Stream generation of that version. */
  generation: number;
}

export interface PrometheusResult {
  /** The query's value; null for an empty result (no data). */
  value: number | null;
  /** Set when the query failed: a failed check. */
  error?: string;
}

export interface MetricsInput {
  /** Merged statistics of the canary side since status.intervalStart. */
  canary: SideStats;
  /** Merged statistics of the stable side since status.intervalStart (read while Retiring). */
  stable: SideStats;
  /** Results of the Prometheus metrics, by metric name. */
  prometheus?: Record<string, PrometheusResult>;
}

export interface WebhookResult {
  /** The key of the CallWebhook action answered. */
  key: string;
  /** A 2xx answer within the timeout. */
  approved: boolean;
  message?: string;
}

export interface StepInput {
  canary: Canary;
  /** Milliseconds since the epoch. */
  now: number;
  fleet: FleetInput;
  metrics?: MetricsInput;
  webhooks?: readonly WebhookResult[];
  /** The referenced Ingress routes to the canary Service and no longer to the stable one. */
  ingressSwitched?: boolean;
}

export interface WebhookBody {
  apiVersion: string;
  kind: 'CanaryWebhookRequest';
  type: CanaryWebhookType;
  webhook: string;
  canary: { namespace: string; name: string; uid: string };
  revision: string;
  run: number;
  phase: CanaryPhase;
  weight: number;
  step: number;
  stepCount: number;
  failedChecks: number;
  checks: CanaryCheckResult[];
  metadata: Record<string, string>;
  event?: { type: 'Normal' | 'Warning'; reason: string; message: string };
}

export type Action =
  | { type: 'Event'; eventType: 'Normal' | 'Warning'; reason: string; message: string }
  | { type: 'CallWebhook'; key: string; gating: boolean; name: string; hookType: CanaryWebhookType; url: string; timeoutMs: number; body: WebhookBody }
  | { type: 'UpdateIngress'; key: string; ingress: string; fromService: string; toService: string; port: number | string | null }
  | { type: 'AddFinalizer'; key: string; finalizer: string }
  | { type: 'RemoveFinalizer'; key: string; finalizer: string };

export interface StepResult {
  status: CanaryStatus;
  actions: Action[];
  /** When step() wants to be called again if nothing else happens; null: only on change. */
  wakeAt: number | null;
  /** status differs from the one passed in. */
  changed: boolean;
}

export type CommandVerb = 'pause' | 'resume' | 'promote' | 'abort' | 'retry' | 'set-weight';

export interface Command {
  verb: CommandVerb;
  full: boolean;
  weight: number | null;
}

/** parseCommand reads `verb [arg] [@id]`; the id only makes a repeated command a new one. */
export function parseCommand(text: string): Command | { error: string } {
  const words = text.trim().split(/\s+/).filter((w) => !w.startsWith('@'));
  const [verb, ...args] = words;
  const usage = 'commands are pause, resume, promote [--full], abort, retry, set-weight N';
  switch (verb) {
    case 'pause': case 'resume': case 'abort': case 'retry':
      return args.length === 0 ? { verb, full: false, weight: null } : { error: `${verb} takes no argument` };
    case 'promote':
      if (args.length === 0) return { verb, full: false, weight: null };
      return args.length === 1 && args[0] === '--full' ? { verb, full: true, weight: null } : { error: 'promote takes only --full' };
    case 'set-weight': {
      const n = args.length === 1 && /^\d{1,3}$/.test(args[0]!) ? Number(args[0]) : NaN;
      return n >= 0 && n <= 100 ? { verb, full: false, weight: n } : { error: 'set-weight needs one integer from 0 to 100' };
    }
    default:
      return { error: `unknown command ${JSON.stringify(verb ?? '')}; ${usage}` };
  }
}

/** formatCommand is the annotation value `kubectl vane` writes; id makes each invocation distinct. */
export function formatCommand(command: Command, id: string): string {
  const arg = command.verb === 'set-weight' ? ` ${command.weight}` : command.full ? ' --full' : '';
  return `${command.verb}${arg} @${id}`;
}

/** runHashOf identifies what a run runs: the spec with defaults applied, `paused` left out. */
export function runHashOf(spec: CanarySpec | undefined): string {
  const { paused: _paused, ...rest } = withCanaryDefaults(spec);
  return hashValue(rest);
}

/** analysisWindow tells the controller which side's statistics the next check reads, and since when. */
export function analysisWindow(canary: Canary): { side: 'canary' | 'stable'; sinceMs: number } | null {
  const s = canary.status;
  const since = typeof s?.intervalStart === 'string' ? Date.parse(s.intervalStart) : NaN;
  if (!Number.isFinite(since)) return null;
  if (s?.stage === 'Retiring') return { side: 'stable', sinceMs: since };
  return s?.stage === 'Analysing' ? { side: 'canary', sinceMs: since } : null;
}

/** The working state: status fields, sanitised, with times in milliseconds. */
interface State {
  stage: CanaryStage | null;
  weight: number;
  step: number;
  failedChecks: number;
  noDataChecks: number;
  run: number;
  runHash: string;
  intervalStart: number;
  lastCheckTime: number | null;
  lastChecks: CanaryCheckResult[];
  held: boolean;
  lastCommand: CanaryStatus['lastCommand'];
  retire: { fromWeight: number; reason: RetireReason; blocked: boolean } | null;
  /** Reason and message of the Progressing condition: what the run is doing or waiting for. */
  progress: { reason: string; message: string };
  /** Reason and message of the Failed condition, kept while Failed. */
  failure: { reason: string; message: string };
}

const STAGES: readonly CanaryStage[] = ['Manual', 'Initializing', 'Analysing', 'Promoting', 'Promoted', 'Failed', 'Retiring'];

function count(v: unknown, max = Number.MAX_SAFE_INTEGER): number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? Math.min(v, max) : 0;
}

function timeMs(v: unknown): number | null {
  const t = typeof v === 'string' ? Date.parse(v) : NaN;
  return Number.isFinite(t) ? t : null;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function conditionOf(status: CanaryStatus, type: string): CanaryCondition | undefined {
  return Array.isArray(status.conditions) ? status.conditions.find((c) => c?.type === type) : undefined;
}

function load(status: CanaryStatus, now: number): State {
  const stage = (STAGES as readonly unknown[]).includes(status.stage) ? status.stage as CanaryStage : null;
  const progress = conditionOf(status, 'Progressing');
  const failed = conditionOf(status, 'Failed');
  const r = status.retire;
  return {
    stage,
    weight: count(status.weight, 100),
    step: count(status.step, 100),
    failedChecks: count(status.failedChecks),
    noDataChecks: count(status.noDataChecks),
    run: count(status.run),
    runHash: typeof status.runHash === 'string' ? status.runHash : '',
    intervalStart: timeMs(status.intervalStart) ?? now,
    lastCheckTime: timeMs(status.lastCheckTime),
    lastChecks: Array.isArray(status.lastChecks) ? status.lastChecks.slice(0, 40) : [],
    held: status.held === true,
    lastCommand: status.lastCommand,
    retire: r && typeof r === 'object' && (r.reason === 'Deleted' || r.reason === 'Restart')
      ? { fromWeight: count(r.fromWeight, 100), reason: r.reason, blocked: r.blocked === true }
      : null,
    progress: { reason: progress?.reason ?? '', message: progress?.message ?? '' },
    failure: { reason: failed?.status === 'True' ? failed.reason ?? 'Failed' : '', message: failed?.status === 'True' ? failed.message ?? '' : '' },
  };
}

/** Everything step() derives once from the input. */
interface Context {
  input: StepInput;
  now: number;
  spec: CanarySpec;
  progressive: boolean;
  ladder: number[];
  intervalMs: number;
  threshold: number;
  minRequests: number;
  paused: boolean;
  hash: string;
  namespace: string;
  name: string;
  uid: string;
  actions: Action[];
  /** Set once the weight or the failed flag changed in this call: the fleet input is then stale. */
  routingChanged: boolean;
  /** Gating webhook calls still unanswered. */
  waiting: boolean;
  /** Deletion may complete: nothing the canary routes changes when the Canary goes. */
  release: boolean;
}

function phaseOf(st: State, ctx: Context): CanaryPhase {
  if (st.stage === null) return 'Pending';
  if (st.stage === 'Failed') return 'Failed';
  if (st.stage === 'Promoted') return 'Promoted';
  if (ctx.paused || st.held) return 'Paused';
  switch (st.stage) {
    case 'Retiring': return 'Retiring';
    case 'Initializing': return 'Pending';
    case 'Manual': return st.weight === 100 ? 'Promoted' : 'Progressing';
    default: return 'Progressing';
  }
}

function event(ctx: Context, st: State, eventType: 'Normal' | 'Warning', reason: string, message: string): void {
  ctx.actions.push({ type: 'Event', eventType, reason, message });
  for (const hook of hooksOf(ctx, 'event')) {
    ctx.actions.push(webhookCall(ctx, st, hook, `${st.run}/${ctx.now}/event/${reason}/${hook.name}`, false, { type: eventType, reason, message }));
  }
}

function hooksOf(ctx: Context, type: CanaryWebhookType): CanaryWebhook[] {
  const hooks = ctx.spec.analysis?.webhooks;
  return Array.isArray(hooks) ? hooks.filter((h) => h.type === type) : [];
}

function webhookCall(ctx: Context, st: State, hook: CanaryWebhook, key: string, gating: boolean, ev?: WebhookBody['event']): Action {
  const type = hook.type as CanaryWebhookType;
  const body: WebhookBody = {
    apiVersion: WEBHOOK_API_VERSION,
    kind: 'CanaryWebhookRequest',
    type,
    webhook: hook.name ?? '',
    canary: { namespace: ctx.namespace, name: ctx.name, uid: ctx.uid },
    revision: ctx.spec.revision ?? '',
    run: st.run,
    phase: phaseOf(st, ctx),
    weight: st.weight,
    step: st.step,
    stepCount: ctx.ladder.length,
    failedChecks: st.failedChecks,
    checks: st.lastChecks,
    metadata: hook.metadata ?? {},
    ...(ev ? { event: ev } : {}),
  };
  return { type: 'CallWebhook', key, gating, name: hook.name ?? '', hookType: type, url: hook.url ?? '', timeoutMs: durationMsOf(hook.timeout) ?? DEFAULT_TIMEOUT_MS, body };
}

function setWeight(ctx: Context, st: State, weight: number): void {
  const w = Math.max(0, Math.min(100, Math.round(weight)));
  if (w !== st.weight) ctx.routingChanged = true;
  st.weight = w;
}

function converged(ctx: Context): boolean {
  const f = ctx.input.fleet;
  return !ctx.routingChanged && f.converged >= f.expected;
}

function stragglerText(ctx: Context): string {
  const f = ctx.input.fleet;
  const names = f.stragglers.slice(0, MAX_STRAGGLERS_NAMED).join(', ');
  const more = f.stragglers.length > MAX_STRAGGLERS_NAMED ? ` and ${f.stragglers.length - MAX_STRAGGLERS_NAMED} more` : '';
  return `${f.converged}/${f.expected} proxies converged; waiting for ${names || 'unnamed proxies'}${more}`;
}

function startRun(ctx: Context, st: State, why: string): void {
  st.run += 1;
  st.runHash = ctx.hash;
  st.failedChecks = 0;
  st.noDataChecks = 0;
  st.step = 0;
  st.lastChecks = [];
  st.lastCheckTime = null;
  st.held = false;
  st.retire = null;
  st.intervalStart = ctx.now;
  st.failure = { reason: '', message: '' };
  if (!ctx.progressive) {
    st.stage = 'Manual';
    if (!ctx.paused) setWeight(ctx, st, ctx.spec.traffic?.weight ?? 0);
    st.progress = { reason: 'ManualMode', message: 'the weight is spec.traffic.weight' };
    return;
  }
  st.stage = 'Initializing';
  setWeight(ctx, st, 0);
  st.progress = { reason: 'Initializing', message: `run ${st.run} starting` };
  event(ctx, st, 'Normal', 'Started', `run ${st.run} started${why ? `: ${why}` : ''}`);
}

function fail(ctx: Context, st: State, reason: string, message: string): void {
  st.stage = 'Failed';
  st.held = false;
  st.retire = null;
  if (st.weight !== 0) ctx.routingChanged = true;
  st.weight = 0;
  // Header, cookie and sticky rules go off with the phase, which also changes routing.
  ctx.routingChanged = true;
  st.failure = { reason, message };
  st.progress = { reason: 'RolledBack', message };
  event(ctx, st, 'Warning', reason, `rolled back: ${message}`);
  for (const hook of hooksOf(ctx, 'post-rollout')) ctx.actions.push(webhookCall(ctx, st, hook, `${st.run}/post-rollout/Failed/${hook.name}`, false));
}

function enterStep(ctx: Context, st: State, weight: number): void {
  const from = st.weight;
  setWeight(ctx, st, weight);
  st.step = ctx.ladder.filter((w) => w <= st.weight).length;
  st.stage = 'Analysing';
  st.intervalStart = ctx.now;
  st.noDataChecks = 0;
  st.progress = { reason: 'StepAdvanced', message: `weight ${st.weight} (step ${st.step}/${ctx.ladder.length})` };
  event(ctx, st, 'Normal', 'StepAdvanced', `weight ${from} → ${st.weight} (step ${st.step}/${ctx.ladder.length})`);
}

function startPromotion(ctx: Context, st: State, why: string): void {
  setWeight(ctx, st, 100);
  st.step = ctx.ladder.length;
  st.stage = 'Promoting';
  st.held = false;
  st.progress = { reason: 'Promoting', message: `all traffic to ${ctx.spec.canaryService?.name}: ${why}` };
  event(ctx, st, 'Normal', 'Promoting', `weight 100: ${why}`);
}

function advance(ctx: Context, st: State, why: string): void {
  const next = ctx.ladder.find((w) => w > st.weight);
  if (next === undefined) startPromotion(ctx, st, why);
  else enterStep(ctx, st, next);
}

/** retireLadder lists the weights a step-down walks through from `from`, highest first, ending at 0. */
function retireLadder(ctx: Context, from: number): number[] {
  const base = ctx.progressive ? ctx.ladder : DEFAULT_RETIRE_STEPS;
  return [...base.filter((w) => w < from).reverse(), 0];
}

function startRetire(ctx: Context, st: State, reason: RetireReason): void {
  st.retire = { fromWeight: st.weight, reason, blocked: false };
  st.stage = 'Retiring';
  st.held = false;
  st.failedChecks = 0;
  st.noDataChecks = 0;
  const first = retireLadder(ctx, st.weight)[0]!;
  const from = st.weight;
  setWeight(ctx, st, first);
  st.intervalStart = ctx.now;
  const why = reason === 'Deleted' ? 'the Canary is being deleted' : 'a new run starts once traffic is back on the stable Service';
  st.progress = { reason: 'Retiring', message: `stepping traffic back to ${ctx.spec.service}: weight ${st.weight}; ${why}` };
  event(ctx, st, 'Normal', 'Retiring', `weight ${from} → ${st.weight}: ${why}`);
}

function finishRetire(ctx: Context, st: State): void {
  const reason = st.retire?.reason;
  st.retire = null;
  if (reason === 'Deleted') {
    setWeight(ctx, st, 0);
    st.progress = { reason: 'Retired', message: 'traffic is back on the stable Service; the Canary can go' };
    event(ctx, st, 'Normal', 'Retired', `traffic is back on ${ctx.spec.service}; releasing the finalizer`);
    ctx.release = true;
    return;
  }
  startRun(ctx, st, 'the spec changed');
  if (st.stage === 'Initializing' && !ctx.paused) runInitializing(ctx, st);
}

function releasable(st: State): boolean {
  return st.stage === 'Failed' || st.weight === 0;
}

interface Verdict {
  result: 'Pass' | 'Fail' | 'NoData';
  checks: CanaryCheckResult[];
}

function judge(checks: CanaryCheckResult[]): Verdict {
  const result = checks.some((c) => c.result === 'Fail') ? 'Fail' : checks.some((c) => c.result === 'NoData') ? 'NoData' : 'Pass';
  return { result, checks };
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

/** evaluateMetrics judges the spec's metrics on one side's statistics; Prometheus only for the canary. */
function evaluateMetrics(ctx: Context, side: 'canary' | 'stable'): CanaryCheckResult[] {
  const out: CanaryCheckResult[] = [];
  const metrics = ctx.input.metrics;
  const stats = metrics?.[side];
  for (const m of ctx.spec.analysis?.metrics ?? []) {
    const name = m.name ?? '';
    if (m.prometheus) {
      if (side === 'stable') continue;
      const r = metrics?.prometheus?.[name];
      if (r?.error !== undefined) out.push({ name, kind: 'Metric', result: 'Fail', message: `query failed: ${r.error}`.slice(0, 1024) });
      else if (!r || r.value === null || !Number.isFinite(r.value)) out.push({ name, kind: 'Metric', result: 'NoData', message: 'the query returned no value' });
      else {
        const low = m.min !== undefined && r.value < m.min;
        const high = m.max !== undefined && r.value > m.max;
        const bounds = [m.min !== undefined ? `min ${fmt(m.min)}` : '', m.max !== undefined ? `max ${fmt(m.max)}` : ''].filter(Boolean).join(', ');
        out.push({ name, kind: 'Metric', result: low || high ? 'Fail' : 'Pass', value: r.value, message: `${fmt(r.value)} (${bounds})` });
      }
      continue;
    }
    if (!stats || stats.requests < ctx.minRequests) {
      out.push({ name, kind: 'Metric', result: 'NoData', message: `${stats?.requests ?? 0} ${side} requests, fewer than minRequests ${ctx.minRequests}` });
      continue;
    }
    if (name === 'success-rate') {
      const rate = (100 * (stats.requests - Math.min(stats.failures, stats.requests))) / stats.requests;
      const min = m.min ?? 100;
      out.push({ name, kind: 'Metric', result: rate >= min ? 'Pass' : 'Fail', value: rate, message: `${fmt(rate)}% of ${stats.requests} requests succeeded (min ${fmt(min)}%)` });
      continue;
    }
    const p = Number(name.slice('latency-p'.length));
    const ms = percentileMs(stats, p);
    if (ms === null) { out.push({ name, kind: 'Metric', result: 'NoData', message: 'no latency samples' }); continue; }
    const max = m.maxMs ?? Infinity;
    const value = Number.isFinite(ms) ? ms : Number.MAX_VALUE;
    out.push({ name, kind: 'Metric', result: ms <= max ? 'Pass' : 'Fail', value, message: `p${p} ≤ ${Number.isFinite(ms) ? `${fmt(ms)}ms` : 'beyond the last bucket'} (max ${fmt(max)}ms)` });
  }
  return out;
}

/**
 * gate asks the gating webhooks of `types` for this interval and returns their answers, or
 * null (with CallWebhook actions emitted) while any is missing.
 */
function gate(ctx: Context, st: State, types: CanaryWebhookType[]): Map<CanaryWebhook, WebhookResult> | null {
  const answers = new Map<CanaryWebhook, WebhookResult>();
  let missing = false;
  for (const type of types) {
    for (const hook of hooksOf(ctx, type)) {
      const key = `${st.run}/${st.intervalStart}/${type}/${hook.name}`;
      const answer = ctx.input.webhooks?.find((w) => w.key === key);
      if (answer) answers.set(hook, answer);
      else { missing = true; ctx.actions.push(webhookCall(ctx, st, hook, key, true)); }
    }
  }
  if (missing) { ctx.waiting = true; return null; }
  return answers;
}

function webhookCheck(hook: CanaryWebhook, a: WebhookResult, pass: 'approved' | 'refused'): CanaryCheckResult {
  const ok = pass === 'approved' ? a.approved : !a.approved;
  const said = a.approved ? 'approved' : 'refused';
  return { name: hook.name ?? '', kind: 'Webhook', result: ok ? 'Pass' : 'Fail', message: `${hook.type} ${said}${a.message ? `: ${a.message}` : ''}`.slice(0, 1024) };
}

function recordCheck(ctx: Context, st: State, checks: CanaryCheckResult[]): void {
  st.lastChecks = checks.slice(0, 40);
  st.lastCheckTime = ctx.now;
  st.intervalStart = ctx.now;
}

function countFailure(ctx: Context, st: State, checks: CanaryCheckResult[]): boolean {
  st.failedChecks += 1;
  st.noDataChecks = 0;
  const failed = checks.filter((c) => c.result === 'Fail').map((c) => `${c.name}: ${c.message}`).join('; ');
  if (st.failedChecks >= ctx.threshold) {
    fail(ctx, st, 'ThresholdReached', `${st.failedChecks} failed checks (threshold ${ctx.threshold}); last: ${failed}`);
    return true;
  }
  st.progress = { reason: 'CheckFailed', message: `failed check ${st.failedChecks}/${ctx.threshold}: ${failed}` };
  event(ctx, st, 'Warning', 'CheckFailed', st.progress.message);
  return false;
}

function noData(ctx: Context, st: State, checks: CanaryCheckResult[]): void {
  st.noDataChecks += 1;
  const why = checks.filter((c) => c.result === 'NoData').map((c) => `${c.name}: ${c.message}`).join('; ');
  const first = st.progress.reason !== 'NoData';
  st.progress = { reason: 'NoData', message: `no data for ${st.noDataChecks} interval(s); holding at weight ${st.weight}: ${why}` };
  if (first) event(ctx, st, 'Warning', 'NoData', st.progress.message);
}

function holdForProxies(ctx: Context, st: State): void {
  const first = st.progress.reason !== 'WaitingForProxies';
  st.progress = { reason: 'WaitingForProxies', message: `check passed, step held at weight ${st.weight}: ${stragglerText(ctx)}` };
  if (first) event(ctx, st, 'Normal', 'WaitingForProxies', st.progress.message);
}

function runInitializing(ctx: Context, st: State): void {
  const hooks = hooksOf(ctx, 'pre-rollout');
  if (hooks.length === 0) { advance(ctx, st, 'run started'); return; }
  const due = st.failedChecks === 0 ? st.intervalStart : st.intervalStart + ctx.intervalMs;
  if (ctx.now < due) return;
  const answers = gate(ctx, st, ['pre-rollout']);
  if (!answers) return;
  const checks = [...answers].map(([hook, a]) => webhookCheck(hook, a, 'approved'));
  recordCheck(ctx, st, checks);
  if (checks.every((c) => c.result === 'Pass')) advance(ctx, st, 'pre-rollout approved');
  else countFailure(ctx, st, checks);
}

function runAnalysing(ctx: Context, st: State): void {
  if (ctx.now < st.intervalStart + ctx.intervalMs) return;
  const last = ctx.ladder.find((w) => w > st.weight) === undefined;
  const answers = gate(ctx, st, last ? ['rollout', 'rollback', 'confirm-promotion'] : ['rollout', 'rollback']);
  if (!answers) return;
  const rollback = [...answers].find(([hook, a]) => hook.type === 'rollback' && a.approved);
  const checks = evaluateMetrics(ctx, 'canary');
  for (const [hook, a] of answers) {
    if (hook.type === 'rollout') checks.push(webhookCheck(hook, a, 'approved'));
    if (hook.type === 'rollback') checks.push(webhookCheck(hook, a, 'refused'));
  }
  const confirmations = [...answers].filter(([hook]) => hook.type === 'confirm-promotion');
  // A refused confirmation shows as Fail in lastChecks but holds rather than counts.
  recordCheck(ctx, st, [...checks, ...confirmations.map(([hook, a]) => webhookCheck(hook, a, 'approved'))]);
  if (rollback) { fail(ctx, st, 'RollbackRequested', `webhook ${rollback[0].name} asked for a rollback${rollback[1].message ? `: ${rollback[1].message}` : ''}`); return; }
  const verdict = judge(checks);
  if (verdict.result === 'Fail') { countFailure(ctx, st, checks); return; }
  if (verdict.result === 'NoData') { noData(ctx, st, checks); return; }
  st.noDataChecks = 0;
  if (!converged(ctx)) { holdForProxies(ctx, st); return; }
  const refused = confirmations.filter(([, a]) => !a.approved).map(([hook]) => hook.name);
  if (refused.length > 0) {
    const first = st.progress.reason !== 'AwaitingConfirmation';
    st.progress = { reason: 'AwaitingConfirmation', message: `checks passed at weight ${st.weight}; confirm-promotion not given by ${refused.join(', ')}` };
    if (first) event(ctx, st, 'Normal', 'AwaitingConfirmation', st.progress.message);
    return;
  }
  advance(ctx, st, 'checks passed');
}

function runPromoting(ctx: Context, st: State): void {
  if (!converged(ctx)) {
    st.progress = { reason: 'Promoting', message: `weight 100: ${stragglerText(ctx)}` };
    return;
  }
  if (ctx.spec.promotion?.strategy === 'UpdateIngress' && ctx.input.ingressSwitched !== true) {
    const c = canaryProblems(ctx.input.canary);
    st.progress = { reason: 'UpdatingIngress', message: `switching Ingress ${ctx.spec.ingressRef?.name} from ${ctx.spec.service} to ${ctx.spec.canaryService?.name}` };
    ctx.actions.push({
      type: 'UpdateIngress', key: `${st.run}/update-ingress`, ingress: ctx.spec.ingressRef?.name ?? '',
      fromService: ctx.spec.service ?? '', toService: ctx.spec.canaryService?.name ?? '', port: c.canaryPort,
    });
    return;
  }
  st.stage = 'Promoted';
  const byIngress = ctx.spec.promotion?.strategy === 'UpdateIngress';
  // The Ingress now names the canary Service itself; the split is removed, so deleting the
  // Canary or starting a new run moves nothing.
  if (byIngress) setWeight(ctx, st, 0);
  const how = byIngress ? `Ingress ${ctx.spec.ingressRef?.name} now routes to ${ctx.spec.canaryService?.name}` : `all traffic on ${ctx.spec.canaryService?.name}`;
  st.progress = { reason: 'Promoted', message: how };
  event(ctx, st, 'Normal', 'Promoted', how);
  for (const hook of hooksOf(ctx, 'post-rollout')) ctx.actions.push(webhookCall(ctx, st, hook, `${st.run}/post-rollout/Promoted/${hook.name}`, false));
}

function runRetiring(ctx: Context, st: State): void {
  const r = st.retire;
  if (!r || r.blocked) return;
  if (ctx.now < st.intervalStart + ctx.intervalMs) return;
  const checks = ctx.progressive ? evaluateMetrics(ctx, 'stable') : [];
  const verdict = judge(checks);
  recordCheck(ctx, st, checks);
  if (verdict.result === 'Fail') {
    st.failedChecks += 1;
    const failed = checks.filter((c) => c.result === 'Fail').map((c) => `${c.name}: ${c.message}`).join('; ');
    if (st.failedChecks >= ctx.threshold) {
      r.blocked = true;
      setWeight(ctx, st, r.fromWeight);
      st.progress = { reason: 'RetireBlocked', message: `${ctx.spec.service} failed ${st.failedChecks} checks while taking traffic back (${failed}); weight restored to ${r.fromWeight}. Fix it and run \`kubectl vane retry\`, or \`kubectl vane promote --full\` to finish without analysis` };
      event(ctx, st, 'Warning', 'RetireBlocked', st.progress.message);
    } else {
      st.progress = { reason: 'CheckFailed', message: `stable check failed ${st.failedChecks}/${ctx.threshold} while retiring: ${failed}` };
      event(ctx, st, 'Warning', 'CheckFailed', st.progress.message);
    }
    return;
  }
  if (verdict.result === 'NoData') { noData(ctx, st, checks); return; }
  st.noDataChecks = 0;
  if (!converged(ctx)) { holdForProxies(ctx, st); return; }
  if (st.weight === 0) { finishRetire(ctx, st); return; }
  const next = retireLadder(ctx, st.weight)[0]!;
  const from = st.weight;
  setWeight(ctx, st, next);
  st.progress = { reason: 'Retiring', message: `stepping traffic back to ${ctx.spec.service}: weight ${st.weight}` };
  event(ctx, st, 'Normal', 'Retiring', `weight ${from} → ${st.weight}`);
}

function reject(st: State, text: string, message: string, now: number, ctx: Context): void {
  st.lastCommand = { command: text, result: 'Rejected', message, time: iso(now) };
  event(ctx, st, 'Warning', 'CommandRejected', `${text}: ${message}`);
}

function accept(st: State, text: string, message: string, now: number, ctx: Context): void {
  st.lastCommand = { command: text, result: 'Accepted', message, time: iso(now) };
  event(ctx, st, 'Normal', 'CommandAccepted', `${text}: ${message}`);
}

function runCommand(ctx: Context, st: State, text: string): void {
  const parsed = parseCommand(text);
  const now = ctx.now;
  if ('error' in parsed) { reject(st, text, parsed.error, now, ctx); return; }
  const switched = st.stage === 'Promoted' && ctx.spec.promotion?.strategy === 'UpdateIngress';
  switch (parsed.verb) {
    case 'abort':
      if (switched) { reject(st, text, `promotion is complete: Ingress ${ctx.spec.ingressRef?.name} routes to ${ctx.spec.canaryService?.name}; change the Ingress instead`, now, ctx); return; }
      if (st.stage === 'Retiring' && st.retire?.reason === 'Deleted') {
        accept(st, text, 'all traffic back on the stable Service now; releasing the finalizer', now, ctx);
        finishRetire(ctx, st);
        return;
      }
      accept(st, text, st.stage === 'Failed' ? 'already rolled back' : 'rolling back now', now, ctx);
      if (st.stage !== 'Failed') fail(ctx, st, 'Aborted', `aborted by ${COMMAND_ANNOTATION}`);
      return;
    case 'pause':
      if (st.stage === 'Promoted' || st.stage === 'Failed') { reject(st, text, `nothing to pause: the canary is ${st.stage}`, now, ctx); return; }
      st.held = true;
      accept(st, text, `paused at weight ${st.weight}`, now, ctx);
      return;
    case 'resume':
      if (!st.held) { reject(st, text, ctx.paused ? 'paused by spec.paused: set it to false' : 'not paused', now, ctx); return; }
      st.held = false;
      st.intervalStart = now;
      accept(st, text, ctx.paused ? 'resumed, but spec.paused is still true' : 'resumed with a fresh interval', now, ctx);
      return;
    case 'retry':
      if (st.stage === 'Failed') { accept(st, text, 'starting a new run', now, ctx); startRun(ctx, st, 'retry'); return; }
      if (st.retire?.blocked) {
        accept(st, text, 'stepping down again', now, ctx);
        st.retire = { ...st.retire, blocked: false };
        st.failedChecks = 0;
        st.intervalStart = now;
        return;
      }
      reject(st, text, `only a Failed canary or a blocked step-down can be retried; the canary is ${st.stage}`, now, ctx);
      return;
    case 'promote':
      if (ctx.paused) { reject(st, text, 'spec.paused is true: set it to false first', now, ctx); return; }
      if (st.stage === 'Retiring') {
        if (parsed.full || st.weight === 0) { accept(st, text, 'finishing the step-down without analysis', now, ctx); finishRetire(ctx, st); return; }
        if (st.retire) st.retire.blocked = false;
        st.failedChecks = 0;
        setWeight(ctx, st, retireLadder(ctx, st.weight)[0]!);
        st.intervalStart = now;
        accept(st, text, `stepped down to weight ${st.weight} without analysis`, now, ctx);
        return;
      }
      if (st.stage === 'Initializing' || st.stage === 'Analysing') {
        accept(st, text, parsed.full ? 'promoting without further analysis' : 'advancing one step without analysis', now, ctx);
        st.held = false;
        if (parsed.full) startPromotion(ctx, st, 'promoted by command');
        else advance(ctx, st, 'promoted by command');
        return;
      }
      reject(st, text, st.stage === 'Manual' ? 'manual mode: set spec.traffic.weight (100 to promote)' : `the canary is ${st.stage}`, now, ctx);
      return;
    case 'set-weight': {
      const w = parsed.weight ?? 0;
      if (st.stage === 'Manual') { reject(st, text, 'manual mode: the weight is spec.traffic.weight', now, ctx); return; }
      if (st.stage === 'Failed' || st.stage === 'Retiring' || switched) { reject(st, text, `the canary is ${switched ? 'promoted through its Ingress' : st.stage}`, now, ctx); return; }
      accept(st, text, `weight ${st.weight} → ${w}, paused until resume or promote`, now, ctx);
      setWeight(ctx, st, w);
      st.step = ctx.ladder.filter((x) => x <= w).length;
      st.stage = 'Analysing';
      st.held = true;
      st.intervalStart = now;
      st.progress = { reason: 'ManualWeight', message: `weight set to ${w} by command` };
      return;
    }
  }
}

function condition(prev: CanaryStatus, type: string, status: 'True' | 'False', reason: string, message: string, ctx: Context): CanaryCondition {
  const old = conditionOf(prev, type);
  const generation = count(ctx.input.canary.metadata?.generation);
  const same = old?.status === status && typeof old.lastTransitionTime === 'string';
  return {
    type, status, reason: reason || type, message: message.slice(0, 32768),
    lastTransitionTime: same ? old.lastTransitionTime! : iso(ctx.now),
    observedGeneration: generation,
  };
}

function conditions(prev: CanaryStatus, st: State, ctx: Context, invalid: string | null): CanaryCondition[] {
  const f = ctx.input.fleet;
  const phase = phaseOf(st, ctx);
  let ready: [boolean, string, string];
  if (invalid !== null) ready = [false, 'InvalidSpec', invalid];
  else if (st.retire?.blocked) ready = [false, 'RetireBlocked', st.progress.message];
  else if (ctx.routingChanged) ready = [false, 'ProxiesNotConverged', `weight ${st.weight} not yet acknowledged by the proxies`];
  else if (f.converged >= f.expected) ready = [true, 'Converged', `${f.converged}/${f.expected} proxies serve weight ${st.weight}`];
  else ready = [false, 'ProxiesNotConverged', stragglerText(ctx)];
  const active = st.stage === 'Initializing' || st.stage === 'Analysing' || st.stage === 'Promoting' || st.stage === 'Retiring';
  let progressing: [boolean, string, string];
  if (invalid !== null) progressing = [false, 'InvalidSpec', invalid];
  else if (phase === 'Paused') progressing = [false, 'Paused', ctx.paused ? 'spec.paused is true' : `paused by command at weight ${st.weight}`];
  else progressing = [active, st.progress.reason, st.progress.message];
  const manualPromoted = st.stage === 'Manual' && st.weight === 100 && !ctx.routingChanged && f.converged >= f.expected;
  const promoted: [boolean, string, string] = st.stage === 'Promoted'
    ? [true, ctx.spec.promotion?.strategy === 'UpdateIngress' ? 'IngressUpdated' : 'Promoted', st.progress.message]
    : manualPromoted ? [true, 'ManualWeight', 'spec.traffic.weight is 100'] : [false, 'NotPromoted', `phase ${phase}`];
  const failed: [boolean, string, string] = st.stage === 'Failed' ? [true, st.failure.reason || 'Failed', st.failure.message] : [false, 'NotFailed', `phase ${phase}`];
  return [
    condition(prev, 'Ready', ready[0] ? 'True' : 'False', ready[1], ready[2], ctx),
    condition(prev, 'Progressing', progressing[0] ? 'True' : 'False', progressing[1], progressing[2], ctx),
    condition(prev, 'Promoted', promoted[0] ? 'True' : 'False', promoted[1], promoted[2], ctx),
    condition(prev, 'Failed', failed[0] ? 'True' : 'False', failed[1], failed[2], ctx),
  ];
}

function save(prev: CanaryStatus, st: State, ctx: Context, invalid: string | null): CanaryStatus {
  const f = ctx.input.fleet;
  const conv = ctx.routingChanged ? 0 : Math.min(f.converged, f.expected);
  const status: CanaryStatus = {
    phase: phaseOf(st, ctx),
    stage: st.stage ?? (ctx.progressive ? 'Initializing' : 'Manual'),
    weight: st.weight,
    step: st.step,
    failedChecks: st.failedChecks,
    noDataChecks: st.noDataChecks,
    run: st.run,
    runHash: st.runHash,
    intervalStart: iso(st.intervalStart),
    ...(st.lastCheckTime !== null ? { lastCheckTime: iso(st.lastCheckTime) } : {}),
    lastChecks: st.lastChecks,
    held: st.held,
    ...(st.lastCommand ? { lastCommand: st.lastCommand } : {}),
    ...(st.retire ? { retire: st.retire } : {}),
    proxies: { converged: conv, expected: f.expected, generation: f.generation, summary: `${conv}/${f.expected}` },
    observedGeneration: count(ctx.input.canary.metadata?.generation),
    conditions: conditions(prev, st, ctx, invalid),
  };
  return status;
}

function wakeAt(st: State, ctx: Context): number | null {
  if (ctx.paused || st.held || ctx.waiting) return null;
  switch (st.stage) {
    case 'Initializing': return st.failedChecks > 0 ? st.intervalStart + ctx.intervalMs : null;
    case 'Analysing': return st.intervalStart + ctx.intervalMs;
    case 'Retiring': return st.retire && !st.retire.blocked ? st.intervalStart + ctx.intervalMs : null;
    default: return null;
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  return hashValue(a ?? null) === hashValue(b ?? null);
}

/** step computes the next status of a Canary and the actions to take; it never throws on bad input. */
export function step(input: StepInput): StepResult {
  const canary = input.canary;
  const prev: CanaryStatus = canary.status && typeof canary.status === 'object' ? canary.status : {};
  const now = Number.isFinite(input.now) ? input.now : 0;
  const st = load(prev, now);
  const spec = withCanaryDefaults(canary.spec);
  const analysis = spec.analysis;
  const deleting = typeof canary.metadata?.deletionTimestamp === 'string';
  const ctx: Context = {
    input, now, spec,
    progressive: analysis !== undefined,
    ladder: analysis ? stepWeightsOf(analysis) ?? [] : [],
    intervalMs: durationMsOf(analysis?.interval) ?? DEFAULT_INTERVAL_MS,
    threshold: analysis?.threshold ?? 3,
    minRequests: analysis?.minRequests ?? 100,
    paused: spec.paused === true,
    hash: runHashOf(canary.spec),
    namespace: namespaceOf(canary),
    name: canary.metadata?.name ?? '',
    uid: canary.metadata?.uid ?? '',
    actions: [],
    routingChanged: false,
    waiting: false,
    release: false,
  };
  const errors = canaryProblems(canary).problems.filter((p) => p.severity === 'error');
  const finalizers = canary.metadata?.finalizers ?? [];
  const invalid = errors.length > 0 ? errors.map(formatProblem).join('; ') : null;

  if (invalid !== null) {
    // compile() drops the routes of an invalid Canary, so the weight in status no longer routes anything.
    if (deleting && finalizers.includes(FINALIZER)) ctx.actions.push({ type: 'RemoveFinalizer', key: 'finalizer/remove', finalizer: FINALIZER });
    const status = save(prev, st, ctx, invalid);
    return { status, actions: ctx.actions, wakeAt: null, changed: !sameJson(status, prev) };
  }

  if (!deleting && !finalizers.includes(FINALIZER)) ctx.actions.push({ type: 'AddFinalizer', key: 'finalizer/add', finalizer: FINALIZER });

  if (st.stage === null) startRun(ctx, st, '');

  if (deleting) {
    if (!(st.stage === 'Retiring' && st.retire?.reason === 'Deleted')) {
      if (releasable(st)) ctx.release = true;
      else startRetire(ctx, st, 'Deleted');
    }
  } else if (st.runHash !== ctx.hash) {
    if (!ctx.progressive && st.stage === 'Manual') {
      // Manual mode has no run to restart: the new weight and rules simply apply.
      st.runHash = ctx.hash;
    } else if (ctx.progressive && st.weight > RESTART_STEP_DOWN_ABOVE && st.stage !== 'Failed') {
      if (!(st.stage === 'Retiring' && st.retire?.reason === 'Restart')) startRetire(ctx, st, 'Restart');
      // The step-down finishes with a run of the spec as it is then.
      st.runHash = ctx.hash;
    } else {
      event(ctx, st, 'Normal', 'Restarted', `spec changed (generation ${count(canary.metadata?.generation)}): new run`);
      startRun(ctx, st, 'the spec changed');
    }
  }

  const text = canary.metadata?.annotations?.[COMMAND_ANNOTATION];
  if (typeof text === 'string' && text.trim() !== '' && text !== st.lastCommand?.command) runCommand(ctx, st, text.slice(0, 256));

  if (!ctx.paused && !st.held) {
    // Resuming from spec.paused starts a fresh interval, as `kubectl vane resume` does.
    if (prev.phase === 'Paused' && st.stage !== 'Manual') st.intervalStart = now;
    switch (st.stage) {
      case 'Manual': {
        const from = st.weight;
        setWeight(ctx, st, spec.traffic?.weight ?? 0);
        if (st.weight !== from) event(ctx, st, 'Normal', 'WeightChanged', `weight ${from} → ${st.weight} (spec.traffic.weight)`);
        break;
      }
      case 'Initializing': runInitializing(ctx, st); break;
      case 'Analysing': runAnalysing(ctx, st); break;
      case 'Promoting': runPromoting(ctx, st); break;
      case 'Retiring': runRetiring(ctx, st); break;
      default: break;
    }
  }
  if (deleting && ctx.release && finalizers.includes(FINALIZER)) ctx.actions.push({ type: 'RemoveFinalizer', key: 'finalizer/remove', finalizer: FINALIZER });

  const status = save(prev, st, ctx, null);
  return { status, actions: ctx.actions, wakeAt: wakeAt(st, ctx), changed: !sameJson(status, prev) };
}
