/**
 * The canary state machine, rule by rule (docs/canary.md "State machine"). A small simulator
 * plays the controller: it calls step() at chosen times, writes the status back, applies
 * finalizer actions, and reports the fleet as converged between calls unless a test names
 * stragglers.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  step, parseCommand, formatCommand, analysisWindow, runHashOf, FINALIZER, COMMAND_ANNOTATION, STATS_BUCKETS_MS,
  type Canary, type CanarySpec, type CanaryStatus, type StepInput, type StepResult, type Action, type MetricsInput, type WebhookResult,
} from '../../../core/index.ts';

const T0 = Date.parse('2025-03-01T12:00:00Z');
const INTERVAL = 30_000;

type SideStats = MetricsInput['canary'];

/** stats puts `requests` requests, `failures` of them failed, all in the latency bucket holding latencyMs. */
function stats(requests: number, failures = 0, latencyMs = 20): SideStats {
  const latency = new Array<number>(STATS_BUCKETS_MS.length + 1).fill(0);
  const i = STATS_BUCKETS_MS.findIndex((b) => latencyMs <= b);
  latency[i === -1 ? STATS_BUCKETS_MS.length : i] = requests;
  return { requests, failures, latency };
}

const HEALTHY: MetricsInput = { canary: stats(1000), stable: stats(9000) };
const FAILING: MetricsInput = { canary: stats(1000, 100), stable: stats(9000) };
const QUIET: MetricsInput = { canary: stats(20), stable: stats(200) };

function progressive(extra: Partial<NonNullable<CanarySpec['analysis']>> = {}, spec: Partial<CanarySpec> = {}): CanarySpec {
  return {
    ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web-v2' },
    analysis: { interval: '30s', stepWeights: [10, 25, 50], threshold: 2, minRequests: 100, metrics: [{ name: 'success-rate', min: 99 }, { name: 'latency-p99', maxMs: 500 }], ...extra },
    ...spec,
  };
}

function manual(weight: number, spec: Partial<CanarySpec> = {}): CanarySpec {
  return { ingressRef: { name: 'shop' }, service: 'web', canaryService: { name: 'web-v2' }, traffic: { weight, header: { name: 'X-Canary' } }, ...spec };
}

interface Tick {
  /** Milliseconds to let pass before this call (default: one interval). */
  after?: number;
  metrics?: MetricsInput;
  webhooks?: WebhookResult[];
  stragglers?: string[];
  ingressSwitched?: boolean;
}

class Sim {
  canary: Canary;
  now = T0;
  last!: StepResult;
  events: string[] = [];
  actions: Action[] = [];
  released = false;

  constructor(spec: CanarySpec, status?: CanaryStatus) {
    this.canary = {
      apiVersion: 'vane.dev/v1alpha1', kind: 'Canary',
      metadata: { name: 'checkout', namespace: 'shop', uid: 'u-1', generation: 1, finalizers: [FINALIZER], annotations: {} },
      spec, ...(status ? { status } : {}),
    };
  }

  get status(): CanaryStatus { return this.canary.status ?? {}; }
  get weight(): number { return this.status.weight ?? -1; }

  tick(t: Tick = {}): StepResult {
    this.now += t.after ?? (this.canary.status ? INTERVAL : 0);
    const stragglers = t.stragglers ?? [];
    const input: StepInput = {
      canary: structuredClone(this.canary), now: this.now,
      fleet: { expected: 3, converged: 3 - stragglers.length, stragglers, generation: 40 },
      metrics: t.metrics ?? HEALTHY,
      ...(t.webhooks ? { webhooks: t.webhooks } : {}),
      ...(t.ingressSwitched !== undefined ? { ingressSwitched: t.ingressSwitched } : {}),
    };
    const r = step(input);
    this.last = r;
    this.actions = r.actions;
    if (r.changed) this.canary.status = r.status;
    for (const a of r.actions) {
      if (a.type === 'Event') this.events.push(`${a.reason}: ${a.message}`);
      if (a.type === 'AddFinalizer') this.canary.metadata!.finalizers = [...(this.canary.metadata!.finalizers ?? []), a.finalizer];
      if (a.type === 'RemoveFinalizer') {
        this.canary.metadata!.finalizers = (this.canary.metadata!.finalizers ?? []).filter((f) => f !== a.finalizer);
        this.released = true;
      }
    }
    return r;
  }

  /** ticks calls tick n times with the same observations and returns the weights seen. */
  ticks(n: number, t: Tick = {}): number[] {
    const out: number[] = [];
    for (let i = 0; i < n; i++) { this.tick(t); out.push(this.weight); }
    return out;
  }

  edit(change: (spec: CanarySpec) => void): void {
    change(this.canary.spec!);
    this.canary.metadata!.generation = (this.canary.metadata!.generation ?? 1) + 1;
  }

  command(text: string): void { this.canary.metadata!.annotations![COMMAND_ANNOTATION] = text; }

  delete(): void { this.canary.metadata!.deletionTimestamp = new Date(this.now).toISOString(); }

  condition(type: string): { status?: string; reason?: string; message?: string } {
    return this.status.conditions?.find((c) => c.type === type) ?? {};
  }

  eventsSince(mark: number): string[] { return this.events.slice(mark); }

