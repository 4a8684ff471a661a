/**
 * The world the Kubernetes scenarios share, built from the e2e harness: a namespace on the
 * run's API server, two operator replicas (each reaching the API server through a relay a
 * scenario can partition, on fixed ports so a restarted replica is where proxies look for it),
 * N real proxies with last-known-good state behind a load-balancer model, and echo backends
 * in network namespaces.
 *
 * Routing of the main host is versioned: every change is a numbered state (rewrite revision,
 * canary weight), and each echo answer carries both the backend that served it and the path
 * it received, whose `/v<rev>/` prefix is the rewrite of the Ingress version that routed it.
 * So any answer can be checked against the states the proxy may have held when it was sent.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cluster, fileNamespace, startEchoBackend, type Cluster, type EchoBackend } from '../../tests/e2e/harness/index.ts';
import { setupFleet, startOperator, startProxy, type Fleet, type OperatorProcess, type ProxyProcess } from '../../tests/e2e/harness/vane.ts';
import { eventually, freePortRange } from '../../tests/support/wait.ts';
import { Balancer, type Check, type Reply, type Sent, type Target } from './load.ts';
import { startRelay, type Relay } from './relay.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface WorldOptions {
  proxies: number;
  /** The balancer's health-check period and how long it keeps sending after seeing a proxy unready. */
  lbPollMs: number;
  lbLagMs: number;
  /** The proxies' --shutdown-delay: readiness fails this long before listeners close. */
  shutdownDelayMs: number;
  log: (line: string) => void;
}

export interface MainState { rev: number; weight: 0 | 100 }

export interface OperatorSlot {
  identity: string;
  streamUrl: string;
  adminPort: number;
  relay: Relay;
  process: OperatorProcess | null;
  start(): Promise<void>;
  kill(): Promise<void>;
  /** stop is a graceful stop: the lease is released. */
  stop(): Promise<void>;
}

export interface ProxySlot {
  index: number;
  target: Target;
  process: ProxyProcess | null;
  start(): Promise<void>;
  /** stop sends SIGTERM and waits for the exit (the shutdown delay and drain included). */
  stop(): Promise<void>;
  /** pids of the primary and its workers, for memory sampling. */
  pids(): Promise<number[]>;
}

export const STABLE = 'rel-stable';
export const CANARY = 'rel-canary';
export const POOL = ['rel-pool-0', 'rel-pool-1', 'rel-pool-2'];
export const SHOP = 'rel-shop';
export const SHOP_CANARY = 'rel-shop-v2';

