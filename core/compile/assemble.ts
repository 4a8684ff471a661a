/**
 * Resource assembly: fragments and raw Services and EndpointSlices → the routing resources
 * of core/resources.ts, rebuilt only where Pending says.
 *
 * It runs in dependency order: virtual hosts and the listener first, because what they
 * refer to decides which secret, backend and endpoints resources exist at all; then those.
 *
 * Invariants:
 * - A `vhost/<host>` exists exactly when a valid Vane Ingress has a path on that host. Its
 *   routes are sorted (Exact, then longer paths, then by path text) and each is a pure
 *   function of the Ingresses on the host, the Canaries on them and the Secrets they name.
 * - On each host, a host + path + match claimed by several Ingresses goes to the oldest
 *   (creationTimestamp, then namespace/name: ingressOrder); the others' claims are dropped.
 *   Every party, the oldest included, gets a HostConflict problem naming all of them; the
 *   problems are kept per host in `hostProblems` for the status stage.
 * - The regex routes of a host compile to at most MAX_HOST_PROGRAM_SIZE RE2 instructions in
 *   all. Ingresses are admitted oldest first (ingressOrder), each with all of its regex routes
 *   on the host or none: one that does not fit in what older ones left loses them (its other
 *   routes stay), with a RegexBudgetExceeded problem on each, and newer ones that fit still
 *   get theirs. A regex path already claimed by an older Ingress costs nothing more.
 * - A `backend/…` and its `endpoints/…` exist exactly while a host or the listener routes to
 *   it (Indexes.backendUsers); a `secret/…` exactly while one reads it (Indexes.secretUsers)
 *   and its verdict is usable with key material. ExternalName backends have no endpoints.
 * - Every resource is built with its keys in canonical (sorted) order: Snapshot.put hashes
 *   it without sorting.
 */
import {
  LISTENER_NAME, vhostName, backendName, endpointsName, secretName,
  type RouteSpec, type UpstreamTlsSpec, type ClientAuthSpec, type VirtualHostSpec, type BackendSpec, type EndpointAddress, type ListenerSpec, type CanarySplit,
} from '../resources.ts';
import type { Service, EndpointSlice } from '../objects.ts';
import { ingressOrder, type IngressFragment, type PathEntry, type BackendRef } from '../ingress.ts';
import type { CanaryFragment } from '../canary.ts';
import { pairProblem, caProblem, type SecretVerdict } from '../secrets.ts';
import { annotationField, hstsOf } from '../annotations.ts';
import { warning, type Problem } from '../problems.ts';
import { MAX_HOST_PROGRAM_SIZE } from '../regex.ts';
import type { Snapshot } from './snapshot.ts';
import type { StageContext } from './processor.ts';

/** The fragments assembly reads, as the processors keep them. */
export interface Fragments {
  /** Vane's Ingresses (IngressProcessor.vane). */
  readonly ingresses: ReadonlyMap<string, IngressFragment>;
  canary(key: string): CanaryFragment | undefined;
  secretVerdict(key: string): SecretVerdict;
}

/** Claim: who claims one path + match on a host, oldest Ingress first (the first one serves it). */
interface Claim {
  path: string;
  match: RouteSpec['match'];
  parties: { ingress: string; field: string }[];
}

const MATCH_RANK = { Exact: 0, Prefix: 1, Regex: 2 } as const;

function byText(a: string, b: string): number { return a < b ? -1 : a > b ? 1 : 0; }

function routeOrder(a: RouteSpec, b: RouteSpec): number {
  return MATCH_RANK[a.match] - MATCH_RANK[b.match] || b.path.length - a.path.length || byText(a.path, b.path);
}

export class Assembler {
  /** Problems each host's build found, by host, then by Ingress key (conflicts lost, TLS Secret trouble). */
  readonly hostProblems = new Map<string, Map<string, Problem[]>>();
  private readonly c: StageContext;
  private readonly fragments: Fragments;
  private readonly snapshot: Snapshot;

  constructor(context: StageContext, fragments: Fragments, snapshot: Snapshot) {
    this.c = context;
    this.fragments = fragments;
    this.snapshot = snapshot;
  }

