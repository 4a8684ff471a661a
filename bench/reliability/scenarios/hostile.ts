/**
 * 7. Hostile input. HTTP: requests a proxy must refuse or rewrite, each sent on its own
 * connection followed by an ordinary request on the same connection — the documented status,
 * then either the connection closed or the ordinary request answered as itself (no desync: no
 * extra response, no smuggled request at the upstream). PROXY protocol: a v1 header with a
 * line break in its address (issue 18, weakness 3). Client claims (Forwarded, X-Original-URL,
 * X-Rewrite-URL) and Upgrade: h2c never reach the upstream (weakness 7); a Host outside RFC
 * 3986 is 400 and an absolute-form target routes by its authority (weakness 8). Regex routes: a 15 KB path answered 414
 * at once (weakness 2). Stream: unauthenticated, malformed, out-of-order, a hello naming
 * another proxy and one claiming generation 2^53−1 (weakness 4), with the fleet's load
 * judged throughout and a change converging afterwards. Nothing may crash.
 */
import { connect } from 'node:net';
import WebSocket from 'ws';
import {
  runProxy, startUpstream, tempDir, writeManifests, ingress, service, INGRESS_CLASS, type Echo,
} from '../../../tests/integration/proxy/harness.ts';
import { streamCa, token } from '../../../tests/e2e/harness/vane.ts';
import { SUBPROTOCOL } from '../../../core/index.ts';
import { startLoad } from '../load.ts';
import { failureProblems, type Result } from '../report.ts';
import { get, metric, type World } from '../world.ts';
import type { Scale } from './scale.ts';

const FOLLOW = 'GET /follow-up HTTP/1.1\r\nHost: echo.test\r\n\r\n';

/**
 * HttpCase: what is sent, the documented status, and what the upstream must see of it. A
 * refusal of broken framing closes the connection; a refusal with the framing intact (414)
 * may keep it, and then the follow-up is answered as itself.
 */
interface HttpCase { name: string; send: string; status: number; upstreamPath?: string; keepsConnection?: boolean; stripped?: string[] }

const HTTP_CASES: HttpCase[] = [
  { name: 'Content-Length with Transfer-Encoding (smuggling)', status: 400,
    send: 'POST / HTTP/1.1\r\nHost: echo.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: echo.test\r\n\r\n' },
  { name: 'two Content-Length values', status: 400, send: 'POST / HTTP/1.1\r\nHost: echo.test\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc' },
  { name: 'two Host headers', status: 400, send: 'GET / HTTP/1.1\r\nHost: echo.test\r\nHost: other.test\r\n\r\n' },
  { name: 'Transfer-Encoding on HTTP/1.0', status: 400, send: 'POST / HTTP/1.0\r\nHost: echo.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' },
  { name: 'obsolete line folding', status: 400, send: 'GET / HTTP/1.1\r\nHost: echo.test\r\nX-A: 1\r\n folded\r\n\r\n' },
  { name: 'bad chunk size', status: 400, send: 'POST / HTTP/1.1\r\nHost: echo.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n' },
  { name: 'NUL in a header value', status: 400, send: 'GET / HTTP/1.1\r\nHost: echo.test\r\nX-A: a\u0000b\r\n\r\n' },
  { name: 'garbage request line', status: 400, send: 'GET\u0001/ HTTP/1.1\r\nHost: echo.test\r\n\r\n' },
  { name: 'request head over 16 KiB', status: 431, send: `GET / HTTP/1.1\r\nHost: echo.test\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n` },
  { name: 'dot-segments are removed before routing', status: 200, upstreamPath: '/b', send: 'GET /a/../b HTTP/1.1\r\nHost: echo.test\r\n\r\n' },
  { name: '%2F is never decoded into a separator', status: 200, upstreamPath: '/a%2Fb', send: 'GET /a%2Fb HTTP/1.1\r\nHost: echo.test\r\n\r\n' },
  { name: 'regex route, 15 KB path (weakness 2)', status: 414, keepsConnection: true, send: `GET /re/${'a'.repeat(15_000)} HTTP/1.1\r\nHost: regex.test\r\n\r\n` },
  { name: 'Forwarded, X-Original-URL and X-Rewrite-URL from a client (weakness 7)', status: 200, upstreamPath: '/claims',
    stripped: ['forwarded', 'x-original-url', 'x-rewrite-url'],
    send: 'GET /claims HTTP/1.1\r\nHost: echo.test\r\nForwarded: for=192.0.2.66;proto=https\r\nX-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\n\r\n' },
  { name: 'Upgrade: h2c is not forwarded, and the connection ends after (weakness 7)', status: 200, upstreamPath: '/h2c', keepsConnection: false,
    stripped: ['upgrade', 'http2-settings'],
    send: 'GET /h2c HTTP/1.1\r\nHost: echo.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n' },
  { name: 'a Host RFC 3986 does not allow (weakness 8)', status: 400, send: 'GET / HTTP/1.1\r\nHost: <script>\r\n\r\n' },
  { name: 'a Host the HTTPS redirect must not echo (weakness 8)', status: 400, send: 'GET / HTTP/1.1\r\nHost: evil%2ecom\\.wild.test\r\n\r\n' },
  { name: 'an absolute-form target routes by its authority (weakness 8)', status: 200, upstreamPath: '/absolute',
    send: 'GET http://echo.test/absolute HTTP/1.1\r\nHost: other.test\r\n\r\n' },
];

