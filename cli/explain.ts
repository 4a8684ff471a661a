/** `vane explain`: where one request would go, and why, from a directory of manifests. */
import { compile, buildRouteTable, match, VaneError, type Decision } from '../core/index.ts';
import { loadManifests } from '../lib/manifests.ts';

export interface ExplainInput {
  dir: string;
  url: string;
  headers: string[];
  cookies: string[];
  bucket?: number;
}

export interface ExplainOutput {
  result: Decision['result'];
  backend: { namespace: string; service: string; port: number | string } | null;
  canary: Decision['canary'];
  path: string;
  location?: string;
  ingress: string | null;
  reasons: string[];
  manifestErrors: string[];
}

/** UsageError: the command line asks for something that cannot work (code EUSAGE, exit 2). */
export class UsageError extends VaneError<'EUSAGE'> {
  override name = 'UsageError';
  constructor(message: string) {
    super('EUSAGE', message);
  }
}

function parseBackend(name: string | null): ExplainOutput['backend'] {
  if (!name) return null;
  const rest = name.slice('backend/'.length);
  const slash = rest.indexOf('/');
  const colon = rest.lastIndexOf(':');
  const port = rest.slice(colon + 1);
  return { namespace: rest.slice(0, slash), service: rest.slice(slash + 1, colon), port: /^\d+$/.test(port) ? Number(port) : port };
}

export async function explain(input: ExplainInput): Promise<ExplainOutput> {
  let url: URL;
  try {
    url = new URL(input.url);
  } catch {
    throw new UsageError(`not an absolute URL: ${input.url} (try http://example.com/path)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`URL scheme must be http or https: ${input.url}`);
  const headers = new Map<string, string>();
  for (const h of input.headers) {
    const colon = h.indexOf(':');
    if (colon <= 0) throw new UsageError(`header must look like "Name: value": ${h}`);
    headers.set(h.slice(0, colon).trim().toLowerCase(), h.slice(colon + 1).trim());
  }
  const cookies = new Map<string, string>();
  for (const c of input.cookies) {
    const eq = c.indexOf('=');
    if (eq <= 0) throw new UsageError(`cookie must look like name=value: ${c}`);
    cookies.set(c.slice(0, eq).trim(), c.slice(eq + 1).trim());
  }
  const manifests = await loadManifests([input.dir]);
  const result = compile(manifests.objects.map((o) => o.object));
  const table = buildRouteTable(result.resources);
  // Take the path as typed: URL would resolve dot segments and hide what the proxy does with them.
  const afterAuthority = input.url.replace(/^[a-z]+:\/\/[^/?#]*/i, '');
  const target = afterAuthority === '' || afterAuthority.startsWith('?') ? '/' + afterAuthority : afterAuthority;
  const bucket = input.bucket ?? Math.random() * 100;
  const decision = match(table, {
    host: url.host,
    target: target.split('#')[0]!,
    scheme: url.protocol === 'https:' ? 'https' : 'http',
    header: (name) => headers.get(name),
    cookie: (name) => cookies.get(name),
    bucket,
    explain: true,
  });
  return {
    result: decision.result,
    backend: parseBackend(decision.backend),
    canary: decision.canary,
    path: decision.path,
    ...(decision.location ? { location: decision.location } : {}),
    ingress: decision.route?.ingress ?? null,
    reasons: decision.reasons,
    manifestErrors: manifests.errors.map((e) => `${e.file}: ${e.message}`),
  };
}

export function formatExplain(out: ExplainOutput): string {
  const lines = [`result:  ${out.result}`];
  if (out.backend) lines.push(`backend: ${out.backend.namespace}/${out.backend.service}:${out.backend.port}${out.canary ? ` (${out.canary})` : ''}`);
  if (out.ingress) lines.push(`ingress: ${out.ingress}`);
  if (out.location) lines.push(`location: ${out.location}`);
  lines.push(`path:    ${out.path}`, 'because:');
  for (const r of out.reasons) lines.push(`  - ${r}`);
  for (const e of out.manifestErrors) lines.push(`warning: ${e}`);
  return lines.join('\n');
}
