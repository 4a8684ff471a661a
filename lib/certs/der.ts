/**
 * The few DER (ITU-T X.690) encodings an X.509 certificate needs. Node can generate keys and
 * sign, but not build certificates; this is the smallest encoder that does, so Vane needs no
 * third-party certificate library for its CA.
 */

function lengthBytes(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** tlv encodes one element: tag, definite length, contents. */
export function tlv(tag: number, contents: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), lengthBytes(contents.length), contents]);
}

export function sequence(...items: Buffer[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

export function set(...items: Buffer[]): Buffer {
  return tlv(0x31, Buffer.concat(items));
}

/** contextExplicit wraps an element in `[n] EXPLICIT`. */
export function contextExplicit(n: number, inner: Buffer): Buffer {
  return tlv(0xa0 | n, inner);
}

/** integer encodes a non-negative big-endian magnitude in minimal two's complement form. */
export function integer(magnitude: Buffer | number): Buffer {
  const hex = typeof magnitude === 'number' ? magnitude.toString(16) : '';
  let bytes = typeof magnitude === 'number' ? Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex') : magnitude;
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0) bytes = Buffer.from([0]);
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(0x02, bytes);
}

export function boolean(value: boolean): Buffer {
  return tlv(0x01, Buffer.from([value ? 0xff : 0x00]));
}

export function octetString(bytes: Buffer): Buffer {
  return tlv(0x04, bytes);
}

/** bitString encodes whole bytes (unused bits 0) unless unusedBits says otherwise. */
export function bitString(bytes: Buffer, unusedBits = 0): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

export function utf8String(text: string): Buffer {
  return tlv(0x0c, Buffer.from(text, 'utf8'));
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const part of parts.slice(2)) {
    const chunk: number[] = [part & 0x7f];
    for (let n = Math.floor(part / 128); n > 0; n = Math.floor(n / 128)) chunk.unshift(0x80 | (n & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** time encodes UTCTime before 2050 and GeneralizedTime from then on, as RFC 5280 §4.1.2.5 asks. */
export function time(date: Date): Buffer {
  const iso = date.toISOString();
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  return date.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${digits}Z`));
}
