/**
 * Upstream responses for the fast path: a strict parser of the response head that also
 * prepares the head the client gets (hop-by-hop headers and those named in Connection
 * removed), and a scanner of chunked bodies that finds where a body ends while its bytes are
 * relayed unchanged. Upstream bytes are untrusted: anything malformed is an error (502),
 * never guessed at.
 */

import { hasToken } from './request-head.ts';

export const INCOMPLETE = 0;
export const MALFORMED = 1;

/** How the response body is delimited (RFC 9112 §6.3). */
export type Framing = 'none' | 'length' | 'chunked' | 'close';


/**
 * ResponseHead is a parsed upstream response head. It keeps references into the bytes it was
 * parsed from, so the client's head is copied from them (`clientHead`) instead of being rebuilt
 * from strings: use it before those bytes are reused.
 */
export class ResponseHead {
  readonly status: number;
  readonly framing: Framing;
  /** Body length when framing is 'length'. */
  readonly length: number;
  /** The upstream connection may carry another request afterwards. */
  readonly reusable: boolean;
  /** Bytes of the head, final CRLFCRLF included. */
  readonly size: number;
  private buf: Buffer;
  private readonly reasonStart: number;
  private readonly reasonEnd: number;
  /** Header lines the client gets, flat [start, colon, end) triples (end before the CRLF). */
  private readonly kept: number[];

  constructor(buf: Buffer, status: number, reasonStart: number, reasonEnd: number, kept: number[], framing: Framing, length: number, reusable: boolean, size: number) {
    this.buf = buf;
    this.status = status;
    this.reasonStart = reasonStart;
    this.reasonEnd = reasonEnd;
    this.kept = kept;
    this.framing = framing;
    this.length = length;
    this.reusable = reusable;
    this.size = size;
  }

  /** own copies the head's bytes, so that the buffer it was parsed from can be reused. */
  own(): void {
    this.buf = Buffer.from(this.buf.subarray(0, this.size));
  }

  /** Reason phrase as sent (may be empty). */
  get reason(): string { return this.buf.toString('latin1', this.reasonStart, this.reasonEnd); }

  /** The upstream sent a reason phrase (clientHead then copies it). */
  get hasReason(): boolean { return this.reasonEnd > this.reasonStart; }

  /** Headers for the client, flat `[name, value, …]`: those clientHead copies. */
  get headers(): string[] {
    const out: string[] = [];
    const b = this.buf;
    const k = this.kept;
    for (let i = 0; i < k.length; i += 3) {
      let vs = k[i + 1]! + 1;
      let ve = k[i + 2]!;
      while (vs < ve && ows(b[vs]!)) vs++;
      while (ve > vs && ows(b[ve - 1]!)) ve--;
      out.push(b.toString('latin1', k[i]!, k[i + 1]!), b.toString('latin1', vs, ve));
    }
    return out;
  }

  /**
   * clientHead is the head the client gets: an HTTP/1.1 status line (`fallbackReason` when the
   * upstream sent none), the kept header lines as they were sent, then `extra` (complete
   * `name: value\r\n` lines), then `body` when given, in one buffer.
   */
  clientHead(extra: string, fallbackReason: string, body: Buffer | null): Buffer {
    const k = this.kept;
    const src = this.buf;
    const reasonLength = this.reasonEnd - this.reasonStart;
    const reasonBytes = reasonLength > 0 ? reasonLength : fallbackReason.length;
    let size = 13 + reasonBytes + 2 + extra.length + 2 + (body === null ? 0 : body.length);
    for (let i = 0; i < k.length; i += 3) size += k[i + 2]! - k[i]! + 2;
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    // Bytes are copied in runs of adjacent source lines (every line ends in CRLF): usually the
    // status line and the headers before the first dropped one in one copy, the rest in another.
    let runStart = 0;
    let runEnd = 0;
    if (src[7] === 0x31 && reasonLength > 0) {
      // `HTTP/1.1 NNN reason` is already the line the client gets.
      runEnd = this.reasonEnd + 2;
    } else {
      at = out.write(`HTTP/1.1 ${this.status} `, 0, 'latin1');
      at += reasonLength > 0 ? src.copy(out, at, this.reasonStart, this.reasonEnd) : out.write(fallbackReason, at, 'latin1');
      out[at++] = 0x0d; out[at++] = 0x0a;
    }
    for (let i = 0; i < k.length; i += 3) {
      const start = k[i]!;
      if (start !== runEnd) {
        if (runEnd > runStart) at += src.copy(out, at, runStart, runEnd);
        runStart = start;
      }
      runEnd = k[i + 2]! + 2;
    }
    if (runEnd > runStart) at += src.copy(out, at, runStart, runEnd);
    if (extra.length > 0) at += out.write(extra, at, 'latin1');
    out[at++] = 0x0d; out[at++] = 0x0a;
    if (body !== null) body.copy(out, at);
    return out;
  }
}

