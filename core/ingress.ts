/**
 * The per-Ingress fragment: everything compile() needs from one Ingress, validated on its own.
 * Fragments depend on nothing but the Ingress itself, so they are memoised per uid +
 * resourceVersion and the webhook can compute the same verdict without a cluster.
 */
import type { Ingress, IngressBackend } from './objects.ts';
import { namespaceOf } from './objects.ts';
import type { PathMatchType } from './resources.ts';
import { readAnnotations, annotationField, backendTlsOf, clientAuthOf, PREFIX, type IngressSettings, type BackendTls, type ClientAuth } from './annotations.ts';
import { hostProblem } from './paths.ts';
import { compileUserRegex, MAX_HOST_PROGRAM_SIZE } from './regex.ts';
import { error, warning, type Problem } from './problems.ts';

export interface BackendRef { service: string; port: number | string }

export interface PathEntry {
  /** Lower-case host, `*` for a rule without host. */
  host: string;
  path: string;
  match: PathMatchType;
  backend: BackendRef;
  field: string;
  /** RE2 instructions of a Regex path, what it spends of its host's MAX_HOST_PROGRAM_SIZE; absent on the others. */
  instructions?: number;
}

export interface TlsEntry { hosts: string[]; secret: string | null; field: string }

export interface IngressFragment {
  key: string;
  namespace: string;
  name: string;
  /** creationTimestamp, '' when unknown (sorts first: the object claims to be oldest). */
  created: string;
  problems: Problem[];
  valid: boolean;
  entries: PathEntry[];
  tls: TlsEntry[];
  defaultBackend?: BackendRef & { field: string };
  settings: IngressSettings;
  /** Set when the annotations ask for HTTPS to the backends. */
  backendTls?: BackendTls;
  /** Set when the annotations ask clients of its hosts for certificates. */
  clientAuth?: ClientAuth;
}

const PATH_TYPES = new Set(['Exact', 'Prefix', 'ImplementationSpecific']);
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** readBackend validates a service backend; problems are appended, null means unusable. */
export function readBackend(backend: IngressBackend | undefined, field: string, problems: Problem[]): BackendRef | null {
  if (!backend || typeof backend !== 'object') {
    problems.push(error('InvalidBackend', field, 'a backend is required'));
    return null;
  }
  if (backend.resource) {
    problems.push(error('UnsupportedBackend', `${field}.resource`, 'resource backends are not supported by Vane; use service'));
    return null;
  }
  const svc = backend.service;
  const name = svc?.name;
  if (typeof name !== 'string' || name.length === 0 || name.length > 63 || !DNS_LABEL.test(name)) {
    problems.push(error('InvalidBackend', `${field}.service.name`, `must be a Service name (RFC 1035 label), got ${JSON.stringify(name ?? null)}`));
    return null;
  }
  const port = svc?.port;
  const hasNumber = port?.number !== undefined && port?.number !== null;
  const hasName = port?.name !== undefined && port?.name !== null && port?.name !== '';
  if (hasNumber === hasName) {
    problems.push(error('InvalidBackend', `${field}.service.port`, 'exactly one of number or name is required'));
    return null;
  }
  if (hasNumber) {
    const n = port!.number!;
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      problems.push(error('InvalidBackend', `${field}.service.port.number`, `must be an integer between 1 and 65535, got ${JSON.stringify(n)}`));
      return null;
    }
    return { service: name, port: n };
  }
  const portName = port!.name!;
  if (typeof portName !== 'string' || portName.length > 15 || !PORT_NAME.test(portName)) {
    problems.push(error('InvalidBackend', `${field}.service.port.name`, `must be a port name (IANA_SVC_NAME), got ${JSON.stringify(portName)}`));
    return null;
  }
  return { service: name, port: portName };
}

function compareText(a: string, b: string): number { return a < b ? -1 : a > b ? 1 : 0; }

/** ingressOrder: oldest first, then namespace/name — who wins a conflict. */
export function ingressOrder(a: { created: string; key: string }, b: { created: string; key: string }): number {
  return compareText(a.created, b.created) || compareText(a.key, b.key);
}

/** servedHosts lists the hosts an Ingress has a path on (none when it is invalid): where its routes, and a Canary's split of them, land. */
export function servedHosts(frag: IngressFragment): Set<string> {
  const hosts = new Set<string>();
  for (const e of frag.entries) hosts.add(e.host);
  return hosts;
}

