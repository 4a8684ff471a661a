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
 *   restarted, or newly elected) sends only the difference.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import {
  SUBPROTOCOL, CLOSE, decodeClientMessage, deltaFromHashes, hashesOf,
  type ServerMessage, type Version, type BackendStats, type Delta,
} from '../../core/index.ts';
import type { RoutingVersion } from '../pipeline.ts';
import type { Logger } from '../../lib/log.ts';

export type AuthResult = { ok: true; proxy: string } | { ok: false; code: number; reason: string };

/** Authenticator checks a bearer token (null when none was sent) and names the proxy it belongs to. */
export type Authenticator = (token: string | null, req: IncomingMessage) => Promise<AuthResult>;

export interface StreamEvents {
  onHello?: (proxy: string, version: Version | null) => void;
  onAck?: (proxy: string, version: Version) => void;
  onNack?: (proxy: string, version: Version, reason: string) => void;
  onStats?: (proxy: string, stats: { seq: number; startedAt: number; intervalMs: number; backends: Record<string, BackendStats> }) => void;
  onConnectionsChanged?: () => void;
  onSend?: (kind: 'full' | 'delta', bytes: number) => void;
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
}

interface Connection {
  ws: WebSocket;
  proxy: string;
  /** What we know the proxy holds: after an ACK, or from its hello. */
  holds: Version | null;
  /** The proxy's resource hashes from hello, used once for the first delta. */
  helloHashes: Map<string, string> | null;
  inFlight: { version: RoutingVersion; full: boolean; timer: NodeJS.Timeout } | null;
  wantsFull: boolean;
  queuedForFull: boolean;
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

  /** disconnectAll closes every proxy connection (e.g. on losing leadership); new ones may still come. */
  disconnectAll(code: number, reason: string): void {
    for (const c of this.connections.values()) c.ws.close(code, reason);
  }

  /** close disconnects every proxy with `code` (going away by default) and stops listening for upgrades. */
  async close(code: number = CLOSE.shuttingDown, reason = 'operator shutting down'): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    this.options.server.off('upgrade', this.onUpgrade);
    for (const c of this.connections.values()) { if (c.inFlight) clearTimeout(c.inFlight.timer); c.ws.close(code, reason); }
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
    const header = req.headers.authorization;
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : null;
    let auth: AuthResult;
    try {
      auth = await this.options.authenticate(token, req);
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message }, 'authenticating a proxy failed');
      auth = { ok: false, code: CLOSE.unauthenticated, reason: 'authentication unavailable; retry later' };
    }
    if (this.closed) { socket.destroy(); return; }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (ws.protocol !== SUBPROTOCOL) { ws.close(CLOSE.protocol, `subprotocol ${SUBPROTOCOL} required`); return; }
      if (!auth.ok) {
        this.options.logger.warn({ remote: req.socket.remoteAddress, reason: auth.reason }, 'proxy rejected');
        ws.close(auth.code, auth.reason.slice(0, 120));
        return;
      }
      this.accept(ws, auth.proxy);
    });
  }

  private accept(ws: WebSocket, proxy: string): void {
    const log = this.options.logger;
    let conn: Connection | null = null;
    const helloTimer = setTimeout(() => ws.close(CLOSE.protocol, 'no hello'), this.options.helloTimeoutMs);
    ws.on('error', (err) => log.warn({ proxy, err: err.message }, 'stream connection error'));
    ws.on('pong', () => { if (conn) conn.alive = true; });
    ws.on('close', () => {
      clearTimeout(helloTimer);
      if (!conn) return;
      if (conn.inFlight) { clearTimeout(conn.inFlight.timer); this.finishFullSend(conn.inFlight.full); }
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
        ws.close(CLOSE.protocol, decoded.error.slice(0, 120));
        return;
      }
      const msg = decoded.message;
      if (!conn) {
        if (msg.type !== 'hello') { ws.close(CLOSE.protocol, 'hello first'); return; }
        clearTimeout(helloTimer);
        if (msg.proxy.name !== proxy) { ws.close(CLOSE.forbidden, `token belongs to proxy ${proxy}, not ${msg.proxy.name}`.slice(0, 120)); return; }
        conn = {
          ws, proxy, holds: msg.version, helloHashes: new Map(msg.resources), inFlight: null, wantsFull: msg.resources.length === 0,
          queuedForFull: false, acked: null, alive: true, connectedAt: Date.now(),
        };
        const previous = this.connections.get(proxy);
        if (previous) previous.ws.close(CLOSE.protocol, 'replaced by a newer connection');
        this.connections.set(proxy, conn);
        log.info({ proxy, holds: msg.version ? { generation: msg.version.generation, root: msg.version.root.slice(0, 12) } : null, resources: msg.resources.length }, 'proxy connected');
        this.options.onHello?.(proxy, msg.version);
        this.options.onConnectionsChanged?.();
        this.pump(conn);
        return;
      }
      switch (msg.type) {
        case 'hello': ws.close(CLOSE.protocol, 'hello twice'); return;
        case 'ack': this.onAck(conn, { generation: msg.generation, root: msg.root }); return;
        case 'nack': this.onNack(conn, { generation: msg.generation, root: msg.root }, msg.reason); return;
        case 'resync':
          log.info({ proxy, reason: msg.reason }, 'proxy asked for a full resync');
          conn.holds = null; conn.helloHashes = null; conn.wantsFull = true;
          this.pump(conn);
          return;
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

  private onNack(conn: Connection, version: Version, reason: string): void {
    this.options.logger.warn({ proxy: conn.proxy, generation: version.generation, reason }, 'proxy refused a version (NACK); sending a full snapshot');
    if (conn.inFlight) this.settle(conn);
    conn.holds = null;
    conn.helloHashes = null;
    conn.wantsFull = true;
    this.options.onNack?.(conn.proxy, version, reason);
    this.pump(conn);
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
    if (!target || conn.inFlight || conn.queuedForFull || conn.ws.readyState !== conn.ws.OPEN) return;
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
