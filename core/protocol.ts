/**
 * The routing stream protocol, `vane.v1` (docs/stream-protocol.md): message types shared by
 * the operator's stream server and the proxy's stream client, and a decoder that checks
 * every field of what arrives, so a malformed frame is a clear error, never a crash.
 */
import type { HashedResource } from './resources.ts';
import { clip } from './problems.ts';

export const SUBPROTOCOL = 'vane.v1';
export const PROTOCOL_VERSION = 1;

/** A version of the routing resources: generation only grows; root says what the content is. */
export interface Version {
  generation: number;
  root: string;
}

export interface ProxyIdentity {
  /** Stable name of the proxy (pod name in a cluster, configured name in file mode). */
  name: string;
}

/** Mergeable statistics: counters and fixed-bucket latency histograms (STATS_BUCKETS_MS). */
export interface SideStats {
  requests: number;
  /** Upstream 5xx plus proxy-generated 502/503/504 and connect failures. */
  failures: number;
  /** Counts per latency bucket; index i counts requests with latency ≤ STATS_BUCKETS_MS[i], the last is +Inf. */
  latency: number[];
}

export interface BackendStats {
  /** Backend resource name; when absent, the entry's key names the backend. */
  backend?: string;
  /** `namespace/name` of the Canary, when the backend is one side of a split. */
  canary?: string;
  side?: 'stable' | 'canary';
  stats: SideStats;
}

/**
 * Upper bounds of the latency buckets in milliseconds; one more bucket catches the rest.
 * The same bounds as the proxy's Prometheus histogram, so both describe the same requests.
 */
export const STATS_BUCKETS_MS: readonly number[] = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

export type ClientMessage =
  | { type: 'hello'; protocol: number; proxy: ProxyIdentity; version: Version | null; resources: [string, string][] }
  | { type: 'ack'; generation: number; root: string }
  | { type: 'nack'; generation: number; root: string; reason: string }
  | { type: 'resync'; reason: string }
  | { type: 'stats'; seq: number; startedAt: number; intervalMs: number; backends: Record<string, BackendStats> };

export type ServerMessage =
  | { type: 'snapshot'; generation: number; root: string; resources: HashedResource[] }
  | { type: 'delta'; generation: number; root: string; baseRoot: string; upserts: HashedResource[]; removals: string[] };

/** Close codes (4000–4999 are application codes in RFC 6455). */
export const CLOSE = {
  unauthenticated: 4001,
  forbidden: 4003,
  protocol: 4002,
  tooLarge: 1009,
  notLeader: 4010,
  tooManyRefusals: 4009,
  shuttingDown: 1001,
} as const;

/** RFC 6455 leaves a close frame 123 bytes for its reason; `ws` throws on a longer one. */
const MAX_CLOSE_REASON_BYTES = 123;

/**
 * closeReason fits `text` into a close frame, cut at a character boundary. Reasons quote what
 * a peer sent (a proxy's name, a message type), which may be long and any Unicode: clipped by
 * characters, 120 of them can still be 480 bytes, and the throw would take the process down.
 */
export function closeReason(text: string): string {
  if (new TextEncoder().encode(text).length <= MAX_CLOSE_REASON_BYTES) return text;
  const room = MAX_CLOSE_REASON_BYTES - 3;
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + n > room) break;
    out += ch;
    bytes += n;
  }
  return `${out}…`;
}

export type Decoded<T> = { ok: true; message: T } | { ok: false; error: string };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isHash = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 512;

function checkSideStats(v: unknown): string | null {
  if (!isObject(v)) return 'stats must be an object';
  if (!isCount(v.requests) || !isCount(v.failures)) return 'requests and failures must be counts';
  if (v.failures > v.requests) return 'failures exceed requests';
  if (!Array.isArray(v.latency) || v.latency.length !== STATS_BUCKETS_MS.length + 1 || !v.latency.every(isCount)) {
    return `latency must be ${STATS_BUCKETS_MS.length + 1} bucket counts`;
  }
  return null;
}

function fail<T>(error: string): Decoded<T> { return { ok: false, error }; }