/** exchange writes bytes on a fresh connection and collects what comes back until it closes or goes quiet. */
function exchange(port: number, bytes: string, quietMs = 1_500): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes, 'latin1'));
    let text = '';
    let timer = setTimeout(() => { s.destroy(); resolve({ text, closed: false }); }, quietMs);
    s.setEncoding('latin1');
    s.on('data', (c: string) => {
      text += c;
      clearTimeout(timer);
      timer = setTimeout(() => { s.destroy(); resolve({ text, closed: false }); }, quietMs);
    });
    s.on('close', () => { clearTimeout(timer); resolve({ text, closed: true }); });
    s.on('error', () => undefined);
  });
}

function statuses(text: string): number[] {
  // A response's head follows the previous body directly; the echo's JSON never holds a status line.
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

async function httpCases(problems: string[]): Promise<{ cases: number; notes: string[] }> {
  const dir = await tempDir();
  const seen: string[] = [];
  const seenHeaders: Record<string, unknown>[] = [];
  const up = await startUpstream('echo', (req, res, u) => {
    seen.push(req.url ?? '');
    seenHeaders.push(req.headers);
    let bytes = 0;
    req.on('data', (c: Buffer) => { bytes += c.length; });
    req.on('end', () => {
      const body: Echo = { name: u.name, port: u.port, method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: bytes };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(body));
    });
  });
  await writeManifests(dir.dir, 'all.json', [
    INGRESS_CLASS,
    ingress({ name: 'echo', host: 'echo.test', paths: [{ path: '/', service: 'echo' }] }),
    ingress({ name: 'regex', host: 'regex.test', annotations: { 'vane.dev/use-regex': 'true' }, paths: [{ path: '/re/(a|b)+x', pathType: 'ImplementationSpecific', service: 'echo' }] }),
    ...service('echo', [{ port: up.port }]),
  ]);
  const proxy = await runProxy(dir.dir);
  const proxied = await runProxy(dir.dir, ['--proxy-protocol', 'http', '--proxy-protocol-peers', '127.0.0.1/32']);
  const notes: string[] = [];
  let cases = 0;
  try {
    for (const c of HTTP_CASES) {
      cases++;
      const before = seen.length;
      const r = await exchange(proxy.http, c.send + FOLLOW);
      const got = statuses(r.text);
      const first = got[0] ?? 'closed';
      if (first !== c.status) { problems.push(`${c.name}: answered ${first}, documented ${c.status}: ${r.text.slice(0, 200)}`); continue; }
      // After a refusal the connection must close; after a good answer the follow-up is answered as itself.
      const keeps = c.keepsConnection ?? c.status === 200;
      const expected = keeps ? [c.status, 200] : [c.status];
      if (got.length !== expected.length || got.some((x, i) => x !== expected[i])) problems.push(`${c.name}: desync, answers ${JSON.stringify(got)} where ${JSON.stringify(expected)}`);
      if (!keeps && !r.closed) problems.push(`${c.name}: the connection stayed open after ${c.status}`);
      const reached = seen.slice(before);
      const want = [...(c.upstreamPath ? [c.upstreamPath] : []), ...(keeps ? ['/follow-up'] : [])];
      if (JSON.stringify(reached) !== JSON.stringify(want)) problems.push(`${c.name}: the upstream saw ${JSON.stringify(reached)}, expected ${JSON.stringify(want)}`);
      const passed = (c.stripped ?? []).filter((h) => seenHeaders[before]?.[h] !== undefined);
      if (passed.length > 0) problems.push(`${c.name}: the upstream got ${passed.join(', ')}`);
    }
    const t = Date.now();
    const long = await get(proxy.http, `/re/${'a'.repeat(15_000)}`, { host: 'regex.test' });
    notes.push(`a 15 KB path on a regex route: ${long.status} in ${Date.now() - t} ms on its own connection`);

    cases++;
    const before = seen.length;
    const injected = await exchange(proxied.http, 'PROXY TCP4 1.2.3.4\nX-Injected:yes 198.51.100.9 5000 80\r\nGET / HTTP/1.1\r\nHost: echo.test\r\n\r\n');
    if (!injected.closed || statuses(injected.text).length > 0 || seen.length !== before) {
      problems.push(`PROXY v1 header with a line break in its address: answered ${JSON.stringify(statuses(injected.text))}, closed ${injected.closed}, upstream saw ${JSON.stringify(seen.slice(before))}`);
    }
    cases++;
    const valid = await exchange(proxied.http, 'PROXY TCP4 198.51.100.7 127.0.0.1 5000 80\r\nGET /valid HTTP/1.1\r\nHost: echo.test\r\n\r\n');
    const body = valid.text.slice(valid.text.indexOf('\r\n\r\n') + 4);
    let xff: unknown = null;
    try { xff = (JSON.parse(body) as Echo).headers['x-forwarded-for']; } catch { xff = body.slice(0, 80); }
    if (statuses(valid.text)[0] !== 200 || xff !== '198.51.100.7') problems.push(`a valid PROXY v1 header: ${statuses(valid.text)[0]}, X-Forwarded-For ${JSON.stringify(xff)}`);

    for (const [name, p] of [['proxy', proxy], ['proxy with PROXY protocol', proxied]] as const) {
      if (p.child.exitCode !== null) problems.push(`the ${name} exited`);
      const restarts = await metric(p.admin, 'vane_proxy_worker_restarts_total');
      if (restarts > 0) problems.push(`the ${name}'s worker restarted ${restarts} times`);
    }
  } finally {
    await proxy.stop();
    await proxied.stop();
    await up.close();
    await dir.remove();
  }
  return { cases, notes };
}

