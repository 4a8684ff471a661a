/**
 * A tiny HTTP echo server: every response says which backend answered and what it received
 * ({backend, method, path, host, headers}), so a test or a demo can see where a request
 * was routed and exactly what the proxy forwarded (`path` is the raw request target).
 *
 * Control endpoints, for canary demos: `POST /__echo/fail` with {"status": 500, "ratio": 0.5}
 * makes that share of later requests fail with that status (deterministically: every
 * 1/ratio-th request, not at random); `POST /__echo/ok` ends it; `GET /__echo/state` reports.
 *
 *   node devtools/echo.ts --name storefront [--host 0.0.0.0] [--port 8080]
 *
 * prints one JSON line {"listening": {"address", "port"}, "backend"} on stdout when ready.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

export interface EchoReply {
  backend: string;
  method: string;
  path: string;
  host: string;
  headers: Record<string, string | string[]>;
}

export interface EchoFailure { status: number; ratio: number }

export interface EchoServer {
  name: string;
  server: Server;
  address: string;
  port: number;
  /** failure is the active failure switch, or null when every request succeeds. */
  failure(): EchoFailure | null;
  close(): Promise<void>;
}

export interface EchoOptions { name: string; host?: string; port?: number }

const CONTROL_PREFIX = '/__echo/';
const MAX_CONTROL_BODY_BYTES = 4096;

function send(res: ServerResponse, status: number, body: unknown, backend: string): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-echo-backend': backend,
  });
  res.end(text);
}

/** parseFailure checks a fail switch body: status 100–599, ratio in (0, 1] (default 1). */
export function parseFailure(text: string): EchoFailure | string {
  let body: unknown;
  try {
    body = text.trim() === '' ? {} : JSON.parse(text);
  } catch {
    return 'body must be JSON such as {"status": 500, "ratio": 0.5}';
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a JSON object';
  const { status = 500, ratio = 1 } = body as { status?: unknown; ratio?: unknown };
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) return 'status must be an integer from 100 to 599';
  if (typeof ratio !== 'number' || !(ratio > 0 && ratio <= 1)) return 'ratio must be a number in (0, 1]';
  return { status, ratio };
}

/** startEcho listens (port 0 picks a free one) and resolves once it accepts connections. */
export function startEcho(opts: EchoOptions): Promise<EchoServer> {
  const name = opts.name;
  let failure: EchoFailure | null = null;
  // Counting requests since the switch was set makes the failing share exact, so a demo or
  // a test sees the same sequence every time.
  let seen = 0;

  const control = (req: IncomingMessage, res: ServerResponse, path: string): void => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_CONTROL_BODY_BYTES) chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_CONTROL_BODY_BYTES) return send(res, 413, { backend: name, error: 'body too large' }, name);
      if (path === 'state' && req.method === 'GET') return send(res, 200, { backend: name, failure }, name);
      if (req.method !== 'POST') return send(res, 405, { backend: name, error: 'use POST' }, name);
      if (path === 'ok') {
        failure = null;
        return send(res, 200, { backend: name, failure }, name);
      }
      if (path === 'fail') {
        const parsed = parseFailure(Buffer.concat(chunks).toString('utf8'));
        if (typeof parsed === 'string') return send(res, 400, { backend: name, error: parsed }, name);
        failure = parsed;
        seen = 0;
        return send(res, 200, { backend: name, failure }, name);
      }
      send(res, 404, { backend: name, error: `no control endpoint ${path}` }, name);
    });
  };

  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith(CONTROL_PREFIX)) return control(req, res, url.slice(CONTROL_PREFIX.length).split('?')[0]!);
    req.resume();
    req.on('end', () => {
      const reply: EchoReply = {
        backend: name,
        method: req.method ?? '',
        path: url,
        host: req.headers.host ?? '',
        headers: req.headers as Record<string, string | string[]>,
      };
      if (failure) {
        const before = Math.floor(seen * failure.ratio);
        seen++;
        if (Math.floor(seen * failure.ratio) > before) return send(res, failure.status, { ...reply, failed: true }, name);
      }
      send(res, 200, reply, name);
    });
  });
  server.keepAliveTimeout = 5_000;

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      const addr = server.address() as AddressInfo;
      resolve({
        name,
        server,
        address: addr.address,
        port: addr.port,
        failure: () => failure,
        close: () => new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        }),
      });
    });
  });
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { name: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' } },
  });
  const port = Number(values.port);
  if (!values.name || !Number.isInteger(port) || port < 0 || port > 65535) {
    console.error('usage: node devtools/echo.ts --name NAME [--host ADDRESS] [--port PORT]');
    process.exit(2);
  }
  const echo = await startEcho({ name: values.name, host: values.host, port });
  console.log(JSON.stringify({ listening: { address: echo.address, port: echo.port }, backend: echo.name }));
  const stop = (): void => { void echo.close().then(() => process.exit(0)); };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (import.meta.main) await main(process.argv.slice(2));