/** decodeClientMessage parses and checks one frame from a proxy. */
export function decodeClientMessage(text: string): Decoded<ClientMessage> {
  let v: unknown;
  try { v = JSON.parse(text); } catch { return fail('frame is not JSON'); }
  if (!isObject(v)) return fail('frame is not a JSON object');
  switch (v.type) {
    case 'hello': {
      if (v.protocol !== PROTOCOL_VERSION) return fail(`hello.protocol: unsupported version ${JSON.stringify(v.protocol)}, this server speaks ${PROTOCOL_VERSION}`);
      if (!isObject(v.proxy) || !isName(v.proxy.name)) return fail('hello.proxy.name: required');
      if (v.version !== null && (!isObject(v.version) || !isCount(v.version.generation) || !isHash(v.version.root))) return fail('hello.version: must be null or {generation, root}');
      if (!Array.isArray(v.resources)) return fail('hello.resources: must be a list of [name, hash]');
      for (const pair of v.resources) {
        if (!Array.isArray(pair) || pair.length !== 2 || !isName(pair[0]) || !isHash(pair[1])) return fail('hello.resources: every entry must be [name, hash]');
      }
      return { ok: true, message: v as unknown as ClientMessage };
    }
    case 'ack':
    case 'nack':
      if (!isCount(v.generation) || !isHash(v.root)) return fail(`${v.type}: generation and root are required`);
      if (v.type === 'nack' && typeof v.reason !== 'string') return fail('nack.reason: required');
      return { ok: true, message: v as unknown as ClientMessage };
    case 'resync':
      return typeof v.reason === 'string' ? { ok: true, message: v as unknown as ClientMessage } : fail('resync.reason: required');
    case 'stats': {
      if (!isCount(v.seq) || !isCount(v.startedAt) || !isCount(v.intervalMs)) return fail('stats: seq, startedAt and intervalMs are required');
      if (!isObject(v.backends)) return fail('stats.backends: must be an object');
      for (const [name, b] of Object.entries(v.backends)) {
        if (!isObject(b)) return fail(`stats.backends["${name}"]: must be an object`);
        if (b.backend !== undefined && !isName(b.backend)) return fail(`stats.backends["${name}"].backend: must be a backend name`);
        const problem = checkSideStats(b.stats);
        if (problem) return fail(`stats.backends["${name}"]: ${problem}`);
      }
      return { ok: true, message: v as unknown as ClientMessage };
    }
    default:
      return fail(`unknown message type ${clip(String(JSON.stringify(v.type)), 64)}`);
  }
}

function checkResources(list: unknown, field: string): string | null {
  if (!Array.isArray(list)) return `${field}: must be a list`;
  for (const r of list) {
    if (!isObject(r) || !isHash(r.hash) || !isObject(r.resource) || !isName(r.resource.name) || typeof r.resource.type !== 'string') {
      return `${field}: every entry must be {resource: {type, name, spec}, hash}`;
    }
  }
  return null;
}

/** decodeServerMessage parses and checks one frame from the operator (hashes are verified on apply). */
export function decodeServerMessage(text: string): Decoded<ServerMessage> {
  let v: unknown;
  try { v = JSON.parse(text); } catch { return fail('frame is not JSON'); }
  if (!isObject(v)) return fail('frame is not a JSON object');
  if (!isCount(v.generation) || !isHash(v.root)) return fail(`${clip(String(v.type), 64)}: generation and root are required`);
  if (v.type === 'snapshot') {
    const problem = checkResources(v.resources, 'snapshot.resources');
    return problem ? fail(problem) : { ok: true, message: v as unknown as ServerMessage };
  }
  if (v.type === 'delta') {
    if (!isHash(v.baseRoot)) return fail('delta.baseRoot: required');
    const problem = checkResources(v.upserts, 'delta.upserts');
    if (problem) return fail(problem);
    if (!Array.isArray(v.removals) || !v.removals.every(isName)) return fail('delta.removals: must be a list of names');
    return { ok: true, message: v as unknown as ServerMessage };
  }
  return fail(`unknown message type ${clip(String(JSON.stringify(v.type)), 64)}`);
}

/** emptySideStats is a zeroed SideStats. */
export function emptySideStats(): SideStats {
  return { requests: 0, failures: 0, latency: new Array<number>(STATS_BUCKETS_MS.length + 1).fill(0) };
}

/** mergeSideStats adds b into a (counters and histograms merge by addition; never average percentiles). */
export function mergeSideStats(a: SideStats, b: SideStats): SideStats {
  return {
    requests: a.requests + b.requests,
    failures: a.failures + b.failures,
    latency: a.latency.map((n, i) => n + (b.latency[i] ?? 0)),
  };
}

/** percentileMs estimates a percentile (0–100) from a merged histogram: the upper bound of its bucket. */
export function percentileMs(stats: SideStats, percentile: number): number | null {
  const total = stats.latency.reduce((s, n) => s + n, 0);
  if (total === 0) return null;
  const rank = Math.ceil((percentile / 100) * total);
  let seen = 0;
  for (let i = 0; i < stats.latency.length; i++) {
    seen += stats.latency[i]!;
    if (seen >= rank) return i < STATS_BUCKETS_MS.length ? STATS_BUCKETS_MS[i]! : Infinity;
  }
  return Infinity;
}
