/**
 * `vane up [DIR]`: the embedded default. One command runs the operator on a directory of
 * manifests, N proxies connected to it over the TLS stream, and the demo backends the
 * manifests point at (echo servers on loopback), then says what to try. Ctrl-C stops
 * everything it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { kindOf, SERVICE_NAME_LABEL, type EndpointSlice } from '../core/index.ts';
import type { Operator } from '../operator/index.ts';
import { CertManager, DirCertStore } from '../lib/certs/index.ts';
import { loadManifests } from '../lib/manifests.ts';
import { startEcho, type EchoServer } from '../devtools/echo.ts';
import { createLogger } from '../lib/log.ts';

export interface UpOptions {
  dir: string;
  proxies: number;
  httpPort: number;
  httpsPort: number;
  adminPort: number;
  operatorPort: number;
  operatorAdminPort: number;
  stateDir: string;
  /** Prometheus for Canary metrics that do not name their own address. */
  prometheusUrl?: string;
  /** Where progress lines go (stdout for a person, a buffer for tests). */
  say: (line: string) => void;
}

export interface Up {
  operator: Operator;
  proxies: { name: string; http: number; https: number; admin: number; child: ChildProcess }[];
  backends: EchoServer[];
  stop(): Promise<void>;
}

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number');
  return n;
}

/** demoBackends lists the loopback endpoints the manifests name, one echo server each. */
async function demoBackends(dir: string): Promise<{ address: string; port: number; name: string }[]> {
  const manifests = await loadManifests([dir]);
  const seen = new Map<string, { address: string; port: number; name: string }>();
  for (const { object } of manifests.objects) {
    if (kindOf(object) !== 'EndpointSlice') continue;
    const slice = object as EndpointSlice;
    const name = slice.metadata?.labels?.[SERVICE_NAME_LABEL] ?? slice.metadata?.name ?? 'backend';
    for (const port of slice.ports ?? []) {
      for (const ep of slice.endpoints ?? []) {
        for (const address of ep.addresses ?? []) {
          if (!address.startsWith('127.') || !port.port) continue;
          seen.set(`${address}:${port.port}`, { address, port: port.port, name });
        }
      }
    }
  }
  return [...seen.values()];
}

async function until(what: string, probe: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function up(o: UpOptions): Promise<Up> {
  // The operator pulls in the Kubernetes client, slow to import; other commands skip it.
  const { Operator, FileObjectSource, tokenFileAuthenticator, CanaryController, OverlayCanaryStore } = await import('../operator/index.ts');
  const started = Date.now();
  const step = (text: string) => o.say(`[vane up] ${((Date.now() - started) / 1000).toFixed(1)}s ${text}`);
  const logger = createLogger('operator', process.env.VANE_LOG_LEVEL ?? 'warn');
  const state = resolve(o.stateDir);
  await mkdir(state, { recursive: true, mode: 0o700 });

  const backends: EchoServer[] = [];
  const proxies: Up['proxies'] = [];
  let operator: Operator | null = null;
  let certs: CertManager | null = null;
  const stop = async () => {
    for (const p of proxies) if (p.child.exitCode === null) p.child.kill('SIGTERM');
    await Promise.all(proxies.map((p) => (p.child.exitCode === null ? new Promise((r) => p.child.once('exit', r)) : null)));
    certs?.stop();
    await operator?.close();
    await Promise.all(backends.map((b) => b.close()));
  };

  try {
    for (const b of await demoBackends(o.dir)) {
      try {
        backends.push(await startEcho({ name: b.name, host: b.address, port: b.port }));
        step(`demo backend ${b.name} on http://${b.address}:${b.port}`);
      } catch (err) {
        // A developer's own service already listens where the manifests point: route to it.
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
        step(`backend ${b.name}: http://${b.address}:${b.port} already listens; using it as it is (no demo backend there)`);
      }
    }

    certs = new CertManager({ store: new DirCertStore(join(state, 'stream-tls')), policy: { commonName: 'vane-operator', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] } });
    const serving = await certs.start();
    const caFile = join(state, 'stream-ca.pem');
    await writeFile(caFile, serving.caBundlePem, { mode: 0o600 });
    step('stream TLS: a CA and a serving certificate for 127.0.0.1 (in ' + join(state, 'stream-tls') + ')');

    const names = Array.from({ length: o.proxies }, (_, i) => `proxy-${i}`);
    const tokens = names.map((n) => `${n} ${randomBytes(24).toString('base64url')}`);
    const tokenFile = join(state, 'stream-tokens');
    await writeFile(tokenFile, tokens.join('\n') + '\n', { mode: 0o600 });

    operator = new Operator({
      source: new FileObjectSource([o.dir], logger),
      authenticate: await tokenFileAuthenticator(tokenFile),
      expectedProxies: names,
      logger,
      tls: { cert: serving.certPem, key: serving.keyPem },
      streamPort: o.operatorPort,
      adminPort: o.operatorAdminPort,
      fileMode: true,
      controllers: (ctx) => [new CanaryController(ctx, {
        store: new OverlayCanaryStore({ overlay: ctx.overlay, logger, onEvent: (canary, _type, reason, message) => step(`canary ${canary}: ${reason}: ${message}`) }),
        ...(o.prometheusUrl ? { prometheusUrl: o.prometheusUrl } : {}),
      })],
    });
    await operator.start();
    step(`operator watching ${o.dir}: stream wss://127.0.0.1:${operator.streamAddress.port}/stream, admin http://127.0.0.1:${operator.adminAddress.port}/fleet`);

    const cli = process.argv[1]!;
    for (let i = 0; i < o.proxies; i++) {
      const name = names[i]!;
      const token = join(state, `${name}.token`);
      await writeFile(token, tokens[i]!.split(' ')[1]!, { mode: 0o600 });
      const ports = { http: o.httpPort + i, https: o.httpsPort + i, admin: o.adminPort + i };
      const child = spawn(process.execPath, [
        cli, 'proxy', '--operator', `wss://127.0.0.1:${operator.streamAddress.port}/stream`, '--proxy-name', name,
        '--token-file', token, '--operator-ca', caFile, '--state-dir', join(state, name),
        '--host', '127.0.0.1', '--admin-host', '127.0.0.1',
        '--http-port', String(ports.http), '--https-port', String(ports.https), '--admin-port', String(ports.admin),
        '--workers', '1', '--shutdown-delay', '0s',
      ], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, VANE_LOG_LEVEL: process.env.VANE_LOG_LEVEL ?? 'warn' } });
      proxies.push({ name, ...ports, child });
    }
    step(`started ${o.proxies} proxies; waiting until every one has ACKed the routing`);
    const op = operator;
    await until('every proxy to converge', () => {
      for (const p of proxies) if (p.child.exitCode !== null) throw new Error(`${p.name} exited with ${p.child.exitCode}`);
      return op.fleetReport().convergence?.converged === o.proxies;
    }, 60_000);
    const v = op.fleetReport().version!;
    step(`fleet converged on generation ${v.generation} (root ${v.root.slice(0, 12)})`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { operator: operator!, proxies, backends, stop };
}