  calls(type: string): Extract<Action, { type: 'CallWebhook' }>[] {
    return this.actions.filter((a): a is Extract<Action, { type: 'CallWebhook' }> => a.type === 'CallWebhook' && a.hookType === type);
  }
}

describe('manual mode', () => {
  const cases: { name: string; spec: CanarySpec; phase: string; weight: number; promoted: string }[] = [
    { name: 'weight 0', spec: manual(0), phase: 'Progressing', weight: 0, promoted: 'False' },
    { name: 'weight 30', spec: manual(30), phase: 'Progressing', weight: 30, promoted: 'False' },
    { name: 'weight 100 is promoted by hand', spec: manual(100), phase: 'Promoted', weight: 100, promoted: 'True' },
    { name: 'paused from the start keeps weight 0', spec: manual(30, { paused: true }), phase: 'Paused', weight: 0, promoted: 'False' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const sim = new Sim(c.spec);
      sim.tick();
      sim.tick({ after: 1000 });
      assert.equal(sim.status.phase, c.phase);
      assert.equal(sim.weight, c.weight);
      assert.equal(sim.status.stage, 'Manual');
      assert.equal(sim.condition('Promoted').status, c.promoted);
      assert.equal(sim.condition('Ready').status, 'True');
      assert.equal(sim.last.wakeAt, null, 'manual mode never needs a timer');
    });
  }

  test('spec.traffic.weight changes apply on the next call, up or down, without restarting anything', () => {
    const sim = new Sim(manual(10));
    sim.tick();
    sim.edit((s) => { s.traffic!.weight = 60; });
    sim.tick({ after: 1 });
    assert.equal(sim.weight, 60);
    assert.equal(sim.status.run, 1);
    assert.equal(sim.events.at(-1), 'WeightChanged: weight 10 → 60 (spec.traffic.weight)');
    assert.equal(sim.condition('Ready').status, 'False', 'the new weight is not acknowledged in the call that sets it');
    sim.tick({ after: 1 });
    assert.equal(sim.condition('Ready').status, 'True');
    sim.edit((s) => { s.traffic!.weight = 5; });
    sim.tick({ after: 1 });
    assert.equal(sim.weight, 5);
  });

  test('spec.paused freezes the weight; unpausing applies the spec', () => {
    const sim = new Sim(manual(10));
    sim.tick();
    sim.edit((s) => { s.paused = true; s.traffic!.weight = 80; });
    sim.tick();
    assert.equal(sim.weight, 10);
    assert.equal(sim.status.phase, 'Paused');
    assert.equal(sim.condition('Progressing').reason, 'Paused');
    sim.edit((s) => { s.paused = false; });
    sim.tick();
    assert.equal(sim.weight, 80);
  });

  test('abort fails a manual canary until its spec changes', () => {
    const sim = new Sim(manual(40));
    sim.tick();
    sim.command('abort @1');
    sim.tick();
    assert.equal(sim.status.phase, 'Failed');
    assert.equal(sim.weight, 0);
    sim.ticks(3);
    assert.equal(sim.weight, 0, 'time alone does not bring it back');
    sim.edit((s) => { s.traffic!.weight = 20; });
    sim.tick();
    assert.equal(sim.status.phase, 'Progressing');
    assert.equal(sim.weight, 20);
  });
});

