/**
 * What a connection may carry before HTTP or TLS proper: a PROXY protocol header (v1 text
 * or v2 binary, from a cloud load balancer) and, on the HTTPS listener, the ClientHello
 * whose SNI name decides between terminating TLS and passing it through. Both are read
 * with bounded size and time, and what was read past them is put back on the socket.
 */
import { isIPv4, isIPv6, type Socket } from 'node:net';
import { setReadSink } from './shared-reads.ts';

export interface ProxiedAddress {
  sourceAddress: string;
  sourcePort: number;
  destinationPort: number;
}

/** Result of a parser: bytes consumed (the header length), NEED_MORE or INVALID. */
export const NEED_MORE = -1;
export const INVALID = -2;

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_MAX = 107;

export interface ProxyHeader { length: number; address: ProxiedAddress | null }

/** ipv6 formats 16 bytes in the RFC 5952 form Node uses for remoteAddress (an IPv4-mapped one as IPv4, as plainAddress would). */
function ipv6(buf: Buffer, at: number): string {
  if (buf.readUInt32BE(at) === 0 && buf.readUInt32BE(at + 4) === 0 && buf.readUInt32BE(at + 8) === 0xffff) {
    return `${buf[at + 12]}.${buf[at + 13]}.${buf[at + 14]}.${buf[at + 15]}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(at + i));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** v1Port parses a v1 port: decimal, 0 to 65535, without a sign or leading zero; -1 for anything else. */
function v1Port(s: string): number {
  if (s.length === 0 || s.length > 5 || (s.length > 1 && s.charCodeAt(0) === 0x30)) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n <= 65535 ? n : -1;
}

/**
 * parseProxyHeader reads a PROXY v1 or v2 header; address null means "use the socket's" (LOCAL,
 * UNKNOWN, AF_UNSPEC). The source address becomes the client's, in X-Forwarded-For and X-Real-IP,
 * so v1's text is held to the spec's grammar: dotted-quad TCP4 or zone-less TCP6 addresses
 * (node:net's isIP), plain decimal ports, single spaces, CRLF; v2 to TCP over IPv4 or IPv6.
 */
export function parseProxyHeader(buf: Buffer): ProxyHeader | typeof NEED_MORE | typeof INVALID {
  if (buf.length === 0) return NEED_MORE;
  if (buf[0] === 0x0d) {
    const n = Math.min(buf.length, 12);
    if (buf.subarray(0, n).compare(V2_SIGNATURE, 0, n) !== 0) return INVALID;
    if (buf.length < 16) return NEED_MORE;
    const verCmd = buf[12]!;
    if (verCmd >> 4 !== 2) return INVALID;
    const length = 16 + buf.readUInt16BE(14);
    if (buf.length < length) return NEED_MORE;
    const command = verCmd & 0x0f;
    if (command === 0) return { length, address: null };
    if (command !== 1) return INVALID;
    // Family and transport: TCP over IPv4 (0x11) or IPv6 (0x21), or UNSPEC (0x00); UDP and UNIX sockets are not HTTP clients.
    const family = buf[13]!;
    if (family === 0x11 && length >= 16 + 12) {
      return { length, address: { sourceAddress: `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`, sourcePort: buf.readUInt16BE(24), destinationPort: buf.readUInt16BE(26) } };
    }
    if (family === 0x21 && length >= 16 + 36) {
      return { length, address: { sourceAddress: ipv6(buf, 16), sourcePort: buf.readUInt16BE(48), destinationPort: buf.readUInt16BE(50) } };
    }
    return family === 0 ? { length, address: null } : INVALID;
  }
  const prefix = 'PROXY ';
  for (let i = 0; i < Math.min(buf.length, prefix.length); i++) if (buf[i] !== prefix.charCodeAt(i)) return INVALID;
  const end = buf.indexOf('\r\n');
  if (end < 0) return buf.length >= V1_MAX ? INVALID : NEED_MORE;
  if (end + 2 > V1_MAX) return INVALID;
  const parts = buf.toString('latin1', 0, end).split(' ');
  // The spec has receivers ignore whatever follows UNKNOWN: none of it is used.
  if (parts[1] === 'UNKNOWN') return { length: end + 2, address: null };
  if (parts.length !== 6) return INVALID;
  const isIP = parts[1] === 'TCP4' ? isIPv4 : parts[1] === 'TCP6' ? isIPv6 : null;
  const source = parts[2]!;
  const destination = parts[3]!;
  if (isIP === null || !isIP(source) || !isIP(destination) || source.includes('%') || destination.includes('%')) return INVALID;
  const sourcePort = v1Port(parts[4]!);
  const destinationPort = v1Port(parts[5]!);
  if (sourcePort < 0 || destinationPort < 0) return INVALID;
  return { length: end + 2, address: { sourceAddress: source, sourcePort, destinationPort } };
}

export interface ClientHello { length: number; servername: string }

/**
 * parseClientHello finds the SNI name in a TLS ClientHello. It does not consume anything:
 * `length` is 0, as the whole hello goes on to the TLS server or the pass-through backend.
 * A first byte other than a handshake record means "not TLS": servername ''.
 */
export function parseClientHello(buf: Buffer): ClientHello | typeof NEED_MORE | typeof INVALID {
  if (buf.length === 0) return NEED_MORE;
  if (buf[0] !== 0x16) return { length: 0, servername: '' };
  if (buf.length < 5) return NEED_MORE;
  const recordEnd = 5 + buf.readUInt16BE(3);
  if (recordEnd > 5 + 16384 + 2048) return INVALID;
  if (buf.length < recordEnd) return NEED_MORE;
  if (buf[5] !== 0x01) return { length: 0, servername: '' };
  let p = 5 + 4 + 2 + 32;
  if (p >= recordEnd) return { length: 0, servername: '' };
  p += 1 + buf[p]!;
  if (p + 2 > recordEnd) return { length: 0, servername: '' };
  p += 2 + buf.readUInt16BE(p);
  if (p + 1 > recordEnd) return { length: 0, servername: '' };
  p += 1 + buf[p]!;
  if (p + 2 > recordEnd) return { length: 0, servername: '' };
  const extEnd = Math.min(recordEnd, p + 2 + buf.readUInt16BE(p));
  p += 2;
  while (p + 4 <= extEnd) {
    const type = buf.readUInt16BE(p);
    const len = buf.readUInt16BE(p + 2);
    p += 4;
    if (type === 0 && p + 5 <= extEnd && buf[p + 2] === 0) {
      const nameLen = buf.readUInt16BE(p + 3);
      if (p + 5 + nameLen > extEnd) return INVALID;
      return { length: 0, servername: buf.toString('latin1', p + 5, p + 5 + nameLen) };
    }
    p += len;
  }
  return { length: 0, servername: '' };
}

type Parse<T> = (buf: Buffer) => T | typeof NEED_MORE | typeof INVALID;

/**
 * collectPreamble gathers bytes that `listen` feeds it (feed's result: more wanted) until
 * `parse` succeeds, and resolves with the preamble and the bytes past it. It rejects on invalid
 * input, on more than `maxBytes`, on EOF and after `timeoutMs`.
 */
function collectPreamble<T extends { length: number }>(
  socket: Socket, timeoutMs: number, maxBytes: number, parse: Parse<T>, listen: (feed: (bytes: Buffer) => boolean) => () => void,
): Promise<{ preamble: T; rest: Buffer | null }> {
  return new Promise((resolve, reject) => {
    let buf: Buffer | null = null;
    let done = false;
    let stop = (): void => {};
    const finish = (err: Error | null, value?: { preamble: T; rest: Buffer | null }) => {
      done = true;
      clearTimeout(timer);
      stop();
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      if (err) reject(err); else resolve(value!);
    };
    const onEnd = () => finish(new Error('connection closed before its preamble was complete'));
    const timer = setTimeout(() => finish(new Error('timed out reading the connection preamble')), timeoutMs);
    socket.on('end', onEnd);
    socket.on('error', onEnd);
    stop = listen((bytes) => {
      if (done) return false;
      buf = buf === null ? bytes : Buffer.concat([buf, bytes]);
      const r = parse(buf);
      if (r === INVALID) finish(new Error('invalid connection preamble'));
      else if (r === NEED_MORE) { if (buf.length > maxBytes) finish(new Error('connection preamble too large')); }
      else finish(null, { preamble: r, rest: r.length < buf.length ? buf.subarray(r.length) : null });
      return !done;
    });
  });
}

/**
 * readPreamble reads from a fresh socket until `parse` succeeds, then puts back every byte
 * past the consumed length. It rejects on invalid input, on more than `maxBytes`, on EOF
 * and after `timeoutMs`.
 */
export async function readPreamble<T extends { length: number }>(socket: Socket, timeoutMs: number, maxBytes: number, parse: Parse<T>): Promise<T> {
  const { preamble, rest } = await collectPreamble(socket, timeoutMs, maxBytes, parse, (feed) => {
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) if (!feed(chunk)) break;
    };
    socket.on('readable', onReadable);
    return () => socket.off('readable', onReadable);
  });
  if (rest !== null) socket.unshift(rest);
  return preamble;
}

/**
 * readSharedPreamble is readPreamble for a shared-read socket (listen/shared-reads.ts): it is the
 * socket's read sink until `parse` succeeds, copying what it reads, and hands the bytes past the
 * preamble to the caller, which must take over the socket's reads when the promise resolves.
 */
export function readSharedPreamble<T extends { length: number }>(
  socket: Socket, timeoutMs: number, maxBytes: number, parse: Parse<T>,
): Promise<{ preamble: T; rest: Buffer | null }> {
  return collectPreamble(socket, timeoutMs, maxBytes, parse, (feed) => {
    let stopped = false;
    setReadSink(socket, {
      onRead(bytes: Buffer): boolean {
        // The next owner takes the reads in the same turn as the resolution; a byte here is a bug.
        if (stopped) { socket.destroy(new Error('bytes after the preamble with no reader')); return false; }
        feed(Buffer.from(bytes));
        return true;
      },
    });
    return () => { stopped = true; };
  });
}