/** get sends one GET to 127.0.0.1:port on its own connection: what a probe or an admin read needs. */
export function get(port: number, path: string, headers: Record<string, string> = {}, timeoutMs = 2_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let parsed: { backend?: string; path?: string } = {};
        try { parsed = JSON.parse(body) as typeof parsed; } catch { parsed = {}; }
        resolve({ status: res.statusCode ?? 0, backend: parsed.backend ?? null, path: parsed.path ?? null, body });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from :${port}${path} in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** metric sums the samples of one metric (every label set) on an admin port's /metrics. */
export async function metric(adminPort: number, name: string): Promise<number> {
  const r = await get(adminPort, '/metrics');
  let total = 0;
  for (const line of r.body.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

function list(items: object[]): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
}

export class World {
  readonly operators: OperatorSlot[] = [];
  readonly proxies: ProxySlot[] = [];
  readonly backends = new Map<string, EchoBackend>();
  private readonly dead = new Set<string>();
  readonly balancer: Balancer;
  readonly hosts: { main: string; pool: string; shop: string };
  /** states[j] is the main host's routing after change j; states[0] is the initial one. */
  readonly states: MainState[] = [{ rev: 0, weight: 0 }];
  private readonly startedAt: number[] = [0];
  private readonly appliedAt: number[] = [0];
  private readonly closers: (() => Promise<void>)[] = [];

  readonly c: Cluster;
  readonly ns: string;
  readonly fleet: Fleet;
  readonly o: WorldOptions;

  private constructor(c: Cluster, ns: string, fleet: Fleet, o: WorldOptions) {
    this.c = c;
    this.ns = ns;
    this.fleet = fleet;
    this.o = o;
    this.balancer = new Balancer({ pollMs: o.lbPollMs, lagMs: o.lbLagMs });
    this.hosts = { main: `main.${ns}.test`, pool: `pool.${ns}.test`, shop: `shop.${ns}.test` };
  }

  static async create(o: WorldOptions): Promise<World> {
    const c = await cluster();
    await c.kubectlOk(['apply', '-f', join(ROOT, 'crds')]);
    await c.kubectlOk(['wait', '--for=condition=Established', 'crd/canaries.vane.dev', '--timeout=30s']);
    const ns = await fileNamespace(new URL('reliability.ts', import.meta.url).href);
    const fleet = await setupFleet(c, ns, o.proxies);
    const w = new World(c, ns, fleet, o);
    w.closers.push(async () => fleet.cleanup());
    try {
      await w.build();
    } catch (err) {
      await w.close();
      throw err;
    }
    return w;
  }

  private async build(): Promise<void> {
    const { c, ns, o } = this;
    const started = Date.now();
    for (const name of [STABLE, CANARY, ...POOL, SHOP, SHOP_CANARY]) await this.addBackend(name);
    o.log(`backends in network namespaces: ${Date.now() - started} ms`);
    await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], { input: list([
      ...this.service('stable', [STABLE]), ...this.service('canary', [CANARY]), ...this.service('pool', POOL),
      ...this.service('shop', [SHOP]), ...this.service('shop-v2', [SHOP_CANARY]),
      this.ingress('main', this.hosts.main, 'stable', { 'vane.dev/rewrite-target': '/v0/' }),
      this.ingress('pool', this.hosts.pool, 'pool'),
      this.ingress('shop', this.hosts.shop, 'shop'),
      { apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'main', namespace: ns },
        spec: { ingressRef: { name: 'main' }, service: 'stable', canaryService: { name: 'canary' }, traffic: { weight: 0 } } },
    ]) });
    // Runs after the operators stopped (closers run in reverse): no later operator inherits these Canaries.
    this.closers.push(async () => {
      for (const name of ['main', 'shop']) {
        await c.kubectl(['-n', ns, 'patch', 'canary', name, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
        await c.kubectl(['-n', ns, 'delete', 'canary', name, '--wait=false', '--ignore-not-found']);
      }
    });

    const opPorts = await freePortRange(4);
    const admin = readFileSync(this.fleet.operatorKubeconfig, 'utf8');
    for (let i = 0; i < 2; i++) {
      const relay = await startRelay(new URL(c.server));
      this.closers.push(() => relay.close());
      const kubeconfig = join(this.fleet.dir, `operator-${i}.kubeconfig`);
      writeFileSync(kubeconfig, admin.replace(/server: \S+/, `server: https://127.0.0.1:${relay.port}`), { mode: 0o600 });
      const streamPort = opPorts + 2 * i;
      const slot: OperatorSlot = {
        identity: `rel-op-${i}`, streamUrl: `wss://127.0.0.1:${streamPort}/stream`, adminPort: opPorts + 2 * i + 1, relay, process: null,
        start: async () => {
          slot.process = await startOperator({ ...this.fleet, operatorKubeconfig: kubeconfig }, ns, slot.identity,
            ['--stream-port', String(streamPort), '--admin-port', String(slot.adminPort)]);
        },
        kill: async () => { await slot.process?.stop('SIGKILL'); slot.process = null; },
        stop: async () => { await slot.process?.stop('SIGTERM'); slot.process = null; },
      };
      this.operators.push(slot);
      this.closers.push(async () => { await slot.process?.stop(); });
    }
    await this.operators[0]!.start();
    await this.operators[0]!.process!.waitFor((e) => e.msg === 'became leader', 30_000);
    await this.operators[1]!.start();
    const urls = this.operators.map((op) => op.streamUrl);

    const base = await freePortRange(3 * o.proxies);
    for (let i = 0; i < o.proxies; i++) {
      const pod = this.fleet.proxies[i]!;
      const ports = { http: base + 3 * i, https: base + 3 * i + 1, admin: base + 3 * i + 2 };
      const stateDir = mkdtempSync(join(tmpdir(), 'vane-rel-state-'));
      this.closers.push(async () => rmSync(stateDir, { recursive: true, force: true }));
      const slot: ProxySlot = {
        index: i, target: { name: pod.name, http: ports.http, admin: ports.admin }, process: null,
        start: async () => {
          slot.process = await startProxy(c, this.fleet, ns, pod, urls, ports, stateDir, ['--shutdown-delay', `${o.shutdownDelayMs}ms`]);
          await eventually(`${pod.name} ready`, async () => (await get(ports.admin, '/readyz')).status === 200, 30_000);
        },
        stop: async () => { await slot.process?.stop('SIGTERM'); slot.process = null; },
        pids: async () => {
          const r = JSON.parse((await get(ports.admin, '/readyz')).body) as { workers?: { pid: number }[] };
          return [slot.process?.child.pid ?? 0, ...(r.workers ?? []).map((x) => x.pid)].filter((p) => p > 0);
        },
      };
      this.proxies.push(slot);
      this.closers.push(async () => { await slot.process?.stop(); });
      await slot.start();
      this.balancer.add(slot.target);
    }
    this.balancer.start();
    this.closers.push(async () => this.balancer.close());
    await this.converge();
    await eventually('the pool host served by every proxy', async () => {
      for (const p of this.proxies) if ((await get(p.target.http, '/', { host: this.hosts.pool })).status !== 200) return false;
      return true;
    }, 30_000);
    o.log(`world ready in ${Date.now() - started} ms: ${o.proxies} proxies, 2 operators, ${this.backends.size} backends`);
  }

  /** addBackend starts an echo backend in its own network namespace (what a new pod is). */
  async addBackend(name: string): Promise<EchoBackend> {
    const b = await startEchoBackend(name);
    this.backends.set(name, b);
    this.closers.push(async () => { if (!this.dead.has(name)) await b.close(); });
    return b;
  }

  /**
   * killBackend is a pod's death: its process SIGKILLed and its network gone at once, so the
   * address answers nothing (EHOSTUNREACH) while the EndpointSlice still lists it.
   */
  killBackend(name: string): void {
    this.dead.add(name);
    // Its slot may be claimed again by the next backend: it is never torn down a second time.
    this.backends.get(name)!.netns.destroySync();
  }

  service(name: string, backends: string[]): object[] {
    return [
      { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: this.ns }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${name}-1`, namespace: this.ns, labels: { 'kubernetes.io/service-name': name } },
        addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        endpoints: backends.map((b) => ({ addresses: [this.backends.get(b)!.address], conditions: { ready: true } })) },
    ];
  }

  ingress(name: string, host: string, service: string, annotations: Record<string, string> = {}): object {
    return {
      apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name, namespace: this.ns, annotations },
      spec: { ingressClassName: 'vane', rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port: { number: 80 } } } }] } }] },
    };
  }

  async apply(objects: object[]): Promise<void> {
    await this.c.kubectlOk(['-n', this.ns, 'apply', '-f', '-'], { input: list(objects) });
  }

  private async mergePatch(path: string, patch: object): Promise<void> {
    const r = await this.c.api('PATCH', path, patch, { contentType: 'application/merge-patch+json' });
    if (r.status !== 200) throw new Error(`PATCH ${path}: HTTP ${r.status} ${r.text}`);
  }

  get state(): MainState { return this.states[this.states.length - 1]!; }

  /** change makes the next numbered change of the main host: a route (rewrite) or the canary weight. */
  async change(kind: 'route' | 'canary'): Promise<void> {
    const next: MainState = kind === 'route' ? { ...this.state, rev: this.state.rev + 1 } : { ...this.state, weight: this.state.weight === 0 ? 100 : 0 };
    this.states.push(next);
    this.startedAt.push(Date.now());
    if (kind === 'route') {
      await this.mergePatch(`/apis/networking.k8s.io/v1/namespaces/${this.ns}/ingresses/main`, { metadata: { annotations: { 'vane.dev/rewrite-target': `/v${next.rev}/` } } });
    } else {
      await this.mergePatch(`/apis/vane.dev/v1alpha1/namespaces/${this.ns}/canaries/main`, { spec: { traffic: { weight: next.weight } } });
    }
    this.appliedAt.push(Date.now());
  }

  /** stateOf reads which main-host state an answer belongs to, or says why it belongs to none. */
  stateOf(r: Reply): MainState | string {
    if (r.error) return r.error;
    if (r.status !== 200) return `status ${r.status}`;
    const m = /^\/v(\d+)\//.exec(r.path ?? '');
    if (!m || (r.backend !== STABLE && r.backend !== CANARY)) return `not a main-host answer: ${r.backend} ${r.path}`;
    return { rev: Number(m[1]), weight: r.backend === CANARY ? 100 : 0 };
  }

  /**
   * checkMain accepts an answer only from a state the proxy may have held: at least the one
   * before the last change applied when the request was sent (every change converges before
   * the next starts), at most the last change started when the answer came back.
   */
  readonly checkMain: Check = (r, _sent, ctx) => {
    const s = this.stateOf(r);
    if (typeof s === 'string') return s;
    let hi = this.startedAt.length - 1;
    while (hi > 0 && this.startedAt[hi]! > ctx.doneAt) hi--;
    let lo = this.appliedAt.length - 1;
    while (lo > 0 && this.appliedAt[lo]! > ctx.sentAt) lo--;
    for (let j = Math.max(0, lo - 1); j <= hi; j++) {
      if (this.states[j]!.rev === s.rev && this.states[j]!.weight === s.weight) return null;
    }
    return `stale or unknown routing: rev ${s.rev} weight ${s.weight}, allowed changes ${Math.max(0, lo - 1)}..${hi}`;
  };

  mainRequest = (): Sent => ({ method: 'GET', path: '/load', host: this.hosts.main });

  /** converge waits until every running proxy answers the main host from the latest state. */
  async converge(timeoutMs = 30_000): Promise<number> {
    const started = Date.now();
    const want = this.state;
    for (const p of this.proxies) {
      if (!p.process) continue;
      await eventually(`${p.target.name} to serve rev ${want.rev} weight ${want.weight}`, async () => {
        const s = this.stateOf(await get(p.target.http, '/probe', { host: this.hosts.main }));
        return typeof s !== 'string' && s.rev === want.rev && s.weight === want.weight;
      }, timeoutMs);
    }
    return Date.now() - started;
  }

  /** leader is the operator replica that leads now (its own metric says so). */
  async leader(timeoutMs = 30_000): Promise<OperatorSlot> {
    return eventually('an operator to lead', async () => {
      for (const op of this.operators) {
        if (op.process && (await metric(op.adminPort, 'vane_operator_leader').catch(() => 0)) === 1) return op;
      }
      return null;
    }, timeoutMs);
  }

  /** exited lists the processes the world started that are gone though nobody stopped them, with their last words. */
  exited(): string[] {
    const gone = [...this.proxies, ...this.operators].flatMap((slot) => {
      const p = slot.process;
      if (!p || (p.child.exitCode === null && p.child.signalCode === null)) return [];
      return [`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}); last lines:\n${p.lines.slice(-10).join('\n')}`];
    });
    return gone;
  }

  async close(): Promise<void> {
    for (const f of this.closers.splice(0).reverse()) await f().catch((err: Error) => this.o.log(`cleanup: ${err.message}`));
  }
}