  run(): void {
    const { pending, indexes } = this.c;
    for (const host of pending.hosts) {
      // Statuses of whoever had or has a problem on this host, or a route on it.
      for (const ingress of indexes.ingressHosts.to(host)) pending.ingressStatuses.add(ingress);
      for (const ingress of this.hostProblems.get(host)?.keys() ?? []) pending.ingressStatuses.add(ingress);
      this.buildHost(host);
      for (const ingress of this.hostProblems.get(host)?.keys() ?? []) pending.ingressStatuses.add(ingress);
    }
    pending.hosts.clear();
    if (pending.listener) { pending.listener = false; this.buildListener(); }
    for (const key of pending.secretResources) this.buildSecret(key);
    pending.secretResources.clear();
    for (const backend of pending.backends) this.buildBackend(backend);
    pending.backends.clear();
    for (const backend of pending.endpoints) this.buildEndpoints(backend);
    pending.endpoints.clear();
  }

  /** setRefs records what an owner (vhost, listener) refers to; newly (un)referenced resources become pending. */
  private setRefs(owner: string, backends: Set<string>, secrets: Set<string>): void {
    this.c.indexes.backendUsers.set(owner, backends, this.backendUseChanged);
    this.c.indexes.secretUsers.set(owner, secrets, this.secretUseChanged);
  }

  private readonly backendUseChanged = (backend: string): void => {
    const { indexes, pending } = this.c;
    const ref = parseBackendName(backend);
    if (indexes.backendUsers.to(backend).size > 0) indexes.backendService.add(backend, `${ref.namespace}/${ref.service}`);
    else indexes.backendService.remove(backend, `${ref.namespace}/${ref.service}`);
    pending.backends.add(backend);
    pending.endpoints.add(backend);
  };

  private readonly secretUseChanged = (secret: string): void => {
    this.c.pending.secretResources.add(secret);
  };

  /** route builds a RouteSpec with its keys in canonical order. */
  private route(frag: IngressFragment, entry: { path: string; match: RouteSpec['match']; backend: BackendRef }, canary?: CanarySplit): RouteSpec {
    const s = frag.settings;
    return {
      backend: backendName(frag.namespace, entry.backend.service, entry.backend.port),
      ...(canary ? { canary } : {}),
      ingress: frag.key,
      loadBalance: s.loadBalance,
      match: entry.match,
      maxBodyBytes: s.maxBodyBytes,
      path: entry.path,
      ...(s.rewriteTarget ? { rewriteTarget: s.rewriteTarget } : {}),
      timeouts: s.timeouts,
      ...(frag.backendTls ? { upstreamTls: upstreamTls(frag) } : {}),
    };
  }

  /** backendTlsSecret records the Secret an Ingress's backend TLS reads, with a problem when it cannot do its part. */
  private backendTlsSecret(frag: IngressFragment, secrets: Set<string>, note: (ing: string, p: Problem) => void): void {
    const tls = frag.backendTls;
    if (!tls?.secret) return;
    const key = `${frag.namespace}/${tls.secret}`;
    secrets.add(key);
    const verdict = this.fragments.secretVerdict(key);
    const field = annotationField('vane.dev/backend-tls-secret');
    const ca = caProblem(verdict);
    if (tls.verify && ca !== null) note(frag.key, warning('BackendTLSSecretInvalid', field, `Secret ${key}: ${ca}; requests to this Ingress's backends fail (502) rather than go unverified`));
    else if (!verdict.ok && !tls.verify) note(frag.key, warning('BackendTLSSecretInvalid', field, `Secret ${key}: ${verdict.message}; requests to this Ingress's backends fail (502)`));
    const pair = pairProblem(verdict);
    if (verdict.ok && pair !== null && pair !== NO_PAIR) note(frag.key, warning('BackendTLSSecretInvalid', field, `Secret ${key}: ${pair}; no client certificate is presented to the backends`));
  }

  /** clientAuth is a host's client certificate authentication from frag, with a problem when its CA cannot verify. */
  private clientAuth(frag: IngressFragment, host: string, secrets: Set<string>, note: (ing: string, p: Problem) => void): ClientAuthSpec {
    const auth = frag.clientAuth!;
    const key = `${frag.namespace}/${auth.secret}`;
    secrets.add(key);
    const ca = caProblem(this.fragments.secretVerdict(key));
    if (ca !== null) {
      note(frag.key, warning('ClientAuthSecretInvalid', annotationField('vane.dev/auth-tls-secret'),
        `Secret ${key}: ${ca}; host "${host}" verifies no client certificate: requests that need one are refused (400)`));
    }
    return { depth: auth.depth, mode: auth.mode, passCertificate: auth.passCertificate, secret: secretName(frag.namespace, auth.secret) };
  }

