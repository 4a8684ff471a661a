/**
 * The authority a request names: its Host header, or the authority of an absolute-form target,
 * which takes Host's place (RFC 9112 §3.2.2). Both are checked against RFC 3986's `host [":"
 * port]` before routing sees them, because the host reaches the upstream (Host,
 * X-Forwarded-Host) and the HTTPS redirect's Location: a `\`, a space or a `<` there would make
 * either say something other than what routing decided.
 *
 * Stricter than RFC 3986 in two ways, both as nginx is: a reg-name may not hold a percent escape
 * (no DNS name or Ingress host has one, IDNs travel as A-labels, and clients disagree on
 * decoding one in a Location: browsers decode it, Go's URL parser refuses it), nor `..` (an
 * upstream that maps hosts to directories must never see one). IPv6 literals are checked by
 * node:net and may not carry a zone; IPvFuture literals are refused.
 */
import { isIPv6 } from 'node:net';

/** REG_NAME: unreserved and sub-delims (RFC 3986 §3.2.2), by code point; the percent escape is left out. */
const REG_NAME = new Uint8Array(128);
for (const c of "-._~!$&'()*+,;=") REG_NAME[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) REG_NAME[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) REG_NAME[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) REG_NAME[c] = 1;

/** validPort: `*DIGIT` from `from` to the end (RFC 3986 §3.2.3). */
function validPort(v: string, from: number): boolean {
  for (let i = from; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** validHost: `v` is a non-empty `host [":" port]` (a Host value or an authority without userinfo). */
export function validHost(v: string): boolean {
  if (v.length === 0) return false;
  if (v.charCodeAt(0) === 0x5b /* [ */) {
    const end = v.indexOf(']');
    if (end < 0 || !isIPv6(v.slice(1, end)) || v.includes('%')) return false;
    return end + 1 === v.length || (v.charCodeAt(end + 1) === 0x3a && validPort(v, end + 2));
  }
  let prev = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 0x3a /* : */) return i > 0 && validPort(v, i + 1);
    if (c > 0x7f || REG_NAME[c] !== 1 || (c === 0x2e && prev === 0x2e)) return false;
    prev = c;
  }
  return true;
}

/** AbsoluteTarget is an absolute-form request target split into the authority and the origin-form rest. */
export interface AbsoluteTarget { authority: string; originForm: string }

/**
 * absoluteTarget splits an `http://` or `https://` absolute-form target; null for any other form
 * (origin-form included) or scheme. The authority is returned unchecked (validHost), except that
 * userinfo makes the target invalid (RFC 9110 §4.2.4): '' as the authority.
 */
export function absoluteTarget(url: string): AbsoluteTarget | null {
  if (url.charCodeAt(0) === 0x2f /* / */) return null;
  const colon = url.indexOf('://');
  if (colon < 0) return null;
  const scheme = url.slice(0, colon).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return null;
  const start = colon + 3;
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 0x2f || c === 0x3f /* ? */) break;
    end++;
  }
  const authority = url.slice(start, end);
  const rest = url.slice(end);
  return { authority: authority.includes('@') ? '' : authority, originForm: rest.charCodeAt(0) === 0x2f ? rest : '/' + rest };
}