describe('progressive mode', () => {
  test('a healthy run walks the steps one interval at a time, then promotes (Hold)', () => {
    const sim = new Sim(progressive());
    sim.tick();
    assert.equal(sim.status.phase, 'Progressing');
    assert.deepEqual([sim.weight, sim.status.step, sim.status.run], [10, 1, 1]);
    assert.equal(sim.last.wakeAt, sim.now + INTERVAL);
    assert.deepEqual(analysisWindow(sim.canary), { side: 'canary', sinceMs: sim.now });
    sim.tick({ after: 1000 });
    assert.equal(sim.condition('Ready').status, 'True', 'the fleet caught up');
    sim.tick({ after: INTERVAL - 1001 });
    assert.equal(sim.weight, 10, 'no check before the interval is over');
    assert.equal(sim.last.changed, false, 'nothing to write while waiting');
    assert.deepEqual(sim.ticks(1, { after: 1 }), [25]);
    assert.deepEqual(sim.ticks(2), [50, 100]);
    assert.equal(sim.status.stage, 'Promoting');
    assert.equal(sim.condition('Promoted').status, 'False', 'not promoted until the fleet serves 100');
    sim.tick({ after: 200 });
    assert.equal(sim.status.phase, 'Promoted');
    assert.equal(sim.condition('Promoted').status, 'True');
    assert.equal(sim.condition('Progressing').status, 'False');
    assert.ok(sim.events.some((e) => e.startsWith('Promoted:')));
    assert.deepEqual(sim.status.lastChecks?.map((c) => [c.name, c.result]), [['success-rate', 'Pass'], ['latency-p99', 'Pass']]);
    sim.tick({ after: 1000 });
    assert.equal(sim.last.changed, false, 'a settled canary writes nothing');
  });

  test('stepWeight/maxWeight steps are 10, 20, … up to maxWeight', () => {
    const sim = new Sim(progressive({ stepWeights: undefined, stepWeight: 20, maxWeight: 60 }));
    sim.tick();
    assert.deepEqual([sim.weight, ...sim.ticks(3)], [20, 40, 60, 100]);
  });

  test('a failed check counts and holds; `threshold` of them roll back to weight 0 with every rule off', () => {
    const sim = new Sim(progressive({ webhooks: [{ name: 'done', type: 'post-rollout', url: 'http://hooks/done' }] }));
    sim.tick();
    sim.tick();
    assert.equal(sim.weight, 25);
    sim.tick({ metrics: FAILING });
    assert.deepEqual([sim.weight, sim.status.failedChecks, sim.status.phase], [25, 1, 'Progressing']);
    assert.equal(sim.condition('Progressing').reason, 'CheckFailed');
    assert.match(sim.events.at(-1)!, /^CheckFailed: failed check 1\/2: success-rate: 90% of 1000 requests succeeded \(min 99%\)/);
    sim.tick({ metrics: FAILING });
    assert.deepEqual([sim.weight, sim.status.failedChecks, sim.status.phase], [0, 2, 'Failed']);
    assert.equal(sim.condition('Failed').status, 'True');
    assert.equal(sim.condition('Failed').reason, 'ThresholdReached');
    assert.equal(sim.calls('post-rollout').length, 1);
    assert.equal(sim.calls('post-rollout')[0]!.body.phase, 'Failed');
    assert.deepEqual(sim.ticks(3), [0, 0, 0], 'Failed stays Failed');
    assert.equal(sim.last.wakeAt, null);
  });

  test('failures count across steps: a pass in between does not reset them', () => {
    const sim = new Sim(progressive({ threshold: 2 }));
    sim.tick();
    sim.tick({ metrics: FAILING });
    sim.tick();
    assert.equal(sim.weight, 25);
    sim.tick({ metrics: FAILING });
    assert.equal(sim.status.phase, 'Failed');
  });

  test('latency above maxMs fails the check', () => {
    const sim = new Sim(progressive());
    sim.tick();
    sim.tick({ metrics: { canary: stats(1000, 0, 900), stable: stats(100) } });
    assert.equal(sim.status.failedChecks, 1);
    assert.deepEqual(sim.status.lastChecks?.find((c) => c.name === 'latency-p99')?.result, 'Fail');
  });

  test('fewer than minRequests is no data: the run holds, never passes, and says so', () => {
    const sim = new Sim(progressive());
    sim.tick();
    const mark = sim.events.length;
    assert.deepEqual(sim.ticks(4, { metrics: QUIET }), [10, 10, 10, 10]);
    assert.equal(sim.status.failedChecks, 0, 'no data is not a failure');
    assert.equal(sim.status.noDataChecks, 4);
    assert.equal(sim.condition('Progressing').reason, 'NoData');
    assert.match(sim.condition('Progressing').message!, /^no data for 4 interval\(s\); holding at weight 10: success-rate: 20 canary requests, fewer than minRequests 100/);
    assert.equal(sim.eventsSince(mark).filter((e) => e.startsWith('NoData')).length, 1, 'one Event, not one per interval');
    sim.tick();
    assert.equal(sim.weight, 25);
    assert.equal(sim.status.noDataChecks, 0);
  });

  test('failing checks still count while data is short elsewhere', () => {
    const sim = new Sim(progressive({ metrics: [{ name: 'success-rate', min: 99 }, { name: 'errors', max: 1, prometheus: { query: 'x' } }] }));
    sim.tick();
    sim.tick({ metrics: { ...QUIET, prometheus: { errors: { value: 5 } } } });
    assert.equal(sim.status.failedChecks, 1);
  });

  test('a step advances only when every expected proxy serves the current weight; stragglers are named', () => {
    const sim = new Sim(progressive());
    sim.tick();
    const mark = sim.events.length;
    sim.tick({ stragglers: ['proxy-b', 'proxy-c'] });
    assert.equal(sim.weight, 10);
    assert.equal(sim.condition('Progressing').reason, 'WaitingForProxies');
    assert.match(sim.condition('Progressing').message!, /1\/3 proxies converged; waiting for proxy-b, proxy-c/);
    assert.equal(sim.condition('Ready').status, 'False');
    assert.equal(sim.status.proxies?.summary, '1/3');
    sim.tick({ stragglers: ['proxy-c'] });
    assert.equal(sim.weight, 10);
    assert.equal(sim.eventsSince(mark).filter((e) => e.startsWith('WaitingForProxies')).length, 1);
    sim.tick({ after: 5000 });
    assert.equal(sim.weight, 10, 'convergence alone does not skip the interval');
    sim.tick();
    assert.equal(sim.weight, 25);
  });

  test('a failing canary is rolled back even while stragglers hold the step', () => {
    const sim = new Sim(progressive());
    sim.tick();
    sim.ticks(2, { metrics: FAILING, stragglers: ['proxy-b'] });
    assert.equal(sim.status.phase, 'Failed');
  });

  test('promotion waits for the whole fleet to serve 100', () => {
    const sim = new Sim(progressive({ stepWeights: [50] }));
    sim.tick();
    sim.tick();
    assert.equal(sim.status.stage, 'Promoting');
    sim.tick({ stragglers: ['proxy-a'], after: 100 });
    assert.equal(sim.status.stage, 'Promoting');
    assert.match(sim.condition('Progressing').message!, /waiting for proxy-a/);
    sim.tick({ after: 100 });
    assert.equal(sim.status.phase, 'Promoted');
  });

  test('UpdateIngress: weight 100, then the Ingress patch, then the split is removed', () => {
    const sim = new Sim(progressive({ stepWeights: [50] }, { promotion: { strategy: 'UpdateIngress' }, canaryService: { name: 'web-v2', port: { number: 8080 } } }));
    sim.tick();
    sim.tick();
    sim.tick({ after: 100, ingressSwitched: false });
    const patch = sim.actions.find((a) => a.type === 'UpdateIngress');
    assert.deepEqual(patch && { ...patch, key: '' }, { type: 'UpdateIngress', key: '', ingress: 'shop', fromService: 'web', toService: 'web-v2', port: 8080 });
    assert.equal(sim.condition('Progressing').reason, 'UpdatingIngress');
    assert.equal(sim.weight, 100);
    sim.tick({ after: 100, ingressSwitched: false });
    assert.ok(sim.actions.some((a) => a.type === 'UpdateIngress'), 'asked again until done');
    sim.tick({ after: 100, ingressSwitched: true });
    assert.equal(sim.status.phase, 'Promoted');
    assert.equal(sim.condition('Promoted').reason, 'IngressUpdated');
    assert.equal(sim.weight, 0, 'the Ingress names the canary Service itself now');
  });
});

