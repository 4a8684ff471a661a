/**
 * The fast path's upstream response head parser (framing per RFC 9112 §6.3, reuse of the
 * upstream connection, the head the client gets, exactly as clientHead writes it), and
 * ChunkScanner, which finds the end of a chunked body however its bytes are split.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkScanner, INCOMPLETE, MALFORMED, parseResponseHead, type Framing, type ResponseHead, type ResponseHeadResult } from '../../../proxy/http1/response-head.ts';
import { prng } from '../../support/prng.ts';

const MAX = 8_192;

function bytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

function parse(s: string, noBody = false, maxBytes = MAX): ResponseHeadResult {
  return parseResponseHead(bytes(s), maxBytes, noBody);
}

/** fields: the plain data of a parsed head, for comparisons and messages. */
function fields(r: ResponseHead): { status: number; reason: string; headers: string[]; framing: Framing; length: number; reusable: boolean; size: number } {
  return { status: r.status, reason: r.reason, headers: r.headers, framing: r.framing, length: r.length, reusable: r.reusable, size: r.size };
}

function show(r: ResponseHeadResult): string {
  return r === MALFORMED ? 'MALFORMED' : r === INCOMPLETE ? 'INCOMPLETE' : JSON.stringify(fields(r));
}

function head(s: string, noBody = false): ResponseHead {
  const r = parse(s, noBody);
  assert.ok(typeof r === 'object', `expected a head for ${JSON.stringify(s)}, got ${show(r)}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Framing and reuse
// ---------------------------------------------------------------------------------------------

interface FramingCase {
  name: string;
  input: string;
  noBody?: boolean;
  status?: number;
  framing: Framing;
  length?: number;
  reusable: boolean;
  /** The headers for the client, exactly. */
  headers: string[];
}

const FRAMING: FramingCase[] = [
  {
    name: 'Content-Length → length',
    input: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n',
    framing: 'length', length: 5, reusable: true, headers: ['Content-Type', 'text/plain', 'Content-Length', '5'],
  },
  {
    name: 'Content-Length: 0 → length 0',
    input: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
    framing: 'length', length: 0, reusable: true, headers: ['Content-Length', '0'],
  },
  {
    name: 'Content-Length keeps its text (leading zeros) and loses its OWS',
    input: 'HTTP/1.1 200 OK\r\nContent-Length:\t 007 \r\n\r\n',
    framing: 'length', length: 7, reusable: true, headers: ['Content-Length', '007'],
  },
  {
    name: 'duplicate identical Content-Length is one length, one line out (the first)',
    input: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\ncontent-length: 5\r\n\r\n',
    framing: 'length', length: 5, reusable: true, headers: ['Content-Length', '5', 'X', 'y'],
  },
  {
    name: 'Transfer-Encoding: chunked → chunked',
    input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n',
    framing: 'chunked', reusable: true, headers: ['Transfer-Encoding', 'chunked', 'X-A', '1'],
  },
  {
    name: 'Transfer-Encoding: gzip, chunked → chunked',
    input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
    framing: 'chunked', reusable: true, headers: ['Transfer-Encoding', 'gzip, chunked'],
  },
  {
    name: 'Transfer-Encoding over two lines, chunked last → chunked',
    input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n',
    framing: 'chunked', reusable: true, headers: ['Transfer-Encoding', 'gzip', 'transfer-encoding', 'chunked'],
  },
  {
    name: 'Transfer-Encoding: CHUNKED in another case, with OWS → chunked',
    input: 'HTTP/1.1 200 OK\r\nTRANSFER-ENCODING:  gzip ,\tCHUNKED \r\n\r\n',
    framing: 'chunked', reusable: true, headers: ['TRANSFER-ENCODING', 'gzip ,\tCHUNKED'],
  },
  {
    name: 'Transfer-Encoding: gzip (chunked not last) → close, not reusable',
    input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n',
    framing: 'close', reusable: false, headers: ['Transfer-Encoding', 'gzip'],
  },
  {
    name: 'Transfer-Encoding: chunked, gzip → close, not reusable',
    input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
    framing: 'close', reusable: false, headers: ['Transfer-Encoding', 'chunked, gzip'],
  },
  {
    name: 'Transfer-Encoding: chunked then a second line gzip → close, not reusable',
    input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n',
    framing: 'close', reusable: false, headers: ['Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'gzip'],
  },
  {
    name: 'Transfer-Encoding: xchunked → close, not reusable',
    input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n',
    framing: 'close', reusable: false, headers: ['Transfer-Encoding', 'xchunked'],
  },
  {
    name: 'Transfer-Encoding and Content-Length → chunked, not reusable, no content-length out',
    input: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n',
    framing: 'chunked', length: 5, reusable: false, headers: ['Transfer-Encoding', 'chunked', 'X', 'y'],
  },
  {
    name: 'Transfer-Encoding before Content-Length → chunked, not reusable, no content-length out',
    input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n',
    framing: 'chunked', length: 5, reusable: false, headers: ['Transfer-Encoding', 'chunked'],
  },
  {
    name: 'Transfer-Encoding (not chunked) and Content-Length → close, not reusable',
    input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n',
    framing: 'close', length: 5, reusable: false, headers: ['Transfer-Encoding', 'gzip'],
  },
  {
    name: 'neither Content-Length nor Transfer-Encoding → close, not reusable',
    input: 'HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n',
    framing: 'close', reusable: false, headers: ['Content-Type', 'text/html'],
  },
  {
    name: 'HEAD (noBody) with Content-Length → none, content-length kept',
    input: 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: "x"\r\n\r\n', noBody: true,
    framing: 'none', length: 1234, reusable: true, headers: ['Content-Length', '1234', 'ETag', '"x"'],
  },
  {
    name: 'HEAD (noBody) with chunked → none, reusable',
    input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', noBody: true,
    framing: 'none', reusable: true, headers: [],
  },
  {
    name: 'HEAD (noBody) with no length → none (not close), reusable',
    input: 'HTTP/1.1 200 OK\r\n\r\n', noBody: true,
    framing: 'none', reusable: true, headers: [],
  },
  {
    name: '204 → none; its Content-Length is not passed on',
    input: 'HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX: y\r\n\r\n', status: 204,
    framing: 'none', length: 0, reusable: true, headers: ['X', 'y'],
  },
  {
    name: '204 without length → none, reusable',
    input: 'HTTP/1.1 204 No Content\r\n\r\n', status: 204,
    framing: 'none', reusable: true, headers: [],
  },
  {
    name: '304 → none, content-length kept',
    input: 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 42\r\n\r\n', status: 304,
    framing: 'none', length: 42, reusable: true, headers: ['ETag', '"v1"', 'Content-Length', '42'],
  },
  {
    name: '304 with chunked → none, reusable',
    input: 'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n', status: 304,
    framing: 'none', reusable: true, headers: [],
  },
  {
    name: 'HTTP/1.0 without keep-alive → not reusable',
    input: 'HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n',
    framing: 'length', length: 5, reusable: false, headers: ['Content-Length', '5'],
  },
  {
    name: 'HTTP/1.0 with Connection: keep-alive → reusable',
    input: 'HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\n',
    framing: 'length', length: 5, reusable: true, headers: ['Content-Length', '5'],
  },
  {
    name: 'HTTP/1.0 with Connection: keep-alive, close → not reusable',
    input: 'HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 5\r\n\r\n',
    framing: 'length', length: 5, reusable: false, headers: ['Content-Length', '5'],
  },
  {
    name: 'HTTP/1.0 keep-alive without a length → close, not reusable',
    input: 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n',
    framing: 'close', reusable: false, headers: [],
  },
  {
    name: 'Connection: close → not reusable',
    input: 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n',
    framing: 'length', length: 5, reusable: false, headers: ['Content-Length', '5'],
  },
  {
    name: 'Connection: keep-alive, CLOSE on a second line → not reusable',
    input: 'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: X-A, CLOSE\r\nX-A: 1\r\nContent-Length: 5\r\n\r\n',
    framing: 'length', length: 5, reusable: false, headers: ['Content-Length', '5'],
  },
  {
    name: 'Connection: closed is not close',
    input: 'HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 5\r\n\r\n',
    framing: 'length', length: 5, reusable: true, headers: ['Content-Length', '5'],
  },
  {
    name: 'HTTP/1.1 with Connection: close on a 304 → not reusable',
    input: 'HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n', status: 304,
    framing: 'none', reusable: false, headers: [],
  },
  {
    name: '100 Continue parses with status < 200',
    input: 'HTTP/1.1 100 Continue\r\n\r\n', status: 100,
    framing: 'none', reusable: true, headers: [],
  },
  {
    name: '103 Early Hints: none, its headers kept, its Content-Length ignored',
    input: 'HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nContent-Length: 9\r\n\r\n', status: 103,
    framing: 'none', length: 9, reusable: true, headers: ['Link', '</s.css>; rel=preload'],
  },
];

for (const c of FRAMING) {
  test(`framing: ${c.name}`, () => {
    const r = head(c.input, c.noBody ?? false);
    assert.equal(r.status, c.status ?? 200);
    assert.equal(r.framing, c.framing);
    assert.equal(r.reusable, c.reusable);
    assert.equal(r.length, c.length ?? -1);
    assert.deepEqual(r.headers, c.headers);
    assert.equal(r.size, c.input.length);
  });
}

test('a whole head, exactly; bytes after it are not part of it', () => {
  const text = 'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n';
  assert.deepEqual(fields(head(`${text}abcHTTP/1.1 200 OK\r\n\r\n`)), {
    status: 404, reason: 'Not Found', headers: ['Content-Length', '3'], framing: 'length', length: 3, reusable: true, size: 45,
  });
});

test('status line: the reason phrase as sent, which may be empty, carry spaces, tabs and obs-text', () => {
  assert.equal(head('HTTP/1.1 200 OK\r\n\r\n').reason, 'OK');
  assert.equal(head('HTTP/1.1 200\r\n\r\n').reason, '');
  assert.equal(head('HTTP/1.1 200 \r\n\r\n').reason, '');
  assert.equal(head('HTTP/1.1 500 Internal  Server\tError \r\n\r\n').reason, 'Internal  Server\tError ');
  assert.equal(head('HTTP/1.1 200 Tr\xe8s bien\r\n\r\n').reason, 'Tr\xe8s bien');
  assert.equal(head('HTTP/1.1 599 x\r\n\r\n').status, 599);
  assert.equal(head('HTTP/1.1 199 x\r\n\r\n').status, 199);
});

// ---------------------------------------------------------------------------------------------
// The headers for the client
// ---------------------------------------------------------------------------------------------

test('headers out: every hop-by-hop header is dropped, whatever its case', () => {
  // Transfer-Encoding is framing, relayed with the body it frames: see the framing table.
  const hop = ['Connection: keep-alive', 'Keep-Alive: timeout=5', 'Proxy-Connection: keep-alive', 'TE: trailers', 'Trailer: X-Sum',
    'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA'];
  for (const line of hop) {
    const variants = [line, line.toLowerCase(), line.toUpperCase()];
    for (const v of variants) {
      const r = head(`HTTP/1.1 200 OK\r\nX-Before: 1\r\n${v}\r\nX-After: 2\r\nContent-Length: 0\r\n\r\n`);
      const names = r.headers.filter((_, i) => i % 2 === 0);
      assert.deepEqual(names, ['X-Before', 'X-After', 'Content-Length'], v);
    }
  }
});

test('headers out: everything else is kept in order, with its original case and value', () => {
  const r = head([
    'HTTP/1.1 200 OK',
    'content-TYPE: text/html; charset=utf-8',
    'Set-Cookie: a=1; Path=/',
    'Connection: keep-alive',
    'set-cookie: b=2',
    'X-Empty:',
    'X-Quoted: "a, b", c',
    'X-Latin: caf\xe9',
    'Keep-Alive: timeout=5',
    'X-Inner-WS:  a \t b  ',
    'Trailers: not-a-hop-by-hop',
    'Vary: Accept-Encoding',
    'Content-Length: 2',
    'Date: Tue, 01 Jan 2030 00:00:00 GMT',
    '', '',
  ].join('\r\n'));
  assert.deepEqual(r.headers, [
    'content-TYPE', 'text/html; charset=utf-8',
    'Set-Cookie', 'a=1; Path=/',
    'set-cookie', 'b=2',
    'X-Empty', '',
    'X-Quoted', '"a, b", c',
    'X-Latin', 'caf\xe9',
    'X-Inner-WS', 'a \t b',
    'Trailers', 'not-a-hop-by-hop',
    'Vary', 'Accept-Encoding',
    'Content-Length', '2',
    'Date', 'Tue, 01 Jan 2030 00:00:00 GMT',
  ]);
});

test('headers out: names nominated by Connection are dropped (case-insensitive, over several lines, before or after)', () => {
  const r = head([
    'HTTP/1.1 200 OK',
    'X-Secret: 1',
    'Connection: X-Secret,  x-other ',
    'X-Kept: 2',
    'X-OTHER: 3',
    'connection: keep-alive, X-Third',
    'x-third: 4',
    'X-Secretive: 5',
    'Content-Length: 0',
    '', '',
  ].join('\r\n'));
  assert.deepEqual(r.headers, ['X-Kept', '2', 'X-Secretive', '5', 'Content-Length', '0']);
  assert.equal(r.reusable, true);
});

test('headers out: Connection: close plus a nominated name drops it and ends reuse', () => {
  const r = head('HTTP/1.1 200 OK\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\nX-Bar: 2\r\nContent-Length: 0\r\n\r\n');
  assert.deepEqual(r.headers, ['X-Bar', '2', 'Content-Length', '0']);
  assert.equal(r.reusable, false);
});

test('headers out: differing Content-Length values are MALFORMED', () => {
  assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n'), MALFORMED);
  assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n'), MALFORMED);
  assert.equal(parse('HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n'), MALFORMED);
  assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n', true), MALFORMED);
});

test('200 header lines parse; 201 are MALFORMED', () => {
  const lines = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: ${i}\r\n`).join('');
  const r = head(`HTTP/1.1 200 OK\r\n${lines(200)}\r\n`);
  assert.equal(r.headers.length, 400);
  assert.equal(parse(`HTTP/1.1 200 OK\r\n${lines(201)}\r\n`), MALFORMED);
});

