/** A small driver: objects in, one request's decision out, the way the proxy asks. */
import { compile, buildRouteTable, match, type KubeObject, type Decision, type CompileOptions } from '../../../core/index.ts';

export interface Req {
  host?: string;
  target: string;
  scheme?: 'http' | 'https';
  headers?: Record<string, string>;
  cookies?: Record<string, string>;
  bucket?: number;
}

export function decider(objects: KubeObject[], options?: CompileOptions): (req: Req) => Decision {
  const table = buildRouteTable(compile(objects, options).resources);
  return (req) => {
    const headers = new Map(Object.entries(req.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    return match(table, {
      host: req.host,
      target: req.target,
      scheme: req.scheme ?? 'http',
      header: (n) => headers.get(n),
      cookie: (n) => req.cookies?.[n],
      ...(req.bucket !== undefined ? { bucket: req.bucket } : {}),
      explain: true,
    });
  };
}

/** where renders a decision as `result service path` for compact table assertions. */
export function where(d: Decision): string {
  if (d.result !== 'routed') return d.location ? `${d.result} ${d.location}` : d.result;
  const service = d.backend!.replace(/^backend\/[^/]+\//, '').replace(/:.*$/, '');
  return `${service} ${d.path}`;
}

/** cpuMs is the least CPU time of a few runs of f: the first pays for JIT compilation and other processes only ever add. */
export function cpuMs(f: () => unknown, runs = 9): number {
  let least = Infinity;
  for (let i = 0; i < runs; i++) {
    const start = process.cpuUsage();
    f();
    const used = process.cpuUsage(start);
    least = Math.min(least, (used.user + used.system) / 1000);
  }
  return least;
}
