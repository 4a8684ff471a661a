/**
 * The admin port: /healthz (the primary is alive), /readyz (200 once routing is loaded and a
 * worker serves it, 503 while shutting down; the body lists generation, root and workers) and
 * /metrics (every worker's, merged).
 */
import { createServer, type Server } from 'node:http';
import type { Logger } from '../../lib/log.ts';

export interface AdminRoutes {
  ready(): boolean;
  /** readiness is /readyz's JSON body. */
  readiness(): object;
  metrics(): Promise<{ text: string; contentType: string }>;
}

/** startAdmin listens on host:port and resolves once it does. */
export async function startAdmin(host: string, port: number, routes: AdminRoutes, log: Logger): Promise<Server> {
  const admin = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') { res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n'); return; }
    if (path === '/readyz') {
      res.writeHead(routes.ready() ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(routes.readiness()) + '\n');
      return;
    }
    if (path === '/metrics') {
      routes.metrics().then(({ text, contentType }) => {
        res.writeHead(200, { 'content-type': contentType }).end(text);
      }, (err: Error) => {
        log.error({ err: err.message }, 'rendering metrics failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen({ port, host }, () => { admin.off('error', reject); resolve(); });
  });
  return admin;
}