// ---------------------------------------------------------------------------------------------
// MALFORMED and INCOMPLETE
// ---------------------------------------------------------------------------------------------

const MALFORMED_CASES: [name: string, input: string][] = [
  // Status line forms.
  ['an empty head', '\r\n\r\n'],
  ['a status line with no status', 'HTTP/1.1\r\n\r\n'],
  ['a status line with no space after the version', 'HTTP/1.1200 OK\r\n\r\n'],
  ['no space after the status', 'HTTP/1.1 200OK\r\n\r\n'],
  ['a tab after the status', 'HTTP/1.1 200\tOK\r\n\r\n'],
  ['two spaces before the status', 'HTTP/1.1  200 OK\r\n\r\n'],
  ['a tab before the status', 'HTTP/1.1\t200 OK\r\n\r\n'],
  ['a leading space', ' HTTP/1.1 200 OK\r\n\r\n'],
  ['a leading CRLF', '\r\nHTTP/1.1 200 OK\r\n\r\n'],
  ['HTTP/2', 'HTTP/2 200 OK\r\n\r\n'],
  ['HTTP/2.0', 'HTTP/2.0 200 OK\r\n\r\n'],
  ['HTTP/1.2', 'HTTP/1.2 200 OK\r\n\r\n'],
  ['HTTP/1.10', 'HTTP/1.10 200 OK\r\n\r\n'],
  ['HTTP/0.9', 'HTTP/0.9 200 OK\r\n\r\n'],
  ['a lower-case version', 'http/1.1 200 OK\r\n\r\n'],
  ['another protocol', 'ICY 200 OK\r\n\r\n'],
  ['a two-digit status', 'HTTP/1.1 20 OK\r\n\r\n'],
  ['a four-digit status', 'HTTP/1.1 2000 OK\r\n\r\n'],
  ['a status below 100', 'HTTP/1.1 099 OK\r\n\r\n'],
  ['a status of 000', 'HTTP/1.1 000 OK\r\n\r\n'],
  // Non-digit statuses.
  ['a letter in the status', 'HTTP/1.1 2x0 OK\r\n\r\n'],
  ['a word for a status', 'HTTP/1.1 abc OK\r\n\r\n'],
  ['a signed status', 'HTTP/1.1 +20 OK\r\n\r\n'],
  ['a negative status', 'HTTP/1.1 -20 OK\r\n\r\n'],
  ['a space inside the status', 'HTTP/1.1 2 0 OK\r\n\r\n'],
  // Control characters.
  ['NUL in the reason', 'HTTP/1.1 200 O\x00K\r\n\r\n'],
  ['DEL in the reason', 'HTTP/1.1 200 OK\x7f\r\n\r\n'],
  ['bare CR in the reason', 'HTTP/1.1 200 O\rK\r\n\r\n'],
  ['bare LF after the status line', 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n'],
  ['NUL in a value', 'HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n'],
  ['DEL in a value', 'HTTP/1.1 200 OK\r\nX: a\x7fb\r\n\r\n'],
  ['vertical tab in a value', 'HTTP/1.1 200 OK\r\nX: a\x0bb\r\n\r\n'],
  ['bare CR in a value', 'HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n'],
  ['bare LF in a value', 'HTTP/1.1 200 OK\r\nX: a\nb\r\n\r\n'],
  ['bare LF ending a header line', 'HTTP/1.1 200 OK\r\nX: a\nContent-Length: 0\r\n\r\n'],
  ['a control character in a name', 'HTTP/1.1 200 OK\r\nX\x01Y: a\r\n\r\n'],
  ['obs-text in a name', 'HTTP/1.1 200 OK\r\nX\xe9: a\r\n\r\n'],
  // Header line syntax.
  ['a header line without a colon', 'HTTP/1.1 200 OK\r\nNoColon\r\n\r\n'],
  ['a header line without a colon, a colon on the next line', 'HTTP/1.1 200 OK\r\nNoColon\r\nX: y\r\n\r\n'],
  ['an empty header name', 'HTTP/1.1 200 OK\r\n: v\r\n\r\n'],
  ['a space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n'],
  ['a tab before the colon', 'HTTP/1.1 200 OK\r\nTransfer-Encoding\t: chunked\r\n\r\n'],
  ['a space inside a name', 'HTTP/1.1 200 OK\r\nX Y: v\r\n\r\n'],
  ['a separator in a name', 'HTTP/1.1 200 OK\r\nX(Y): v\r\n\r\n'],
  ['obs-fold', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n'],
  ['obs-fold with a colon', 'HTTP/1.1 200 OK\r\nX: a\r\n\tb: c\r\n\r\n'],
  ['white space before the first header', 'HTTP/1.1 200 OK\r\n Content-Length: 5\r\n\r\n'],
  // Content-Length values.
  ['Content-Length: +5', 'HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n'],
  ['Content-Length: -1', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'],
  ['Content-Length: 5,5', 'HTTP/1.1 200 OK\r\nContent-Length: 5,5\r\n\r\n'],
  ['Content-Length: 5, 5', 'HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n'],
  ['Content-Length: 5 5', 'HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\n'],
  ['Content-Length: 0x5', 'HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n'],
  ['Content-Length: 5.0', 'HTTP/1.1 200 OK\r\nContent-Length: 5.0\r\n\r\n'],
  ['Content-Length: 1e3', 'HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n'],
  ['an empty Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n'],
  ['a Content-Length of 16 digits', 'HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\n'],
  ['an invalid Content-Length on a 204', 'HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n'],
];

for (const [name, input] of MALFORMED_CASES) {
  test(`MALFORMED: ${name}`, () => {
    assert.equal(parse(input), MALFORMED, show(parse(input)));
  });
}

test('MALFORMED: an invalid Content-Length on a response to HEAD', () => {
  assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n', true), MALFORMED);
});

test('a Content-Length of 15 digits is the longest taken', () => {
  assert.equal(head('HTTP/1.1 200 OK\r\nContent-Length: 999999999999999\r\n\r\n').length, 999_999_999_999_999);
});

test('MALFORMED: a complete head over maxBytes; exactly maxBytes parses', () => {
  const text = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';
  assert.equal(parse(text, false, text.length - 1), MALFORMED);
  assert.ok(typeof parse(text, false, text.length) === 'object');
  // The body does not count.
  assert.ok(typeof parse(`${text}${'b'.repeat(100)}`, false, text.length) === 'object');
});

test('MALFORMED once maxBytes arrived without a terminator; INCOMPLETE before', () => {
  const partial = 'HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaa';
  assert.equal(parse(partial, false, partial.length + 1), INCOMPLETE);
  assert.equal(parse(partial, false, partial.length), MALFORMED);
  assert.equal(parse(partial, false, 8), MALFORMED);
});

test('INCOMPLETE: every proper prefix of a head', () => {
  const text = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n';
  for (let i = 0; i < text.length; i++) assert.equal(parse(text.slice(0, i)), INCOMPLETE, `prefix of ${i} bytes`);
  assert.equal(head(text).size, text.length);
});

test('LF-only line ends never make a head', () => {
  const r = parse('HTTP/1.1 200 OK\nContent-Length: 0\n\n');
  assert.ok(r === INCOMPLETE || r === MALFORMED, show(r));
  assert.equal(parse('HTTP/1.1 200 OK\nContent-Length: 0\n\n', false, 10), MALFORMED);
});

// ---------------------------------------------------------------------------------------------
// clientHead: the head the client gets
// ---------------------------------------------------------------------------------------------

function clientHead(upstream: string, extra = '', fallbackReason = 'Fallback', body: string | null = null, noBody = false): string {
  return head(upstream, noBody).clientHead(extra, fallbackReason, body === null ? null : bytes(body)).toString('latin1');
}

test('clientHead: kept lines exactly as sent, an HTTP/1.1 status line, then extra lines, then the body', () => {
  assert.equal(
    clientHead('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n'),
    'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n',
  );
  assert.equal(
    clientHead('HTTP/1.0 404 Not Found\r\nX-A:a\r\nx-b:\t two  words \r\nContent-Length:  3 \r\n\r\n', 'set-cookie: s=1\r\nconnection: close\r\n', 'x', 'abc'),
    'HTTP/1.1 404 Not Found\r\nX-A:a\r\nx-b:\t two  words \r\nContent-Length:  3 \r\nset-cookie: s=1\r\nconnection: close\r\n\r\nabc',
  );
  assert.equal(clientHead('HTTP/1.1 204 No Content\r\n\r\n'), 'HTTP/1.1 204 No Content\r\n\r\n');
  assert.equal(clientHead('HTTP/1.1 200 Tr\xe8s bien\r\nX: caf\xe9\r\nContent-Length: 0\r\n\r\n'), 'HTTP/1.1 200 Tr\xe8s bien\r\nX: caf\xe9\r\nContent-Length: 0\r\n\r\n');
});

test('clientHead: kept runs around dropped lines, in order, with the body after the extra lines', () => {
  // The shape of nginx's answers: the dropped Connection line splits the kept lines in two runs.
  const nginxLike = 'HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 3\r\nConnection: keep-alive\r\nETag: "e"\r\nA: 1\r\n\r\n';
  assert.equal(clientHead(nginxLike, 'x-extra: 1\r\n', 'x', 'abc'), 'HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 3\r\nETag: "e"\r\nA: 1\r\nx-extra: 1\r\n\r\nabc');
  // Dropped first and last; an HTTP/1.0 status line is rewritten, its headers still copied in runs.
  assert.equal(clientHead('HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\nA: 1\r\nB: 2\r\nTE: x\r\nC: 3\r\nContent-Length: 0\r\nUpgrade: h2c\r\n\r\n'),
    'HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n');
});

test('clientHead: the fallback reason stands in for a missing one', () => {
  assert.equal(clientHead('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n', '', 'OK'), 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  assert.equal(clientHead('HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n', '', 'OK'), 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  assert.equal(clientHead('HTTP/1.1 299\r\nContent-Length: 0\r\n\r\n', '', ''), 'HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n');
});

test('clientHead: hop-by-hop, nominated, framing and extra Content-Length lines are left out', () => {
  const upstream = [
    'HTTP/1.1 200 OK',
    'Connection: keep-alive, X-Hop',
    'X-Hop: 1',
    'Keep-Alive: timeout=2',
    'Location: /x/1',
    'Transfer-Encoding: chunked',
    'TE: trailers',
    'Trailer: X-Sum',
    'Upgrade: h2c',
    'Proxy-Connection: keep-alive',
    'HTTP2-Settings: AAMA',
    'X-Kept: 2',
    '', '',
  ].join('\r\n');
  assert.equal(clientHead(upstream, 'x-extra: 1\r\n'), 'HTTP/1.1 200 OK\r\nLocation: /x/1\r\nTransfer-Encoding: chunked\r\nX-Kept: 2\r\nx-extra: 1\r\n\r\n');
  // Transfer-Encoding with Content-Length: no Content-Length goes out.
  assert.equal(clientHead('HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\nA: b\r\n\r\n'), 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nA: b\r\n\r\n');
  // A duplicate Content-Length goes out once.
  assert.equal(clientHead('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nA: b\r\ncontent-length:2\r\n\r\n'), 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nA: b\r\n\r\n');
  // 204 and 1xx: no Content-Length.
  assert.equal(clientHead('HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nA: b\r\n\r\n'), 'HTTP/1.1 204 No Content\r\nA: b\r\n\r\n');
  assert.equal(clientHead('HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\nLink: </a>\r\n\r\n'), 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n');
  // HEAD and 304: the length of the resource goes out.
  assert.equal(clientHead('HTTP/1.1 200 OK\r\nContent-Length: 77\r\n\r\n', '', 'x', null, true), 'HTTP/1.1 200 OK\r\nContent-Length: 77\r\n\r\n');
  assert.equal(clientHead('HTTP/1.1 304 Not Modified\r\nContent-Length: 77\r\n\r\n'), 'HTTP/1.1 304 Not Modified\r\nContent-Length: 77\r\n\r\n');
});

test('clientHead parses back to the same status, reason, headers and framing', () => {
  const upstream = 'HTTP/1.0 201 Created Here\r\nLocation: /x/1\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=2\r\nX-Kept: caf\xe9\r\nContent-Length: 2\r\n\r\n';
  const r = head(upstream);
  const out = clientHead(upstream);
  assert.equal(out, 'HTTP/1.1 201 Created Here\r\nLocation: /x/1\r\nX-Kept: caf\xe9\r\nContent-Length: 2\r\n\r\n');
  const again = head(out);
  assert.deepEqual([again.status, again.reason, again.headers, again.framing, again.length, again.reusable], [201, 'Created Here', r.headers, 'length', 2, true]);
  assert.deepEqual(r.headers, ['Location', '/x/1', 'X-Kept', 'caf\xe9', 'Content-Length', '2']);
});

// ---------------------------------------------------------------------------------------------
// ChunkScanner
// ---------------------------------------------------------------------------------------------


/** A chunked body with extensions (with BWS, quoted strings), hex in both cases, and trailers. */
const BODY = [
  '5;name=value;q="a b"\r\nhello\r\n',
  'A\r\n0123456789\r\n',
  '1a \t;x\r\nabcdefghijklmnopqrstuvwxyz\r\n',
  '0000C\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n',
  '0;last=1\r\n',
  'Trailer-A: 1\r\nTrailer-B: two words\t\r\n',
  '\r\n',
].join('');
/** Bytes after the body: the next response on the connection. */
const NEXT = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';

/** feed runs a fresh scanner over the parts; the end offset relative to the whole stream, -1, or -2. */
function feed(parts: Buffer[]): { end: number; calls: number[] } {
  const s = new ChunkScanner();
  const calls: number[] = [];
  let before = 0;
  for (const p of parts) {
    const r = s.scan(p, 0);
    calls.push(r);
    if (r === -2) return { end: -2, calls };
    if (r >= 0) return { end: before + r, calls };
    before += p.length;
  }
  return { end: -1, calls };
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const c of cuts) { out.push(buf.subarray(from, c)); from = c; }
  out.push(buf.subarray(from));
  return out;
}

test('ChunkScanner: a body fed whole ends where it ends, with or without bytes after it', () => {
  assert.equal(new ChunkScanner().scan(bytes(BODY), 0), BODY.length);
  assert.equal(new ChunkScanner().scan(bytes(BODY + NEXT), 0), BODY.length);
  // From an offset inside a buffer that starts with the response head.
  const prefix = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
  assert.equal(new ChunkScanner().scan(bytes(prefix + BODY + NEXT), prefix.length), prefix.length + BODY.length);
});

test('ChunkScanner: the smallest bodies', () => {
  assert.equal(new ChunkScanner().scan(bytes('0\r\n\r\n'), 0), 5);
  assert.equal(new ChunkScanner().scan(bytes('0\r\n\r\nXYZ'), 0), 5);
  assert.equal(new ChunkScanner().scan(bytes('000;e\r\nT: v\r\n\r\n'), 0), 15);
  assert.equal(new ChunkScanner().scan(bytes('1\r\nx\r\n0\r\n\r\n'), 0), 11);
  assert.equal(new ChunkScanner().scan(bytes('000000000001\r\nx\r\n0\r\n\r\n'), 0), 22, 'twelve hex digits');
  assert.equal(new ChunkScanner().scan(bytes('fF\r\n' + 'y'.repeat(255) + '\r\n0\r\n\r\n'), 0), 4 + 255 + 7);
});

test('ChunkScanner: an unfinished body goes on (-1) at every prefix', () => {
  for (let i = 0; i < BODY.length; i++) {
    assert.equal(new ChunkScanner().scan(bytes(BODY.slice(0, i)), 0), -1, `prefix of ${i} bytes`);
  }
});

test('ChunkScanner: split into two parts at every position, the end is the same', () => {
  const whole = bytes(BODY + NEXT);
  for (let cut = 0; cut <= whole.length; cut++) {
    const { end, calls } = feed(splitAt(whole, [cut]));
    assert.equal(end, BODY.length, `cut at ${cut}: ${JSON.stringify(calls)}`);
    if (cut < BODY.length) assert.equal(calls[0], -1, `cut at ${cut}`);
  }
});

test('ChunkScanner: byte by byte, the end is the same', () => {
  const whole = bytes(BODY + NEXT);
  const parts = Array.from({ length: whole.length }, (_, i) => whole.subarray(i, i + 1));
  const { end, calls } = feed(parts);
  assert.equal(end, BODY.length);
  assert.equal(calls.length, BODY.length);
  assert.equal(calls.at(-1), 1);
});

test('ChunkScanner: random multi-part splits (seeded), the end is the same', () => {
  const seed = 0xc0ffee;
  const rand = prng(seed);
  const whole = bytes(BODY + NEXT);
  for (let round = 0; round < 500; round++) {
    const cuts = new Set<number>();
    const n = 1 + Math.floor(rand() * 12);
    for (let k = 0; k < n; k++) cuts.add(Math.floor(rand() * (whole.length + 1)));
    const sorted = [...cuts].sort((x, y) => x - y);
    const { end, calls } = feed(splitAt(whole, sorted));
    assert.equal(end, BODY.length, `seed ${seed} round ${round}: cuts ${JSON.stringify(sorted)} → ${JSON.stringify(calls)}`);
  }
});

test('ChunkScanner: a large chunk fed in pieces', () => {
  const size = 0x12345;
  const stream = Buffer.concat([bytes(`${size.toString(16)}\r\n`), Buffer.alloc(size, 0x0d), bytes('\r\n0\r\n\r\n')]);
  const rand = prng(7);
  const s = new ChunkScanner();
  let at = 0;
  let result = -1;
  while (at < stream.length && result === -1) {
    const len = 1 + Math.floor(rand() * 9000);
    const part = stream.subarray(at, at + len);
    result = s.scan(part, 0);
    if (result >= 0) result += at;
    at += part.length;
  }
  assert.equal(result, stream.length);
});

const CHUNK_MALFORMED: [name: string, input: string][] = [
  ['a non-hex size', 'g\r\nx\r\n0\r\n\r\n'],
  ['a non-hex digit after hex digits', '1g\r\nx\r\n0\r\n\r\n'],
  ['an empty size', '\r\n0\r\n\r\n'],
  ['white space before the size', ' 5\r\nhello\r\n0\r\n\r\n'],
  ['a 0x prefix', '0x5\r\nhello\r\n0\r\n\r\n'],
  ['a negative size', '-1\r\nx\r\n0\r\n\r\n'],
  ['an extension without a size', ';ext\r\n0\r\n\r\n'],
  ['a size of 13 hex digits', '0000000000001\r\nx\r\n0\r\n\r\n'],
  ['a size of 13 hex digits, zero', '0000000000000\r\n\r\n'],
  ['bare LF after the size', '5\nhello\r\n0\r\n\r\n'],
  ['bare CR after the size', '5\rhello\r\n0\r\n\r\n'],
  ['CR and another byte in place of CRLF after the size', '5\rXhello\r\n0\r\n\r\n'],
  ['CR and another byte in place of CRLF after the last chunk', '0\rX\r\n'],
  ['bare LF in an extension', '5;a\nb\r\nhello\r\n0\r\n\r\n'],
  ['a control character in an extension', '5;a\x00b\r\nhello\r\n0\r\n\r\n'],
  ['DEL in an extension', '5;a\x7f\r\nhello\r\n0\r\n\r\n'],
  ['data longer than its size (no CRLF after the data)', '5\r\nhello!\r\n0\r\n\r\n'],
  ['data shorter than its size', '5\r\nhell\r\n0\r\n\r\n'],
  ['bare LF after the data', '5\r\nhello\n0\r\n\r\n'],
  ['bare CR after the data', '5\r\nhello\r0\r\n\r\n'],
  ['CR and another byte in place of CRLF after the data', '5\r\nhello\rX0\r\n\r\n'],
  ['no CRLF at all after the data', '5\r\nhello0\r\n\r\n'],
  ['bare LF ending the body', '0\r\n\n'],
  ['bare LF ending a trailer', '0\r\nT: v\n\r\n'],
  ['bare LF after the last chunk', '0\n\r\n'],
  ['a control character in a trailer', '0\r\nT: a\x01\r\n\r\n'],
  ['bare CR in a trailer', '0\r\nT: a\rb\r\n\r\n'],
  ['a second size line after the body data', '5\r\nhello\r\n\r\n'],
];

for (const [name, input] of CHUNK_MALFORMED) {
  test(`ChunkScanner malformed (-2): ${name}`, () => {
    assert.equal(new ChunkScanner().scan(bytes(input), 0), -2);
    // However the bytes arrive.
    const whole = bytes(input);
    for (let cut = 0; cut <= whole.length; cut++) assert.equal(feed(splitAt(whole, [cut])).end, -2, `cut at ${cut}`);
  });
}

test('ChunkScanner malformed (-2): an extension longer than 4096 bytes; 4096 is fine', () => {
  assert.equal(new ChunkScanner().scan(bytes(`1;${'e'.repeat(4096)}\r\nx\r\n0\r\n\r\n`), 0), 2 + 4096 + 10);
  assert.equal(new ChunkScanner().scan(bytes(`1;${'e'.repeat(4097)}\r\nx\r\n0\r\n\r\n`), 0), -2);
});

test('ChunkScanner malformed (-2): trailers over 16 KiB', () => {
  const trailers = Array.from({ length: 200 }, (_, i) => `T-${i}: ${'v'.repeat(100)}\r\n`).join('');
  assert.equal(new ChunkScanner().scan(bytes(`0\r\n${trailers}\r\n`), 0), -2);
  const few = Array.from({ length: 10 }, (_, i) => `T-${i}: ${'v'.repeat(100)}\r\n`).join('');
  assert.equal(new ChunkScanner().scan(bytes(`0\r\n${few}\r\n`), 0), 3 + few.length + 2);
});

test('regressions: framing headers survive Connection, close beats keep-alive, HTTP/1.0 codings, TE with CL on bodiless responses, trailing commas', () => {
  const named = head('HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\n');
  assert.equal(named.framing, 'length');
  assert.deepEqual(named.headers, ['Content-Length', '3'], 'a length named in Connection still goes out');
  assert.equal(head('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n').reusable, false);
  assert.equal(head('HTTP/1.0 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n').reusable, false);
  assert.equal(head('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\nContent-Length: 1\r\n\r\n').reusable, false);
  const notModified = head('HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n');
  assert.equal(notModified.framing, 'none');
  assert.equal(notModified.reusable, false);
  assert.deepEqual(notModified.headers, []);
  const comma = head('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n');
  assert.equal(comma.framing, 'chunked');
  assert.equal(comma.reusable, true);
});
