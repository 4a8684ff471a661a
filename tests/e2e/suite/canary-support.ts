/**
 * What the canary e2e files share: a namespace with the CRD's Canary, a stable and a canary
 * echo backend in network namespaces behind Services, an Ingress, the operator in
 * Kubernetes mode (canary controller included) and real proxies on its stream; plus
 * traffic, status polling, Events and the real `kubectl vane` plugin found by kubectl on PATH.
 */
import { execFile } from 'node:child_process';
import { after, before } from 'node:test';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { request, Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envWithoutProxies } from '../../../devtools/controlplane/index.ts';
import { cluster, fileNamespace, startEchoBackend, type Cluster, type EchoBackend, type KubectlResult } from '../harness/index.ts';
import { setupFleet, startOperator, startProxy, type Fleet, type OperatorProcess, type ProxyProcess } from '../harness/vane.ts';
import type { Canary, CanarySpec } from '../../../core/index.ts';
import { eventually, freePortRange } from '../../support/wait.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const NAME = 'checkout';

export interface Answers {
  requests: number;
  byBackend: Record<string, number>;
  byStatus: Record<number, number>;
  /** Set-Cookie values of the sticky bucket, in request order (null when none was set). */
  cookies: (string | null)[];
  sides: (string | null)[];
}

export interface SendOptions {
  headers?: Record<string, string>;
  /** Send only through these proxies (indexes); default all, in turn. */
  via?: number[];
  concurrency?: number;
}

export interface CanaryWorld {
  c: Cluster;
  ns: string;
  fleet: Fleet;
  operator: OperatorProcess;
  proxies: ProxyProcess[];
  stable: EchoBackend;
  canary: EchoBackend;
  /** startProxy starts the proxy of expected pod i (for worlds created with fewer running). */
  startProxy(i: number): Promise<ProxyProcess>;
  apply(spec: CanarySpec, name?: string): Promise<void>;
  patchSpec(patch: Partial<CanarySpec> | Record<string, unknown>, name?: string): Promise<void>;
  get(name?: string): Promise<Canary>;
  /** until polls the Canary until probe says yes; the error shows the last status. */
  until(what: string, probe: (c: Canary) => boolean, timeoutMs?: number, name?: string): Promise<Canary>;
  /** send makes n requests to the split route through the proxies, bounded by a 60 s deadline. */
  send(n: number, opts?: SendOptions): Promise<Answers>;
  /** events lists the Canary's Events, oldest first. */
  events(name?: string): Promise<{ type: string; reason: string; message: string; component: string }[]>;
  /** vane runs `kubectl vane ARGS -n NS` through the real kubectl, which finds the plugin on PATH. */
  vane(args: string[]): Promise<KubectlResult>;
  close(): Promise<void>;
}

/**
 * everySecond runs `send` once a second (a steady trickle of traffic for the analysis to
 * judge) until stop() or maxMs, whichever comes first.
 */
export function everySecond(maxMs: number, send: () => Promise<unknown>): { stop(): Promise<void> } {
  let running = true;
  const deadline = Date.now() + maxMs;
  const loop = (async () => {
    while (running && Date.now() < deadline) {
      const tick = Date.now();
      await send();
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - tick))));
    }
  })();
  return { stop: async () => { running = false; await loop; } };
}

export function condition(c: Canary, type: string): { status?: string; reason?: string; message?: string } {
  return c.status?.conditions?.find((x) => x.type === type) ?? {};
}

/** converged: the status reflects the spec and every expected proxy serves it. */
export function converged(c: Canary): boolean {
  return c.status?.observedGeneration === c.metadata?.generation && condition(c, 'Ready').status === 'True';
}

export interface CanaryWorldOptions { expected?: number; running?: number; operatorArgs?: string[] }

/**
 * canaryFile registers the hooks of a test file whose tests share one canary world and returns
 * the world's getter: built before the file's tests (unless `skip` says why not), closed after them.
 */
export function canaryFile(fileUrl: string, skip: string | false, opts: CanaryWorldOptions = {}): () => CanaryWorld {
  let world: CanaryWorld | undefined;
  before(async () => { if (!skip) world = await canaryWorld(fileUrl, opts); });
  after(async () => { await world?.close(); });
  return () => world!;
}