export type ResponseHeadResult = ResponseHead | typeof INCOMPLETE | typeof MALFORMED;

const MAX_FIELDS = 200;

/** What framingHeader finds: a header kept as it is, dropped (hop-by-hop), or read for framing. */
const H_OTHER = 0;
const H_DROP = 1;
const H_LENGTH = 2;
const H_TRANSFER = 3;
const H_CONNECTION = 4;

/** nameIs compares buf[start, start + name.length) with a lower-case name, ignoring ASCII case. */
function nameIs(buf: Buffer, start: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) if ((buf[start + i]! | 0x20) !== name.charCodeAt(i)) return false;
  return true;
}

/** framingHeader classifies a response header name by its bytes; lengths first, so most names cost one switch. */
function framingHeader(buf: Buffer, start: number, length: number): number {
  switch (length) {
    case 2: return nameIs(buf, start, 'te') ? H_DROP : H_OTHER;
    case 7: return nameIs(buf, start, 'trailer') || nameIs(buf, start, 'upgrade') ? H_DROP : H_OTHER;
    case 10: return nameIs(buf, start, 'connection') ? H_CONNECTION : nameIs(buf, start, 'keep-alive') ? H_DROP : H_OTHER;
    case 14: return nameIs(buf, start, 'content-length') ? H_LENGTH : nameIs(buf, start, 'http2-settings') ? H_DROP : H_OTHER;
    case 16: return nameIs(buf, start, 'proxy-connection') ? H_DROP : H_OTHER;
    case 17: return nameIs(buf, start, 'transfer-encoding') ? H_TRANSFER : H_OTHER;
    default: return H_OTHER;
  }
}

/**
 * parseResponseHead reads the head at the start of `buf`. `noBody` is true for responses to
 * HEAD. Malformed heads, and heads over maxBytes, are MALFORMED.
 */
