/**
 * Upstream responses for the fast path: a strict parser of the response head that also
 * prepares the head the client gets (hop-by-hop headers and those named in Connection
 * removed), and a scanner of chunked bodies that finds where a body ends while its bytes are
 * relayed unchanged. Upstream bytes are untrusted: anything malformed is an error (502),
 * never guessed at.
 */

export const INCOMPLETE = 0;
export const MALFORMED = 1;

/** How the response body is delimited (RFC 9112 §6.3). */
export type Framing = 'none' | 'length' | 'chunked' | 'close';

export interface ResponseHead {
  status: number;
  /** Reason phrase as sent (may be empty). */
  reason: string;
  /** Headers for the client, flat `[name, value, …]`, framing headers excluded. */
  headers: string[];
  framing: Framing;
  /** Body length when framing is 'length'. */
  length: number;
  /** The upstream connection may carry another request afterwards. */
  reusable: boolean;
  /** Bytes of the head, final CRLFCRLF included. */
  size: number;
}

export type ResponseHeadResult = ResponseHead | typeof INCOMPLETE | typeof MALFORMED;

const TERMINATOR = Buffer.from('\r\n\r\n', 'latin1');
const MAX_FIELDS = 200;

/** What framingHeader finds: a header kept as it is, dropped (hop-by-hop), or read for framing. */
const H_OTHER = 0;
const H_DROP = 1;
const H_LENGTH = 2;
const H_TRANSFER = 3;
const H_CONNECTION = 4;

/** framingHeader classifies a response header name; lengths first, so most names cost no toLowerCase. */
function framingHeader(name: string): number {
  switch (name.length) {
    case 2: return name.toLowerCase() === 'te' ? H_DROP : H_OTHER;
    case 7: { const l = name.toLowerCase(); return l === 'trailer' || l === 'upgrade' ? H_DROP : H_OTHER; }
    case 10: {
      const l = name.toLowerCase();
      return l === 'connection' ? H_CONNECTION : l === 'keep-alive' ? H_DROP : H_OTHER;
    }
    case 14: {
      const l = name.toLowerCase();
      return l === 'content-length' ? H_LENGTH : l === 'http2-settings' ? H_DROP : H_OTHER;
    }
    case 16: return name.toLowerCase() === 'proxy-connection' ? H_DROP : H_OTHER;
    case 17: return name.toLowerCase() === 'transfer-encoding' ? H_TRANSFER : H_OTHER;
    default: return H_OTHER;
  }
}

/**
 * parseResponseHead reads the head at the start of `buf`. `noBody` is true for responses to
 * HEAD. Malformed heads, and heads over maxBytes, are MALFORMED.
 */