  /** canarySplit is the split of the oldest valid Canary on this Ingress and stable service, if any. */
  private canarySplit(ingressKey: string, backend: BackendRef): CanarySplit | undefined {
    const keys = this.c.indexes.canaryIngress.to(ingressKey);
    if (keys.size === 0) return undefined; // the common case, answered without allocating an iterator
    let best: CanaryFragment | undefined;
    for (const key of keys) {
      const c = this.fragments.canary(key);
      if (!c || !c.valid || c.service !== backend.service) continue;
      if (!best || ingressOrder(c, best) < 0) best = c;
    }
    if (!best || best.failed) return undefined;
    return {
      backend: backendName(best.namespace, best.canaryService, best.canaryPort ?? backend.port),
      canary: best.key,
      ...(best.cookie ? { cookie: best.cookie } : {}),
      ...(best.header ? { header: best.header } : {}),
      sticky: best.sticky,
      weight: best.weight,
    };
  }

  private buildHost(host: string): void {
    const name = vhostName(host);
    const frags: IngressFragment[] = [];
    for (const key of this.c.indexes.ingressHosts.to(host)) {
      const frag = this.fragments.ingresses.get(key)!;
      if (frag.entries.some((e) => e.host === host)) frags.push(frag);
    }
    frags.sort(ingressOrder);
    const problems = new Map<string, Problem[]>();
    const note = (ing: string, p: Problem) => { const list = problems.get(ing) ?? []; list.push(p); problems.set(ing, list); };
    const claims = new Map<string, Claim>();
    const routes: RouteSpec[] = [];
    const backends = new Set<string>();
    const secrets = new Set<string>();
    let fallback: RouteSpec | undefined;
    let tls: VirtualHostSpec['tls'];
    let passthrough: VirtualHostSpec['passthrough'];
    let clientAuth: VirtualHostSpec['clientAuth'];
    const regexBudget: RegexBudget = { spent: 0, owners: [] };

    for (const frag of frags) {
      const mine: PathEntry[] = frag.entries.filter((e) => e.host === host);
      const wanted = regexInstructions(mine, claims);
      const fits = regexBudget.spent + wanted <= MAX_HOST_PROGRAM_SIZE;
      const refusal = fits ? '' : regexRefusal(host, wanted, regexBudget);
      if (wanted > 0 && fits) { regexBudget.spent += wanted; regexBudget.owners.push(frag.key); }
      for (const entry of mine) {
        const claimKey = `${entry.match} ${entry.path}`;
        const claim = claims.get(claimKey);
        if (claim) { claim.parties.push({ ingress: frag.key, field: entry.field }); continue; }
        if (!fits && entry.match === 'Regex') { note(frag.key, warning('RegexBudgetExceeded', `${entry.field}.path`, refusal)); continue; }
        claims.set(claimKey, { path: entry.path, match: entry.match, parties: [{ ingress: frag.key, field: entry.field }] });
        routes.push(this.route(frag, entry, this.canarySplit(frag.key, entry.backend)));
      }
      if (!fallback && frag.defaultBackend) fallback = this.route(frag, { path: '/', match: 'Prefix', backend: frag.defaultBackend });
      this.backendTlsSecret(frag, secrets, note);
      // SNI names a host, not '*': the oldest Ingress asking for client certificates decides.
      if (!clientAuth && frag.clientAuth && host !== '*') clientAuth = this.clientAuth(frag, host, secrets, note);
      if (!tls && host !== '*') {
        const entry = frag.tls.find((t) => t.hosts.includes(host));
        if (entry) {
          let secret: string | null = null;
          if (entry.secret) {
            const secretKey = `${frag.namespace}/${entry.secret}`;
            secrets.add(secretKey);
            const verdict = this.fragments.secretVerdict(secretKey);
            const problem = pairProblem(verdict);
            if (problem === null) secret = secretName(frag.namespace, entry.secret);
            else note(frag.key, warning('TLSSecretInvalid', `${entry.field}.secretName`, `Secret ${secretKey}: ${problem}; host "${host}" uses the default certificate`));
          }
          const hsts = hstsOf(frag.settings);
          tls = { ...(hsts ? { hsts } : {}), secret, sslRedirect: frag.settings.sslRedirect };
        }
      }
      if (!passthrough && frag.settings.sslPassthrough && host !== '*') {
        const root = mine.find((e) => e.path === '/') ?? mine[0]!;
        passthrough = { backend: backendName(frag.namespace, root.backend.service, root.backend.port), ingress: frag.key };
      }
    }

    for (const claim of claims.values()) if (claim.parties.length > 1) noteConflict(host, claim, note);

    if (frags.length === 0) this.snapshot.drop(name);
    else {
      routes.sort(routeOrder);
      for (const r of routes) { backends.add(r.backend); if (r.canary) backends.add(r.canary.backend); }
      if (fallback) backends.add(fallback.backend);
      if (passthrough) backends.add(passthrough.backend);
      const spec: VirtualHostSpec = {
        ...(clientAuth ? { clientAuth } : {}),
        ...(fallback ? { fallback } : {}),
        host,
        ...(passthrough ? { passthrough } : {}),
        routes,
        ...(tls ? { tls } : {}),
      };
      this.snapshot.put({ type: 'vhost', name, spec });
    }
    this.setRefs(name, backends, secrets);
    if (problems.size) this.hostProblems.set(host, problems); else this.hostProblems.delete(host);
  }

