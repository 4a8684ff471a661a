/**
 * StreamSource: routing resources from the operator over WebSocket (`vane.v1`), as a
 * RoutingSource, so the proxy serves the same way as from files.
 *
 * - Every delta is verified: each upserted resource is re-hashed and the root recomputed
 *   (core's ResourceSet); a mismatch is a NACK and a request for a full resync — never a
 *   wrong routing table. A version with a lower generation than the one held is refused.
 * - The last-known-good (LKG) set is persisted in `stateDir` (non-secret resources and
 *   secrets in separate files, both 0600; mount a memory-backed volume so keys never reach
 *   a node's disk). A proxy restarted while the operator is down serves from it at once,
 *   if it is younger than `maxStateAgeMs`.
 * - The connection is retried forever with jittered exponential back-off; whatever happens
 *   to the operator, the proxy keeps serving what it last verified.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import WebSocket from 'ws';
import {
  ResourceSet, SUBPROTOCOL, PROTOCOL_VERSION, CLOSE, decodeServerMessage,
  type ClientMessage, type HashedResource, type BackendStats, type Version,
} from '../../core/index.ts';
import type { RoutingSource, RoutingUpdate } from './source.ts';
import type { Logger } from '../../lib/log.ts';

export interface StreamClientOptions {
  /**
   * ws:// or wss:// URL(s) of the operators' stream endpoints. With several, the client
   * moves to the next one whenever a connection ends (a follower answers 4010 "not the
   * leader"; a dead leader refuses), so it finds the leader after a failover. Through one
   * Service URL over every replica, a 4010 is retried soon as well (NOT_LEADER_RETRY_*_MS).
   */
  url: string | string[];
  /** Accept ws:// URLs (local development only: the token and routing travel in the clear). */
  allowPlaintext?: boolean;
  proxyName: string;
  /** Returns the bearer token; read on every connect because projected tokens rotate. */
  token?: () => Promise<string | null>;
  /** PEM CA bundle that signs the operator's serving certificate. */
  ca?: string;
  stateDir?: string;
  /** LKG state older than this is not served (default 24 h). */
  maxStateAgeMs?: number;
  logger: Logger;
  /** Statistics since the previous call, sent every statsIntervalMs. */
  takeStats?: () => Promise<Record<string, BackendStats>>;
  statsIntervalMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  maxMessageBytes?: number;
}

export interface StreamStatus {
  connected: boolean;
  version: Version | null;
  appliedAt: number;
  reconnects: number;
}

interface PersistedState {
  generation: number;
  root: string;
  savedAt: number;
  resources: HashedResource[];
}

export const DEFAULT_MAX_STATE_AGE_MS = 24 * 3600 * 1000;

/**
 * Retry pace after a 4010 ("not the leader"), kept apart from the ordinary back-off. A 4010
 * is not the operator failing: through one Service URL over every replica the next connection
 * likely lands on the leader (with several URLs the client moves to the next), so waiting the
 * ordinary back-off (up to maxBackoffMs) would only delay readiness and failover. It is still
 * jittered and grows to a small cap, because when no replica leads (an election) every proxy
 * in the fleet is answered 4010 and a fixed short delay would have them hammer the operators.
 * Capped at maxBackoffMs too, so it is never slower than the ordinary back-off.
 */
export const NOT_LEADER_RETRY_INITIAL_MS = 100;
export const NOT_LEADER_RETRY_MAX_MS = 1000;

export class StreamSource implements RoutingSource {
  private readonly options: StreamClientOptions;
  private readonly set = new ResourceSet();
  private version: Version | null = null;
  private onUpdate: ((u: RoutingUpdate) => void | Promise<void>) | null = null;
  private ws: WebSocket | null = null;
  private closed = false;
  private backoffMs: number;
  private notLeaderBackoffMs = NOT_LEADER_RETRY_INITIAL_MS;
  private readonly urls: string[];
  private urlIndex = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private saveTimer: NodeJS.Timeout | null = null;
  private saving: Promise<void> = Promise.resolve();
  private firstUpdate!: () => void;
  private readonly firstUpdatePromise: Promise<void>;
  private statsSeq = 0;
  private readonly startedAt = Date.now();
  readonly status: StreamStatus = { connected: false, version: null, appliedAt: 0, reconnects: 0 };

  constructor(options: StreamClientOptions) {
    this.options = options;
    this.backoffMs = options.initialBackoffMs ?? 250;
    this.urls = Array.isArray(options.url) ? options.url : [options.url];
    if (this.urls.length === 0) throw new Error('stream: url: at least one operator URL is required');
    for (const url of this.urls) {
      const scheme = /^([a-z]+):\/\//i.exec(url)?.[1]?.toLowerCase();
      if (scheme === 'wss' || (scheme === 'ws' && options.allowPlaintext)) continue;
      throw new Error(scheme === 'ws'
        ? `stream: url: ${url} is plain ws://, which sends the bearer token unencrypted; use wss://, or allowPlaintext for local development`
        : `stream: url: ${url} must be a wss:// URL`);
    }
    this.firstUpdatePromise = new Promise((resolve) => { this.firstUpdate = resolve; });
  }

