/**
 * The request matcher: a RouteTable is built once per resource set (all regexes compiled,
 * every host and path indexed), and match() answers per request without throwing and
 * without compiling anything. Host lookup is a map probe (exact, then wildcard by the part
 * after the first label, then the host-less rules); path lookup is a map probe for Exact,
 * then one probe per path element for Prefix, then regexes longer than the best prefix.
 * A regex runs only on input within MAX_REGEX_INPUT: a longer path that a regex route would
 * decide is refused with 'uri-too-long' (414) rather than routed as if the regex had not
 * matched, and a longer header value does not match a canary pattern.
 *
 * Once a virtual host is chosen, its paths are the only candidates: a request for a known
 * host never falls through to another host's rules (ingress-nginx behaves the same). Paths
 * no rule matches go to that host's fallback (its Ingress's defaultBackend), then to the
 * listener's default route, then 404.
 */
import type { CanarySplit, ListenerSpec, ResourceMap, RouteSpec, VirtualHostSpec } from './resources.ts';
import { LISTENER_NAME } from './resources.ts';
import { normalizeHost, normalizePath, prefixKey, splitTarget } from './paths.ts';
import { compileUserRegex, matchesAnywhere, matchPrefixGroups, regexInputFits, substituteGroups, type CompiledRegex, MAX_REGEX_INPUT } from './regex.ts';

export interface CompiledCanary {
  spec: CanarySplit;
  headerRegex: CompiledRegex | null;
}

export interface CompiledRoute {
  spec: RouteSpec;
  vhost: string;
  /** Length of the rule that matched, for longest-match comparisons. */
  matchLength: number;
  regex: CompiledRegex | null;
  canary: CompiledCanary | null;
}

export interface HostTable {
  name: string;
  spec: VirtualHostSpec;
  exact: Map<string, CompiledRoute>;
  prefix: Map<string, CompiledRoute>;
  /** Regex routes, longest pattern first. */
  regexes: CompiledRoute[];
  fallback: CompiledRoute | null;
}

export interface RouteTable {
  resources: ResourceMap;
  exactHosts: Map<string, HostTable>;
  /** Keyed by the domain after `*.`: `*.foo.com` → `foo.com`. */
  wildcardHosts: Map<string, HostTable>;
  anyHost: HostTable | null;
  listener: ListenerSpec;
  defaultRoute: CompiledRoute | null;
}

export interface MatchRequest {
  /** Host header (or :authority) as received; port and case do not matter. */
  host?: string | undefined;
  /** Request target in origin form: path and optional query. */
  target: string;
  scheme: 'http' | 'https';
  /** Header lookup by lower-case name. */
  header?: (name: string) => string | undefined;
  cookie?: (name: string) => string | undefined;
  /** The client's bucket in [0, 100): random per request, or from the sticky cookie. */
  bucket?: number;
  /** Port to put in redirect locations when it is not 443. */
  httpsPort?: number;
  /** Collect human-readable reasons (vane explain); off on the hot path. */
  explain?: boolean;
}

export type MatchResult = 'routed' | 'not-found' | 'redirect' | 'bad-request' | 'uri-too-long';

export interface Decision {
  result: MatchResult;
  vhost: string | null;
  route: RouteSpec | null;
  compiled: CompiledRoute | null;
  backend: string | null;
  canary: 'stable' | 'canary' | null;
  /** Path and query the upstream receives (normalised, rewritten when configured). */
  path: string;
  location?: string;
  reasons: string[];
}

const NO_REASONS: string[] = [];
Object.freeze(NO_REASONS);

function compileRoute(spec: RouteSpec, vhost: string): CompiledRoute {
  let regex: CompiledRegex | null = null;
  if (spec.match === 'Regex') {
    const r = compileUserRegex(spec.path);
    // The compiler validated every pattern; a resource that still fails never matches.
    regex = r.ok ? r.regex : null;
  }
  let canary: CompiledCanary | null = null;
  if (spec.canary) {
    let headerRegex: CompiledRegex | null = null;
    if (spec.canary.header?.regex !== undefined) {
      const r = compileUserRegex(spec.canary.header.regex);
      headerRegex = r.ok ? r.regex : null;
    }
    canary = { spec: spec.canary, headerRegex };
  }
  const matchLength = spec.match === 'Prefix' ? prefixKey(spec.path).length : spec.path.length;
  return { spec, vhost, matchLength, regex, canary };
}