function whatNow(u: Up, dir: string): string {
  const p0 = u.proxies[0]!;
  return [
    '',
    ...u.proxies.map((p) => `  ${p.name}  http://127.0.0.1:${p.http}  https://127.0.0.1:${p.https}  (admin http://127.0.0.1:${p.admin}/metrics)`),
    '',
    'What to try:',
    `  curl -s -H 'Host: shop.example.com' http://127.0.0.1:${p0.http}/checkout            # stable or canary, by weight`,
    `  curl -s -H 'Host: shop.example.com' -H 'X-Canary: always' http://127.0.0.1:${p0.http}/checkout`,
    `  for i in $(seq 50); do curl -s -H 'Host: shop.example.com' http://127.0.0.1:${p0.http}/checkout | grep -o '"backend":"[^"]*"'; done | sort | uniq -c`,
    `  edit ${join(dir, '30-canary.yaml')} (weight: 20 → 50) and run the loop again: every proxy follows live`,
    `  curl -s http://127.0.0.1:${u.operator.adminAddress.port}/fleet                        # versions and convergence`,
    '',
    'Ctrl-C stops everything.',
  ].join('\n');
}

export function registerUp(program: Command): void {
  program.command('up')
    .description('run the operator on a directory of manifests, N proxies over the stream, and the demo backends')
    .argument('[dir]', 'manifests', 'examples/quickstart')
    .option('--proxies <n>', 'number of proxies', (v) => { const n = Number(v); if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError('must be 1–64'); return n; }, 2)
    .option('--http-port <port>', 'proxy i listens on this port + i', int, 8080)
    .option('--https-port <port>', 'proxy i serves HTTPS on this port + i', int, 8443)
    .option('--admin-port <port>', 'proxy i serves /metrics on this port + i', int, 9901)
    .option('--operator-port <port>', 'stream port', int, 7443)
    .option('--operator-admin-port <port>', 'operator admin port', int, 7901)
    .option('--state-dir <dir>', 'certificates, tokens and proxy state', '.vane/up')
    .option('--prometheus-url <url>', 'Prometheus for Canary metrics that do not name their own address')
    .action(async (dir: string, flags: Omit<UpOptions, 'dir' | 'say'>) => {
      const u = await up({ ...flags, dir, say: (l) => console.log(l) });
      console.log(whatNow(u, dir));
      let stopping = false;
      const shutdown = () => {
        if (stopping) return;
        stopping = true;
        console.log('[vane up] stopping…');
        void u.stop().then(() => rm(resolve(flags.stateDir), { recursive: true, force: true })).then(() => process.exit(0));
      };
      process.once('SIGINT', shutdown);
      process.once('SIGTERM', shutdown);
    });
}
