/**
 * A strict HTTP/1.1 request-head parser for the proxy's fast path. It accepts only a narrow,
 * unambiguous subset of RFC 9112 — the requests that make up nearly all traffic — and answers
 * `HANDOFF` for everything else: the connection then goes to node:http (llhttp), which parses
 * the same bytes and keeps the full behaviour (chunked and Expect bodies, Upgrade, HTTP/1.0,
 * error statuses). Anything this parser accepts, llhttp accepts with the same meaning; what it
 * is unsure of it never decides.
 *
 * Accepted: a known method, an origin-form target of visible ASCII, `HTTP/1.1`,
 * header lines `token ":" OWS value OWS` with values of visible ASCII, space, tab or obs-text,
 * CRLF line ends, exactly one Host, at most one Content-Length of plain digits, no
 * Transfer-Encoding, Upgrade, Expect or Proxy-Connection, at most MAX_FIELDS header lines.
 */
import { CLIENT_CLAIMS, nominatedHeaders, type HeaderFacts } from './headers.ts';

/**
 * RequestHead is a parsed request head. Routing needs few of its headers and the upstream gets
 * most of them unchanged, so it keeps the head's text: `forwardLines` are the client's own
 * header lines, copied in runs, and `rawHeaders` is split from the text only when asked for
 * (a canary header rule).
 */
export class RequestHead implements HeaderFacts {
  readonly method: string;
  readonly url: string;
  /** The request line as sent, CRLF included: the upstream's when the path it gets is `url`. */
  readonly requestLine: string;
  readonly httpVersionMinor = 1;
  /** -1 without a Content-Length header. */
  contentLength = -1;
  /** The client asked to close the connection after this exchange. */
  close = false;
  /** Bytes of the head, final CRLFCRLF included. */
  size = 0;
  /**
   * forwardLines are the header lines the upstream gets as the client sent them, each with its
   * CRLF: all but the hop-by-hop ones (and those Connection names), the forwarding headers the
   * proxy sets itself, X-Request-Id, a Content-Length of 0 (as the general path drops them) and,
   * from an untrusted client, CLIENT_CLAIMS.
   */
  forwardLines = '';
  host: string | undefined = undefined;
  hosts = 0;
  lengths = 0;
  readonly chunked = false;
  connection: string | null = null;
  readonly upgrade = null;
  requestId: string | null = null;
  forwardedFor: string | null = null;
  forwardedProto: string | null = null;
  forwardedHost: string | null = null;
  forwardedPort: string | null = null;
  realIp: string | null = null;
  cookies: string | null = null;
  /** The header lines, each ending in CRLF. */
  private readonly lines: string;
  private raw: string[] | null = null;

  constructor(method: string, url: string, requestLine: string, lines: string) {
    this.method = method;
    this.url = url;
    this.requestLine = requestLine;
    this.lines = lines;
  }

  /** rawHeaders: names as sent, values trimmed, the shape of node's IncomingMessage.rawHeaders. */
  get rawHeaders(): string[] {
    if (this.raw !== null) return this.raw;
    const t = this.lines;
    const raw: string[] = [];
    for (let pos = 0; pos < t.length;) {
      const next = t.indexOf('\r\n', pos);
      const colon = t.indexOf(':', pos);
      raw.push(t.slice(pos, colon), valueOf(t, colon, next));
      pos = next + 2;
    }
    return (this.raw = raw);
  }
}

export const INCOMPLETE = 0;
export const HANDOFF = 1;
export type RequestHeadResult = RequestHead | typeof INCOMPLETE | typeof HANDOFF;

const MAX_FIELDS = 100;
/** Longest Content-Length accepted (digits): larger bodies go the general way. */
const MAX_LENGTH_DIGITS = 15;
const TERMINATOR = Buffer.from('\r\n\r\n', 'latin1');
/** Reads up to this size are searched for the end of the head as a string. */
const STRING_SEARCH_BYTES = 4_096;