  private buildListener(): void {
    const { options, indexes } = this.c;
    const vane = this.fragments.ingresses;
    const backends = new Set<string>();
    const secrets = new Set<string>();
    const spec: ListenerSpec = { defaultCertificate: null, mergeSlashes: options.mergeSlashes };
    const configured = options.defaultCertificate;
    if (configured) {
      secrets.add(configured);
      if (pairProblem(this.fragments.secretVerdict(configured)) === null) spec.defaultCertificate = secretName(...splitKey(configured));
    }
    if (!spec.defaultCertificate) {
      const oldest = [...indexes.withHostlessTls].map((k) => vane.get(k)!).sort(ingressOrder);
      for (const frag of oldest) {
        const entry = frag.tls.find((t) => t.hosts.length === 0 && t.secret);
        const key = `${frag.namespace}/${entry!.secret}`;
        secrets.add(key);
        if (pairProblem(this.fragments.secretVerdict(key)) === null) { spec.defaultCertificate = secretName(frag.namespace, entry!.secret!); break; }
      }
    }
    const withDefault = [...indexes.withDefaultBackend].map((k) => vane.get(k)!).sort(ingressOrder);
    const first = withDefault[0];
    if (first?.defaultBackend) {
      spec.defaultRoute = this.route(first, { path: '/', match: 'Prefix', backend: first.defaultBackend });
      backends.add(spec.defaultRoute.backend);
      if (first.backendTls?.secret) secrets.add(`${first.namespace}/${first.backendTls.secret}`);
    }
    this.snapshot.put({ type: 'listener', name: LISTENER_NAME, spec: { defaultCertificate: spec.defaultCertificate, ...(spec.defaultRoute ? { defaultRoute: spec.defaultRoute } : {}), mergeSlashes: spec.mergeSlashes } });
    this.setRefs(LISTENER_NAME, backends, secrets);
  }

  private buildSecret(key: string): void {
    const name = secretName(...splitKey(key));
    const verdict = this.fragments.secretVerdict(key);
    if (this.c.indexes.secretUsers.to(key).size > 0 && verdict.ok && verdict.spec) this.snapshot.put({ type: 'secret', name, spec: verdict.spec });
    else this.snapshot.drop(name);
  }

  private buildBackend(name: string): void {
    if (this.c.indexes.backendUsers.to(name).size === 0) { this.snapshot.drop(name); return; }
    const ref = parseBackendName(name);
    const svc = this.c.store.get<Service>('Service', `${ref.namespace}/${ref.service}`);
    const port = svc ? servicePort(svc, ref.port) : undefined;
    const protocol: BackendSpec['protocol'] = port?.appProtocol === 'https' || port?.name === 'https' ? 'https' : 'http';
    const external = svc?.spec?.type === 'ExternalName' && typeof svc.spec.externalName === 'string' ? svc.spec.externalName : undefined;
    const externalPort = external ? (typeof ref.port === 'number' ? ref.port : port?.port) : undefined;
    const spec: BackendSpec = {
      ...(external ? { externalName: external } : {}),
      ...(externalPort ? { externalPort } : {}),
      namespace: ref.namespace,
      port: ref.port,
      protocol,
      service: ref.service,
    };
    this.snapshot.put({ type: 'backend', name, spec });
  }