/** buildHostTable indexes one virtual host's routes. */
export function buildHostTable(name: string, spec: VirtualHostSpec): HostTable {
  const table: HostTable = { name, spec, exact: new Map(), prefix: new Map(), regexes: [], fallback: null };
  for (const route of spec.routes) {
    const compiled = compileRoute(route, name);
    if (route.match === 'Exact') { if (!table.exact.has(route.path)) table.exact.set(route.path, compiled); }
    else if (route.match === 'Prefix') { const k = prefixKey(route.path); if (!table.prefix.has(k)) table.prefix.set(k, compiled); }
    else if (compiled.regex) table.regexes.push(compiled);
  }
  table.regexes.sort((a, b) => b.matchLength - a.matchLength);
  if (spec.fallback) table.fallback = compileRoute(spec.fallback, name);
  return table;
}

const DEFAULT_LISTENER: ListenerSpec = { defaultCertificate: null, mergeSlashes: true };

function placeHost(table: RouteTable, host: HostTable): void {
  const h = host.spec.host;
  if (h === '*') table.anyHost = host;
  else if (h.startsWith('*.')) table.wildcardHosts.set(h.slice(2), host);
  else table.exactHosts.set(h, host);
}

function setListener(table: RouteTable): void {
  const listener = table.resources.get(LISTENER_NAME);
  table.listener = listener?.resource.type === 'listener' ? listener.resource.spec : DEFAULT_LISTENER;
  table.defaultRoute = table.listener.defaultRoute ? compileRoute(table.listener.defaultRoute, LISTENER_NAME) : null;
}

/** buildRouteTable indexes a whole resource set. */
export function buildRouteTable(resources: ResourceMap): RouteTable {
  const table: RouteTable = {
    resources, exactHosts: new Map(), wildcardHosts: new Map(), anyHost: null, listener: DEFAULT_LISTENER, defaultRoute: null,
  };
  for (const [name, r] of resources) if (r.resource.type === 'vhost') placeHost(table, buildHostTable(name, r.resource.spec));
  setListener(table);
  return table;
}

/**
 * updateRouteTable builds the table for `resources` from `previous`, re-indexing only the
 * virtual hosts named in `changed`; the previous table stays intact for in-flight requests.
 */
export function updateRouteTable(previous: RouteTable, resources: ResourceMap, changed: Iterable<string>): RouteTable {
  const table: RouteTable = {
    resources,
    exactHosts: new Map(previous.exactHosts),
    wildcardHosts: new Map(previous.wildcardHosts),
    anyHost: previous.anyHost,
    listener: previous.listener,
    defaultRoute: previous.defaultRoute,
  };
  for (const name of changed) {
    if (name === LISTENER_NAME) continue;
    if (!name.startsWith('vhost/')) continue;
    const host = name.slice('vhost/'.length);
    if (host === '*') table.anyHost = null;
    else if (host.startsWith('*.')) table.wildcardHosts.delete(host.slice(2));
    else table.exactHosts.delete(host);
    const r = resources.get(name);
    if (r?.resource.type === 'vhost') placeHost(table, buildHostTable(name, r.resource.spec));
  }
  setListener(table);
  return table;
}

/** findHost picks the virtual host for a normalised host name. */
export function findHost(table: RouteTable, host: string): HostTable | null {
  const exact = table.exactHosts.get(host);
  if (exact) return exact;
  const dot = host.indexOf('.');
  if (dot > 0) {
    const wild = table.wildcardHosts.get(host.slice(dot + 1));
    if (wild) return wild;
  }
  return table.anyHost;
}

function decide(result: MatchResult, path: string, reasons: string[]): Decision {
  return { result, vhost: null, route: null, compiled: null, backend: null, canary: null, path, reasons };
}

/** chooseSide applies a canary split: header rule, then cookie rule, then weight. */
export function chooseSide(canary: CompiledCanary, req: MatchRequest, reasons: string[] | null): 'stable' | 'canary' {
  const c = canary.spec;
  if (c.header) {
    const value = req.header?.(c.header.name);
    if (value !== undefined) {
      if (c.header.value !== undefined) {
        if (value === c.header.value) { reasons?.push(`header ${c.header.name} equals the canary value: canary`); return 'canary'; }
      } else if (canary.headerRegex) {
        if (matchesAnywhere(canary.headerRegex, value)) { reasons?.push(`header ${c.header.name} matches the canary pattern: canary`); return 'canary'; }
      } else if (value === 'always') { reasons?.push(`header ${c.header.name}: always → canary`); return 'canary'; }
      else if (value === 'never') { reasons?.push(`header ${c.header.name}: never → stable`); return 'stable'; }
    }
  }
  if (c.cookie) {
    const value = req.cookie?.(c.cookie.name);
    if (value === 'always') { reasons?.push(`cookie ${c.cookie.name}: always → canary`); return 'canary'; }
    if (value === 'never') { reasons?.push(`cookie ${c.cookie.name}: never → stable`); return 'stable'; }
  }
  const bucket = req.bucket ?? 100;
  const side = bucket < c.weight ? 'canary' : 'stable';
  reasons?.push(`weight ${c.weight}%: bucket ${Math.floor(bucket)} → ${side}`);
  return side;
}

