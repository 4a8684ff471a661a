/**
 * The stream server: pushes routing versions to proxies over WebSocket (`vane.v1`,
 * docs/stream-protocol.md) and collects their ACKs, NACKs and statistics.
 *
 * - A proxy authenticates before it receives anything; a failed check completes the
 *   upgrade only to close with a clear reason (4001/4003) and no data.
 * - Each proxy gets at most one version in flight. When a proxy is slow, newer versions
 *   pile up on the operator, not in its socket: once it ACKs, it gets one delta straight
 *   to the newest version. Deltas between published versions are serialised once and the
 *   same buffer goes to every proxy that needs it; full snapshots are serialised once per
 *   version and at most `maxConcurrentFullSends` are in flight at a time.
 * - `hello` carries the proxy's resource hashes, so an operator with no history (just
 *   restarted, or newly elected) sends only the difference. Its version is checked against
 *   what any operator could have issued (generations follow the wall clock), so one proxy
 *   cannot push the generation out of the safe integers and freeze the fleet.
 * - Clients that fail authentication are rate-limited per address, and authentications in
 *   progress are capped: each may cost the API server a TokenReview.
 * - A second connection for a proxy that is connected replaces the first, but never silently.
 * - A refusal (NACK or resync) asks for a full snapshot, the costliest send: it is answered
 *   after a delay that doubles with each refusal in a streak, and a streak of
 *   `maxRefusals` closes the connection (4009), so no proxy can make the operator loop.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import {
  SUBPROTOCOL, CLOSE, closeReason, decodeClientMessage, deltaFromHashes, hashesOf,
  type ServerMessage, type Version, type BackendStats, type Delta,
} from '../../core/index.ts';
import type { RoutingVersion } from '../pipeline.ts';
import type { Logger } from '../../lib/log.ts';

/** AuthResult names the proxy; `instance` (a pod uid) tells a reconnect of the same pod from another holder of its name. */
export type AuthResult = { ok: true; proxy: string; instance?: string } | { ok: false; code: number; reason: string };

/** Why the server turned a client away, as counted by onRejected. */
export type RejectReason = 'unauthenticated' | 'forbidden' | 'not_leader' | 'protocol' | 'rate_limited' | 'busy';

/** Authenticator checks a bearer token (null when none was sent) and names the proxy it belongs to. */
export type Authenticator = (token: string | null, req: IncomingMessage) => Promise<AuthResult>;

export interface StreamEvents {
  /** Called before the proxy is sent anything: a version published from here is the first it gets. */
  onHello?: (proxy: string, version: Version | null) => void;
  onAck?: (proxy: string, version: Version) => void;
  onNack?: (proxy: string, version: Version, reason: string) => void;
  onStats?: (proxy: string, stats: { seq: number; startedAt: number; intervalMs: number; backends: Record<string, BackendStats> }) => void;
  onConnectionsChanged?: () => void;
  onSend?: (kind: 'full' | 'delta', bytes: number) => void;
  onRejected?: (reason: RejectReason) => void;
  /** A proxy connected again while an earlier connection of it was open; the earlier one was closed. */
  onReplaced?: (proxy: string) => void;
  /** A proxy refused `maxRefusals` versions in a streak; its connection was closed with 4009. */
  onRefusedTooOften?: (proxy: string) => void;
}

