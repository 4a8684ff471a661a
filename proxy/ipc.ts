/** Messages between the primary and its workers (node:cluster IPC, advanced serialization). */
import type { MetricsSnapshot } from './metrics.ts';
import type { WireDelta } from './source/source.ts';
import type { WorkerInit } from './worker/worker.ts';

export type PrimaryMessage =
  | { t: 'init'; init: WorkerInit }
  | { t: 'routing'; delta: WireDelta }
  | { t: 'metrics'; id: number }
  | { t: 'drain'; timeoutMs: number };

export type WorkerMessage =
  | { t: 'listening'; ports: { http: number; https: number } }
  | { t: 'ready' }
  | { t: 'applied'; generation: number; root: string }
  | { t: 'rejected'; generation: number; reason: string }
  | { t: 'metrics'; id: number; snapshot: MetricsSnapshot }
  | { t: 'retire' };