  private buildEndpoints(backend: string): void {
    const { store, indexes } = this.c;
    const name = endpointsName(backend);
    const ref = parseBackendName(backend);
    const svcKey = `${ref.namespace}/${ref.service}`;
    const svc = store.get<Service>('Service', svcKey);
    if (indexes.backendUsers.to(backend).size === 0 || svc?.spec?.type === 'ExternalName') { this.snapshot.drop(name); return; }
    const addresses: EndpointAddress[] = [];
    const port = svc ? servicePort(svc, ref.port) : undefined;
    if (port) {
      const portName = port.name ?? '';
      const seen = new Set<string>();
      for (const sliceKey of indexes.sliceService.to(svcKey)) {
        const slice = store.get<EndpointSlice>('EndpointSlice', sliceKey);
        if (!slice || (slice.addressType && slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6')) continue;
        const sp = (Array.isArray(slice.ports) ? slice.ports : []).find((p) => (p?.name ?? '') === portName);
        const targetPort = sp?.port ?? (typeof port.targetPort === 'number' ? port.targetPort : undefined);
        if (!targetPort || !Number.isInteger(targetPort)) continue;
        for (const ep of Array.isArray(slice.endpoints) ? slice.endpoints : []) {
          const ready = ep?.conditions?.ready ?? true;
          const serving = ep?.conditions?.serving ?? ready;
          const terminating = ep?.conditions?.terminating ?? false;
          for (const address of Array.isArray(ep?.addresses) ? ep.addresses : []) {
            if (typeof address !== 'string') continue;
            const id = `${address} ${targetPort}`;
            if (seen.has(id)) continue;
            seen.add(id);
            const a: EndpointAddress = { address, port: targetPort, ready: ready === true, serving: serving === true, terminating: terminating === true };
            if (typeof ep.zone === 'string') a.zone = ep.zone;
            addresses.push(a);
          }
        }
      }
    }
    addresses.sort((a, b) => byText(a.address, b.address) || a.port - b.port);
    this.snapshot.put({ type: 'endpoints', name, spec: { addresses, backend } });
  }
}

/** RegexBudget: what the regex routes admitted so far on a host spend of MAX_HOST_PROGRAM_SIZE, and whose they are (oldest first). */
interface RegexBudget { spent: number; owners: string[] }

/** regexInstructions is what an Ingress's regex paths on a host would add to its budget: those not already claimed. */
function regexInstructions(entries: readonly PathEntry[], claims: ReadonlyMap<string, Claim>): number {
  let sum = 0;
  for (const e of entries) if (e.instructions !== undefined && !claims.has(`${e.match} ${e.path}`)) sum += e.instructions;
  return sum;
}

function regexRefusal(host: string, wanted: number, budget: RegexBudget): string {
  // The verdict first: the webhook's warnings are cut at 256 characters, and the list of Ingresses has no bound.
  return `not served: the regex paths of this Ingress on host "${host}" need ${wanted} RE2 instructions, older Ingresses' there use ${budget.spent} of the host's ${MAX_HOST_PROGRAM_SIZE}; its other paths are served. Older Ingresses: ${budget.owners.join(', ')}`;
}

/**
 * noteConflict marks every party to one host + path claimed by several Ingresses, as Contour
 * does: the winner too, so the team that owns it learns someone else claims its path. Each
 * message names all parties, sorted.
 */
function noteConflict(host: string, claim: Claim, note: (ingress: string, p: Problem) => void): void {
  const what = `host "${host}" path "${claim.path}" (${claim.match})`;
  const names = claim.parties.map((p) => p.ingress).sort(byText).join(', ');
  const winner = claim.parties[0]!;
  for (const party of claim.parties) {
    note(party.ingress, warning('HostConflict', party.field, party === winner
      ? `${what} is claimed by Ingresses ${names}; this one is the oldest and serves it`
      : `${what} is claimed by Ingresses ${names}; it is already served by Ingress ${winner.ingress} (${winner.field}), which is older; this path is ignored`));
  }
}

const NO_PAIR = 'Secret lacks tls.crt or tls.key';

/** upstreamTls is a route's UpstreamTlsSpec, keys in canonical order. */
function upstreamTls(frag: IngressFragment): UpstreamTlsSpec {
  const tls = frag.backendTls!;
  return {
    ...(tls.secret ? { secret: secretName(frag.namespace, tls.secret) } : {}),
    ...(tls.serverName ? { serverName: tls.serverName } : {}),
    verify: tls.verify,
  };
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

/** parseBackendName inverts backendName(): `backend/ns/svc:port`. */
function parseBackendName(name: string): { namespace: string; service: string; port: number | string } {
  const rest = name.slice('backend/'.length);
  const slash = rest.indexOf('/');
  const colon = rest.lastIndexOf(':');
  const portText = rest.slice(colon + 1);
  return {
    namespace: rest.slice(0, slash),
    service: rest.slice(slash + 1, colon),
    port: /^\d+$/.test(portText) ? Number(portText) : portText,
  };
}

function servicePort(svc: Service, port: number | string) {
  const ports = Array.isArray(svc.spec?.ports) ? svc.spec!.ports! : [];
  return ports.find((p) => (typeof port === 'number' ? p?.port === port : p?.name === port));
}
