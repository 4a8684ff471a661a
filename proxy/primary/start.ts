/**
 * startProxy: the primary process's composition root. It owns the routing source, and wires
 * the supervisor (workers), the fleet's metrics and the admin port around it.
 *
 * Why the primary owns the source: the directory (or the operator stream) is read and
 * compiled once per pod, not once per core; every worker serves the same version; and the
 * compile of a large update runs off the request path — workers only apply deltas.
 */
import { randomBytes } from 'node:crypto';
import type { BackendStats } from '../../core/index.ts';
import type { Logger } from '../../lib/log.ts';
import type { ProxyOptions } from '../options.ts';
import type { RoutingSource } from '../source/source.ts';
import { selfSignedCertificate } from '../listen/x509.ts';
import type { WorkerInit } from '../worker/worker.ts';
import { Supervisor } from './supervisor.ts';
import { FleetMetrics } from './fleet-metrics.ts';
import { startAdmin } from './admin.ts';

export interface ProxyHandle {
  /** Actual ports (useful with port 0). */
  ports: { http: number; https: number; admin: number };
  /** stop runs the graceful shutdown and resolves when every worker has exited. */
  stop(): Promise<void>;
  done: Promise<void>;
  /** stats: request statistics since the previous call, for the operator (canary analysis). */
  stats(): Promise<Record<string, BackendStats>>;
}

export async function startProxy(options: ProxyOptions, source: RoutingSource, log: Logger): Promise<ProxyHandle> {
  const fake = selfSignedCertificate({ commonName: 'Vane Fake Certificate', altNames: ['vane.invalid'] });
  const init: WorkerInit = { options, ticketKeys: randomBytes(48), fakeCertificate: fake };
  const metrics = new FleetMetrics();
  const supervisor = new Supervisor(options, init, log, metrics);
  metrics.attach(supervisor);

  const admin = await startAdmin(options.adminHost, options.adminPort, {
    ready: () => supervisor.ready(),
    readiness: () => supervisor.readiness(),
    metrics: () => metrics.render(),
  }, log);
  const ports = { http: 0, https: 0, admin: (admin.address() as { port: number }).port };

  await source.start((update) => {
    metrics.sourceUpdated(update.generation);
    return supervisor.route(update);
  });
  await supervisor.start();
  ports.http = supervisor.ports.http;
  ports.https = supervisor.ports.https;
  log.info({ http: ports.http, https: ports.https, admin: ports.admin, workers: options.workers, generation: supervisor.latest!.generation }, 'proxy listening');

  let stopping: Promise<void> | null = null;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => { resolveDone = r; });
  const stop = (): Promise<void> => stopping ??= (async () => {
    log.info({ shutdownDelayMs: options.shutdownDelayMs }, 'shutting down: readiness fails, then listeners close and requests drain');
    await supervisor.shutdown();
    admin.close();
    admin.closeAllConnections();
    void source.close().finally(() => { log.info({}, 'proxy stopped'); resolveDone(); });
    await done;
  })();

  return { ports, stop, done, stats: () => metrics.stats(supervisor.latest?.resources ?? null) };
}
