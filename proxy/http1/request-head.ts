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

export interface RequestHead {
  method: string;
  url: string;
  httpVersionMinor: number;
  /** Names as sent, values trimmed: the shape of node's IncomingMessage.rawHeaders. */
  rawHeaders: string[];
  /** -1 without a Content-Length header. */
  contentLength: number;
  /** The client asked to close the connection after this exchange. */
  close: boolean;
  /** Bytes of the head, final CRLFCRLF included. */
  size: number;
}

export const INCOMPLETE = 0;
export const HANDOFF = 1;
export type RequestHeadResult = RequestHead | typeof INCOMPLETE | typeof HANDOFF;

const MAX_FIELDS = 100;
/** Longest Content-Length accepted (digits): larger bodies go the general way. */
const MAX_LENGTH_DIGITS = 15;
const TERMINATOR = Buffer.from('\r\n\r\n', 'latin1');

/** The methods llhttp knows that the fast path forwards (CONNECT and the WebDAV family go the general way). */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE']);

/** tchar (RFC 9110 §5.6.2) by code point. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/**
 * parseRequestHead reads the head at the start of `buf`. INCOMPLETE: more bytes are needed
 * (and fewer than maxBytes arrived); HANDOFF: not for the fast path.
 */
export function parseRequestHead(buf: Buffer, maxBytes: number): RequestHeadResult {
  const end = buf.indexOf(TERMINATOR);
  if (end < 0) return buf.length >= maxBytes || bareLf(buf) ? HANDOFF : INCOMPLETE;
  if (end + 4 > maxBytes) return HANDOFF;
  const text = buf.toString('latin1', 0, end);

  const lineEnd = text.indexOf('\r\n');
  const requestLine = lineEnd < 0 ? text : text.slice(0, lineEnd);
  const sp1 = requestLine.indexOf(' ');
  const sp2 = requestLine.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0) return HANDOFF;
  const method = requestLine.slice(0, sp1);
  if (!METHODS.has(method)) return HANDOFF;
  if (requestLine.length - sp2 !== 9 || !requestLine.endsWith('HTTP/1.1')) return HANDOFF;
  const url = requestLine.slice(sp1 + 1, sp2);
  if (url.length === 0) return HANDOFF;
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return HANDOFF;
  }
  // Origin form only: llhttp checks an absolute form's authority more strictly than this
  // parser would, and the asterisk form belongs to OPTIONS.
  if (url.charCodeAt(0) !== 0x2f) return HANDOFF;

  const rawHeaders: string[] = [];
  let contentLength = -1;
  let hosts = 0;
  let close = false;
  let pos = lineEnd < 0 ? text.length : lineEnd + 2;
  while (pos < text.length) {
    if (rawHeaders.length >= MAX_FIELDS * 2) return HANDOFF;
    let next = text.indexOf('\r\n', pos);
    if (next < 0) next = text.length;
    let colon = -1;
    for (let i = pos; i < next; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x3a) { colon = i; break; }
      if (c > 0x7f || TCHAR[c] !== 1) return HANDOFF;
    }
    // No name (and so also obs-fold, a line that starts with white space).
    if (colon <= pos) return HANDOFF;
    let vs = colon + 1;
    let ve = next;
    while (vs < ve && isOws(text.charCodeAt(vs))) vs++;
    while (ve > vs && isOws(text.charCodeAt(ve - 1))) ve--;
    for (let i = vs; i < ve; i++) {
      const c = text.charCodeAt(i);
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) return HANDOFF;
    }
    const name = text.slice(pos, colon);
    const value = text.slice(vs, ve);
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'host') hosts++;
        break;
      case 6:
        if (name.toLowerCase() === 'expect') return HANDOFF;
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') return HANDOFF;
        break;
      case 10:
        if (name.toLowerCase() === 'connection') {
          const v = value.toLowerCase();
          if (v.includes('upgrade')) return HANDOFF;
          if (v === 'close' || hasToken(v, 'close')) close = true;
        }
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (contentLength >= 0 || value.length === 0 || value.length > MAX_LENGTH_DIGITS) return HANDOFF;
          for (let i = 0; i < value.length; i++) {
            const c = value.charCodeAt(i);
            if (c < 0x30 || c > 0x39) return HANDOFF;
          }
          contentLength = Number(value);
        }
        break;
      case 16:
        // node reads Proxy-Connection as Connection; rare enough to leave to it.
        if (name.toLowerCase() === 'proxy-connection') return HANDOFF;
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') return HANDOFF;
        break;
    }
    rawHeaders.push(name, value);
    pos = next + 2;
  }
  if (hosts !== 1) return HANDOFF;
  return { method, url, httpVersionMinor: 1, rawHeaders, contentLength, close, size: end + 4 };
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