/** parseIngress builds the fragment of one Ingress; it never throws, whatever the input. */
export function parseIngress(ing: Ingress): IngressFragment {
  const namespace = namespaceOf(ing);
  const name = ing.metadata?.name ?? '';
  const problems: Problem[] = [];
  const ann = readAnnotations(ing.metadata?.annotations);
  for (const e of ann.errors) problems.push(error('InvalidAnnotation', annotationField(e.key), e.message));
  for (const w of ann.warnings) problems.push(warning('UnknownAnnotation', annotationField(w.key), w.message));
  const settings = ann.settings;
  const spec = ing.spec && typeof ing.spec === 'object' ? ing.spec : {};
  const entries: PathEntry[] = [];
  const tls: TlsEntry[] = [];
  let defaultBackend: IngressFragment['defaultBackend'];

  if (spec.defaultBackend !== undefined && spec.defaultBackend !== null) {
    const ref = readBackend(spec.defaultBackend, 'spec.defaultBackend', problems);
    if (ref) defaultBackend = { ...ref, field: 'spec.defaultBackend' };
  }
  const rules = Array.isArray(spec.rules) ? spec.rules : [];
  if (spec.rules !== undefined && !Array.isArray(spec.rules)) problems.push(error('InvalidIngress', 'spec.rules', 'must be a list'));
  if (rules.length === 0 && !spec.defaultBackend) {
    problems.push(error('InvalidIngress', 'spec', 'either spec.defaultBackend or spec.rules is required'));
  }
  const seen = new Map<string, string>();
  const regexInstructions = new Map<string, number>();
  rules.forEach((rule, i) => {
    const rf = `spec.rules[${i}]`;
    let host = '*';
    if (rule?.host !== undefined && rule.host !== '') {
      const problem = typeof rule.host === 'string' ? hostProblem(rule.host) : 'must be a string';
      if (problem) { problems.push(error('InvalidHost', `${rf}.host`, problem)); return; }
      host = rule.host;
    }
    const paths = rule?.http?.paths;
    if (!Array.isArray(paths) || paths.length === 0) {
      if (rule?.http !== undefined) problems.push(error('InvalidIngress', `${rf}.http.paths`, 'at least one path is required'));
      return;
    }
    paths.forEach((p, j) => {
      const pf = `${rf}.http.paths[${j}]`;
      const pathType = p?.pathType;
      if (typeof pathType !== 'string' || !PATH_TYPES.has(pathType)) {
        problems.push(error('InvalidPath', `${pf}.pathType`, `must be one of Exact, Prefix, ImplementationSpecific, got ${JSON.stringify(pathType ?? null)}`));
        return;
      }
      let path = typeof p.path === 'string' ? p.path : '';
      let match: PathMatchType = pathType === 'Exact' ? 'Exact' : 'Prefix';
      let instructions = 0;
      if (pathType === 'ImplementationSpecific' && settings.useRegex) {
        match = 'Regex';
        if (path === '') path = '/';
        const compiled = compileUserRegex(path);
        if (!compiled.ok) { problems.push(error('InvalidPath', `${pf}.path`, compiled.message)); return; }
        instructions = compiled.regex.programSize();
      } else {
        if (path === '' && pathType === 'ImplementationSpecific') path = '/';
        if (!path.startsWith('/')) {
          problems.push(error('InvalidPath', `${pf}.path`, `must be an absolute path starting with "/", got ${JSON.stringify(p.path ?? null)}`));
          return;
        }
        if (/[\s?#]/.test(path) || path.includes('%')) {
          problems.push(error('InvalidPath', `${pf}.path`, 'must not contain whitespace, "?", "#" or percent-escapes'));
          return;
        }
        if (/(^|\/)\.\.?(\/|$)/.test(path) || (path.includes('//'))) {
          problems.push(error('InvalidPath', `${pf}.path`, 'must be normalised: no "." or ".." segments and no "//"'));
          return;
        }
      }
      const backend = readBackend(p.backend, `${pf}.backend`, problems);
      if (!backend) return;
      const dupKey = `${host} ${match} ${path}`;
      const first = seen.get(dupKey);
      if (first) {
        problems.push(warning('DuplicatePath', pf, `same host, path and pathType as ${first}; the first one is used`));
        return;
      }
      seen.set(dupKey, pf);
      if (instructions > 0) {
        // Over the host's budget on its own, this Ingress could never be served whole,
        // whatever else shares the host: refused here, so the webhook and vane validate say so.
        const total = (regexInstructions.get(host) ?? 0) + instructions;
        regexInstructions.set(host, total);
        if (total > MAX_HOST_PROGRAM_SIZE) {
          problems.push(error('RegexBudgetExceeded', `${pf}.path`, `the regex paths of this Ingress on host "${host}" compile to ${total} RE2 instructions so far; the limit for all regex paths of a host is ${MAX_HOST_PROGRAM_SIZE} (a request may run every one of them)`));
          return;
        }
      }
      entries.push(instructions > 0 ? { host, path, match, backend, field: pf, instructions } : { host, path, match, backend, field: pf });
    });
  });

  const ruleHosts = new Set(entries.map((e) => e.host));
  const tlsList = Array.isArray(spec.tls) ? spec.tls : [];
  tlsList.forEach((t, i) => {
    const tf = `spec.tls[${i}]`;
    const secret = typeof t?.secretName === 'string' && t.secretName !== '' ? t.secretName : null;
    if (secret !== null && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(secret)) {
      problems.push(error('InvalidTLS', `${tf}.secretName`, `must be a Secret name, got ${JSON.stringify(secret)}`));
      return;
    }
    const hosts: string[] = [];
    (Array.isArray(t?.hosts) ? t.hosts : []).forEach((h, k) => {
      const problem = typeof h === 'string' ? hostProblem(h) : 'must be a string';
      if (problem) { problems.push(error('InvalidHost', `${tf}.hosts[${k}]`, problem)); return; }
      if (!ruleHosts.has(h)) problems.push(warning('TLSHostWithoutRule', `${tf}.hosts[${k}]`, `no rule of this Ingress serves host "${h}"`));
      hosts.push(h);
    });
    tls.push({ hosts, secret, field: tf });
  });

  if (settings.sslPassthrough && !entries.some((e) => e.host !== '*')) {
    problems.push(error('InvalidAnnotation', annotationField('vane.dev/ssl-passthrough'), 'TLS pass-through routes by SNI and needs at least one rule with a host'));
  }
  if (settings.rewriteTarget && /\$\d/.test(settings.rewriteTarget) && !settings.useRegex) {
    problems.push(warning('RewriteWithoutRegex', annotationField('vane.dev/rewrite-target'), 'capture groups ($1…) need vane.dev/use-regex: "true"; they are replaced by nothing'));
  }

  const backendTls = backendTlsOf(settings);
  if (backendTls && !backendTls.verify) {
    const key = settings.backendTlsVerify === false ? 'backend-tls-verify' : settings.backendProtocol === 'HTTPS' ? 'backend-protocol' : 'backend-tls-server-name';
    problems.push(warning('BackendTLSUnverified', annotationField(PREFIX + key), UNVERIFIED));
  }

  const clientAuth = clientAuthOf(settings);
  if (clientAuth && tls.length === 0) {
    problems.push(warning('ClientAuthWithoutTLS', annotationField(PREFIX + 'auth-tls-secret'), 'client certificates are asked for in the TLS handshake, and this Ingress has no spec.tls: unless another Ingress gives its hosts TLS, their plain HTTP requests are refused (403)'));
  }

  const valid = !problems.some((p) => p.severity === 'error');
  return {
    key: `${namespace}/${name}`,
    namespace,
    name,
    created: typeof ing.metadata?.creationTimestamp === 'string' ? ing.metadata.creationTimestamp : '',
    problems,
    valid,
    entries: valid ? entries : [],
    tls: valid ? tls : [],
    ...(valid && defaultBackend ? { defaultBackend } : {}),
    settings,
    ...(backendTls ? { backendTls } : {}),
    ...(clientAuth ? { clientAuth } : {}),
  };
}

/** UNVERIFIED says what HTTPS to a backend without a CA means; status and the webhook show it. */
export const UNVERIFIED = 'HTTPS to the backend is not verified: anyone on the network path can impersonate it; name a Secret with its CA in ca.crt in vane.dev/backend-tls-secret';