/** The methods llhttp knows that the fast path forwards (CONNECT and the WebDAV family go the general way). */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE']);

/** tchar (RFC 9110 §5.6.2) by code point. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** What a header line is to the parser: forwarded unchanged, or one it reads (and most of those it drops). */
const H_OTHER = 0;
const H_HOST = 1;
const H_LENGTH = 2;
const H_CONNECTION = 3;
const H_COOKIE = 4;
const H_DROP = 5;
const H_REQUEST_ID = 6;
const H_FOR = 7;
const H_PROTO = 8;
const H_FHOST = 9;
const H_FPORT = 10;
const H_REAL_IP = 11;
/** Never on the fast path: Expect, Upgrade, Transfer-Encoding, Proxy-Connection. */
const H_HANDOFF = 12;
/** One of CLIENT_CLAIMS: forwarded only from a trusted client. */
const H_CLAIM = 13;

/** CLAIMS_BY_LENGTH: CLIENT_CLAIMS by name length, so that most other names cost one look-up. */
const CLAIMS_BY_LENGTH: (string[] | null)[] = [];
for (const name of CLIENT_CLAIMS) {
  while (CLAIMS_BY_LENGTH.length <= name.length) CLAIMS_BY_LENGTH.push(null);
  (CLAIMS_BY_LENGTH[name.length] ??= []).push(name);
}

/** nameIs compares t[start, start + name.length) with a lower-case name, ignoring ASCII case. */
function nameIs(t: string, start: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) if ((t.charCodeAt(start + i) | 0x20) !== name.charCodeAt(i)) return false;
  return true;
}

/** headerKind classifies a header name by length first, so most names cost one switch and no string. */
function headerKind(t: string, start: number, length: number): number {
  const kind = fixedKind(t, start, length);
  if (kind !== H_OTHER || length >= CLAIMS_BY_LENGTH.length) return kind;
  const claims = CLAIMS_BY_LENGTH[length];
  if (claims == null) return H_OTHER;
  for (let i = 0; i < claims.length; i++) if (nameIs(t, start, claims[i]!)) return H_CLAIM;
  return H_OTHER;
}

/** fixedKind classifies the names the parser reads or drops whoever sends them. */
function fixedKind(t: string, start: number, length: number): number {
  switch (length) {
    case 2: return nameIs(t, start, 'te') ? H_DROP : H_OTHER;
    case 4: return nameIs(t, start, 'host') ? H_HOST : H_OTHER;
    case 6:
      if (nameIs(t, start, 'cookie')) return H_COOKIE;
      return nameIs(t, start, 'expect') ? H_HANDOFF : H_OTHER;
    case 7:
      if (nameIs(t, start, 'trailer')) return H_DROP;
      return nameIs(t, start, 'upgrade') ? H_HANDOFF : H_OTHER;
    case 9: return nameIs(t, start, 'x-real-ip') ? H_REAL_IP : H_OTHER;
    case 10:
      if (nameIs(t, start, 'connection')) return H_CONNECTION;
      return nameIs(t, start, 'keep-alive') ? H_DROP : H_OTHER;
    case 12: return nameIs(t, start, 'x-request-id') ? H_REQUEST_ID : H_OTHER;
    case 14:
      if (nameIs(t, start, 'content-length')) return H_LENGTH;
      return nameIs(t, start, 'http2-settings') ? H_DROP : H_OTHER;
    case 15: return nameIs(t, start, 'x-forwarded-for') ? H_FOR : H_OTHER;
    case 16:
      if (nameIs(t, start, 'x-forwarded-host')) return H_FHOST;
      if (nameIs(t, start, 'x-forwarded-port')) return H_FPORT;
      // node reads Proxy-Connection as Connection; rare enough to leave to it.
      return nameIs(t, start, 'proxy-connection') ? H_HANDOFF : H_OTHER;
    case 17:
      if (nameIs(t, start, 'x-forwarded-proto')) return H_PROTO;
      return nameIs(t, start, 'transfer-encoding') ? H_HANDOFF : H_OTHER;
    default: return H_OTHER;
  }
}