export interface StreamServerOptions extends StreamEvents {
  server: Server;
  path?: string;
  authenticate: Authenticator;
  logger: Logger;
  /** Largest frame a proxy may send (hello carries every resource hash). */
  maxMessageBytes?: number;
  maxConcurrentFullSends?: number;
  helloTimeoutMs?: number;
  ackTimeoutMs?: number;
  heartbeatMs?: number;
  historySize?: number;
  /** Send full snapshots only (benchmark baseline for deltas); default false. */
  fullSendsOnly?: boolean;
  /**
   * How far ahead of this operator's clock a generation held by a proxy may be. Generations
   * are at least the wall clock in ms when issued, so a larger one came from a clock wrong by
   * more than this, or from a lying client; its hello is refused. Default 5 minutes.
   */
  maxGenerationAheadMs?: number;
  /** Failed authentications one address may make in a burst, and per second after it. */
  rejectedUpgradeBurst?: number;
  rejectedUpgradesPerSecond?: number;
  /** Authentications in progress at once; more are answered 503. */
  maxPendingAuthentications?: number;
  /** Wait before answering a refusal with a full snapshot; doubles with each refusal in a streak. Default 250 ms. */
  refusalBackoffMs?: number;
  /** Refusals in a streak that close the connection (4009). Default 5. */
  maxRefusals?: number;
  /**
   * A refusal this long after the previous one starts a new streak; ACKs in between do not,
   * or a proxy that ACKs each snapshot and asks for another would loop. Default 60 s.
   */
  refusalStreakMs?: number;
  now?: () => number;
}

interface Connection {
  ws: WebSocket;
  proxy: string;
  instance: string | undefined;
  remote: string | undefined;
  /** What we know the proxy holds: after an ACK, or from its hello. */
  holds: Version | null;
  /** The proxy's resource hashes from hello, used once for the first delta. */
  helloHashes: Map<string, string> | null;
  inFlight: { version: RoutingVersion; full: boolean; timer: NodeJS.Timeout } | null;
  wantsFull: boolean;
  queuedForFull: boolean;
  /** Refusals in the current streak, when the last one came, and the delay before answering it. */
  refusals: number;
  refusedAt: number;
  holdoff: NodeJS.Timeout | null;
  acked: Version | null;
  alive: boolean;
  connectedAt: number;
}

export interface ConnectionInfo {
  proxy: string;
  acked: Version | null;
  inFlight: boolean;
  connectedAt: number;
}

export class StreamServer {
  private readonly options: Required<Omit<StreamServerOptions, keyof StreamEvents>> & StreamEvents;
  private readonly wss: WebSocketServer;
  private readonly connections = new Map<string, Connection>();
  private readonly history: RoutingVersion[] = [];
  private readonly deltaCache = new Map<string, Buffer>();
  private readonly fullCache = new Map<number, Buffer>();
  private fullSendsInFlight = 0;
  private readonly fullQueue: Connection[] = [];
  private readonly heartbeat: NodeJS.Timeout;
  private readonly onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Per remote address: failed-authentication tokens left and when they were last topped up. */
  private readonly rejections = new Map<string, { tokens: number; at: number }>();
  private pendingAuthentications = 0;
  private closed = false;

  constructor(options: StreamServerOptions) {
    this.options = {
      path: '/stream',
      maxMessageBytes: 32 * 1024 * 1024,
      maxConcurrentFullSends: 8,
      helloTimeoutMs: 10_000,
      ackTimeoutMs: 30_000,
      heartbeatMs: 10_000,
      historySize: 16,
      fullSendsOnly: false,
      maxGenerationAheadMs: 5 * 60_000,
      rejectedUpgradeBurst: 10,
      rejectedUpgradesPerSecond: 1,
      maxPendingAuthentications: 64,
      refusalBackoffMs: 250,
      maxRefusals: 5,
      refusalStreakMs: 60_000,
      now: Date.now,
      ...options,
    };
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: this.options.maxMessageBytes,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    this.onUpgrade = (req, socket, head) => { void this.upgrade(req, socket, head); };
    this.options.server.on('upgrade', this.onUpgrade);
    this.heartbeat = setInterval(() => this.beat(), this.options.heartbeatMs);
    this.heartbeat.unref();
  }

  /** publish makes `version` the one every proxy converges to. */
  publish(version: RoutingVersion): void {
    const previous = this.history[this.history.length - 1];
    this.history.push(version);
    while (this.history.length > this.options.historySize) {
      const dropped = this.history.shift()!;
      this.fullCache.delete(dropped.generation);
    }
    if (previous) this.cacheConsecutiveDelta(previous, version);
    for (const conn of this.connections.values()) this.pump(conn);
  }