function forwardPath(route: CompiledRoute, path: string, groups: string[] | null, query: string): string {
  const target = route.spec.rewriteTarget;
  if (target === undefined) return path + query;
  if (route.spec.match === 'Regex') return substituteGroups(target, groups ?? [path]) + query;
  if (route.spec.match === 'Exact') return target + query;
  const rest = path.slice(route.matchLength);
  const joined = target.endsWith('/') && rest.startsWith('/') ? target + rest.slice(1) : target + rest;
  return (joined === '' ? '/' : joined) + query;
}

/** routed is the decision for `route`; the caller has already pushed why it matched (when explaining). */
function routed(route: CompiledRoute, req: MatchRequest, path: string, groups: string[] | null, query: string, reasons: string[] | null): Decision {
  const canary = route.canary ? chooseSide(route.canary, req, reasons) : null;
  const backend = canary === 'canary' ? route.canary!.spec.backend : route.spec.backend;
  reasons?.push(`backend ${backend}`);
  return {
    result: 'routed', vhost: route.vhost, route: route.spec, compiled: route, backend, canary,
    path: forwardPath(route, path, groups, query), reasons: reasons ?? NO_REASONS,
  };
}

/** match decides where a request goes. It never throws. */
export function match(table: RouteTable, req: MatchRequest): Decision {
  const reasons = req.explain ? [] as string[] : null;
  const { path: rawPath, query } = splitTarget(req.target);
  const path = normalizePath(rawPath, table.listener.mergeSlashes);
  if (path === null) {
    reasons?.push('request path is not a valid origin-form path');
    return decide('bad-request', rawPath, reasons ?? NO_REASONS);
  }
  if (reasons && path !== rawPath) reasons.push(`path normalised: ${rawPath} → ${path}`);
  const host = normalizeHost(req.host);
  const vhost = findHost(table, host);
  if (vhost) {
    reasons?.push(`host "${host}" → virtual host ${vhost.spec.host}`);
    if (req.scheme === 'http' && vhost.spec.tls?.sslRedirect) {
      const port = req.httpsPort && req.httpsPort !== 443 ? `:${req.httpsPort}` : '';
      const d = decide('redirect', path + query, reasons ?? NO_REASONS);
      d.vhost = vhost.name;
      d.location = `https://${host}${port}${path}${query}`;
      reasons?.push('host has TLS and ssl-redirect is on: 308 to https');
      return d;
    }
    const exact = vhost.exact.get(path);
    if (exact) {
      reasons?.push(`Exact ${exact.spec.path} (Ingress ${exact.spec.ingress})`);
      return routed(exact, req, path, null, query, reasons);
    }
    let best: CompiledRoute | null = null;
    if (vhost.prefix.size > 0) {
      let key = prefixKey(path);
      for (;;) {
        const hit = vhost.prefix.get(key);
        if (hit) { best = hit; break; }
        if (key === '') break;
        key = key.slice(0, key.lastIndexOf('/'));
      }
    }
    const bestLength = best ? best.matchLength : -1;
    for (const r of vhost.regexes) {
      if (r.matchLength <= bestLength) break;
      if (!regexInputFits(path)) {
        reasons?.push(`path is ${path.length} characters; Regex ${r.spec.path} (Ingress ${r.spec.ingress}) runs on at most ${MAX_REGEX_INPUT}: 414`);
        const d = decide('uri-too-long', path + query, reasons ?? NO_REASONS);
        d.vhost = vhost.name;
        return d;
      }
      const groups = matchPrefixGroups(r.regex!, path);
      if (groups) {
        reasons?.push(`Regex ${r.spec.path} (Ingress ${r.spec.ingress})`);
        return routed(r, req, path, groups, query, reasons);
      }
    }
    if (best) {
      reasons?.push(`Prefix ${best.spec.path} (Ingress ${best.spec.ingress})`);
      return routed(best, req, path, null, query, reasons);
    }
    if (vhost.fallback) {
      reasons?.push(`no path matched; defaultBackend of Ingress ${vhost.fallback.spec.ingress}`);
      return routed(vhost.fallback, req, path, null, query, reasons);
    }
    reasons?.push('no path of this virtual host matches');
  } else {
    reasons?.push(`no virtual host for "${host}"`);
  }
  if (table.defaultRoute) {
    reasons?.push(`default backend of Ingress ${table.defaultRoute.spec.ingress}`);
    return routed(table.defaultRoute, req, path, null, query, reasons);
  }
  reasons?.push('no default backend: 404');
  return decide('not-found', path + query, reasons ?? NO_REASONS);
}