describe('pause and resume', () => {
  test('spec.paused holds the weight and the checks; unpausing starts a fresh interval', () => {
    const sim = new Sim(progressive());
    sim.tick();
    sim.edit((s) => { s.paused = true; });
    assert.deepEqual(sim.ticks(3, { metrics: FAILING }), [10, 10, 10]);
    assert.equal(sim.status.phase, 'Paused');
    assert.equal(sim.status.failedChecks, 0, 'no check while paused');
    assert.equal(sim.status.run, 1, 'pausing is not a spec change that restarts the run');
    assert.equal(sim.last.wakeAt, null);
    sim.edit((s) => { s.paused = false; });
    sim.tick();
    assert.equal(sim.weight, 10, 'the interval restarts at resume');
    assert.equal(sim.status.phase, 'Progressing');
    sim.tick();
    assert.equal(sim.weight, 25);
  });

  test('pause and resume commands do the same without touching the spec', () => {
    const sim = new Sim(progressive());
    sim.tick();
    sim.command('pause @a');
    sim.tick();
    assert.equal(sim.status.phase, 'Paused');
    assert.equal(sim.status.held, true);
    assert.equal(sim.status.lastCommand?.result, 'Accepted');
    assert.deepEqual(sim.ticks(2), [10, 10]);
    sim.command('resume @b');
    sim.tick();
    assert.equal(sim.status.phase, 'Progressing');
    assert.equal(sim.weight, 10);
    sim.tick();
    assert.equal(sim.weight, 25);
  });
});

describe('spec changes', () => {
  test('a spec change during a run restarts the analysis from the first step', () => {
    const sim = new Sim(progressive());
    sim.tick();
    sim.tick({ metrics: FAILING });
    sim.tick();
    assert.deepEqual([sim.weight, sim.status.failedChecks], [25, 1]);
    const hash = sim.status.runHash;
    sim.edit((s) => { s.revision = 'build-2'; });
    sim.tick({ after: 1 });
    assert.deepEqual([sim.weight, sim.status.step, sim.status.run, sim.status.failedChecks], [10, 1, 2, 0]);
    assert.notEqual(sim.status.runHash, hash);
    assert.ok(sim.events.some((e) => e.startsWith('Restarted:')));
  });

  test('a Failed canary stays Failed until its spec changes, then runs again', () => {
    const sim = new Sim(progressive({ threshold: 1 }));
    sim.tick();
    sim.tick({ metrics: FAILING });
    assert.equal(sim.status.phase, 'Failed');
    sim.ticks(2);
    assert.equal(sim.status.phase, 'Failed');
    sim.edit((s) => { s.revision = 'fixed'; });
    sim.tick({ after: 1 });
    assert.deepEqual([sim.status.phase, sim.weight, sim.status.run], ['Progressing', 10, 2]);
    assert.equal(sim.condition('Failed').status, 'False');
  });

  test('defaults do not count as a change: a spec read back with the API server defaults keeps the run', () => {
    const spec = progressive();
    assert.equal(runHashOf(spec), runHashOf({ ...spec, paused: false, traffic: { weight: 0, sticky: false }, promotion: { strategy: 'Hold' } }));
    assert.notEqual(runHashOf(spec), runHashOf({ ...spec, revision: 'x' }));
    assert.equal(runHashOf(spec), runHashOf({ ...spec, paused: true }));
  });

  test('a restart while the canary carries most traffic steps down first, then runs again', () => {
    const sim = new Sim(progressive({ stepWeights: [10, 25, 50] }));
    sim.tick();
    sim.ticks(4);
    assert.equal(sim.status.phase, 'Promoted');
    sim.edit((s) => { s.revision = 'next'; });
    sim.tick({ after: 1 });
    assert.deepEqual([sim.status.phase, sim.weight, sim.status.retire?.reason], ['Retiring', 50, 'Restart']);
    assert.deepEqual(sim.ticks(4), [25, 10, 0, 10]);
    assert.deepEqual([sim.status.phase, sim.status.run], ['Progressing', 2]);
  });

  test('a restart below the majority goes straight to the first step', () => {
    const sim = new Sim(progressive());
    sim.tick();
    sim.ticks(2);
    assert.equal(sim.weight, 50);
    sim.edit((s) => { s.revision = 'next'; });
    sim.tick({ after: 1 });
    assert.equal(sim.weight, 10);
  });
});

