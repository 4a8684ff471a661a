/**
 * The canonical encoding every hash in Vane is computed over: RFC 8785 (JSON Canonicalization
 * Scheme) — object keys sorted by UTF-16 code units, ECMAScript number forms, minimal string
 * escapes, no whitespace. Hashes are SHA-256 of that UTF-8 text, lowercase hex. Golden vectors
 * in tests/unit/core/canonical.test.ts pin the encoding so that proxies and operators of
 * different builds agree.
 */
import canonicalize from 'canonicalize';
import { createHash } from 'node:crypto';

/** canonicalJson encodes a JSON value per RFC 8785; undefined fields are dropped as JSON.stringify would. */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('value has no JSON encoding');
  return text;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
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
