/**
 * Test harness for the proxy: real upstream servers on 127.0.0.1, manifests written to a
 * temporary directory, and `vane proxy` run as a child process exactly as users run it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse, type OutgoingHttpHeaders } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually } from '../../support/wait.ts';

const CLI = fileURLToPath(new URL('../../../cli/main.ts', import.meta.url));

// ---- upstreams --------------------------------------------------------------------------

export interface Echo {
  name: string;
  port: number;
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  bodyBytes: number;
}

export interface Upstream {
  name: string;
  port: number;
  server: Server;
  /** Client connections the upstream accepted, to check keep-alive reuse. */
  connections: number;
  requests: number;
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, up: Upstream) => void;

/** echo answers with JSON describing the request it received, after reading the whole body. */
export const echo: Handler = (req, res, up) => {
  let bytes = 0;
  req.on('data', (c: Buffer) => { bytes += c.length; });
  req.on('end', () => {
    const body: Echo = { name: up.name, port: up.port, method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: bytes };
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-upstream', up.name);
    res.end(JSON.stringify(body));
  });
};

export async function startUpstream(name: string, handler: Handler = echo): Promise<Upstream> {
  const server = createServer();
  const up: Upstream = {
    name, port: 0, server, connections: 0, requests: 0,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
  server.on('connection', () => { up.connections++; });
  server.on('request', (req, res) => { up.requests++; handler(req, res, up); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  up.port = (server.address() as AddressInfo).port;
  return up;
}

/** freePort finds a port nothing listens on (for "connection refused" endpoints). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

// ---- manifests --------------------------------------------------------------------------

export interface PathSpec { path: string; pathType?: string; service: string; port?: number }
export interface IngressSpec {
  name: string;
  namespace?: string;
  host?: string;
  paths: PathSpec[];
  annotations?: Record<string, string>;
  tls?: { hosts?: string[]; secretName: string }[];
  defaultBackend?: string;
}

export function ingress(s: IngressSpec): object {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress',
    metadata: { name: s.name, namespace: s.namespace ?? 'default', annotations: s.annotations ?? {}, creationTimestamp: '2024-01-01T00:00:00Z' },
    spec: {
      ingressClassName: 'vane',
      ...(s.tls ? { tls: s.tls } : {}),
      ...(s.defaultBackend ? { defaultBackend: { service: { name: s.defaultBackend, port: { number: 80 } } } } : {}),
      rules: [{
        ...(s.host ? { host: s.host } : {}),
        http: { paths: s.paths.map((p) => ({ path: p.path, pathType: p.pathType ?? 'Prefix', backend: { service: { name: p.service, port: { number: p.port ?? 80 } } } })) },
      }],
    },
  };
}

export interface EndpointSpec { port: number; address?: string; ready?: boolean; serving?: boolean; terminating?: boolean }

/** service returns a Service and its EndpointSlice pointing at loopback ports. */
export function service(name: string, endpoints: EndpointSpec[], namespace = 'default', appProtocol?: string): object[] {
  const ports = [...new Set(endpoints.map((e) => e.port))];
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080, ...(appProtocol ? { appProtocol } : {}) }] } },
    ...ports.map((port) => ({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${name}-${port}`, namespace, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port, protocol: 'TCP' }],
      endpoints: endpoints.filter((e) => e.port === port).map((e) => ({
        addresses: [e.address ?? '127.0.0.1'],
        conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
      })),
    })),
  ];
}

export function tlsSecret(name: string, pair: { certificatePem: string; privateKeyPem: string }, namespace = 'default'): object {
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace },
    data: { 'tls.crt': Buffer.from(pair.certificatePem).toString('base64'), 'tls.key': Buffer.from(pair.privateKeyPem).toString('base64') },
  };
}

export const INGRESS_CLASS = {
  apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'vane' }, spec: { controller: 'vane.dev/ingress-controller' },
};

export async function tempDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'vane-proxy-test-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** writeManifests writes one JSON List file (replacing it whole, as an editor's save would). */
export async function writeManifests(dir: string, file: string, objects: object[]): Promise<void> {
  const tmp = join(dir, `.${file}.tmp`);
  await writeFile(tmp, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 1));
  const { rename } = await import('node:fs/promises');
  await rename(tmp, join(dir, file));
}

// ---- the proxy process ------------------------------------------------------------------

export interface LogLine { level: string; msg: string; [k: string]: unknown }

export interface RunningProxy {
  http: number;
  https: number;
  admin: number;
  child: ChildProcess;
  logs: LogLine[];
  /** stop sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

export async function runProxy(dir: string, args: string[] = []): Promise<RunningProxy> {
  const child = spawn(process.execPath, [CLI, 'proxy', '--from-files', dir, '--http-port', '0', '--https-port', '0', '--admin-port', '0',
    '--host', '127.0.0.1', '--admin-host', '127.0.0.1', '--workers', '1', '--shutdown-delay', '0s', ...args], { stdio: ['ignore', 'inherit', 'pipe'] });
  const logs: LogLine[] = [];
  let buffered = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try { logs.push(JSON.parse(line) as LogLine); } catch { logs.push({ level: 'raw', msg: line }); }
      if (process.env.VANE_TEST_VERBOSE) process.stderr.write(line + '\n');
    }
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const listening = await eventually('the proxy to listen', () => logs.find((l) => l.msg === 'proxy listening'), 20_000, {
    giveUp: () => (child.exitCode ?? child.signalCode) !== null && `proxy exited with ${child.exitCode ?? child.signalCode}`,
    detail: () => logs.map((l) => JSON.stringify(l)).join('\n'),
  });
  return {
    http: listening.http as number, https: listening.https as number, admin: listening.admin as number, child, logs, exited,
    stop: (signal = 'SIGTERM') => { if (child.exitCode === null) child.kill(signal); return exited; },
  };
}

// ---- clients ----------------------------------------------------------------------------

export interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

export function get(port: number, path: string, headers: OutgoingHttpHeaders = {}, method = 'GET', body?: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: data }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** raw sends bytes on a fresh connection and returns everything received until it closes. */
export function raw(port: number, text: string | Buffer, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(text));
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => { data += c; });
    s.on('close', () => resolve(data));
    s.on('error', (err) => (data ? resolve(data) : reject(err)));
    s.setTimeout(timeoutMs, () => { s.destroy(); });
  });
}

export async function metric(admin: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const r = await get(admin, '/metrics');
  let total = 0;
  for (const line of r.body.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

// ---- bounded load -----------------------------------------------------------------------

export interface LoadResult {
  requests: number;
  statuses: Record<string, number>;
  errors: string[];
  /** Responses by the x-upstream header the test upstreams set. */
  upstreams: Record<string, number>;
}

/**
 * load keeps `connections` keep-alive connections busy with GETs to 127.0.0.1 until
 * `during` has resolved and `tailMs` more have passed — bounded by `maxMs` and `maxRequests`.
 */
export async function load(port: number, host: string, during: () => Promise<void>, opts: { connections?: number; maxMs?: number; maxRequests?: number; tailMs?: number } = {}): Promise<LoadResult> {
  const { Pool } = await import('undici');
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: opts.connections ?? 4, pipelining: 1 });
  const result: LoadResult = { requests: 0, statuses: {}, errors: [], upstreams: {} };
  const deadline = Date.now() + (opts.maxMs ?? 30_000);
  const maxRequests = opts.maxRequests ?? 200_000;
  let stop = false;
  const worker = async () => {
    while (!stop && Date.now() < deadline && result.requests < maxRequests) {
      result.requests++;
      try {
        const r = await pool.request({ path: '/load', method: 'GET', headers: { host } });
        await r.body.text();
        result.statuses[r.statusCode] = (result.statuses[r.statusCode] ?? 0) + 1;
        const up = String(r.headers['x-upstream'] ?? 'none');
        result.upstreams[up] = (result.upstreams[up] ?? 0) + 1;
      } catch (err) {
        result.errors.push(`${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
      }
    }
  };
  const workers = Array.from({ length: opts.connections ?? 4 }, worker);
  try {
    await during();
    await new Promise((r) => setTimeout(r, opts.tailMs ?? 200));
  } finally {
    stop = true;
    await Promise.all(workers);
    await pool.close();
  }
  return result;
}

export async function readyz(admin: number): Promise<{ ready: boolean; generation: number; workers: { pid: number; ready: boolean; retiring: boolean }[] }> {
  const r = await get(admin, '/readyz');
  return JSON.parse(r.body) as never;
}