describe('commands', () => {
  test('parseCommand and formatCommand round-trip; bad commands are errors', () => {
    for (const text of ['pause', 'resume', 'promote', 'promote --full', 'abort', 'retry', 'set-weight 0', 'set-weight 100']) {
      const c = parseCommand(`${text} @x1`);
      assert.ok(!('error' in c), text);
      assert.equal(formatCommand(c, 'x1'), `${text} @x1`);
    }
    for (const text of ['', 'nope', 'set-weight', 'set-weight 101', 'set-weight -1', 'set-weight 5.5', 'pause now', 'promote --fast']) {
      assert.ok('error' in parseCommand(text), text);
    }
  });

  const table: { name: string; spec: CanarySpec; before: number; command: string; phase: string; weight: number; result: string }[] = [
    { name: 'promote advances one step without a check', spec: progressive(), before: 0, command: 'promote', phase: 'Progressing', weight: 25, result: 'Accepted' },
    { name: 'promote --full goes to 100', spec: progressive(), before: 0, command: 'promote --full', phase: 'Progressing', weight: 100, result: 'Accepted' },
    { name: 'abort rolls back now', spec: progressive(), before: 1, command: 'abort', phase: 'Failed', weight: 0, result: 'Accepted' },
    { name: 'set-weight moves the weight and pauses', spec: progressive(), before: 0, command: 'set-weight 40', phase: 'Paused', weight: 40, result: 'Accepted' },
    { name: 'retry needs a Failed canary', spec: progressive(), before: 0, command: 'retry', phase: 'Progressing', weight: 10, result: 'Rejected' },
    { name: 'resume without pause is rejected', spec: progressive(), before: 0, command: 'resume', phase: 'Progressing', weight: 10, result: 'Rejected' },
    { name: 'promote in manual mode is rejected', spec: manual(20), before: 0, command: 'promote', phase: 'Progressing', weight: 20, result: 'Rejected' },
    { name: 'set-weight in manual mode is rejected', spec: manual(20), before: 0, command: 'set-weight 90', phase: 'Progressing', weight: 20, result: 'Rejected' },
    { name: 'promote while spec.paused is rejected', spec: progressive({}, { paused: true }), before: 0, command: 'promote', phase: 'Paused', weight: 0, result: 'Rejected' },
    { name: 'an unknown command is rejected', spec: progressive(), before: 0, command: 'rollback', phase: 'Progressing', weight: 10, result: 'Rejected' },
  ];
  for (const c of table) {
    test(c.name, () => {
      const sim = new Sim(c.spec);
      sim.tick();
      sim.ticks(c.before);
      sim.command(`${c.command} @1`);
      sim.tick({ after: 1 });
      assert.equal(sim.status.lastCommand?.result, c.result, sim.status.lastCommand?.message);
      assert.equal(sim.status.lastCommand?.command, `${c.command} @1`);
      assert.equal(sim.status.phase, c.phase);
      assert.equal(sim.weight, c.weight);
      assert.ok(sim.events.some((e) => e.startsWith(c.result === 'Accepted' ? 'CommandAccepted' : 'CommandRejected')));
    });
  }

  test('a command is handled once; the same verb with a new id is a new command', () => {
    const sim = new Sim(progressive());
    sim.tick();
    sim.command('promote @1');
    sim.tick({ after: 1 });
    assert.equal(sim.weight, 25);
    sim.tick({ after: 1 });
    assert.equal(sim.weight, 25, 'not applied twice');
    sim.command('promote @2');
    sim.tick({ after: 1 });
    assert.equal(sim.weight, 50);
  });

  test('set-weight then resume continues from the next step above the weight', () => {
    const sim = new Sim(progressive());
    sim.tick();
    sim.command('set-weight 30 @1');
    sim.tick({ after: 1 });
    assert.deepEqual([sim.weight, sim.status.step], [30, 2]);
    sim.ticks(2);
    assert.equal(sim.weight, 30, 'held');
    sim.command('resume @2');
    sim.tick({ after: 1 });
    sim.tick();
    assert.equal(sim.weight, 50);
  });

  test('retry starts a new run of a Failed canary', () => {
    const sim = new Sim(progressive({ threshold: 1 }));
    sim.tick();
    sim.tick({ metrics: FAILING });
    sim.command('retry @1');
    sim.tick({ after: 1 });
    assert.deepEqual([sim.status.phase, sim.weight, sim.status.run, sim.status.failedChecks], ['Progressing', 10, 2, 0]);
  });

  test('abort of an Ingress-promoted canary is refused: the Ingress routes to it now', () => {
    const sim = new Sim(progressive({ stepWeights: [50] }, { promotion: { strategy: 'UpdateIngress' } }));
    sim.tick();
    sim.tick();
    sim.tick({ after: 1, ingressSwitched: true });
    assert.equal(sim.status.phase, 'Promoted');
    sim.command('abort @1');
    sim.tick({ after: 1, ingressSwitched: true });
    assert.equal(sim.status.lastCommand?.result, 'Rejected');
    assert.equal(sim.status.phase, 'Promoted');
  });
});

