/**
 * A confirm-promotion webhook that says no holds a canary at its last step, interval after
 * interval, without counting failures; once it says yes the canary is promoted. The webhook
 * is a real HTTP server the operator POSTs the versioned JSON body to.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { e2eSkip, netnsSkip } from '../harness/index.ts';
import { canaryWorld, condition, NAME, type CanaryWorld } from './canary-support.ts';
import type { WebhookBody } from '../../../core/index.ts';

const skip = e2eSkip || netnsSkip;
let w: CanaryWorld;
let gate: Server;
let approve = false;
const calls: { at: number; body: WebhookBody }[] = [];

before(async () => {
  if (skip) return;
  gate = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      calls.push({ at: Date.now(), body: JSON.parse(Buffer.concat(chunks).toString()) as WebhookBody });
      if (approve) res.writeHead(200).end('ship it');
      else res.writeHead(403).end('change freeze until the release review');
    });
  });
  await new Promise<void>((r) => gate.listen(0, '127.0.0.1', r));
  w = await canaryWorld(import.meta.url);
});

after(async () => {
  await w?.close();
  gate?.closeAllConnections();
  await new Promise<void>((r) => (gate ? gate.close(() => r()) : r()));
});

test('confirm-promotion says no: the canary holds at its last step; yes: promoted', { skip, timeout: 120_000 }, async () => {
  const url = `http://127.0.0.1:${(gate.address() as AddressInfo).port}/gate`;
  await w.apply({
    ingressRef: { name: 'shop' }, service: NAME, canaryService: { name: `${NAME}-v2` }, revision: '2.4.0',
    analysis: {
      interval: '10s', stepWeights: [30], threshold: 2,
      webhooks: [{ name: 'release-gate', type: 'confirm-promotion', url, timeout: '2s', metadata: { ticket: 'CHG-1' } }],
    },
  });
  const held = await w.until('the hold', (c) => condition(c, 'Progressing').reason === 'AwaitingConfirmation', 40_000);
  assert.equal(held.status?.weight, 30);
  assert.equal(held.status?.failedChecks, 0, 'a refusal holds, it does not count as a failure');
  assert.deepEqual(held.status?.lastChecks?.map((x) => [x.name, x.kind, x.result, x.message]), [['release-gate', 'Webhook', 'Fail', 'confirm-promotion refused: HTTP 403: change freeze until the release review']]);

  const asked = calls.length;
  await w.until('one more interval', (c) => c.status?.lastCheckTime !== held.status?.lastCheckTime, 20_000);
  const again = await w.get();
  assert.equal(again.status?.phase, 'Progressing');
  assert.equal(again.status?.weight, 30, 'still held');
  assert.equal(calls.length, asked + 1, 'asked again once per interval');

  const body = calls[0]!.body;
  assert.equal(body.apiVersion, 'vane.dev/v1alpha1');
  assert.equal(body.kind, 'CanaryWebhookRequest');
  assert.equal(body.type, 'confirm-promotion');
  assert.equal(body.webhook, 'release-gate');
  assert.deepEqual([body.canary.namespace, body.canary.name], [w.ns, NAME]);
  assert.equal(body.canary.uid, held.metadata?.uid);
  assert.deepEqual([body.revision, body.weight, body.step, body.stepCount, body.phase], ['2.4.0', 30, 1, 1, 'Progressing']);
  assert.deepEqual(body.metadata, { ticket: 'CHG-1' });

  approve = true;
  const promoted = await w.until('promotion once approved', (c) => c.status?.phase === 'Promoted', 30_000);
  assert.equal(promoted.status?.weight, 100);
  assert.equal(condition(promoted, 'Promoted').status, 'True');
  const reasons = (await w.events()).map((e) => e.reason);
  assert.equal(reasons.filter((r) => r === 'AwaitingConfirmation').length, 1, reasons.join(' '));
});