/** closeOf opens a stream connection, sends `frames` after open, and resolves with the close code and messages received. */
function closeOf(url: string, ca: string, headers: Record<string, string>, frames: string[]): Promise<{ code: number; reason: string; messages: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, SUBPROTOCOL, { headers, ca });
    let messages = 0;
    const timer = setTimeout(() => ws.terminate(), 15_000);
    ws.on('message', () => { messages++; });
    ws.on('open', () => { for (const f of frames) ws.send(f); });
    ws.on('error', () => undefined);
    ws.on('close', (code, reason) => { clearTimeout(timer); resolve({ code, reason: reason.toString(), messages }); });
  });
}

async function streamCases(w: World, problems: string[]): Promise<number> {
  const leader = await w.leader();
  const ca = await streamCa(w.c, w.ns);
  const [pod0, pod1] = w.fleet.proxies;
  const auth = { authorization: `Bearer ${await token(w.c, w.ns, 'vane-proxy', { audience: 'vane-stream', pod: pod0! })}` };
  const hello = (name: string, generation: number | null) => JSON.stringify({
    type: 'hello', protocol: 1, proxy: { name }, version: generation === null ? null : { generation, root: 'x'.repeat(64) }, resources: [],
  });
  const cases: { name: string; headers: Record<string, string>; frames: string[]; code: number }[] = [
    { name: 'no token', headers: {}, frames: [hello(pod0!.name, null)], code: 4001 },
    { name: 'malformed JSON', headers: auth, frames: ['{"type": "hello", '], code: 4002 },
    { name: 'an ack before the hello', headers: auth, frames: [JSON.stringify({ type: 'ack', generation: 1, root: 'x' })], code: 4002 },
    { name: 'a hello naming another proxy', headers: auth, frames: [hello(pod1?.name ?? 'someone-else', null)], code: 4003 },
    { name: 'a hello claiming generation 2^53−1 (weakness 4)', headers: auth, frames: [hello(pod0!.name, Number.MAX_SAFE_INTEGER)], code: 4002 },
  ];
  for (const c of cases) {
    const r = await closeOf(leader.streamUrl, ca, c.headers, c.frames);
    if (r.code !== c.code || r.messages !== 0) problems.push(`stream, ${c.name}: closed ${r.code} (${r.reason}) after ${r.messages} messages, documented ${c.code} and none`);
  }
  if (!leader.process || leader.process.child.exitCode !== null) problems.push('the leading operator exited');
  return cases.length;
}

export async function hostile(w: World, s: Scale): Promise<Result> {
  const load = startLoad({ balancer: w.balancer, rate: s.rate, concurrency: s.concurrency, maxMs: 10 * 60_000, maxRequests: 5_000_000, next: w.mainRequest, check: w.checkMain });
  const problems: string[] = [];
  const notes: string[] = [];
  let httpCount = 0;
  let streamCount = 0;
  try {
    const http = await httpCases(problems);
    httpCount = http.cases;
    notes.push(...http.notes);
    load.mark('stream cases');
    streamCount = await streamCases(w, problems);
    await w.change('route');
    notes.push(`after the hostile stream input a change reached every proxy in ${await w.converge()} ms`);
  } catch (err) {
    problems.push((err as Error).message);
  }
  const stats = await load.stop();
  problems.push(...failureProblems('load on the main host', stats));
  return {
    id: '7', name: 'hostile HTTP and stream input', requests: stats.requests, durationMs: stats.durationMs,
    faults: `${httpCount} HTTP + ${streamCount} stream cases`, failed: stats.failed, problems, notes,
  };
}