describe('webhooks', () => {
  function answer(sim: Sim, type: string, approved: boolean): WebhookResult[] {
    return sim.calls(type).map((c) => ({ key: c.key, approved, message: approved ? 'ok' : 'no' }));
  }

  test('pre-rollout gates the first step; a refusal is a failed check, retried after an interval', () => {
    const sim = new Sim(progressive({ threshold: 3, webhooks: [{ name: 'smoke', type: 'pre-rollout', url: 'http://t/smoke', metadata: { suite: 'quick' } }] }));
    sim.tick();
    assert.deepEqual([sim.status.phase, sim.weight], ['Pending', 0]);
    const [call] = sim.calls('pre-rollout');
    assert.ok(call?.gating);
    assert.equal(call.timeoutMs, 10_000);
    assert.deepEqual({ ...call.body, checks: [] }, {
      apiVersion: 'vane.dev/v1alpha1', kind: 'CanaryWebhookRequest', type: 'pre-rollout', webhook: 'smoke',
      canary: { namespace: 'shop', name: 'checkout', uid: 'u-1' }, revision: '', run: 1, phase: 'Pending', weight: 0, step: 0, stepCount: 3,
      failedChecks: 0, checks: [], metadata: { suite: 'quick' },
    });
    assert.equal(sim.last.wakeAt, null, 'waiting for the answer, not a timer');
    sim.tick({ after: 50, webhooks: [{ key: call.key, approved: false, message: 'smoke failed' }] });
    assert.deepEqual([sim.status.phase, sim.status.failedChecks], ['Pending', 1]);
    sim.tick({ after: INTERVAL / 2 });
    assert.equal(sim.calls('pre-rollout').length, 0, 'no retry before an interval');
    sim.tick({ after: INTERVAL / 2 });
    const [retry] = sim.calls('pre-rollout');
    assert.ok(retry && retry.key !== call.key);
    sim.tick({ after: 10, webhooks: [{ key: retry.key, approved: true }] });
    assert.deepEqual([sim.status.phase, sim.weight], ['Progressing', 10]);
  });

  test('rollout hooks are part of each check; a refusal is a failed check', () => {
    const sim = new Sim(progressive({ webhooks: [{ name: 'load', type: 'rollout', url: 'http://t/load' }] }));
    sim.tick();
    sim.tick();
    assert.equal(sim.weight, 10, 'the check waits for the webhook');
    sim.tick({ after: 10, webhooks: answer(sim, 'rollout', false) });
    assert.deepEqual([sim.weight, sim.status.failedChecks], [10, 1]);
    sim.tick();
    sim.tick({ after: 10, webhooks: answer(sim, 'rollout', true) });
    assert.equal(sim.weight, 25);
  });

  test('confirm-promotion refusal holds before promotion without counting failures', () => {
    const sim = new Sim(progressive({ stepWeights: [50], threshold: 1, webhooks: [{ name: 'gate', type: 'confirm-promotion', url: 'http://t/gate' }] }));
    sim.tick();
    sim.tick();
    assert.equal(sim.calls('confirm-promotion').length, 1, 'asked at the check of the last step');
    for (let i = 0; i < 3; i++) {
      sim.tick({ after: 10, webhooks: answer(sim, 'confirm-promotion', false) });
      assert.deepEqual([sim.weight, sim.status.phase, sim.status.failedChecks], [50, 'Progressing', 0]);
      assert.equal(sim.condition('Progressing').reason, 'AwaitingConfirmation');
      sim.tick();
    }
    sim.tick({ after: 10, webhooks: answer(sim, 'confirm-promotion', true) });
    assert.equal(sim.weight, 100);
  });

  test('confirm-promotion is not asked before the last step', () => {
    const sim = new Sim(progressive({ webhooks: [{ name: 'gate', type: 'confirm-promotion', url: 'http://t/gate' }] }));
    sim.tick();
    sim.tick();
    assert.equal(sim.calls('confirm-promotion').length, 0);
    assert.equal(sim.weight, 25);
  });

  test('a rollback hook that approves rolls back at once', () => {
    const sim = new Sim(progressive({ threshold: 5, webhooks: [{ name: 'stop', type: 'rollback', url: 'http://t/stop' }] }));
    sim.tick();
    sim.tick();
    sim.tick({ after: 10, webhooks: answer(sim, 'rollback', false) });
    assert.equal(sim.weight, 25, 'a refusal means: carry on');
    sim.tick();
    sim.tick({ after: 10, webhooks: answer(sim, 'rollback', true) });
    assert.deepEqual([sim.status.phase, sim.condition('Failed').reason], ['Failed', 'RollbackRequested']);
  });

  test('event hooks receive every Event, without gating', () => {
    const sim = new Sim(progressive({ webhooks: [{ name: 'chat', type: 'event', url: 'http://t/chat' }] }));
    sim.tick();
    const calls = sim.calls('event');
    assert.deepEqual(calls.map((c) => c.body.event?.reason), ['Started', 'StepAdvanced']);
    assert.ok(calls.every((c) => !c.gating));
  });
});

