/**
 * `kubectl vane`: a kubectl plugin (the executable `kubectl-vane` on PATH) to read and
 * drive Canaries. `status` prints a table of every Canary in the namespace or a detailed
 * view of one; the commands write the `vane.dev/command` annotation (core/rollout.ts) and
 * wait for the controller's answer in `status.lastCommand`. Commands never change the spec,
 * so they do not fight a GitOps tool that owns it.
 *
 * Like kubectl, it uses the current kubeconfig context ($KUBECONFIG or ~/.kube/config) and
 * takes -n/--namespace, --kubeconfig and --context anywhere on the command line.
 */
import { randomBytes } from 'node:crypto';
import { Command, InvalidArgumentError, Option } from 'commander';
import { stringify } from 'yaml';
import type { Kube } from '../lib/kube/index.ts';
import {
  VaneError, formatCommand, withCanaryDefaults, stepWeightsOf, durationMsOf, COMMAND_ANNOTATION,
  type Canary, type CanaryCondition, type Command as CanaryCommand,
} from '../core/index.ts';
import { packageVersion } from '../lib/package-root.ts';

const GROUP = 'vane.dev';

/** PluginError is a failure the user can act on: printed as `error: message`, exit code 1. */
export class PluginError extends VaneError<PluginErrorCode> {
  override readonly name = 'PluginError';
}

/** PluginErrorCode: NotFound (no such Canary), and otherwise what went wrong in one word. */
export type PluginErrorCode = 'NotFound' | 'NoCRD' | 'Unreachable' | 'Config' | 'Server' | 'Rejected' | 'NoAnswer';

interface GlobalFlags {
  namespace?: string;
  kubeconfig?: string;
  context?: string;
}

interface Client {
  kube: Kube;
  namespace: string;
  server: string;
}

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  now: () => number;
}

/** REQUEST_TIMEOUT_MS bounds each call, so a black-holed API server fails the command instead of hanging it. */
const REQUEST_TIMEOUT_MS = 30_000;

async function connect(flags: GlobalFlags): Promise<Client> {
  const { Kube, loadKubeConfig, isKubeError } = await import('../lib/kube/index.ts');
  let kc;
  try {
    kc = loadKubeConfig({ ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}), ...(flags.context ? { context: flags.context } : {}) });
  } catch (err) {
    if (isKubeError(err, 'ECONFIG')) throw new PluginError('Config', err.message);
    throw err;
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new PluginError('Config', 'no cluster configured: set $KUBECONFIG, pass --kubeconfig, or pick one with --context');
  const namespace = flags.namespace || kc.getContextObject(kc.getCurrentContext())?.namespace || 'default';
  return { kube: new Kube(kc, { requestTimeoutMs: REQUEST_TIMEOUT_MS, listTimeoutMs: REQUEST_TIMEOUT_MS }), namespace, server: cluster.server };
}

/** apiError turns a client error into the message kubectl would print. */
function apiError(err: unknown, c: Client, name?: string): PluginError {
  const e = err as { code?: string; status?: number; message?: string; body?: { message?: string; reason?: string; details?: { name?: string } }; cause?: { cause?: { code?: string; message?: string }; message?: string } };
  const code = e.code === 'EHTTP' ? e.status : undefined;
  if (code === undefined) {
    const inner = e.cause?.cause;
    const why = e.code === 'ETIMEOUT' ? `no answer within ${REQUEST_TIMEOUT_MS / 1000}s` : inner?.code ?? inner?.message ?? e.cause?.message ?? e.message ?? String(err);
    return new PluginError('Unreachable', `cannot reach the API server at ${c.server} (${why}): is the cluster up, and is this the right context? (--kubeconfig, --context)`);
  }
  const body = e.body ?? {};
  if (code === 404) {
    if (name && body.details?.name === name) return new PluginError('NotFound', `canary "${name}" not found in namespace "${c.namespace}"`);
    return new PluginError('NoCRD', `the Canary resource (canaries.${GROUP}) is not installed in this cluster: apply crds/canaries.vane.dev.yaml`);
  }
  const reason = body.reason ?? (code === 401 ? 'Unauthorized' : code === 403 ? 'Forbidden' : `HTTP ${code}`);
  return new PluginError('Server', `from server (${reason}): ${body.message ?? e.message}`);
}

async function getCanary(c: Client, name: string): Promise<Canary> {
  try {
    const { RESOURCES } = await import('../lib/kube/index.ts');
    return await c.kube.get<Canary>(RESOURCES.Canary, { namespace: c.namespace, name });
  } catch (err) {
    throw apiError(err, c, name);
  }
}

