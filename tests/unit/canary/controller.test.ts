/**
 * The canary controller's glue (operator/canary/controller.ts) on a fake clock: what it
 * feeds step() (convergence on the version that carries the status, statistics since the
 * interval started, webhook and Prometheus answers), when it writes, and that actions run
 * only after a successful write and each keyed action at most once at a time.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FINALIZER, COMMAND_ANNOTATION, type Ingress } from '../../../core/index.ts';
import { World, progressiveSpec, NS, KEY } from './controller-world.ts';

describe('progressive run', () => {
  test('a healthy canary moves one step per interval, each only once the fleet serves it, and promotes', async () => {
    const w = new World();
    w.create(progressiveSpec());
    await w.advance(0);
    assert.equal(w.store.status.phase, 'Progressing');
    assert.equal(w.store.status.weight, 10);
    assert.deepEqual(w.store.status.proxies, { converged: 2, expected: 2, generation: w.current!.generation, summary: '2/2' });
    assert.deepEqual(w.store.get().metadata?.finalizers, [FINALIZER]);
    const weights = [w.store.status.weight];
    for (let i = 0; i < 3; i++) {
      await w.during(10_000, 20);
      weights.push(w.store.status.weight!);
    }
    assert.deepEqual(weights, [10, 25, 50, 100]);
    assert.equal(w.store.status.phase, 'Promoted');
    assert.equal(w.store.condition('Promoted').status, 'True');
    assert.deepEqual(w.store.reasons(), ['Started', 'StepAdvanced', 'StepAdvanced', 'StepAdvanced', 'Promoting', 'Promoted']);
    assert.equal(w.clock.pending, 0, 'nothing left to wake for once promoted');
  });

  test('the routing version must carry the new weight: ACKs of the version before it do not count', async () => {
    const w = new World();
    w.create(progressiveSpec());
    await w.advance(0);
    // The watch lags: the compiler still has weight 10, which every proxy ACKed.
    w.store.held = [];
    await w.during(10_000, 20);
    assert.equal(w.store.status.weight, 25);
    w.controller.fleetChanged();
    await w.advance(100);
    assert.equal(w.store.condition('Ready').status, 'False');
    assert.equal(w.store.status.proxies?.converged, 0);
    w.store.release();
    await w.advance(100);
    assert.equal(w.store.condition('Ready').status, 'True');
    assert.equal(w.store.status.proxies?.converged, 2);
  });

  test('a passing check holds the step while one expected proxy has not ACKed, naming it, and advances once it does', async () => {
    const w = new World({ proxies: ['proxy-a', 'proxy-b', 'proxy-c'] });
    w.create(progressiveSpec());
    await w.advance(0);
    w.lagging.add('proxy-c');
    await w.during(10_000, 20);
    assert.equal(w.store.status.weight, 25);
    await w.during(10_000, 20);
    assert.equal(w.store.status.weight, 25, 'held at 25: proxy-c serves an older weight');
    assert.equal(w.store.condition('Progressing').reason, 'WaitingForProxies');
    assert.match(w.store.condition('Progressing').message!, /2\/3 proxies converged; waiting for proxy-c/);
    assert.equal(w.store.status.proxies?.summary, '2/3');
    w.lagging.delete('proxy-c');
    w.ack();
    await w.during(10_000, 20);
    assert.equal(w.store.status.weight, 50);
  });

  test('statistics count only since the interval started: failures before it are not judged in it', async () => {
    const w = new World();
    w.traffic(500, 500);
    await w.advance(1000);
    w.create(progressiveSpec());
    await w.advance(0);
    await w.during(10_000, 20);
    assert.equal(w.store.status.failedChecks, 0, JSON.stringify(w.store.status.lastChecks));
    assert.equal(w.store.status.weight, 25);
  });

  test('a failing canary is rolled back after threshold checks: Failed, weight 0, Events after the write', async () => {
    const w = new World();
    w.create(progressiveSpec());
    await w.advance(0);
    await w.during(10_000, 20, 5);
    assert.equal(w.store.status.failedChecks, 1);
    assert.equal(w.store.status.weight, 10);
    await w.during(10_000, 20, 5);
    assert.equal(w.store.status.phase, 'Failed');
    assert.equal(w.store.status.weight, 0);
    assert.equal(w.store.condition('Failed').status, 'True');
    assert.equal(w.store.condition('Failed').reason, 'ThresholdReached');
    assert.deepEqual(w.store.reasons().slice(-2), ['CheckFailed', 'ThresholdReached']);
    const routes = [...w.current!.resources.values()].flatMap((r) => (r.resource.type === 'vhost' ? r.resource.spec.routes : []));
    assert.ok(routes.every((r) => r.canary === undefined), 'the compiled split is gone once Failed');
    assert.equal(w.store.status.proxies?.summary, '2/2', 'the fleet converged on the version without the split');
  });

  test('no data holds the step and never passes', async () => {
    const w = new World();
    w.create(progressiveSpec());
    await w.advance(0);
    await w.during(30_000, 2);
    assert.equal(w.store.status.weight, 10);
    assert.equal(w.store.condition('Progressing').reason, 'NoData');
    assert.equal(w.store.status.noDataChecks, 3);
  });
});

describe('writes', () => {
  test('a write conflict re-reads the object and never duplicates Events', async () => {
    const w = new World();
    w.create(progressiveSpec());
    w.store.failures.push('conflict');
    await w.advance(0);
    assert.ok(w.store.log.includes('status Progressing/10 conflict'), w.store.log.join('\n'));
    assert.equal(w.store.status.weight, 10);
    assert.deepEqual(w.store.reasons(), ['Started', 'StepAdvanced']);
  });

  test('a failed write is retried with back-off; actions wait for it', async () => {
    const w = new World();
    w.create(progressiveSpec());
    w.store.failures.push('error', 'error');
    await w.advance(0);
    assert.equal(w.store.get().status, undefined);
    assert.deepEqual(w.store.events, []);
    await w.advance(999);
    assert.equal(w.store.get().status, undefined, 'first retry after 1s');
    await w.advance(1);
    assert.equal(w.store.get().status, undefined, 'the second write failed too');
    await w.advance(2000);
    assert.equal(w.store.status.weight, 10, 'third attempt, 2s later, succeeds');
    assert.deepEqual(w.store.reasons(), ['Started', 'StepAdvanced']);
  });

  test('a follower writes nothing; on taking the lead it carries on from the stored status', async () => {
    const w = new World();
    w.leader = false;
    w.create(progressiveSpec());
    await w.advance(60_000);
    assert.equal(w.store.statusWrites, 0);
    w.leader = true;
    w.controller.startedLeading();
    await w.advance(0);
    assert.equal(w.store.status.weight, 10);
    w.leader = false;
    w.controller.stoppedLeading();
    const writes = w.store.statusWrites;
    await w.during(30_000, 20);
    assert.equal(w.store.statusWrites, writes, 'no writes after losing the lead');
  });

  test('unchanged status is not written again', async () => {
    const w = new World();
    w.create(progressiveSpec());
    await w.advance(0);
    const writes = w.store.statusWrites;
    for (let i = 0; i < 5; i++) { w.controller.fleetChanged(); await w.advance(100); }
    assert.equal(w.store.statusWrites, writes);
  });
});

describe('commands', () => {
  test('pause, resume and promote --full through the command annotation', async () => {
    const w = new World();
    w.create(progressiveSpec());
    await w.advance(0);
    w.edit((c) => { c.metadata!.annotations = { [COMMAND_ANNOTATION]: 'pause @1' }; }, false);
    await w.during(30_000, 20);
    assert.equal(w.store.status.phase, 'Paused');
    assert.equal(w.store.status.weight, 10);
    assert.equal(w.store.status.lastCommand?.result, 'Accepted');
    w.edit((c) => { c.metadata!.annotations = { [COMMAND_ANNOTATION]: 'resume @2' }; }, false);
    await w.advance(0);
    assert.equal(w.store.status.phase, 'Progressing');
    w.edit((c) => { c.metadata!.annotations = { [COMMAND_ANNOTATION]: 'promote --full @3' }; }, false);
    await w.advance(0);
    assert.equal(w.store.status.phase, 'Promoted');
    assert.equal(w.store.status.weight, 100);
  });
});

describe('webhooks', () => {
  test('confirm-promotion that says no holds before promotion; it is asked once per interval', async () => {
    let approve = false;
    const w = new World({ webhook: async (call) => ({ key: call.key, approved: approve, message: approve ? 'ok' : 'HTTP 403: not yet' }) });
    w.create(progressiveSpec({ stepWeights: [20], webhooks: [{ name: 'gate', type: 'confirm-promotion', url: 'http://127.0.0.1:1/gate' }] }));
    await w.advance(0);
    await w.during(10_000, 20);
    assert.equal(w.store.status.weight, 20);
    assert.equal(w.store.condition('Progressing').reason, 'AwaitingConfirmation');
    const asked = w.webhookCalls.length;
    assert.equal(asked, 1);
    for (let i = 0; i < 5; i++) { w.controller.fleetChanged(); await w.advance(100); }
    assert.equal(w.webhookCalls.length, 1, 'not asked again within the interval');
    approve = true;
    await w.during(10_000, 20);
    assert.equal(w.webhookCalls.length, 2);
    assert.equal(w.store.status.phase, 'Promoted');
    const body = w.webhookCalls[0]!.body;
    assert.equal(body.kind, 'CanaryWebhookRequest');
    assert.equal(body.type, 'confirm-promotion');
    assert.deepEqual(body.canary, { namespace: NS, name: 'checkout', uid: 'uid-1' });
  });

  test('post-rollout and event webhooks are notified once each, after the status write', async () => {
    const w = new World();
    w.create(progressiveSpec({ stepWeights: [20], webhooks: [{ name: 'notify', type: 'post-rollout', url: 'http://127.0.0.1:1/n' }, { name: 'events', type: 'event', url: 'http://127.0.0.1:1/e' }] }));
    await w.advance(0);
    await w.during(10_000, 20);
    assert.equal(w.store.status.phase, 'Promoted');
    await w.during(20_000, 20);
    const post = w.webhookCalls.filter((c) => c.hookType === 'post-rollout');
    assert.equal(post.length, 1);
    const events = w.webhookCalls.filter((c) => c.hookType === 'event').map((c) => c.body.event?.reason);
    assert.deepEqual(events, w.store.reasons());
  });
});

describe('prometheus', () => {
  test('each interval queries once at its end and waits for the answer; a query error is a failed check', async () => {
    let answer: { value: number | null; error?: string } = { value: 0.2 };
    const w = new World({ prometheusUrl: 'http://127.0.0.1:9090', prometheus: async () => answer });
    w.create(progressiveSpec({ metrics: [{ name: 'errors', max: 1, prometheus: { query: 'sum(rate(x[1m]))' } }] }));
    await w.advance(0);
    await w.during(10_000, 20);
    assert.deepEqual(w.queries, ['http://127.0.0.1:9090 sum(rate(x[1m]))']);
    assert.equal(w.store.status.weight, 25);
    assert.equal(w.store.status.lastChecks?.[0]?.value, 0.2);
    answer = { value: null, error: 'HTTP 400: parse error' };
    await w.during(10_000, 20);
    assert.equal(w.queries.length, 2);
    assert.equal(w.store.status.failedChecks, 1);
    assert.match(w.store.status.lastChecks?.[0]?.message ?? '', /parse error/);
    answer = { value: 7 };
    await w.during(10_000, 20);
    assert.equal(w.store.status.phase, 'Failed', 'a value above max fails the second check: threshold 2');
  });

  test('a metric without an address and no --prometheus-url fails with a clear message', async () => {
    const w = new World();
    w.create(progressiveSpec({ threshold: 5, metrics: [{ name: 'errors', max: 1, prometheus: { query: 'up' } }] }));
    await w.advance(0);
    await w.during(10_000, 20);
    assert.equal(w.queries.length, 0);
    assert.match(w.store.status.lastChecks?.[0]?.message ?? '', /no Prometheus address/);
  });
});

describe('end of life and promotion by Ingress', () => {
  test('deleting a promoted canary steps traffic down, then releases the finalizer', async () => {
    const w = new World();
    w.create(progressiveSpec({ stepWeights: [50] }));
    await w.advance(0);
    await w.during(10_000, 20);
    assert.equal(w.store.status.phase, 'Promoted');
    w.edit((c) => { c.metadata!.deletionTimestamp = new Date(w.clock.now()).toISOString(); }, false);
    await w.advance(0);
    assert.equal(w.store.status.phase, 'Retiring');
    assert.equal(w.store.status.weight, 50);
    const stable = async () => { for (let i = 0; i < 10; i++) { w.traffic(20, 0, 'stable'); await w.advance(1000); } };
    await stable();
    assert.equal(w.store.status.weight, 0);
    assert.deepEqual(w.store.get().metadata?.finalizers, [FINALIZER]);
    await stable();
    assert.deepEqual(w.store.get().metadata?.finalizers, [], 'released after a passing interval at 0');
    assert.equal(w.store.reasons().at(-1), 'Retired');
  });

  test('UpdateIngress switches the Ingress backend once (JSON patch), then the canary is Promoted with weight 0', async () => {
    const w = new World();
    w.create(progressiveSpec({ stepWeights: [50] }, { promotion: { strategy: 'UpdateIngress' } }));
    await w.advance(0);
    await w.during(10_000, 20);
    assert.equal(w.store.log.filter((l) => l.startsWith('ingress')).length, 1);
    const ing = w.store.ingresses.get(`${NS}/shop`) as Ingress;
    assert.equal(ing.spec?.rules?.[0]?.http?.paths?.[0]?.backend?.service?.name, 'checkout-v2');
    assert.equal(w.store.status.phase, 'Promoted');
    assert.equal(w.store.status.weight, 0);
    assert.equal(w.store.condition('Promoted').reason, 'IngressUpdated');
    assert.equal(KEY, 'shop/checkout');
  });
});