describe('Prometheus metrics', () => {
  const spec = progressive({ metrics: [{ name: 'errors', max: 1, prometheus: { query: 'sum(rate(e[1m]))' } }] });
  const cases: { name: string; result: { value: number | null; error?: string } | undefined; weight: number; failed: number; verdict: string }[] = [
    { name: 'within bounds passes', result: { value: 0.5 }, weight: 25, failed: 0, verdict: 'Pass' },
    { name: 'above max fails', result: { value: 3 }, weight: 10, failed: 1, verdict: 'Fail' },
    { name: 'an empty result is no data', result: { value: null }, weight: 10, failed: 0, verdict: 'NoData' },
    { name: 'no result at all is no data', result: undefined, weight: 10, failed: 0, verdict: 'NoData' },
    { name: 'a query error is a failed check', result: { value: null, error: 'connection refused' }, weight: 10, failed: 1, verdict: 'Fail' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const sim = new Sim(spec);
      sim.tick();
      sim.tick({ metrics: { ...HEALTHY, ...(c.result ? { prometheus: { errors: c.result } } : {}) } });
      assert.deepEqual([sim.weight, sim.status.failedChecks, sim.status.lastChecks?.[0]?.result], [c.weight, c.failed, c.verdict]);
    });
  }
});

describe('end of life', () => {
  function promoted(extra: Partial<CanarySpec> = {}, analysis: Partial<NonNullable<CanarySpec['analysis']>> = {}): Sim {
    const sim = new Sim(progressive({ stepWeights: [10, 25, 50], ...analysis }, extra));
    sim.tick();
    sim.ticks(4);
    assert.equal(sim.status.phase, 'Promoted');
    return sim;
  }

  test('the finalizer is added to a Canary that lacks it', () => {
    const sim = new Sim(manual(10));
    sim.canary.metadata!.finalizers = [];
    sim.tick();
    assert.deepEqual(sim.canary.metadata!.finalizers, [FINALIZER]);
    sim.tick();
    assert.ok(!sim.actions.some((a) => a.type === 'AddFinalizer'));
  });

  test('deleting a promoted (Hold) canary steps traffic back under analysis, never in one step', () => {
    const sim = promoted();
    sim.delete();
    sim.tick({ after: 1 });
    assert.deepEqual([sim.status.phase, sim.weight, sim.status.retire?.reason, sim.status.retire?.fromWeight], ['Retiring', 50, 'Deleted', 100]);
    assert.deepEqual(analysisWindow(sim.canary), { side: 'stable', sinceMs: sim.now });
    assert.equal(sim.released, false);
    assert.deepEqual(sim.ticks(3), [25, 10, 0]);
    assert.equal(sim.released, false, 'weight 0 is checked for an interval too');
    sim.tick();
    assert.equal(sim.released, true);
    assert.ok(sim.events.some((e) => e.startsWith('Retired:')));
  });

  test('the step-down judges the stable side, and holds on no data', () => {
    const sim = promoted();
    sim.delete();
    sim.tick({ after: 1 });
    sim.ticks(2, { metrics: { canary: stats(5000), stable: stats(10) } });
    assert.equal(sim.weight, 50);
    assert.equal(sim.condition('Progressing').reason, 'NoData');
    assert.match(sim.condition('Progressing').message!, /10 stable requests/);
  });

  test('a stable Service failing the step-down puts traffic back on the canary and blocks deletion', () => {
    const sim = promoted({}, { threshold: 2 });
    sim.delete();
    sim.tick({ after: 1 });
    sim.tick();
    const bad: MetricsInput = { canary: stats(1000), stable: stats(1000, 500) };
    sim.ticks(2, { metrics: bad });
    assert.deepEqual([sim.weight, sim.status.retire?.blocked, sim.condition('Ready').reason], [100, true, 'RetireBlocked']);
    assert.deepEqual(sim.ticks(3), [100, 100, 100], 'blocked until someone acts');
    assert.equal(sim.released, false);
    sim.command('retry @1');
    sim.tick({ after: 1 });
    assert.equal(sim.status.retire?.blocked, false);
    sim.ticks(6);
    assert.equal(sim.released, true);
  });

  test('promote --full or abort finishes a step-down at once, by explicit choice', () => {
    for (const command of ['promote --full', 'abort']) {
      const sim = promoted();
      sim.delete();
      sim.tick({ after: 1 });
      sim.command(`${command} @1`);
      sim.tick({ after: 1 });
      assert.equal(sim.released, true, command);
      assert.equal(sim.weight, 0);
    }
  });

  const immediate: { name: string; make: () => Sim }[] = [
    { name: 'a canary at weight 0', make: () => { const s = new Sim(manual(0)); s.tick(); return s; } },
    { name: 'a Failed canary', make: () => { const s = new Sim(progressive({ threshold: 1 })); s.tick(); s.tick({ metrics: FAILING }); return s; } },
    {
      name: 'a canary promoted by UpdateIngress', make: () => {
        const s = new Sim(progressive({ stepWeights: [50] }, { promotion: { strategy: 'UpdateIngress' } }));
        s.tick(); s.tick(); s.tick({ after: 1, ingressSwitched: true });
        return s;
      },
    },
    { name: 'an invalid canary (its routes are already gone)', make: () => { const s = new Sim({ ...manual(30), service: 'Bad_Name' }); s.tick(); return s; } },
  ];
  for (const c of immediate) {
    test(`deleting ${c.name} completes at once`, () => {
      const sim = c.make();
      sim.delete();
      sim.tick({ after: 1 });
      assert.equal(sim.released, true);
    });
  }

  test('a manual canary at 100 steps down through 50, 25, 10, 5 paced by the default interval', () => {
    const sim = new Sim(manual(100));
    sim.tick();
    sim.delete();
    sim.tick({ after: 1 });
    assert.deepEqual([sim.weight, ...sim.ticks(4)], [50, 25, 10, 5, 0]);
    sim.tick();
    assert.equal(sim.released, true);
  });
});