export function parseResponseHead(buf: Buffer, maxBytes: number, noBody: boolean): ResponseHeadResult {
  const n = buf.length;
  // HTTP/1.x SP 3DIGIT [SP reason] CRLF
  if (n < 14) return prefixOk(buf) ? INCOMPLETE : MALFORMED;
  if (!prefixOk(buf)) return MALFORMED;
  const minor = buf[7]! - 0x30;
  const status = threeDigits(buf, 9);
  if (status < 100) return MALFORMED;
  let lineEnd = 12;
  if (buf[12] === 0x20) {
    lineEnd = 13;
    while (lineEnd < n && fieldChar(buf[lineEnd]!)) lineEnd++;
  }
  if (lineEnd + 1 >= n) return n >= maxBytes ? MALFORMED : INCOMPLETE;
  if (buf[lineEnd] !== 0x0d || buf[lineEnd + 1] !== 0x0a) return MALFORMED;
  const reasonStart = lineEnd > 12 ? 13 : 12;
  const kept: number[] = [];
  let fields = 0;
  let length = -1;
  let lengthAt = -1;
  let lengthLines = 0;
  let chunked = false;
  let transferEncoding = false;
  let sawClose = false;
  let sawKeepAlive = false;
  let connectionAt: number[] | null = null;
  let pos = lineEnd + 2;
  // Lines up to the empty one; running out of bytes first means the head is incomplete.
  for (;;) {
    if (pos + 1 >= n) return n >= maxBytes ? MALFORMED : INCOMPLETE;
    if (buf[pos] === 0x0d) {
      if (buf[pos + 1] !== 0x0a) return MALFORMED;
      break;
    }
    if (++fields > MAX_FIELDS || pos >= maxBytes) return MALFORMED;
    let colon = pos;
    while (colon < n && tchar(buf[colon]!)) colon++;
    if (colon === n) return n >= maxBytes ? MALFORMED : INCOMPLETE;
    if (colon === pos || buf[colon] !== 0x3a) return MALFORMED;
    let next = colon + 1;
    while (next < n && fieldChar(buf[next]!)) next++;
    if (next + 1 >= n) return n >= maxBytes ? MALFORMED : INCOMPLETE;
    // Only CRLF may end a line: a bare CR or LF is malformed.
    if (buf[next] !== 0x0d || buf[next + 1] !== 0x0a) return MALFORMED;
    const kind = framingHeader(buf, pos, colon - pos);
    if (kind === H_OTHER) {
      kept.push(pos, colon, next);
    } else if (kind === H_LENGTH) {
      const n = digits(buf, colon + 1, next);
      if (n < 0 || (length >= 0 && n !== length)) return MALFORMED;
      if (length < 0) lengthAt = kept.length;
      length = n;
      lengthLines++;
      kept.push(pos, colon, next);
    } else if (kind === H_TRANSFER) {
      // Kept: the proxy relays the coded bytes as they are, so the client needs every coding.
      transferEncoding = true;
      kept.push(pos, colon, next);
      // The final coding decides the framing; empty list items do not count (RFC 9110 §5.6.1).
      const codings = buf.toString('latin1', colon + 1, next).toLowerCase().split(',').map((c) => c.trim()).filter((c) => c !== '');
      if (codings.length > 0) chunked = codings[codings.length - 1] === 'chunked';
    } else if (kind === H_CONNECTION) {
      // The usual values name no headers and need no list parsing (nor strings).
      if (valueIs(buf, colon + 1, next, 'keep-alive')) sawKeepAlive = true;
      else if (valueIs(buf, colon + 1, next, 'close')) sawClose = true;
      else {
        const v = buf.toString('latin1', colon + 1, next).trim().toLowerCase();
        (connectionAt ??= []).push(colon + 1, next);
        if (hasToken(v, 'close')) sawClose = true;
        if (hasToken(v, 'keep-alive')) sawKeepAlive = true;
      }
    }
    pos = next + 2;
  }
  const size = pos + 2;
  if (size > maxBytes) return MALFORMED;

  // close wins over keep-alive; HTTP/1.0 keeps a connection only when asked (RFC 9112 §9.3).
  let keepAlive = !sawClose && (minor === 1 || sawKeepAlive);
  let framing: Framing;
  // Which Content-Length line the client gets: the first, or none. Transfer-Encoding lines go
  // with a body whose framing they decide.
  let keepLength = length >= 0;
  let keepTransfer = false;
  if (transferEncoding && (length >= 0 || minor === 0)) {
    // Both framings, or a coding on HTTP/1.0: the connection must not be reused and the length
    // must not be passed on (RFC 9112 §6.1, §6.3).
    keepAlive = false;
    keepLength = false;
  }
  if (noBody || status < 200 || status === 204 || status === 304) {
    framing = 'none';
    // A length on a bodiless response still tells the client the size of the resource; 204 has none.
    if (status === 204 || status < 200) keepLength = false;
  } else if (transferEncoding) {
    framing = chunked ? 'chunked' : 'close';
    if (!chunked) keepAlive = false;
    keepLength = false;
    keepTransfer = true;
  } else if (length >= 0) {
    framing = 'length';
  } else {
    framing = 'close';
    keepAlive = false;
  }
  let out = kept;
  // Only heads with something to drop are copied: most have one Content-Length, kept.
  if (transferEncoding || connectionAt !== null || (length >= 0 && (!keepLength || lengthLines > 1))) {
    const nominated = connectionAt === null ? null : nominatedNames(buf, connectionAt);
    out = [];
    for (let i = 0; i < kept.length; i += 3) {
      const s = kept[i]!;
      const c = kept[i + 1]!;
      const isLength = c - s === 14 && nameIs(buf, s, 'content-length');
      if (isLength && (!keepLength || i !== lengthAt)) continue;
      if (c - s === 17 && !keepTransfer && nameIs(buf, s, 'transfer-encoding')) continue;
      // Framing headers are never dropped by name: the client needs them to find the end.
      if (!isLength && nominated !== null && nominated.has(buf.toString('latin1', s, c).toLowerCase())) continue;
      out.push(s, c, kept[i + 2]!);
    }
  }
  return new ResponseHead(buf, status, reasonStart, lineEnd, out, framing, length, keepAlive, size);
}

/** nominatedNames: header names a Connection header lists (besides close and keep-alive), or null. */
function nominatedNames(buf: Buffer, ranges: number[]): Set<string> | null {
  let names: Set<string> | null = null;
  for (let i = 0; i < ranges.length; i += 2) {
    for (const token of buf.toString('latin1', ranges[i]!, ranges[i + 1]!).split(',')) {
      const t = token.trim().toLowerCase();
      if (t !== '' && t !== 'close' && t !== 'keep-alive') (names ??= new Set()).add(t);
    }
  }
  return names;
}

/** prefixOk: the bytes so far can start `HTTP/1.0 ` or `HTTP/1.1 `. */
function prefixOk(buf: Buffer): boolean {
  const m = Math.min(buf.length, 9);
  for (let i = 0; i < m; i++) {
    const c = buf[i]!;
    if (i === 7 ? c !== 0x30 && c !== 0x31 : c !== STATUS_PREFIX[i]) return false;
  }
  return true;
}