export function parseResponseHead(buf: Buffer, maxBytes: number, noBody: boolean): ResponseHeadResult {
  const end = buf.indexOf(TERMINATOR);
  if (end < 0) return buf.length >= maxBytes ? MALFORMED : INCOMPLETE;
  if (end + 4 > maxBytes) return MALFORMED;
  const text = buf.toString('latin1', 0, end);
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd < 0) lineEnd = text.length;
  // HTTP/1.x SP 3DIGIT SP reason
  if (lineEnd < 12 || !text.startsWith('HTTP/1.') || text.charCodeAt(8) !== 0x20) return MALFORMED;
  const minor = text.charCodeAt(7) - 0x30;
  if (minor !== 0 && minor !== 1) return MALFORMED;
  const status = threeDigits(text, 9);
  if (status < 100) return MALFORMED;
  const after = text.charCodeAt(12);
  if (lineEnd > 12 && after !== 0x20) return MALFORMED;
  const reason = lineEnd > 13 ? text.slice(13, lineEnd) : '';
  for (let i = 0; i < reason.length; i++) if (!fieldChar(reason.charCodeAt(i))) return MALFORMED;

  const headers: string[] = [];
  let fields = 0;
  let length = -1;
  let lengthText = '';
  let chunked = false;
  let transferEncoding = false;
  let keepAlive = minor === 1;
  let connection: string | null = null;
  let pos = lineEnd + 2;
  while (pos < text.length) {
    if (++fields > MAX_FIELDS) return MALFORMED;
    let next = text.indexOf('\r\n', pos);
    if (next < 0) next = text.length;
    const colon = text.indexOf(':', pos);
    if (colon <= pos || colon > next) return MALFORMED;
    for (let i = pos; i < colon; i++) if (!tchar(text.charCodeAt(i))) return MALFORMED;
    let vs = colon + 1;
    let ve = next;
    while (vs < ve && ows(text.charCodeAt(vs))) vs++;
    while (ve > vs && ows(text.charCodeAt(ve - 1))) ve--;
    for (let i = vs; i < ve; i++) if (!fieldChar(text.charCodeAt(i))) return MALFORMED;
    const name = text.slice(pos, colon);
    const value = text.slice(vs, ve);
    pos = next + 2;
    const kind = framingHeader(name);
    if (kind === H_OTHER) { headers.push(name, value); continue; }
    if (kind === H_LENGTH) {
      const n = digits(value);
      if (n < 0 || (length >= 0 && n !== length)) return MALFORMED;
      length = n;
      lengthText = value;
    } else if (kind === H_TRANSFER) {
      transferEncoding = true;
      const v = value.toLowerCase();
      const last = v.lastIndexOf(',');
      chunked = (last < 0 ? v : v.slice(last + 1)).trim() === 'chunked';
    } else if (kind === H_CONNECTION) {
      connection = connection === null ? value : `${connection}, ${value}`;
      const v = value.toLowerCase();
      if (hasToken(v, 'close')) keepAlive = false;
      else if (minor === 0 && hasToken(v, 'keep-alive')) keepAlive = true;
    }
  }
  if (connection !== null) dropNominated(headers, connection);

  let framing: Framing;
  if (noBody || status < 200 || status === 204 || status === 304) {
    framing = 'none';
    // A length on a bodiless response still tells the client the size of the resource.
    if (length >= 0 && status !== 204 && status >= 200) headers.push('content-length', lengthText);
  } else if (transferEncoding) {
    // With both, Transfer-Encoding wins and the connection must not be reused (RFC 9112 §6.3).
    framing = chunked ? 'chunked' : 'close';
    if (length >= 0 || !chunked) keepAlive = false;
  } else if (length >= 0) {
    framing = 'length';
    headers.push('content-length', lengthText);
  } else {
    framing = 'close';
    keepAlive = false;
  }
  return { status, reason, headers, framing, length, reusable: keepAlive, size: end + 4 };
}

function dropNominated(headers: string[], connection: string): void {
  const names = new Set<string>();
  for (const token of connection.split(',')) {
    const t = token.trim().toLowerCase();
    if (t !== '' && t !== 'close' && t !== 'keep-alive') names.add(t);
  }
  if (names.size === 0) return;
  let w = 0;
  for (let r = 0; r < headers.length; r += 2) {
    if (names.has(headers[r]!.toLowerCase())) continue;
    headers[w++] = headers[r]!;
    headers[w++] = headers[r + 1]!;
  }
  headers.length = w;
}

function threeDigits(s: string, at: number): number {
  let n = 0;
  for (let i = at; i < at + 3; i++) {
    const c = s.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** digits parses a Content-Length value; -1 when it is not plain digits (at most 15). */
function digits(v: string): number {
  if (v.length === 0 || v.length > 15) return -1;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
  }
  return Number(v);
}

function ows(c: number): boolean { return c === 0x20 || c === 0x09; }
function fieldChar(c: number): boolean { return c === 0x09 || (c >= 0x20 && c !== 0x7f); }
/** tchar (RFC 9110 §5.6.2) by code point. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;
function tchar(c: number): boolean { return c < 128 && TCHAR[c] === 1; }

function hasToken(list: string, token: string): boolean {
  for (const t of list.split(',')) if (t.trim() === token) return true;
  return false;
}

/** serializeHead writes the client's response head. */
export function serializeHead(status: number, reason: string, headers: readonly string[]): string {
  let s = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (let i = 0; i < headers.length; i += 2) s += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${s}\r\n`;
}

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
