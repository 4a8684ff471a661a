/**
 * Request path and host normalisation: the security boundary between what a client sends
 * and what routing decides on. The path the matcher sees is the path the upstream receives.
 *
 * Path rules (documented in docs/routing.md):
 * - Percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded, as RFC 3986 §6.2.2.2
 *   allows, so `%2e%2e` is a dot segment; every other escape keeps its bytes with upper-case hex,
 *   so `%2F` and `%5C` are never separators. A malformed escape makes the request invalid.
 * - Runs of `/` are merged when mergeSlashes is on (the default, like nginx's merge_slashes).
 * - Dot segments are removed per RFC 3986 §5.2.4; `..` never climbs above the root.
 */

const UNRESERVED = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9\-._~]/.test(ch)) UNRESERVED[c] = 1;
}

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 65 && code <= 70) return code - 55;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/** needsNormalising is the allocation-free fast check: most real paths are already normal. */
function needsNormalising(path: string, mergeSlashes: boolean): boolean {
  let prev = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 37 /* % */) return true;
    if (c === 47 /* / */ && prev === 47 && mergeSlashes) return true;
    if (c === 46 /* . */ && prev === 47) return true;
    prev = c;
  }
  return false;
}

/**
 * normalizePath returns the normalised form of a request path (no query), or null when the
 * path is not origin-form or has a malformed percent escape.
 */
export function normalizePath(path: string, mergeSlashes = true): string | null {
  if (path.charCodeAt(0) !== 47) return null;
  if (!needsNormalising(path, mergeSlashes)) return path;
  let decoded = '';
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c !== 37) { decoded += path[i]; continue; }
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return null;
    const byte = hi * 16 + lo;
    if (byte < 128 && UNRESERVED[byte] === 1) decoded += String.fromCharCode(byte);
    else decoded += '%' + path[i + 1]!.toUpperCase() + path[i + 2]!.toUpperCase();
    i += 2;
  }
  const segments = decoded.split('/');
  const out: string[] = [];
  // segments[0] is the empty string before the leading slash.
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '.') { if (last) out.push(''); continue; }
    if (seg === '..') { out.pop(); if (last) out.push(''); continue; }
    if (seg === '' && mergeSlashes && !last) continue;
    out.push(seg);
  }
  return '/' + out.join('/');
}

/** splitTarget splits an origin-form request target at the first `?`. */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q < 0 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q) };
}

/**
 * normalizeHost turns a Host header (or SNI name) into the form routing compares: lower case,
 * no port, no trailing dot. IPv6 literals keep their brackets.
 */
export function normalizeHost(host: string | undefined): string {
  if (!host) return '';
  let h = host;
  if (h.charCodeAt(0) === 91 /* [ */) {
    const end = h.indexOf(']');
    h = end < 0 ? h : h.slice(0, end + 1);
  } else {
    const colon = h.indexOf(':');
    if (colon >= 0) h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h.toLowerCase();
}

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const IPV4ISH = /^[0-9.]+$/;

/** hostProblem explains why an Ingress rule host is invalid, or returns null when it is valid. */
export function hostProblem(host: string): string | null {
  if (host === '*') return 'a bare "*" is not a valid host; use a wildcard such as "*.example.com" or leave host out';
  if (host.includes(':')) return `host "${host}" must not contain a port or an IPv6 address`;
  if (IPV4ISH.test(host)) return `host "${host}" must be a DNS name, not an IP address`;
  const name = host.startsWith('*.') ? host.slice(2) : host;
  if (name.includes('*')) return `host "${host}": a wildcard is only allowed as the whole first label ("*.example.com")`;
  if (host.length > 253) return `host "${host}" is longer than 253 characters`;
  for (const label of name.split('.')) {
    if (label.length === 0 || label.length > 63 || !LABEL.test(label)) {
      return `host "${host}" is not a valid lower-case DNS name (RFC 1123)`;
    }
  }
  return null;
}

/** prefixKey is a Prefix rule path reduced to what element-wise comparison uses: no trailing slash, `/` → ''. */
export function prefixKey(path: string): string {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 47) end--;
  return path.slice(0, end);
}