test('an invalid spec holds everything and says why', () => {
  const sim = new Sim(progressive());
  sim.tick();
  sim.edit((s) => { s.analysis!.stepWeights = [30, 20]; });
  sim.tick();
  assert.equal(sim.weight, 10);
  assert.deepEqual([sim.condition('Ready').status, sim.condition('Ready').reason], ['False', 'InvalidSpec']);
  assert.match(sim.condition('Ready').message!, /spec\.analysis\.stepWeights\[1\]: step weights must be strictly increasing/);
});

test('step is deterministic: the same input gives the same output', () => {
  const sim = new Sim(progressive({ webhooks: [{ name: 'chat', type: 'event', url: 'http://t/chat' }] }));
  sim.tick();
  const input: StepInput = { canary: structuredClone(sim.canary), now: sim.now + INTERVAL, fleet: { expected: 2, converged: 2, stragglers: [], generation: 3 }, metrics: HEALTHY };
  assert.deepEqual(step(structuredClone(input)), step(structuredClone(input)));
});

test('step never throws on junk', () => {
  const junk: unknown[] = [{}, { spec: null }, { spec: { analysis: 5 } }, { metadata: { annotations: { [COMMAND_ANNOTATION]: 'set-weight 1000' } }, spec: manual(5) },
    { spec: progressive(), status: { weight: 'x', stage: 'Nope', conditions: 'no', intervalStart: 'never', retire: 4 } }];
  for (const c of junk) {
    const r = step({ canary: c as Canary, now: T0, fleet: { expected: 0, converged: 0, stragglers: [], generation: 0 } });
    assert.ok(r.status.weight! >= 0 && r.status.weight! <= 100);
  }
});

/** Random lives of a canary: commands, spec edits, pauses, deletion, metrics and stragglers in any order. */
const arbEvent = fc.oneof(
  fc.record({ kind: fc.constant('tick' as const), after: fc.integer({ min: 0, max: 2 * INTERVAL }), metrics: fc.constantFrom(HEALTHY, FAILING, QUIET), stragglers: fc.constantFrom<string[]>([], ['p1']), switched: fc.boolean() }),
  fc.record({ kind: fc.constant('command' as const), text: fc.constantFrom('pause', 'resume', 'promote', 'promote --full', 'abort', 'retry', 'set-weight 0', 'set-weight 35', 'set-weight 100', 'bogus') }),
  fc.record({ kind: fc.constant('edit' as const), field: fc.constantFrom('revision', 'paused', 'weight', 'strategy', 'mode') }),
  fc.record({ kind: fc.constant('delete' as const) }),
);

test('property: weight stays within 0–100, and abort never raises canary traffic', () => {
  fc.assert(fc.property(fc.boolean(), fc.array(arbEvent, { maxLength: 40 }), (startManual, events) => {
    const sim = new Sim(startManual ? manual(60) : progressive({ threshold: 2, webhooks: [] }));
    sim.tick();
    let n = 0;
    for (const e of events) {
      n += 1;
      if (e.kind === 'command') sim.command(`${e.text} @${n}`);
      else if (e.kind === 'delete') sim.delete();
      else if (e.kind === 'edit') {
        sim.edit((s) => {
          if (e.field === 'revision') s.revision = `r${n}`;
          if (e.field === 'paused') s.paused = !s.paused;
          if (e.field === 'weight') s.traffic = { ...s.traffic, weight: (n * 37) % 101 };
          if (e.field === 'strategy') s.promotion = { strategy: s.promotion?.strategy === 'UpdateIngress' ? 'Hold' : 'UpdateIngress' };
          if (e.field === 'mode') { if (s.analysis) delete s.analysis; else s.analysis = { interval: '30s', stepWeights: [20, 60] }; }
        });
      }
      const before = sim.status.phase === 'Failed' ? 0 : sim.weight;
      const aborting = e.kind === 'command' && e.text === 'abort';
      sim.tick(e.kind === 'tick'
        ? { after: e.after, metrics: e.metrics, stragglers: [...e.stragglers], ingressSwitched: e.switched }
        : { after: 0 });
      const w = sim.weight;
      assert.ok(Number.isInteger(w) && w >= 0 && w <= 100, `weight ${w}`);
      if (aborting) {
        const after = sim.status.phase === 'Failed' ? 0 : w;
        assert.ok(after <= before, `abort raised canary traffic ${before} → ${after}`);
      }
      if (sim.released) break;
    }
  }), { numRuns: 400, seed: 8 });
});