const STATUS_PREFIX = [0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0, 0x20];

function threeDigits(buf: Buffer, at: number): number {
  let n = 0;
  for (let i = at; i < at + 3; i++) {
    const c = buf[i]! - 0x30;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** digits parses a Content-Length value in buf[from, to) (white space around it allowed); -1 when it is not plain digits (at most 15). */
function digits(buf: Buffer, from: number, to: number): number {
  while (from < to && ows(buf[from]!)) from++;
  while (to > from && ows(buf[to - 1]!)) to--;
  if (to === from || to - from > 15) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = buf[i]! - 0x30;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

function ows(c: number): boolean { return c === 0x20 || c === 0x09; }

/** valueIs: buf[from, to), white space around it aside, is `word` (lower case), ignoring ASCII case. */
function valueIs(buf: Buffer, from: number, to: number, word: string): boolean {
  while (from < to && ows(buf[from]!)) from++;
  while (to > from && ows(buf[to - 1]!)) to--;
  return to - from === word.length && nameIs(buf, from, word);
}
function fieldChar(c: number): boolean { return c === 0x09 || (c >= 0x20 && c !== 0x7f); }
/** tchar (RFC 9110 §5.6.2) by byte value. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;
function tchar(c: number): boolean { return TCHAR[c] === 1; }

/** ChunkScanner states. */
const C_SIZE = 0;
const C_SIZEEXT = 1;
const C_SIZELF = 2;
const C_DATA = 3;
const C_DATACR = 4;
const C_DATALF = 5;
const C_TRAILER = 6;
const C_TRAILERLF = 7;
const C_DONE = 8;
const MAX_SIZE_LINE = 4096;
const MAX_TRAILER_BYTES = 16_384;

/**
 * ChunkScanner follows a chunked body (RFC 9112 §7.1) through the bytes it is shown and
 * reports where the body ends; it does not change the bytes, which the proxy relays as they
 * are (trailers included).
 */
export class ChunkScanner {
  private state = C_SIZE;
  private remaining = 0;
  private sizeDigits = 0;
  private lineBytes = 0;
  private trailerBytes = 0;
  private trailerLineEmpty = true;

  /** scan returns the offset just past the body's end, -1 when the body goes on, -2 when malformed. */
  scan(buf: Buffer, from: number): number {
    let i = from;
    const n = buf.length;
    while (i < n) {
      switch (this.state) {
        case C_SIZE: {
          const c = buf[i]!;
          const d = hex(c);
          if (d >= 0) {
            if (++this.sizeDigits > 12) return -2;
            this.remaining = this.remaining * 16 + d;
            i++;
          } else if (this.sizeDigits === 0) {
            return -2;
          } else if (c === 0x0d) {
            this.state = C_SIZELF; i++;
          } else if (c === 0x3b || c === 0x20 || c === 0x09) {
            this.state = C_SIZEEXT; this.lineBytes = 0; i++;
          } else {
            return -2;
          }
          break;
        }
        case C_SIZEEXT: {
          const c = buf[i]!;
          if (c === 0x0d) { this.state = C_SIZELF; i++; break; }
          if ((c < 0x20 && c !== 0x09) || c === 0x7f || ++this.lineBytes > MAX_SIZE_LINE) return -2;
          i++;
          break;
        }
        case C_SIZELF:
          if (buf[i] !== 0x0a) return -2;
          i++;
          this.sizeDigits = 0;
          if (this.remaining === 0) { this.state = C_TRAILER; this.trailerLineEmpty = true; } else this.state = C_DATA;
          break;
        case C_DATA: {
          const take = Math.min(this.remaining, n - i);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = C_DATACR;
          break;
        }
        case C_DATACR:
          if (buf[i] !== 0x0d) return -2;
          i++; this.state = C_DATALF;
          break;
        case C_DATALF:
          if (buf[i] !== 0x0a) return -2;
          i++; this.state = C_SIZE;
          break;
        case C_TRAILER: {
          const c = buf[i]!;
          if (++this.trailerBytes > MAX_TRAILER_BYTES) return -2;
          if (c === 0x0d) { this.state = C_TRAILERLF; i++; break; }
          if ((c < 0x20 && c !== 0x09) || c === 0x7f) return -2;
          this.trailerLineEmpty = false;
          i++;
          break;
        }
        case C_TRAILERLF:
          if (buf[i] !== 0x0a) return -2;
          i++;
          if (this.trailerLineEmpty) { this.state = C_DONE; return i; }
          this.state = C_TRAILER;
          this.trailerLineEmpty = true;
          break;
        case C_DONE:
          return i;
      }
    }
    return -1;
  }
}

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