/**
 * canaryWorld builds the world for one test file: `expected` proxy pods in the proxy Service,
 * `running` of them started as real proxies (default all).
 */
export async function canaryWorld(fileUrl: string, opts: CanaryWorldOptions = {}): Promise<CanaryWorld> {
  const c = await cluster();
  // Idempotent: every file that needs Canaries applies the CRD and waits for the API to serve it.
  await c.kubectlOk(['apply', '-f', join(ROOT, 'crds')]);
  await c.kubectlOk(['wait', '--for=condition=Established', 'crd/canaries.vane.dev', '--timeout=30s']);
  const ns = await fileNamespace(fileUrl);
  // Every file's operator watches the whole cluster, and namespaces of earlier files linger
  // (Terminating, with no controller to finish them): a host of its own keeps this file's routes its own.
  const host = `${ns}.e2e.test`;
  const expected = opts.expected ?? 2;
  const fleet = await setupFleet(c, ns, expected);
  const closers: (() => Promise<void>)[] = [async () => fleet.cleanup()];
  const close = async () => { for (const f of closers.splice(0).reverse()) await f().catch(() => undefined); };
  try {
    const stable = await startEchoBackend(NAME);
    closers.push(() => stable.close());
    const canary = await startEchoBackend(`${NAME}-v2`);
    closers.push(() => canary.close());
    const svc = (name: string, b: EchoBackend) => [
      { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${name}-1`, namespace: ns, labels: { 'kubernetes.io/service-name': name } },
        addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints: [{ addresses: [b.address], conditions: { ready: true } }] },
    ];
    await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
      ...svc(NAME, stable), ...svc(`${NAME}-v2`, canary),
      { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'shop', namespace: ns },
        spec: { ingressClassName: 'vane', rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: NAME, port: { number: 80 } } } }] } }] } },
    ] }) });
    const agent = new Agent({ keepAlive: true, maxSockets: 32 });
    closers.push(async () => agent.destroy());
    const get = (port: number, path: string, headers: Record<string, string>): Promise<{ status: number; backend: string | null; cookie: string | null }> =>
      new Promise((resolve) => {
        const req = request({ host: '127.0.0.1', port, path, agent, headers: { host, ...headers }, timeout: 5000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (b: Buffer) => chunks.push(b));
          res.on('end', () => {
            let backend: string | null = null;
            try { backend = (JSON.parse(Buffer.concat(chunks).toString()) as { backend?: string }).backend ?? null; } catch { backend = null; }
            const set = res.headers['set-cookie']?.find((s) => s.startsWith('vane_bucket=')) ?? null;
            resolve({ status: res.statusCode ?? 0, backend, cookie: set ? set.split(';')[0]! : null });
          });
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve({ status: 0, backend: null, cookie: null }));
        req.end();
      });

    // Runs after the operator stopped (closers run in reverse): no later file's operator inherits these Canaries.
    closers.push(async () => {
      const list = await c.api<{ items: Canary[] }>('GET', `/apis/vane.dev/v1alpha1/namespaces/${ns}/canaries`);
      for (const item of list.body.items ?? []) {
        const name = item.metadata?.name ?? '';
        await c.kubectl(['-n', ns, 'patch', 'canary', name, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
        await c.kubectl(['-n', ns, 'delete', 'canary', name, '--wait=false']);
      }
    });
    const operator = await startOperator(fleet, ns, `${ns}-op`, opts.operatorArgs ?? []);
    closers.push(() => operator.stop());
    await operator.waitFor((e) => e.msg === 'became leader', 30_000);
    const base = await freePortRange(expected * 3);
    const proxies: ProxyProcess[] = [];
    const start = async (i: number) => {
      const p = await startProxy(c, fleet, ns, fleet.proxies[i]!, [operator.streamUrl], { http: base + i * 3, https: base + i * 3 + 1, admin: base + i * 3 + 2 });
      closers.push(() => p.stop());
      proxies[i] = p;
      let last = 0;
      // What the proxy said is what tells a slow start from a broken one.
      await eventually(`proxy ${i} to serve`, async () => (last = (await get(p.http, '/', {})).status) === 200, 30_000, {
        intervalMs: 200, detail: () => `last status ${last}; its last log lines:\n${p.lines.slice(-20).join('\n')}`,
      });
      return p;
    };
    for (let i = 0; i < (opts.running ?? expected); i++) await start(i);

    const pluginDir = mkdtempSync(join(tmpdir(), 'vane-plugin-'));
    symlinkSync(join(ROOT, 'bin', 'kubectl-vane.js'), join(pluginDir, 'kubectl-vane'));
    closers.push(async () => rmSync(pluginDir, { recursive: true, force: true }));

    const world: CanaryWorld = {
      c, ns, fleet, operator, proxies, stable, canary,
      startProxy: start,
      async apply(spec, name = NAME) {
        await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name, namespace: ns }, spec }) });
      },
      async patchSpec(patch, name = NAME) {
        await c.kubectlOk(['-n', ns, 'patch', 'canary', name, '--type=merge', '-p', JSON.stringify({ spec: patch })]);
      },
      async get(name = NAME) {
        const r = await c.api<Canary>('GET', `/apis/vane.dev/v1alpha1/namespaces/${ns}/canaries/${name}`);
        if (r.status !== 200) throw new Error(`GET canary ${name}: HTTP ${r.status}`);
        return r.body;
      },
      async until(what, probe, timeoutMs = 30_000, name = NAME) {
        let last: Canary | null = null;
        return eventually(what, async () => { last = await world.get(name); return probe(last) ? last : null; }, timeoutMs, {
          intervalMs: 200, detail: () => `last status: ${JSON.stringify((last as Canary | null)?.status ?? null)}`,
        });
      },
      async send(n, o = {}) {
        const via = o.via ?? proxies.map((_, i) => i).filter((i) => proxies[i]);
        const out: Answers = { requests: 0, byBackend: {}, byStatus: {}, cookies: new Array(n).fill(null), sides: new Array(n).fill(null) };
        const deadline = Date.now() + 60_000;
        let next = 0;
        const worker = async () => {
          for (let i = next++; i < n && Date.now() < deadline; i = next++) {
            const r = await get(proxies[via[i % via.length]!]!.http, '/', o.headers ?? {});
            out.requests++;
            out.byStatus[r.status] = (out.byStatus[r.status] ?? 0) + 1;
            if (r.backend) out.byBackend[r.backend] = (out.byBackend[r.backend] ?? 0) + 1;
            out.cookies[i] = r.cookie;
            out.sides[i] = r.backend;
          }
        };
        await Promise.all(Array.from({ length: Math.min(n, o.concurrency ?? 16) }, worker));
        return out;
      },
      async events(name = NAME) {
        const r = await c.api<{ items: { type: string; reason: string; message: string; source?: { component?: string }; metadata: { resourceVersion: string } }[] }>(
          'GET', `/api/v1/namespaces/${ns}/events?fieldSelector=involvedObject.kind=Canary,involvedObject.name=${name}`);
        // Timestamps have one-second resolution; this etcd's revisions order writes exactly (the controller writes Events in order).
        return r.body.items
          .sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion))
          .map((e) => ({ type: e.type, reason: e.reason, message: e.message, component: e.source?.component ?? '' }));
      },
      vane(args) {
        return new Promise((done) => {
          const env = { ...envWithoutProxies(), PATH: `${pluginDir}:${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` };
          execFile(join(c.bin, 'kubectl'), ['vane', ...args, '-n', ns, '--kubeconfig', c.kubeconfig], { env, timeout: 60_000 }, (err, stdout, stderr) => {
            done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
          });
        });
      },
      close,
    };
    return world;
  } catch (err) {
    await close();
    throw err;
  }
}

/** binomialOk: `hits` of `n` is within 3 sigma of n × p. */
export function binomialOk(hits: number, n: number, p: number): { ok: boolean; text: string } {
  const sigma = Math.sqrt(n * p * (1 - p));
  const expected = n * p;
  return { ok: Math.abs(hits - expected) <= 3 * sigma, text: `${hits}/${n} (expected ${expected.toFixed(1)} ± ${(3 * sigma).toFixed(1)})` };
}
