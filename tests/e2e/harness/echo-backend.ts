/**
 * Echo backends in network namespaces: each runs devtools/echo.ts on its namespace's own address
 * (198.51.100.0/24, one /30 each), reachable from the host, so Services and EndpointSlices
 * can name it as a controller would name a pod. Every backend is removed by close(), by the
 * exit hook of the process that made it, and by the global teardown (all of the run's).
 */
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { onExitSync } from '../../../devtools/controlplane/index.ts';
import { createNetns, destroyAllNetnsSync, releaseIfIdle, type Netns } from '../../../devtools/netns.ts';
import { runId } from './run.ts';
import { eventually } from '../../support/wait.ts';

const ECHO = fileURLToPath(new URL('../../../devtools/echo.ts', import.meta.url));
const READY_TIMEOUT_MS = 10_000;

export interface HttpResult<T = unknown> { status: number; headers: Record<string, string | string[] | undefined>; body: T; text: string }

/**
 * httpJson sends one plain HTTP request (no proxy, no keep-alive) and parses a JSON answer.
 * The request target is sent exactly as written in url (no dot-segment removal, no
 * re-encoding), so tests can probe path normalisation.
 */
export function httpJson<T = unknown>(url: string, opts: { method?: string; headers?: Record<string, string>; body?: unknown; timeoutMs?: number } = {}): Promise<HttpResult<T>> {
  const payload = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const origin = /^http:\/\/([^/]+)/.exec(url);
  if (!origin) return Promise.reject(new Error(`httpJson needs an http:// URL, got ${url}`));
  const { hostname, port } = new URL(origin[0]);
  return new Promise((resolve, reject) => {
    const req = request({
      host: hostname.replace(/^\[|\]$/g, ''),
      port: port || 80,
      path: url.slice(origin[0].length) || '/',
      method: opts.method ?? 'GET',
      agent: false,
      timeout: opts.timeoutMs ?? 5_000,
      headers: { ...opts.headers, ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try { body = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: body as T, text });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in ${opts.timeoutMs ?? 5_000} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export interface EchoBackend {
  name: string;
  /** address is the backend's own address in its namespace: what an EndpointSlice lists. */
  address: string;
  port: number;
  /** url is http://ADDRESS:PORT, reachable from the host. */
  url: string;
  netns: Netns;
  /** fail makes `ratio` of later requests answer `status` (devtools/echo.ts's failure switch). */
  fail(status: number, ratio?: number): Promise<void>;
  /** ok ends the failure switch. */
  ok(): Promise<void>;
  close(): Promise<void>;
}

let hooked = false;

/** startEchoBackend makes a namespace, runs the echo server there on `port`, and waits until the host reaches it. */
export async function startEchoBackend(name: string, opts: { port?: number } = {}): Promise<EchoBackend> {
  if (!hooked) {
    hooked = true;
    onExitSync(() => {
      destroyAllNetnsSync();
      releaseIfIdle();
    });
  }
  const port = opts.port ?? 8080;
  const netns = createNetns(runId());
  try {
    // stderr goes to the test's own output; stdout only carries the one "listening" line.
    const child = netns.spawn([process.execPath, ECHO, '--name', name, '--host', '0.0.0.0', '--port', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`echo backend ${name} not listening after ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      const onExit = (code: number | null): void => { clearTimeout(timer); reject(new Error(`echo backend ${name} exited (${code}) before listening`)); };
      child.once('exit', onExit);
      createInterface({ input: child.stdout! }).once('line', () => { clearTimeout(timer); child.off('exit', onExit); resolve(); });
    });
    // Neither the process nor its pipe may keep the test process alive; close() or an exit hook ends it.
    child.stdout?.destroy();
    child.unref();
    const url = `http://${netns.address}:${port}`;
    await eventually(`echo backend ${name} at ${url} to be reachable from the host`, async () => {
      const r = await httpJson<{ backend?: string }>(`${url}/__echo/state`, { timeoutMs: 1_000 });
      return r.status === 200 && r.body.backend === name;
    }, READY_TIMEOUT_MS);
    const control = async (path: string, body?: unknown): Promise<void> => {
      const r = await httpJson(`${url}/__echo/${path}`, { method: 'POST', body: body ?? {} });
      if (r.status !== 200) throw new Error(`echo backend ${name}: POST /__echo/${path}: ${r.status} ${r.text}`);
    };
    return {
      name, address: netns.address, port, url, netns,
      fail: (status, ratio = 1) => control('fail', { status, ratio }),
      ok: () => control('ok'),
      close: () => netns.destroy(),
    };
  } catch (err) {
    netns.destroySync();
    throw err;
  }
}