/**
 * parseRequestHead reads the head at the start of `buf`. INCOMPLETE: more bytes are needed
 * (and fewer than maxBytes arrived); HANDOFF: not for the fast path. `trusted`: the client is
 * one of --trusted-proxies, whose CLIENT_CLAIMS headers are forwarded.
 */
export function parseRequestHead(buf: Buffer, maxBytes: number, trusted: boolean): RequestHeadResult {
  // A read of a head alone (the usual one) is searched as a string, the one conversion it needs
  // anyway; larger reads (an upload's body with its head) are searched as bytes first.
  let text: string;
  let end: number;
  if (buf.length <= STRING_SEARCH_BYTES) {
    text = buf.toString('latin1');
    end = text.indexOf('\r\n\r\n');
  } else {
    end = buf.indexOf(TERMINATOR);
    text = end < 0 ? '' : buf.toString('latin1', 0, end + 4);
  }
  if (end < 0) return buf.length >= maxBytes || bareLf(buf) ? HANDOFF : INCOMPLETE;
  if (end + 4 > maxBytes) return HANDOFF;
  /** The end of the header lines, their last CRLF included. */
  const limit = end + 2;

  const lineEnd = text.indexOf('\r\n');
  const sp1 = text.indexOf(' ');
  const sp2 = text.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || sp2 > lineEnd) return HANDOFF;
  const method = text.slice(0, sp1);
  if (!METHODS.has(method)) return HANDOFF;
  if (lineEnd - sp2 !== 9 || !text.startsWith('HTTP/1.1', sp2 + 1)) return HANDOFF;
  if (sp2 === sp1 + 1) return HANDOFF;
  // Origin form only: llhttp checks an absolute form's authority more strictly than this
  // parser would, and the asterisk form belongs to OPTIONS.
  if (text.charCodeAt(sp1 + 1) !== 0x2f) return HANDOFF;
  for (let i = sp1 + 1; i < sp2; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return HANDOFF;
  }
  const headersStart = lineEnd + 2;
  const lines = headersStart < limit ? text.slice(headersStart, limit) : '';
  const head = new RequestHead(method, text.slice(sp1 + 1, sp2), text.slice(0, headersStart), lines);

  let fields = 0;
  let forward = '';
  /** Start of the run of forwarded lines not yet added to `forward`. */
  let run = headersStart;
  let nominates = false;
  let pos = headersStart;
  while (pos < limit) {
    if (fields >= MAX_FIELDS) return HANDOFF;
    // One pass over the line: the name up to the colon, then the value up to the CR.
    let colon = pos;
    for (let c = text.charCodeAt(colon); c !== 0x3a; c = text.charCodeAt(++colon)) {
      // Not a tchar: white space before the colon or at the start of the line (obs-fold), a
      // separator, or the end of the line before any colon.
      if (c > 0x7f || TCHAR[c] !== 1) return HANDOFF;
    }
    if (colon === pos) return HANDOFF;
    let next = colon + 1;
    for (let c = text.charCodeAt(next); c !== 0x0d; c = text.charCodeAt(++next)) {
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) return HANDOFF;
    }
    // A bare CR.
    if (text.charCodeAt(next + 1) !== 0x0a) return HANDOFF;
    let drop = true;
    switch (headerKind(text, pos, colon - pos)) {
      case H_OTHER: drop = false; break;
      case H_HOST:
        if (++head.hosts > 1) return HANDOFF;
        head.host = valueOf(text, colon, next);
        drop = false;
        break;
      case H_LENGTH: {
        const v = valueOf(text, colon, next);
        if (head.lengths++ > 0 || v.length === 0 || v.length > MAX_LENGTH_DIGITS) return HANDOFF;
        let n = 0;
        for (let i = 0; i < v.length; i++) {
          const c = v.charCodeAt(i) - 0x30;
          if (c < 0 || c > 9) return HANDOFF;
          n = n * 10 + c;
        }
        head.contentLength = n;
        drop = n === 0;
        break;
      }
      case H_CONNECTION: {
        const value = valueOf(text, colon, next);
        const v = value.toLowerCase();
        if (v.includes('upgrade')) return HANDOFF;
        if (v === 'close' || hasToken(v, 'close')) head.close = true;
        if (v !== 'close' && v !== 'keep-alive') nominates = true;
        head.connection = head.connection === null ? value : head.connection + ', ' + value;
        break;
      }
      case H_COOKIE: {
        const v = valueOf(text, colon, next);
        head.cookies = head.cookies === null ? v : head.cookies + '; ' + v;
        drop = false;
        break;
      }
      case H_DROP: break;
      case H_REQUEST_ID: head.requestId = valueOf(text, colon, next); break;
      case H_FOR: {
        const v = valueOf(text, colon, next);
        head.forwardedFor = head.forwardedFor === null ? v : head.forwardedFor + ', ' + v;
        break;
      }
      case H_PROTO: head.forwardedProto = valueOf(text, colon, next); break;
      case H_FHOST: head.forwardedHost = valueOf(text, colon, next); break;
      case H_FPORT: head.forwardedPort = valueOf(text, colon, next); break;
      case H_REAL_IP: head.realIp = valueOf(text, colon, next); break;
      case H_CLAIM: drop = !trusted; break;
      default: return HANDOFF;
    }
    fields++;
    if (drop) {
      if (run < pos) forward += text.slice(run, pos);
      run = next + 2;
    }
    pos = next + 2;
  }
  if (head.hosts !== 1) return HANDOFF;
  if (run < limit) forward += run === headersStart ? lines : text.slice(run, limit);
  head.forwardLines = nominates ? withoutNominated(forward, head.connection!) : forward;
  head.size = end + 4;
  return head;
}

