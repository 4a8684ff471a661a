/**
 * The canonical encoding every hash in Vane is computed over: RFC 8785 (JSON Canonicalization
 * Scheme) — object keys sorted by UTF-16 code units, ECMAScript number forms, minimal string
 * escapes, no whitespace. Hashes are SHA-256 of that UTF-8 text, lowercase hex. Golden vectors
 * in tests/unit/core/canonical.test.ts pin the encoding so that proxies and operators of
 * different builds agree.
 */
import { createHash } from 'node:crypto';

/**
 * canonicalJson encodes a JSON value per RFC 8785; undefined fields are dropped as
 * JSON.stringify would. RFC 8785 defines strings and numbers exactly as ECMAScript's
 * JSON.stringify writes them, so the engine's native serialiser does those, and only key
 * order is ours: sorted by UTF-16 code units, which is how JavaScript compares strings.
 * (The `canonicalize` package does the same character by character and was the largest
 * cost of a full compile; tests/unit/core/canonical.test.ts checks both agree.)
 */
export function canonicalJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, sortingReplacer);
  } catch (err) {
    if (err !== INTEGER_KEY) throw err;
    text = encode(value);
  }
  if (text === undefined) throw new TypeError('value has no JSON encoding');
  return text;
}

const INTEGER_KEY = new Error('integer-like key');
const INTEGER_LIKE = /^(0|[1-9]\d*)$/;

/**
 * sortingReplacer hands JSON.stringify each object with its keys in canonical order; objects
 * already in order (the compiler builds its resources that way) pass through untouched.
 * Integer-like keys are always enumerated first by JavaScript, whatever the insertion
 * order, so an object with one takes the slower encoder.
 */
function sortingReplacer(this: unknown, _key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('non-finite numbers have no canonical JSON encoding');
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const keys = Object.keys(value);
  let sorted = true;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    if (k.charCodeAt(0) <= 57 && INTEGER_LIKE.test(k)) throw INTEGER_KEY;
    if (i > 0 && keys[i - 1]! > k) sorted = false;
  }
  if (sorted) return value;
  keys.sort();
  // A null prototype keeps a key named __proto__ an ordinary property.
  const out = Object.create(null) as Record<string, unknown>;
  for (const k of keys) out[k] = (value as Record<string, unknown>)[k];
  return out;
}

function encode(value: unknown): string | undefined {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string': return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('non-finite numbers have no canonical JSON encoding');
      return JSON.stringify(value);
    case 'boolean': return value ? 'true' : 'false';
    case 'object': break;
    default: return undefined;
  }
  const withJson = value as { toJSON?: () => unknown };
  if (typeof withJson.toJSON === 'function') return encode(withJson.toJSON());
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += encode(value[i]) ?? 'null';
    }
    return out + ']';
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const v = encode(obj[key]);
    if (v === undefined) continue;
    out += (first ? '' : ',') + JSON.stringify(key) + ':' + v;
    first = false;
  }
  return out + '}';
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * hashOrdered is hashValue for values whose object keys are already in canonical order at
 * every level (and never integer-like): the compiler builds its resources that way, which
 * lets it skip the canonicaliser. A property test holds every compiled resource to
 * hashOrdered(r) === hashValue(r), so an unordered literal cannot slip in unnoticed.
 */
export function hashOrdered(value: unknown): string {
  return sha256Hex(JSON.stringify(value));
}

/** hashValue is the content hash of a JSON value: SHA-256 over its canonical encoding. */
export function hashValue(value: unknown): string {
  return sha256Hex(canonicalJson(value));
}

const MOD = 1n << 256n;

/**
 * RootAccumulator computes the root hash of a resource set in O(changed) per update.
 *
 * The root is SHA-256 over `vane-root/1 <compilerVersion> <count> <sum>`, where sum is the
 * sum modulo 2^256 of SHA-256(name NUL hash) over all resources. Addition makes the root
 * independent of order and lets a proxy that applied a delta of k resources recompute it
 * with k subtractions and additions instead of rehashing the whole set (DESIGN.md asks for
 * O(changed)); it guards against bugs and corruption, while the stream's TLS guards against
 * tampering.
 */
export class RootAccumulator {
  private sum = 0n;
  private count = 0;
  private readonly compilerVersion: string;

  constructor(compilerVersion: string) {
    this.compilerVersion = compilerVersion;
  }

  add(name: string, hash: string): void {
    this.sum = (this.sum + pairTerm(name, hash)) % MOD;
    this.count += 1;
  }

  remove(name: string, hash: string): void {
    this.sum = (this.sum - pairTerm(name, hash) + MOD) % MOD;
    this.count -= 1;
  }

  get size(): number {
    return this.count;
  }

  root(): string {
    return sha256Hex(`vane-root/1 ${this.compilerVersion} ${this.count} ${this.sum.toString(16)}`);
  }

  clone(): RootAccumulator {
    const copy = new RootAccumulator(this.compilerVersion);
    copy.sum = this.sum;
    copy.count = this.count;
    return copy;
  }
}

function pairTerm(name: string, hash: string): bigint {
  return BigInt('0x' + createHash('sha256').update(name, 'utf8').update('\0').update(hash, 'utf8').digest('hex'));
}