  get current(): RoutingVersion | null { return this.history[this.history.length - 1] ?? null; }

  connectionInfo(): ConnectionInfo[] {
    return [...this.connections.values()].map((c) => ({ proxy: c.proxy, acked: c.acked, inFlight: c.inFlight !== null, connectedAt: c.connectedAt }));
  }

  /**
   * disconnectAll closes every proxy connection (e.g. on losing leadership), those still
   * waiting for their hello too: one that said hello afterwards would be served. New ones may
   * still come.
   */
  disconnectAll(code: number, reason: string): void {
    for (const ws of this.wss.clients) ws.close(code, reason);
  }

  /** close disconnects every proxy with `code` (going away by default) and stops listening for upgrades. */
  async close(code: number = CLOSE.shuttingDown, reason = 'operator shutting down'): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    this.options.server.off('upgrade', this.onUpgrade);
    for (const c of this.connections.values()) { if (c.inFlight) clearTimeout(c.inFlight.timer); if (c.holdoff) clearTimeout(c.holdoff); c.ws.close(code, reason); }
    this.connections.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // ---- connection lifecycle -----------------------------------------------------------

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = req.url ?? '';
    if (this.closed || url.split('?')[0] !== this.options.path) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    socket.on('error', () => socket.destroy());
    const remote = req.socket.remoteAddress ?? 'unknown';
    if (!this.mayTry(remote)) {
      this.refuse(socket, 429, 'rate_limited', { remote }, 'too many failed authentications from this address; refused before authenticating');
      return;
    }
    if (this.pendingAuthentications >= this.options.maxPendingAuthentications) {
      this.refuse(socket, 503, 'busy', { remote, pending: this.pendingAuthentications }, 'too many authentications in progress; refused');
      return;
    }
    const header = req.headers.authorization;
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : null;
    let auth: AuthResult;
    this.pendingAuthentications++;
    try {
      auth = await this.options.authenticate(token, req);
      if (!auth.ok && auth.code !== CLOSE.notLeader) this.charge(remote);
    } catch (err) {
      // Not charged to the address: the failure is ours (the API server), not the client's.
      this.options.logger.error({ err: (err as Error).message }, 'authenticating a proxy failed');
      auth = { ok: false, code: CLOSE.unauthenticated, reason: 'authentication unavailable; retry later' };
    } finally {
      this.pendingAuthentications--;
    }
    if (this.closed) { socket.destroy(); return; }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (ws.protocol !== SUBPROTOCOL) { this.options.onRejected?.('protocol'); ws.close(CLOSE.protocol, `subprotocol ${SUBPROTOCOL} required`); return; }
      if (!auth.ok) {
        this.options.onRejected?.(rejectReason(auth.code));
        this.options.logger.warn({ remote, reason: auth.reason }, 'proxy rejected');
        ws.close(auth.code, closeReason(auth.reason));
        return;
      }
      this.accept(ws, auth.proxy, auth.instance, remote);
    });
  }

  /** refuse answers an upgrade with a plain HTTP status, before any authentication work. */
  private refuse(socket: Duplex, status: 429 | 503, reason: RejectReason, fields: Record<string, unknown>, msg: string): void {
    this.options.onRejected?.(reason);
    this.options.logger.warn(fields, msg);
    const text = status === 429 ? 'Too Many Requests' : 'Service Unavailable';
    socket.end(`HTTP/1.1 ${status} ${text}\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }

  /** mayTry is false while `remote` has used up its failed authentications (a token bucket). */
  private mayTry(remote: string): boolean {
    const bucket = this.rejections.get(remote);
    if (!bucket) return true;
    const now = this.options.now();
    bucket.tokens = Math.min(this.options.rejectedUpgradeBurst, bucket.tokens + ((now - bucket.at) / 1000) * this.options.rejectedUpgradesPerSecond);
    bucket.at = now;
    if (bucket.tokens >= this.options.rejectedUpgradeBurst) { this.rejections.delete(remote); return true; }
    return bucket.tokens >= 1;
  }

  private charge(remote: string): void {
    const bucket = this.rejections.get(remote) ?? { tokens: this.options.rejectedUpgradeBurst, at: this.options.now() };
    bucket.tokens -= 1;
    this.rejections.set(remote, bucket);
  }

  /** helloProblem says why a hello's version cannot be one an operator issued, or null. */
  private helloProblem(version: Version | null): string | null {
    if (!version) return null;
    const limit = Math.max(this.options.now() + this.options.maxGenerationAheadMs, this.current?.generation ?? 0);
    if (version.generation > limit) {
      return `hello.version.generation: ${version.generation} is ahead of any generation an operator has issued (at most ${limit}: this clock + ${this.options.maxGenerationAheadMs} ms)`;
    }
    return null;
  }

  private accept(ws: WebSocket, proxy: string, instance: string | undefined, remote: string): void {
    const log = this.options.logger;
    let conn: Connection | null = null;
    const helloTimer = setTimeout(() => ws.close(CLOSE.protocol, 'no hello'), this.options.helloTimeoutMs);
    ws.on('error', (err) => log.warn({ proxy, err: err.message }, 'stream connection error'));
    ws.on('pong', () => { if (conn) conn.alive = true; });
    ws.on('close', () => {
      clearTimeout(helloTimer);
      if (!conn) return;
      if (conn.inFlight) { clearTimeout(conn.inFlight.timer); this.finishFullSend(conn.inFlight.full); }
      if (conn.holdoff) clearTimeout(conn.holdoff);
      const i = this.fullQueue.indexOf(conn);
      if (i >= 0) this.fullQueue.splice(i, 1);
      if (this.connections.get(conn.proxy) === conn) {
        this.connections.delete(conn.proxy);
        this.options.onConnectionsChanged?.();
      }
      log.info({ proxy }, 'proxy disconnected');
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) { ws.close(CLOSE.protocol, 'binary frames are not part of vane.v1'); return; }
      const decoded = decodeClientMessage(data.toString());
      if (!decoded.ok) {
        log.warn({ proxy, error: decoded.error }, 'malformed message from proxy');
        ws.close(CLOSE.protocol, closeReason(decoded.error));
        return;
      }
      const msg = decoded.message;
      if (!conn) {
        if (msg.type !== 'hello') { ws.close(CLOSE.protocol, 'hello first'); return; }
        clearTimeout(helloTimer);
        if (msg.proxy.name !== proxy) { this.options.onRejected?.('forbidden'); ws.close(CLOSE.forbidden, closeReason(`hello.proxy.name: token belongs to proxy ${proxy}, not ${msg.proxy.name}`)); return; }
        const problem = this.helloProblem(msg.version);
        if (problem) {
          this.options.onRejected?.('protocol');
          log.error({ proxy, remote, generation: msg.version!.generation }, `hello refused: ${problem}`);
          ws.close(CLOSE.protocol, closeReason(problem));
          return;
        }
        conn = {
          ws, proxy, instance, remote, holds: msg.version, helloHashes: new Map(msg.resources), inFlight: null, wantsFull: msg.resources.length === 0,
          queuedForFull: false, refusals: 0, refusedAt: 0, holdoff: null, acked: null, alive: true, connectedAt: Date.now(),
        };
        const previous = this.connections.get(proxy);
        if (previous) {
          log.warn({
            proxy, remote, instance, previous: { remote: previous.remote, instance: previous.instance, connectedAt: new Date(previous.connectedAt).toISOString() },
            sameInstance: instance !== undefined && instance === previous.instance,
          }, 'a second connection for a connected proxy; closing the earlier one');
          this.options.onReplaced?.(proxy);
          previous.ws.close(CLOSE.protocol, 'replaced by a newer connection');
        }
        this.connections.set(proxy, conn);
        log.info({ proxy, remote, instance, holds: msg.version ? { generation: msg.version.generation, root: msg.version.root.slice(0, 12) } : null, resources: msg.resources.length }, 'proxy connected');
        this.options.onHello?.(proxy, msg.version);
        this.options.onConnectionsChanged?.();
        this.pump(conn);
        return;
      }
      switch (msg.type) {
        case 'hello': ws.close(CLOSE.protocol, 'hello twice'); return;
        case 'ack': this.onAck(conn, { generation: msg.generation, root: msg.root }); return;
        case 'nack':
          this.options.onNack?.(conn.proxy, { generation: msg.generation, root: msg.root }, msg.reason);
          this.refused(conn, 'nack', msg.reason);
          return;
        case 'resync': this.refused(conn, 'resync', msg.reason); return;
        case 'stats': this.options.onStats?.(proxy, msg); return;
      }
    });
  }

  private onAck(conn: Connection, version: Version): void {
    const sent = conn.inFlight;
    if (!sent || sent.version.generation !== version.generation || sent.version.root !== version.root) {
      this.options.logger.warn({ proxy: conn.proxy, generation: version.generation }, 'ACK for a version that was not in flight; ignored');
      return;
    }
    this.settle(conn);
    conn.holds = version;
    conn.acked = version;
    conn.helloHashes = null;
    this.options.onAck?.(conn.proxy, version);
    this.pump(conn);
  }

  /**
   * refused answers a NACK or a resync, both the proxy's answer to the version in flight (a
   * resync that left it in flight would wait for an ACK timeout): a full snapshot after the
   * streak's delay, or, at `maxRefusals`, the connection closed.
   */
  private refused(conn: Connection, kind: 'nack' | 'resync', reason: string): void {
    const log = this.options.logger;
    const refused = conn.inFlight?.version.generation ?? null;
    if (conn.inFlight) this.settle(conn);
    conn.holds = null;
    conn.helloHashes = null;
    conn.wantsFull = true;
    const now = this.options.now();
    conn.refusals = conn.refusals > 0 && now - conn.refusedAt < this.options.refusalStreakMs ? conn.refusals + 1 : 1;
    conn.refusedAt = now;
    const fields = { proxy: conn.proxy, remote: conn.remote, instance: conn.instance, generation: refused, refusals: conn.refusals, reason: reason.slice(0, 1024) };
    if (conn.refusals >= this.options.maxRefusals) {
      log.error(fields, `proxy refused ${conn.refusals} versions in a row; closing its connection`);
      this.options.onRefusedTooOften?.(conn.proxy);
      conn.ws.close(CLOSE.tooManyRefusals, closeReason(`${kind}: ${conn.refusals} versions refused in a row, each within ${this.options.refusalStreakMs} ms of the last; last reason: ${reason}`));
      return;
    }
    const delayMs = this.options.refusalBackoffMs * 2 ** (conn.refusals - 1);
    log.warn({ ...fields, delayMs }, `proxy refused a version (${kind}); sending a full snapshot after a delay`);
    conn.holdoff = setTimeout(() => { conn.holdoff = null; this.pump(conn); }, delayMs);
  }

  private settle(conn: Connection): void {
    const sent = conn.inFlight!;
    clearTimeout(sent.timer);
    conn.inFlight = null;
    this.finishFullSend(sent.full);
  }

  private finishFullSend(full: boolean): void {
    if (!full) return;
    this.fullSendsInFlight--;
    while (this.fullSendsInFlight < this.options.maxConcurrentFullSends && this.fullQueue.length > 0) {
      const next = this.fullQueue.shift()!;
      next.queuedForFull = false;
      this.pump(next);
    }
  }

  private beat(): void {
    // mayTry forgets an address whose bucket has refilled: the map holds only recent offenders.
    for (const remote of [...this.rejections.keys()]) this.mayTry(remote);
    for (const conn of this.connections.values()) {
      if (!conn.alive) { this.options.logger.warn({ proxy: conn.proxy }, 'proxy missed a heartbeat; closing'); conn.ws.terminate(); continue; }
      conn.alive = false;
      conn.ws.ping();
    }
  }

  // ---- sending ------------------------------------------------------------------------

  /** pump sends the newest version to a proxy that has nothing in flight and is behind. */
  private pump(conn: Connection): void {
    const target = this.current;
    if (!target || conn.inFlight || conn.queuedForFull || conn.holdoff || conn.ws.readyState !== conn.ws.OPEN) return;
    if (!conn.wantsFull && conn.holds && conn.holds.root === target.root && conn.holds.generation >= target.generation) return;

    let payload: Buffer | null = null;
    if (this.options.fullSendsOnly) conn.wantsFull = true;
    if (!conn.wantsFull && conn.holds) payload = this.deltaFromVersion(conn.holds, target);
    if (!payload && !conn.wantsFull && conn.helloHashes && conn.helloHashes.size > 0) {
      const baseRoot = conn.holds?.root;
      if (baseRoot) payload = encodeDelta(target, baseRoot, deltaFromHashes(conn.helloHashes, target.resources));
    }
    const full = payload === null;
    if (full) {
      if (this.fullSendsInFlight >= this.options.maxConcurrentFullSends) {
        conn.queuedForFull = true;
        this.fullQueue.push(conn);
        return;
      }
      this.fullSendsInFlight++;
      payload = this.fullSnapshot(target);
    }
    conn.wantsFull = false;
    const timer = setTimeout(() => {
      this.options.logger.warn({ proxy: conn.proxy, generation: target.generation }, 'no ACK in time; closing so the proxy reconnects');
      conn.ws.close(CLOSE.protocol, 'ack timeout');
    }, this.options.ackTimeoutMs);
    conn.inFlight = { version: target, full, timer };
    this.options.onSend?.(full ? 'full' : 'delta', payload!.length);
    conn.ws.send(payload!, { binary: false });
  }

  private fullSnapshot(version: RoutingVersion): Buffer {
    let buf = this.fullCache.get(version.generation);
    if (!buf) {
      const msg: ServerMessage = { type: 'snapshot', generation: version.generation, root: version.root, resources: [...version.resources.values()] };
      buf = Buffer.from(JSON.stringify(msg));
      this.fullCache.clear();
      this.fullCache.set(version.generation, buf);
    }
    return buf;
  }

  /** deltaFromVersion finds the version a proxy holds in history and returns the shared delta buffer. */
  private deltaFromVersion(holds: Version, target: RoutingVersion): Buffer | null {
    const key = `${holds.root}>${target.generation}`;
    const cached = this.deltaCache.get(key);
    if (cached) return cached;
    const base = this.history.find((v) => v.root === holds.root);
    if (!base) return null;
    const buf = encodeDelta(target, base.root, deltaFromHashes(hashesOf(base.resources), target.resources));
    this.remember(key, buf);
    return buf;
  }

  private cacheConsecutiveDelta(previous: RoutingVersion, version: RoutingVersion): void {
    const upserts = version.changed.upserts.map((n) => version.resources.get(n)).filter((r) => r !== undefined);
    this.remember(`${previous.root}>${version.generation}`, encodeDelta(version, previous.root, { upserts, removals: version.changed.removals }));
  }

  private remember(key: string, buf: Buffer): void {
    this.deltaCache.set(key, buf);
    while (this.deltaCache.size > this.options.historySize * 4) this.deltaCache.delete(this.deltaCache.keys().next().value!);
  }
}

function encodeDelta(target: RoutingVersion, baseRoot: string, delta: Delta): Buffer {
  const msg: ServerMessage = { type: 'delta', generation: target.generation, root: target.root, baseRoot, upserts: delta.upserts, removals: delta.removals };
  return Buffer.from(JSON.stringify(msg));
}

function rejectReason(code: number): RejectReason {
  if (code === CLOSE.notLeader) return 'not_leader';
  if (code === CLOSE.forbidden) return 'forbidden';
  if (code === CLOSE.unauthenticated) return 'unauthenticated';
  return 'protocol';
}
