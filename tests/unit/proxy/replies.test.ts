/**
 * The replies the proxy makes itself, byte for byte: first as replies.ts builds them, then as
 * each path writes them — the fast path, the general path (node:http, which adds Date and its
 * keep-alive lines) and an upgrade — over real sockets on port 0. The three paths once wrote
 * them three ways (header case, detail, Connection); these tests keep them one.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { compile, type KubeObject, type RouteSpec } from '../../../core/index.ts';
import { Router, type RoutingState } from '../../../proxy/source/routing.ts';
import { Endpoints } from '../../../proxy/upstream/endpoints.ts';
import { WorkerMetrics } from '../../../proxy/metrics.ts';
import { DEFAULT_OPTIONS } from '../../../proxy/options.ts';
import type { ClientInfo } from '../../../proxy/listen/listeners.ts';
import { GeneralExchange, UpgradeExchange } from '../../../proxy/http/general.ts';
import { ClientConnection, type FastPathHost } from '../../../proxy/http/fast-path.ts';
import { closingErrorBytes, errorReply, redirectReply, replyBytes, upstreamFailure } from '../../../proxy/http/replies.ts';

const ID = 'pinned-request-id';

test('replies: the bytes of every reply the proxy makes', () => {
  const kept = (status: number, detail: string) => replyBytes(errorReply(status, ID, detail, false));
  const closing = (status: number, detail: string) => replyBytes(errorReply(status, ID, detail, true));
  const cases: [string, string][] = [
    [kept(404, 'no route for this host and path'),
      'HTTP/1.1 404 Not Found\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 77\r\nx-request-id: pinned-request-id\r\n\r\n'
      + '404 Not Found: no route for this host and path\nrequest id: pinned-request-id\n'],
    [kept(502, upstreamFailure(502)),
      'HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 63\r\nx-request-id: pinned-request-id\r\n\r\n'
      + '502 Bad Gateway: upstream failed\nrequest id: pinned-request-id\n'],
    [kept(503, 'no ready endpoints'),
      'HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 74\r\nx-request-id: pinned-request-id\r\n\r\n'
      + '503 Service Unavailable: no ready endpoints\nrequest id: pinned-request-id\n'],
    [kept(504, upstreamFailure(504)),
      'HTTP/1.1 504 Gateway Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 70\r\nx-request-id: pinned-request-id\r\n\r\n'
      + '504 Gateway Timeout: upstream timed out\nrequest id: pinned-request-id\n'],
    [closing(413, upstreamFailure(413)),
      'HTTP/1.1 413 Content Too Large\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 76\r\nx-request-id: pinned-request-id\r\nconnection: close\r\n\r\n'
      + '413 Content Too Large: request body too large\nrequest id: pinned-request-id\n'],
    [closingErrorBytes(400, ID, 'malformed request'),
      'HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 65\r\nx-request-id: pinned-request-id\r\nconnection: close\r\n\r\n'
      + '400 Bad Request: malformed request\nrequest id: pinned-request-id\n'],
    [closingErrorBytes(408, ID, 'request head not received in time'),
      'HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 85\r\nx-request-id: pinned-request-id\r\nconnection: close\r\n\r\n'
      + '408 Request Timeout: request head not received in time\nrequest id: pinned-request-id\n'],
    [closingErrorBytes(431, ID, 'request header fields too large'),
      'HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 99\r\nx-request-id: pinned-request-id\r\nconnection: close\r\n\r\n'
      + '431 Request Header Fields Too Large: request header fields too large\nrequest id: pinned-request-id\n'],
    [replyBytes(redirectReply('https://secure.test:8443/a?b=c', ID, false)),
      'HTTP/1.1 308 Permanent Redirect\r\nlocation: https://secure.test:8443/a?b=c\r\ncontent-length: 0\r\nx-request-id: pinned-request-id\r\n\r\n'],
    [replyBytes(redirectReply('https://secure.test/', ID, true)),
      'HTTP/1.1 308 Permanent Redirect\r\nlocation: https://secure.test/\r\ncontent-length: 0\r\nx-request-id: pinned-request-id\r\nconnection: close\r\n\r\n'],
  ];
  for (const [got, want] of cases) assert.equal(got, want);
});

// ---- the three paths ----------------------------------------------------------------------

function objects(refusedPort: number, silentPort: number): KubeObject[] {
  const svc = (name: string, port: number | null): KubeObject[] => [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'ns' }, spec: { ports: [{ name: 'http', port: 80, targetPort: port ?? 80 }] } } as KubeObject,
    ...(port === null ? [] : [{
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, namespace: 'ns', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4', ports: [{ name: 'http', port }], endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    } as KubeObject]),
  ];
  const ing = (name: string, host: string, service: string, annotations: Record<string, string> = {}, tls = false): KubeObject => ({
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name, namespace: 'ns', annotations },
    spec: {
      ingressClassName: 'vane', ...(tls ? { tls: [{ hosts: [host] }] } : {}),
      rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port: { number: 80 } } } }] } }],
    },
  } as KubeObject);
  return [
    ...svc('refused', refusedPort), ...svc('silent', silentPort), ...svc('empty', null),
    ing('refused', 'refused.test', 'refused', { 'vane.dev/proxy-body-size': '4' }),
    ing('silent', 'silent.test', 'silent', { 'vane.dev/read-timeout': '300ms' }),
    ing('empty', 'empty.test', 'empty'),
    ing('secure', 'secure.test', 'refused', {}, true),
  ];
}

const endpoints = new Endpoints({ connections: 4, keepAliveMs: 1_000, queue: 16, queueTimeoutMs: 5_000, waiting: { count: 0 } });
let state: RoutingState | null = null;
const metrics = new WorkerMetrics();
const stats = metrics.requestStats('', '', 'none', null);
const host: FastPathHost = {
  get state() { return state; },
  metrics, outlier: DEFAULT_OPTIONS.outlier, retries: 0, httpsRedirectPort: 8443, draining: false,
  routeStats: (_route: RouteSpec, _service: string) => stats, unrouted: stats, unroutedH2: stats,
  begin: () => undefined, end: () => undefined, trackCanaryTunnel: () => () => undefined,
  maxHeaderBytes: 16_384, clientHeaderTimeoutMs: 30_000, clientBodyTimeoutMs: 30_000, clientBodyTotalTimeoutMs: 0, clientKeepAliveTimeoutMs: 5_000, h2c: false,
  handoff: () => { throw new Error('no request in these tests leaves the fast path'); },
  connectionClosed: () => undefined,
};
const info: ClientInfo = { address: '127.0.0.1', trusted: false, port: '80', scheme: 'http', overLimit: false };

let fast: NetServer;
let general: HttpServer;
let silent: NetServer;
const silentSockets = new Set<Socket>();

const listen = async <S extends NetServer | HttpServer>(s: S): Promise<number> => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return (s.address() as AddressInfo).port;
};

before(async () => {
  const refused = createNetServer();
  const refusedPort = await listen(refused);
  await new Promise((r) => refused.close(r));
  silent = createNetServer((s) => { silentSockets.add(s); s.on('close', () => silentSockets.delete(s)); });
  const silentPort = await listen(silent);
  const compiled = compile(objects(refusedPort, silentPort));
  state = new Router(endpoints).apply({ upserts: [...compiled.resources.values()], removals: [], root: compiled.root, generation: 1, full: true }).state;

  fast = createNetServer((s) => { s.allowHalfOpen = true; new ClientConnection(host, s, info); });
  general = createHttpServer();
  general.on('request', (req, res) => new GeneralExchange(host, req, res, info, false).start());
  general.on('upgrade', (req, socket, head) => new UpgradeExchange(host, req, socket, head, info).start());
});

after(async () => {
  for (const s of silentSockets) s.destroy();
  silent.close();
  fast.close();
  general.closeAllConnections();
  general.close();
  await endpoints.destroyAll();
});

/** ask sends `request` and reads one response: until its body is complete, or the connection ends. */
async function ask(server: NetServer | HttpServer, request: string): Promise<string> {
  if (!server.listening) await listen(server);
  const port = (server.address() as AddressInfo).port;
  const s: Socket = connect(port, '127.0.0.1');
  s.write(request);
  let got = '';
  return new Promise((resolve, reject) => {
    const done = () => { s.destroy(); resolve(got); };
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)\r\n/i.exec(got);
      if (end >= 0 && length !== null && got.length >= end + 4 + Number(length[1])) done();
    });
    s.on('end', done);
    s.on('error', reject);
  });
}