async function listCanaries(c: Client, all: boolean): Promise<Canary[]> {
  try {
    const { RESOURCES } = await import('../lib/kube/index.ts');
    const list = await c.kube.list<Canary>(RESOURCES.Canary, all ? {} : { namespace: c.namespace });
    return (list.items ?? []).sort((a, b) => `${a.metadata?.namespace}/${a.metadata?.name}`.localeCompare(`${b.metadata?.namespace}/${b.metadata?.name}`));
  } catch (err) {
    throw apiError(err, c);
  }
}

/** age prints a duration as kubectl does: 45s, 4m, 3h12m, 5d. */
export function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 && h < 8 ? `${h}h${m % 60}m` : `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

function since(time: string | undefined, now: number): string {
  const t = time ? Date.parse(time) : NaN;
  return Number.isFinite(t) ? age(now - t) : '<unknown>';
}

/** table aligns rows under a header, three spaces apart, as kubectl get does. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('   ').trimEnd()).join('\n');
}

function ladderOf(c: Canary): number[] {
  const a = withCanaryDefaults(c.spec).analysis;
  return a ? stepWeightsOf(a) ?? [] : [];
}

function stepText(c: Canary): string {
  const ladder = ladderOf(c);
  if (!c.spec?.analysis) return 'manual';
  return `${c.status?.step ?? 0}/${ladder.length}`;
}

function checksText(c: Canary): string {
  const s = c.status;
  if (!c.spec?.analysis || !s) return '-';
  const threshold = withCanaryDefaults(c.spec).analysis?.threshold ?? 3;
  const failed = s.failedChecks ?? 0;
  const last = s.lastChecks ?? [];
  const verdict = last.length === 0 ? 'none yet' : last.some((x) => x.result === 'Fail') ? 'fail' : last.some((x) => x.result === 'NoData') ? 'no data' : 'pass';
  return `${verdict}, ${failed}/${threshold} failed`;
}

/** statusTable is `kubectl vane status` for many Canaries. */
export function statusTable(items: Canary[], now: number, withNamespace: boolean): string {
  const rows = [[...(withNamespace ? ['NAMESPACE'] : []), 'NAME', 'PHASE', 'WEIGHT', 'STEP', 'CHECKS', 'PROXIES', 'AGE']];
  for (const c of items) {
    const s = c.status;
    rows.push([
      ...(withNamespace ? [c.metadata?.namespace ?? ''] : []),
      c.metadata?.name ?? '', s?.phase ?? 'Pending', s?.weight === undefined ? '-' : String(s.weight), stepText(c), checksText(c),
      s?.proxies?.summary ?? '-', since(c.metadata?.creationTimestamp, now),
    ]);
  }
  return table(rows);
}

function weightsLine(c: Canary): string {
  const s = c.status;
  const w = s?.weight ?? 0;
  if (!c.spec?.analysis) return `${w}% (manual: spec.traffic.weight ${c.spec?.traffic?.weight ?? 0})`;
  const ladder = ladderOf(c);
  const marks = ladder.map((x) => (x === w ? `[${x}]` : String(x)));
  const where = s?.stage === 'Promoting' || s?.stage === 'Promoted' ? ' [promote]' : ' → promote';
  const stage = ladder.includes(w) ? '' : ` (at ${w})`;
  return `${w}%   steps ${marks.join(' ')}${where}${stage}`;
}

function rulesLine(c: Canary): string {
  if (c.status?.phase === 'Failed') return 'off (Failed: nothing reaches the canary)';
  const t = c.spec?.traffic ?? {};
  const parts: string[] = [];
  if (t.header) parts.push(`header ${t.header.name}${t.header.value !== undefined ? ` = ${JSON.stringify(t.header.value)}` : t.header.regex !== undefined ? ` ~ /${t.header.regex}/` : ' (always/never)'}`);
  if (t.cookie) parts.push(`cookie ${t.cookie.name} (always/never)`);
  if (t.sticky) parts.push('sticky');
  return parts.length > 0 ? parts.join(', ') : 'weight only';
}

function conditionRows(conditions: CanaryCondition[] | undefined): string[] {
  const rows = [['TYPE', 'STATUS', 'REASON', 'MESSAGE']];
  for (const c of conditions ?? []) rows.push([c.type ?? '', c.status ?? '', c.reason ?? '', (c.message ?? '').slice(0, 160)]);
  return table(rows).split('\n').map((l) => `  ${l}`);
}

/** statusDetail is `kubectl vane status NAME`: weights, step, checks, convergence, conditions. */
export function statusDetail(c: Canary, now: number): string {
  const s = c.status ?? {};
  const analysis = withCanaryDefaults(c.spec).analysis;
  const lines = [
    `Name:          ${c.metadata?.name}`,
    `Namespace:     ${c.metadata?.namespace}`,
    `Split:         Ingress ${c.spec?.ingressRef?.name}: ${c.spec?.service} → ${c.spec?.canaryService?.name}${c.spec?.revision ? ` (revision ${c.spec.revision})` : ''}`,
    `Phase:         ${s.phase ?? 'Pending (not yet seen by the controller)'}${s.stage ? ` (stage ${s.stage}, run ${s.run ?? 0})` : ''}`,
    `Weight:        ${weightsLine(c)}`,
    `Rules:         ${rulesLine(c)}`,
  ];
  if (analysis) {
    lines.push(`Step:          ${stepText(c)}`);
    const intervalMs = durationMsOf(analysis.interval) ?? 30_000;
    const start = s.intervalStart ? Date.parse(s.intervalStart) : NaN;
    const active = s.stage === 'Analysing' || s.stage === 'Retiring';
    if (active && s.phase !== 'Paused' && Number.isFinite(start)) {
      const due = start + intervalMs - now;
      lines.push(`Next check:    ${due > 0 ? `in ${age(due)}` : 'due now'} (interval ${analysis.interval})`);
    }
    lines.push(`Checks:        ${s.failedChecks ?? 0} failed of threshold ${analysis.threshold}${s.noDataChecks ? `, ${s.noDataChecks} interval(s) without data` : ''}${s.lastCheckTime ? `; last ${since(s.lastCheckTime, now)} ago` : ''}`);
    const checks = s.lastChecks ?? [];
    if (checks.length > 0) {
      const rows = [['CHECK', 'KIND', 'RESULT', 'VALUE', 'DETAIL']];
      for (const x of checks) rows.push([x.name ?? '', x.kind ?? '', x.result ?? '', x.value === undefined ? '-' : String(Math.round(x.value * 100) / 100), (x.message ?? '').slice(0, 120)]);
      lines.push(...table(rows).split('\n').map((l) => `  ${l}`));
    }
  }
  const p = s.proxies;
  lines.push(`Proxies:       ${p ? `${p.converged ?? 0}/${p.expected ?? 0} converged on the routing version carrying this status (generation ${p.generation ?? 0})` : '-'}`);
  if (s.retire) lines.push(`Retiring:      from weight ${s.retire.fromWeight} (${s.retire.reason})${s.retire.blocked ? ', BLOCKED: the stable side failed its checks' : ''}`);
  if (s.lastCommand) lines.push(`Last command:  ${s.lastCommand.command} → ${s.lastCommand.result}: ${s.lastCommand.message} (${since(s.lastCommand.time, now)} ago)`);
  lines.push('Conditions:', ...conditionRows(s.conditions));
  return lines.join('\n');
}

function render(value: unknown, output: string): string {
  return output === 'yaml' ? stringify(value).trimEnd() : JSON.stringify(value, null, 2);
}

async function status(name: string | undefined, opts: { output?: string; allNamespaces?: boolean }, flags: GlobalFlags, io: Io): Promise<void> {
  const c = await connect(flags);
  if (name) {
    const canary = await getCanary(c, name);
    io.out(opts.output ? render(canary, opts.output) : statusDetail(canary, io.now()));
    return;
  }
  const items = await listCanaries(c, opts.allNamespaces === true);
  if (opts.output) { io.out(render({ apiVersion: 'v1', kind: 'List', items }, opts.output)); return; }
  if (items.length === 0) { io.err(opts.allNamespaces ? 'No canaries found.' : `No canaries found in ${c.namespace} namespace.`); return; }
  io.out(statusTable(items, io.now(), opts.allNamespaces === true));
}

/** send writes a command and waits for the controller's verdict in status.lastCommand. */
async function send(name: string, command: CanaryCommand, opts: { wait: boolean; timeout: number }, flags: GlobalFlags, io: Io): Promise<void> {
  const c = await connect(flags);
  const before = await getCanary(c, name);
  const text = formatCommand(command, `${io.now().toString(36)}${randomBytes(3).toString('hex')}`);
  const { RESOURCES } = await import('../lib/kube/index.ts');
  try {
    await c.kube.mergePatch(RESOURCES.Canary, { namespace: c.namespace, name }, { metadata: { annotations: { [COMMAND_ANNOTATION]: text } } });
  } catch (err) {
    throw apiError(err, c, name);
  }
  if (!opts.wait) { io.out(`canary.${GROUP}/${name} ${command.verb} sent (${text})`); return; }
  const deadline = Date.now() + opts.timeout;
  for (;;) {
    let now: Canary;
    try {
      now = await getCanary(c, name);
    } catch (err) {
      // A command that ends a step-down releases the finalizer: the deletion completes.
      if (before.metadata?.deletionTimestamp && err instanceof PluginError && err.code === 'NotFound') {
        io.out(`canary.${GROUP}/${name} ${command.verb}: done; the Canary's deletion completed`);
        return;
      }
      throw err;
    }
    const last = now.status?.lastCommand;
    if (last?.command === text) {
      if (last.result === 'Accepted') { io.out(`canary.${GROUP}/${name} ${command.verb}: ${last.message}`); return; }
      throw new PluginError('Rejected', `canary.${GROUP}/${name} ${command.verb} rejected: ${last.message}`);
    }
    if (Date.now() > deadline) {
      throw new PluginError('NoAnswer', `canary.${GROUP}/${name}: ${command.verb} sent, but no controller answered within ${opts.timeout / 1000}s: is the Vane operator running and leading? (the command stays in the ${COMMAND_ANNOTATION} annotation)`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function duration(value: string): number {
  const ms = durationMsOf(value);
  if (ms === null || ms <= 0) throw new InvalidArgumentError('must be a duration such as "30s"');
  return ms;
}

function weight(value: string): number {
  const n = Number(value);
  if (!/^\d{1,3}$/.test(value) || n > 100) throw new InvalidArgumentError('must be an integer from 0 to 100');
  return n;
}

export function buildKubectlVane(io: Io): Command {
  const program = new Command('kubectl vane')
    .description('Drive Vane canaries: status, promote, abort, pause, resume, retry, set-weight')
    .version(packageVersion(), '-V, --version', 'print the version of Vane')
    .option('-n, --namespace <ns>', 'namespace (default: the context\'s, else "default")')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .showHelpAfterError()
    .exitOverride();
  const flags = (cmd: Command): GlobalFlags => cmd.optsWithGlobals() as GlobalFlags;
  const waiting = (cmd: Command) => cmd
    .option('--no-wait', 'return once the command is written, without waiting for the controller')
    .addOption(new Option('--timeout <duration>', 'how long to wait for the controller\'s answer').argParser(duration).default(30_000, '30s'));

  program.command('status')
    .description('a table of the namespace\'s canaries, or one canary in detail')
    .argument('[name]', 'canary name')
    .addOption(new Option('-o, --output <format>', 'print the object(s)').choices(['json', 'yaml']))
    .option('-A, --all-namespaces', 'canaries of every namespace')
    .action(async (name: string | undefined, opts: { output?: string; allNamespaces?: boolean }, cmd: Command) => status(name, opts, flags(cmd), io));

  const simple: [CanaryCommand['verb'], string][] = [
    ['abort', 'roll back now: weight 0, every canary rule off'],
    ['pause', 'hold the run and the weight'],
    ['resume', 'end a pause; a fresh interval starts'],
    ['retry', 'start a new run of a Failed canary, or retry a blocked step-down'],
  ];
  waiting(program.command('promote')
    .description('skip the current check: the next step now (--full: promote now)')
    .argument('<name>', 'canary name')
    .option('--full', 'skip every remaining step and promote'))
    .action(async (name: string, opts: { full?: boolean; wait: boolean; timeout: number }, cmd: Command) =>
      send(name, { verb: 'promote', full: opts.full === true, weight: null }, opts, flags(cmd), io));
  for (const [verb, description] of simple) {
    waiting(program.command(verb).description(description).argument('<name>', 'canary name'))
      .action(async (name: string, opts: { wait: boolean; timeout: number }, cmd: Command) => send(name, { verb, full: false, weight: null }, opts, flags(cmd), io));
  }
  waiting(program.command('set-weight')
    .description('set the weight by hand and hold it (resume or promote continues)')
    .argument('<name>', 'canary name')
    .argument('<weight>', 'percent of requests for the canary, 0–100', weight))
    .action(async (name: string, w: number, opts: { wait: boolean; timeout: number }, cmd: Command) =>
      send(name, { verb: 'set-weight', full: false, weight: w }, opts, flags(cmd), io));
  return program;
}

export async function main(argv: string[], io: Io = { out: (t) => console.log(t), err: (t) => console.error(t), now: () => Date.now() }): Promise<number> {
  try {
    await buildKubectlVane(io).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    const e = err as { code?: unknown; exitCode?: number; message?: string };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) return e.exitCode ?? 1;
    io.err(`error: ${e.message ?? String(err)}`);
    return 1;
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
