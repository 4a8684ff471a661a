/**
 * Entry point of a proxy worker process (forked by the primary through node:cluster). The
 * primary sends `init` (options, TLS ticket keys, the fake certificate), then routing deltas
 * in order; the worker answers with readiness, applied generations and metrics. A worker
 * ignores SIGINT and asks to be replaced on SIGTERM: shutdown is the primary's to order.
 */
import { createLogger } from '../lib/log.ts';
import { ProxyWorker } from './worker/worker.ts';
import type { PrimaryMessage, WorkerMessage } from './ipc.ts';

const log = createLogger('proxy-worker');
let worker: ProxyWorker | null = null;
let listening = false;
let readySent = false;
let draining = false;

function send(msg: WorkerMessage): void {
  if (process.connected) process.send!(msg);
}

function maybeReady(): void {
  if (!readySent && listening && worker?.state) {
    readySent = true;
    send({ t: 'ready' });
  }
}

async function drain(timeoutMs: number): Promise<void> {
  if (draining || !worker) { if (!worker) process.exit(0); return; }
  draining = true;
  await worker.drain(timeoutMs);
  send({ t: 'metrics', id: -1, snapshot: await worker.metrics.snapshot() });
  process.exit(0);
}

process.on('message', (msg: PrimaryMessage) => {
  switch (msg.t) {
    case 'init': {
      worker = new ProxyWorker(msg.init, log);
      worker.listen().then((ports) => {
        listening = true;
        send({ t: 'listening', ports });
        maybeReady();
      }, (err: Error) => {
        log.error({ err: err.message }, 'cannot listen');
        process.exit(1);
      });
      break;
    }
    case 'routing': {
      if (!worker) return;
      try {
        worker.apply(msg.delta);
        send({ t: 'applied', generation: msg.delta.generation, root: msg.delta.root });
        maybeReady();
      } catch (err) {
        log.error({ err: (err as Error).message, generation: msg.delta.generation }, 'applying routing failed; the previous routing keeps serving');
        send({ t: 'rejected', generation: msg.delta.generation, reason: (err as Error).message });
      }
      break;
    }
    case 'metrics': {
      if (!worker) { send({ t: 'metrics', id: msg.id, snapshot: [] }); return; }
      worker.metrics.snapshot().then((snapshot) => send({ t: 'metrics', id: msg.id, snapshot }), () => send({ t: 'metrics', id: msg.id, snapshot: [] }));
      break;
    }
    case 'drain':
      void drain(msg.timeoutMs);
      break;
  }
});

process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => send({ t: 'retire' }));
process.on('disconnect', () => { void drain(5_000); });
process.on('uncaughtException', (err) => {
  log.fatal({ err: err.message, stack: err.stack }, 'worker crashed');
  process.exit(1);
});