const get = (hostName: string, extra = '') => `GET /a?b=c HTTP/1.1\r\nHost: ${hostName}\r\nX-Request-Id: ${ID}\r\n${extra}\r\n`;
const post = (hostName: string) => `POST /a HTTP/1.1\r\nHost: ${hostName}\r\nX-Request-Id: ${ID}\r\nContent-Length: 10\r\n\r\n0123456789`;
const upgrade = (hostName: string) => get(hostName, 'Connection: Upgrade\r\nUpgrade: websocket\r\n');

/** node:http's own lines in a general-path reply: the Date (its value left out) and keep-alive. */
function nodeFraming(reply: string): string {
  const end = reply.indexOf('\r\n\r\n');
  const closing = /\r\nconnection: close\r\n/.test(reply.slice(0, end + 2));
  const own = `Date: <date>\r\n${closing ? '' : 'Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n'}`;
  return reply.slice(0, end + 2) + own + reply.slice(end + 2);
}

const cases: { name: string; request: (h: string) => string; host: string; reply: string; upgrade: boolean }[] = [
  { name: '404 no route', request: get, host: 'nowhere.test', reply: replyBytes(errorReply(404, ID, 'no route for this host and path', false)), upgrade: true },
  { name: '502 upstream refused', request: get, host: 'refused.test', reply: replyBytes(errorReply(502, ID, 'upstream failed', false)), upgrade: true },
  { name: '503 no endpoints', request: get, host: 'empty.test', reply: replyBytes(errorReply(503, ID, 'no ready endpoints for service ns/empty:80', false)), upgrade: true },
  { name: '504 no response head in time', request: get, host: 'silent.test', reply: replyBytes(errorReply(504, ID, 'upstream timed out', false)), upgrade: true },
  { name: '413 body over the limit', request: post, host: 'refused.test', reply: replyBytes(errorReply(413, ID, 'request body larger than 4 bytes', true)), upgrade: false },
  { name: '308 to https', request: get, host: 'secure.test', reply: replyBytes(redirectReply('https://secure.test:8443/a?b=c', ID, false)), upgrade: true },
];

for (const c of cases) {
  test(`replies: ${c.name}, the same bytes on the fast path, the general path and an upgrade`, async () => {
    assert.equal(await ask(fast, c.request(c.host)), c.reply, 'fast path');
    const viaNode = (await ask(general, c.request(c.host))).replace(/\r\nDate: [^\r]*\r\n/, '\r\nDate: <date>\r\n');
    assert.equal(viaNode, nodeFraming(c.reply), 'general path');
    if (c.upgrade) {
      const closing = c.reply.replace('\r\n\r\n', '\r\nconnection: close\r\n\r\n');
      assert.equal(await ask(general, upgrade(c.host)), closing, 'upgrade');
    }
  });
}