  /** start serves LKG state if there is fresh one, connects, and resolves on the first full set. */
  async start(onUpdate: (update: RoutingUpdate) => void | Promise<void>): Promise<void> {
    this.onUpdate = onUpdate;
    const plain = this.urls.filter((u) => u.toLowerCase().startsWith('ws://'));
    if (plain.length > 0) this.options.logger.warn({ urls: plain }, 'connecting to the operator over plain ws:// (allowPlaintext): the token and routing travel unencrypted; for local development only');
    await this.loadState();
    this.connect();
    await this.firstUpdatePromise;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of [this.retryTimer, this.statsTimer]) if (t) clearInterval(t);
    if (this.saveTimer) { clearTimeout(this.saveTimer); this.saveTimer = null; await this.persist(); }
    await this.saving;
    this.ws?.close(1001, 'proxy shutting down');
    this.ws = null;
  }

  // ---- connection ---------------------------------------------------------------------

  private connect(): void {
    if (this.closed) return;
    void (async () => {
      let token: string | null = null;
      try {
        token = this.options.token ? await this.options.token() : null;
      } catch (err) {
        this.options.logger.error({ err: (err as Error).message }, 'reading the stream token failed');
      }
      if (this.closed) return;
      const url = this.urls[this.urlIndex % this.urls.length]!;
      const ws = new WebSocket(url, SUBPROTOCOL, {
        perMessageDeflate: false,
        maxPayload: this.options.maxMessageBytes ?? 512 * 1024 * 1024,
        handshakeTimeout: 10_000,
        ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
        ...(this.options.ca ? { ca: this.options.ca } : {}),
      });
      this.ws = ws;
      ws.on('open', () => {
        this.status.connected = true;
        this.options.logger.info({ url, holds: this.version?.generation ?? null }, 'connected to the operator');
        const hello: ClientMessage = {
          type: 'hello', protocol: PROTOCOL_VERSION, proxy: { name: this.options.proxyName }, version: this.version,
          resources: this.version ? [...this.set.resources].map(([n, r]) => [n, r.hash] as [string, string]) : [],
        };
        ws.send(JSON.stringify(hello));
        this.startStats(ws);
      });
      ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        this.onMessage(ws, data.toString());
      });
      ws.on('close', (code, reason) => {
        if (this.ws === ws) this.ws = null;
        this.status.connected = false;
        if (this.statsTimer) { clearInterval(this.statsTimer); this.statsTimer = null; }
        if (this.closed) return;
        this.urlIndex++;
        const retryInMs = this.retry(code === CLOSE.notLeader);
        this.options.logger.warn({ url, code, reason: reason.toString(), retryInMs }, 'stream closed; serving the last verified routing meanwhile');
      });
      ws.on('error', (err) => this.options.logger.warn({ err: err.message }, 'stream error'));
    })();
  }

  /** retry schedules the next connection (jittered 50-100 % of the current back-off) and returns its delay. */
  private retry(notLeader: boolean): number {
    const max = this.options.maxBackoffMs ?? 10_000;
    let delay: number;
    if (notLeader) {
      const bound = Math.min(this.notLeaderBackoffMs, max);
      delay = Math.round(bound / 2 + Math.random() * bound / 2);
      this.notLeaderBackoffMs = Math.min(NOT_LEADER_RETRY_MAX_MS, this.notLeaderBackoffMs * 2);
    } else {
      delay = Math.round(this.backoffMs / 2 + Math.random() * this.backoffMs / 2);
      this.backoffMs = Math.min(max, this.backoffMs * 2);
    }
    this.status.reconnects++;
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.connect(); }, delay);
    return delay;
  }

  private send(ws: WebSocket, msg: ClientMessage): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  private startStats(ws: WebSocket): void {
    const take = this.options.takeStats;
    if (!take) return;
    const intervalMs = this.options.statsIntervalMs ?? 5000;
    this.statsTimer = setInterval(() => {
      void take().then((backends) => {
        this.send(ws, { type: 'stats', seq: ++this.statsSeq, startedAt: this.startedAt, intervalMs, backends });
      }, (err: Error) => this.options.logger.warn({ err: err.message }, 'collecting statistics failed'));
    }, intervalMs);
    this.statsTimer.unref();
  }

  private onMessage(ws: WebSocket, text: string): void {
    const decoded = decodeServerMessage(text);
    const log = this.options.logger;
    if (!decoded.ok) {
      log.error({ error: decoded.error }, 'malformed message from the operator; asking for a full resync');
      this.send(ws, { type: 'resync', reason: decoded.error });
      return;
    }
    const msg = decoded.message;
    const held = this.version;
    if (held && (msg.generation < held.generation || (msg.generation === held.generation && msg.root !== held.root))) {
      log.warn({ offered: msg.generation, held: held.generation }, 'refusing an older generation');
      this.send(ws, { type: 'nack', generation: msg.generation, root: msg.root, reason: `generation ${msg.generation} is older than the held ${held.generation}` });
      return;
    }
    let changed: { upserts: string[]; removals: string[] };
    if (msg.type === 'snapshot') {
      const before = new Set(this.set.resources.keys());
      const result = this.set.replaceAll(msg.resources, msg.root);
      if (!result.ok) return this.refuse(ws, msg, result.reason);
      const upserts = msg.resources.map((r) => r.resource.name);
      for (const n of upserts) before.delete(n);
      changed = { upserts, removals: [...before] };
    } else {
      if (!held || msg.baseRoot !== this.set.root) {
        this.send(ws, { type: 'resync', reason: `delta applies to ${msg.baseRoot.slice(0, 12)}, this proxy holds ${this.set.root.slice(0, 12)}` });
        return;
      }
      const result = this.set.applyDelta({ upserts: msg.upserts, removals: msg.removals }, msg.root);
      if (!result.ok) return this.refuse(ws, msg, result.reason);
      changed = { upserts: msg.upserts.map((r) => r.resource.name), removals: msg.removals };
    }
    this.version = { generation: msg.generation, root: msg.root };
    // The back-off restarts only once a version verified: a connection on which every version is
    // refused ends (4009) and is retried later each time, not at the first back-off forever.
    this.backoffMs = this.options.initialBackoffMs ?? 250;
    this.notLeaderBackoffMs = NOT_LEADER_RETRY_INITIAL_MS;
    // ACK once the update is served (the proxy's workers run it), not merely received.
    void this.publish(changed).then(() => this.send(ws, { type: 'ack', generation: msg.generation, root: msg.root }));
  }

  private refuse(ws: WebSocket, msg: { generation: number; root: string }, reason: string): void {
    this.options.logger.error({ generation: msg.generation, reason }, 'refusing a version that does not verify; asking for a full resync');
    this.send(ws, { type: 'nack', generation: msg.generation, root: msg.root, reason });
  }

  private async publish(changed: { upserts: string[]; removals: string[] }): Promise<void> {
    const version = this.version!;
    this.status.version = version;
    this.status.appliedAt = Date.now();
    // The live set, not a copy: O(changed) per update matters with 100k routes. Consumers
    // turn it into their own tables at once and never keep a view across updates.
    const serving = this.onUpdate?.({ resources: this.set.resources, changed, root: version.root, generation: version.generation });
    this.firstUpdate();
    this.scheduleSave();
    await serving;
  }

  // ---- last-known-good state ----------------------------------------------------------

  private scheduleSave(): void {
    if (!this.options.stateDir || this.saveTimer || this.closed) return;
    this.saveTimer = setTimeout(() => { this.saveTimer = null; this.saving = this.saving.then(() => this.persist()); }, 200);
  }

  private async persist(): Promise<void> {
    const dir = this.options.stateDir;
    if (!dir || !this.version) return;
    const { generation, root } = this.version;
    const savedAt = Date.now();
    const routing: HashedResource[] = [];
    const secrets: HashedResource[] = [];
    for (const r of this.set.resources.values()) (r.resource.type === 'secret' ? secrets : routing).push(r);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeAtomic(join(dir, 'secrets.json'), JSON.stringify({ generation, root, savedAt, resources: secrets }));
      await writeAtomic(join(dir, 'routing.json'), JSON.stringify({ generation, root, savedAt, resources: routing }));
    } catch (err) {
      this.options.logger.error({ dir, err: (err as Error).message }, 'persisting last-known-good routing failed');
    }
  }

  private async loadState(): Promise<void> {
    const dir = this.options.stateDir;
    if (!dir) return;
    let routing: PersistedState;
    let secrets: PersistedState;
    try {
      routing = JSON.parse(await readFile(join(dir, 'routing.json'), 'utf8')) as PersistedState;
      secrets = JSON.parse(await readFile(join(dir, 'secrets.json'), 'utf8')) as PersistedState;
    } catch {
      return;
    }
    const log = this.options.logger;
    const maxAge = this.options.maxStateAgeMs ?? DEFAULT_MAX_STATE_AGE_MS;
    const ageMs = Date.now() - routing.savedAt;
    if (routing.root !== secrets.root || routing.generation !== secrets.generation) { log.warn({ dir }, 'last-known-good files disagree; ignoring them'); return; }
    if (!(ageMs >= 0 && ageMs <= maxAge)) { log.warn({ dir, ageMs, maxAgeMs: maxAge }, 'last-known-good routing is too old; waiting for the operator'); return; }
    const result = this.set.replaceAll([...routing.resources, ...secrets.resources], routing.root);
    if (!result.ok) { log.warn({ dir, reason: result.reason }, 'last-known-good routing does not verify; ignoring it'); return; }
    this.version = { generation: routing.generation, root: routing.root };
    log.info({ dir, generation: routing.generation, ageMs }, 'serving last-known-good routing until the operator answers');
    this.status.version = this.version;
    this.status.appliedAt = Date.now();
    this.onUpdate?.({ resources: new Map(this.set.resources), changed: { upserts: [...this.set.resources.keys()], removals: [] }, root: routing.root, generation: routing.generation });
    this.firstUpdate();
  }
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}