/** valueOf is the value of the header line whose colon is at `colon` and whose CR is at `next`, without OWS around it. */
function valueOf(t: string, colon: number, next: number): string {
  let vs = colon + 1;
  let ve = next;
  while (vs < ve && isOws(t.charCodeAt(vs))) vs++;
  while (ve > vs && isOws(t.charCodeAt(ve - 1))) ve--;
  return t.slice(vs, ve);
}

/**
 * withoutNominated drops the lines whose names a Connection header lists (RFC 9110 §7.6.1),
 * except Host and Content-Length: the upstream needs those to route the request and to find
 * where its body ends.
 */
function withoutNominated(lines: string, connection: string): string {
  const nominated = nominatedHeaders(connection);
  if (nominated === null) return lines;
  let out = '';
  for (let pos = 0; pos < lines.length;) {
    const next = lines.indexOf('\r\n', pos) + 2;
    const name = lines.slice(pos, lines.indexOf(':', pos)).toLowerCase();
    if (!nominated.has(name) || name === 'host' || name === 'content-length') out += lines.slice(pos, next);
    pos = next;
  }
  return out;
}

/** bareLf: a line ends without CR, so the head would never end for this parser. */
function bareLf(buf: Buffer): boolean {
  for (let at = buf.indexOf(0x0a); at >= 0; at = buf.indexOf(0x0a, at + 1)) {
    if (at === 0 || buf[at - 1] !== 0x0d) return true;
  }
  return false;
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** hasToken reports whether a lower-case comma-separated list holds `token`. */
export function hasToken(list: string, token: string): boolean {
  let from = 0;
  for (;;) {
    const at = list.indexOf(token, from);
    if (at < 0) return false;
    let b = at - 1;
    while (b >= 0 && isOws(list.charCodeAt(b))) b--;
    let a = at + token.length;
    while (a < list.length && isOws(list.charCodeAt(a))) a++;
    if ((b < 0 || list.charCodeAt(b) === 0x2c) && (a >= list.length || list.charCodeAt(a) === 0x2c)) return true;
    from = at + token.length;
  }
}
