/**
 * compile(): Kubernetes objects → hashed routing resources + per-object statuses.
 *
 * The Compiler keeps the objects it was given and memoised per-object fragments (keyed by
 * uid + resourceVersion, or object identity when those are absent), and on build() rebuilds
 * only the resources an object change can reach: the virtual hosts of an Ingress's hosts,
 * the backends and endpoints of a Service, and so on. A full compile is a fresh Compiler
 * given every object; the property test in tests/unit/core/compile-incremental.test.ts holds
 * the incremental path to exactly that.
 */
import {
  kindOf, objectKey, memoKey, INGRESS_CONTROLLER, DEFAULT_CLASS_ANNOTATION, LEGACY_CLASS_ANNOTATION,
  SERVICE_NAME_LABEL,
  type KubeObject, type ObjectKind, type Ingress, type IngressClass, type Service, type EndpointSlice, type Secret, type Canary,
} from './objects.ts';
import {
  LISTENER_NAME, vhostName, backendName, endpointsName, secretName,
  type Resource, type HashedResource, type RouteSpec, type VirtualHostSpec, type BackendSpec, type EndpointAddress,
  type ListenerSpec, type CanarySplit,
} from './resources.ts';
import { parseIngress, ingressOrder, type IngressFragment, type PathEntry, type BackendRef } from './ingress.ts';
import { parseCanary, type CanaryFragment } from './canary.ts';
import { checkTlsSecretMetadata, readTlsSecret, type SecretVerdict } from './secrets.ts';
import { hashOrdered, RootAccumulator } from './canonical.ts';
import { warning, sortProblems, type Problem } from './problems.ts';

/** COMPILER_VERSION is part of the root hash: a compiler change is a content change. */
export const COMPILER_VERSION = 'vane-compiler/1';

export interface CompileOptions {
  /** Name of Vane's IngressClass; Ingresses naming it are Vane's even before the IngressClass exists. */
  ingressClass?: string;
  /** spec.controller value that marks an IngressClass as Vane's. */
  controller?: string;
  /** `namespace/name` of a TLS Secret that overrides every other default certificate. */
  defaultCertificate?: string;
  /** Merge runs of `/` in request paths before matching (default true). */
  mergeSlashes?: boolean;
  /**
   * The Secrets given are metadata only (the admission webhook's cache never holds keys): a TLS
   * Secret counts as usable when it exists with type kubernetes.io/tls; its certificate and key
   * are not checked and no secret resources are produced. For verdicts, never for serving.
   */
  secretsMetadataOnly?: boolean;
}

export interface ObjectStatus {
  kind: 'Ingress' | 'Canary';
  key: string;
  problems: Problem[];
}

export interface CompileResult {
  /** Every resource by name. A live, read-only view: the next build() changes it. */
  resources: ReadonlyMap<string, HashedResource>;
  root: string;
  /** Statuses of Vane's Ingresses and of every Canary, by `Kind/namespace/name`. Live view, as resources. */
  statuses: ReadonlyMap<string, ObjectStatus>;
  /** Names upserted and removed since the previous build(). */
  changed: { upserts: string[]; removals: string[] };
}

interface Memo<F> { memo: unknown; frag: F }

function memoOf(obj: KubeObject): unknown {
  return memoKey(obj) ?? obj;
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (!set) { set = new Set(); map.set(key, set); }
  set.add(value);
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}

function byText(a: string, b: string): number { return a < b ? -1 : a > b ? 1 : 0; }

const MATCH_RANK = { Exact: 0, Prefix: 1, Regex: 2 } as const;

function routeOrder(a: RouteSpec, b: RouteSpec): number {
  return MATCH_RANK[a.match] - MATCH_RANK[b.match] || b.path.length - a.path.length || byText(a.path, b.path);
}

export class Compiler {
  private readonly options: Required<Omit<CompileOptions, 'defaultCertificate'>> & { defaultCertificate: string | null };
  private readonly objects: Record<ObjectKind, Map<string, KubeObject>> = {
    Ingress: new Map(), IngressClass: new Map(), Service: new Map(), EndpointSlice: new Map(), Secret: new Map(), Canary: new Map(),
  };

  private readonly ingressMemo = new Map<string, Memo<IngressFragment>>();
  private readonly canaryMemo = new Map<string, Memo<CanaryFragment>>();
  private readonly secretMemo = new Map<string, Memo<SecretVerdict>>();
  /** Ingress keys that are Vane's (by class) and currently compiled in. */
  private readonly ours = new Map<string, IngressFragment>();
  private readonly hostIngresses = new Map<string, Set<string>>();
  private readonly canariesByIngress = new Map<string, Set<string>>();
  private readonly slicesByService = new Map<string, Set<string>>();
  /** Which Ingresses and Canaries name a Service (`namespace/name`): their statuses say whether it exists. */
  private readonly ingressesByService = new Map<string, Set<string>>();
  private readonly canariesByService = new Map<string, Set<string>>();
  /** Which backends, secrets and hosts each resource owner (vhost, listener) refers to. */
  private readonly backendRefs = new Map<string, Set<string>>();
  private readonly backendUsers = new Map<string, Set<string>>();
  private readonly backendsByService = new Map<string, Set<string>>();
  private readonly secretUsers = new Map<string, Set<string>>();
  private readonly secretRefs = new Map<string, Set<string>>();
  /** Problems a host's build found for each Ingress (conflicts lost, TLS Secret trouble). */
  private readonly hostProblems = new Map<string, Map<string, Problem[]>>();
  private readonly withDefaultBackend = new Set<string>();
  private readonly withHostlessTls = new Set<string>();

  private readonly resources = new Map<string, HashedResource>();
  private readonly statuses = new Map<string, ObjectStatus>();
  private readonly root = new RootAccumulator(COMPILER_VERSION);
  /** Hash each resource had before its first change in this build (null: it did not exist). */
  private changes = new Map<string, string | null>();

  private classesDirty = true;
  private listenerDirty = true;
  private readonly dirtyIngresses = new Set<string>();
  private readonly dirtyCanaries = new Set<string>();
  private readonly dirtyHosts = new Set<string>();
  private readonly dirtyBackends = new Set<string>();
  private readonly dirtyEndpoints = new Set<string>();
  private readonly dirtySecrets = new Set<string>();
  private readonly dirtyServices = new Set<string>();

  constructor(options: CompileOptions = {}) {
    this.options = {
      ingressClass: options.ingressClass ?? 'vane',
      controller: options.controller ?? INGRESS_CONTROLLER,
      defaultCertificate: options.defaultCertificate ?? null,
      mergeSlashes: options.mergeSlashes ?? true,
      secretsMetadataOnly: options.secretsMetadataOnly ?? false,
    };
  }

  private readSecret(obj: KubeObject): SecretVerdict {
    return this.options.secretsMetadataOnly ? checkTlsSecretMetadata(obj as Secret) : readTlsSecret(obj as Secret);
  }

  /** set adds or replaces an object; objects of kinds compile() does not read are ignored. */
  set(obj: KubeObject): void {
    const kind = kindOf(obj);
    if (!kind) return;
    const key = objectKey(kind, obj);
    const previous = this.objects[kind].get(key);
    if (previous === obj) return;
    this.objects[kind].set(key, obj);
    this.touch(kind, key, previous, obj);
  }

  /** delete removes an object by kind and key (`namespace/name`); unknown keys are a no-op. */
  delete(kind: ObjectKind, key: string): void {
    const previous = this.objects[kind].get(key);
    if (!previous) return;
    this.objects[kind].delete(key);
    this.touch(kind, key, previous, undefined);
  }

  private touch(kind: ObjectKind, key: string, previous: KubeObject | undefined, next: KubeObject | undefined): void {
    switch (kind) {
      case 'Ingress': this.dirtyIngresses.add(key); break;
      case 'IngressClass': this.classesDirty = true; break;
      case 'Canary': this.dirtyCanaries.add(key); break;
      case 'Secret': this.dirtySecrets.add(key); break;
      case 'Service': this.dirtyServices.add(key); break;
      case 'EndpointSlice': {
        const ns = key.slice(0, key.indexOf('/'));
        const before = previous?.metadata?.labels?.[SERVICE_NAME_LABEL];
        const after = next?.metadata?.labels?.[SERVICE_NAME_LABEL];
        if (before) { removeFrom(this.slicesByService, `${ns}/${before}`, key); this.markEndpoints(`${ns}/${before}`); }
        if (after) { addTo(this.slicesByService, `${ns}/${after}`, key); this.markEndpoints(`${ns}/${after}`); }
        break;
      }
    }
  }

  private markEndpoints(serviceKey: string): void {
    for (const b of this.backendsByService.get(serviceKey) ?? []) this.dirtyEndpoints.add(b);
  }

  /** build brings resources and statuses up to date with every set()/delete() so far. */
  build(): CompileResult {
    const statusIngresses = new Set<string>();
    const statusCanaries = new Set<string>(this.dirtyCanaries);

    if (this.classesDirty) {
      this.classesDirty = false;
      for (const key of this.objects.Ingress.keys()) this.dirtyIngresses.add(key);
      for (const key of this.ours.keys()) this.dirtyIngresses.add(key);
    }

    for (const key of this.dirtyIngresses) {
      this.refreshIngress(key);
      statusIngresses.add(key);
      for (const c of this.canariesByIngress.get(key) ?? []) statusCanaries.add(c);
    }
    this.dirtyIngresses.clear();

    for (const key of this.dirtyCanaries) {
      // Siblings on the same Ingress may win or lose a conflict because of this one.
      for (const ingKey of this.refreshCanary(key)) for (const c of this.canariesByIngress.get(ingKey) ?? []) statusCanaries.add(c);
    }
    this.dirtyCanaries.clear();

    for (const key of this.dirtySecrets) {
      const obj = this.objects.Secret.get(key);
      const m = this.secretMemo.get(key);
      if (!obj) this.secretMemo.delete(key);
      else if (!m || m.memo !== memoOf(obj)) this.secretMemo.set(key, { memo: memoOf(obj), frag: this.readSecret(obj) });
      for (const owner of this.secretUsers.get(key) ?? []) this.dirtyOwner(owner);
      if (this.secretUsers.has(key)) this.secretUsageChanged(key);
      if (key === this.options.defaultCertificate) this.listenerDirty = true;
    }
    this.dirtySecrets.clear();

    for (const svc of this.dirtyServices) {
      for (const b of this.backendsByService.get(svc) ?? []) { this.dirtyBackends.add(b); this.dirtyEndpoints.add(b); }
      for (const ing of this.ingressesByService.get(svc) ?? []) statusIngresses.add(ing);
      for (const c of this.canariesByService.get(svc) ?? []) statusCanaries.add(c);
    }
    this.dirtyServices.clear();

    for (const host of this.dirtyHosts) {
      for (const ing of this.hostIngresses.get(host) ?? []) statusIngresses.add(ing);
      for (const ing of this.hostProblems.get(host)?.keys() ?? []) statusIngresses.add(ing);
      this.buildHost(host);
      for (const ing of this.hostProblems.get(host)?.keys() ?? []) statusIngresses.add(ing);
    }
    this.dirtyHosts.clear();

    if (this.listenerDirty) { this.listenerDirty = false; this.buildListener(); }

    for (const b of this.dirtyBackends) this.buildBackend(b);
    this.dirtyBackends.clear();
    for (const b of this.dirtyEndpoints) this.buildEndpoints(b);
    this.dirtyEndpoints.clear();

    for (const key of statusIngresses) this.ingressStatus(key);
    for (const key of statusCanaries) this.canaryStatus(key);

    const upserts: string[] = [];
    const removals: string[] = [];
    for (const [name, before] of this.changes) {
      const now = this.resources.get(name);
      if (now && now.hash !== before) upserts.push(name);
      else if (!now && before !== null) removals.push(name);
    }
    this.changes = new Map();
    return {
      resources: this.resources,
      root: this.root.root(),
      statuses: this.statuses,
      changed: { upserts: upserts.sort(), removals: removals.sort() },
    };
  }

  private dirtyOwner(owner: string): void {
    if (owner === LISTENER_NAME) this.listenerDirty = true;
    else this.dirtyHosts.add(owner.slice('vhost/'.length));
  }

  // ---- class membership -------------------------------------------------------------

  private isOurs(ing: Ingress): boolean {
    const className = ing.spec?.ingressClassName ?? ing.metadata?.annotations?.[LEGACY_CLASS_ANNOTATION];
    if (typeof className === 'string' && className !== '') {
      if (className === this.options.ingressClass) return true;
      const cls = this.objects.IngressClass.get(className) as IngressClass | undefined;
      return cls?.spec?.controller === this.options.controller;
    }
    for (const cls of this.objects.IngressClass.values()) {
      const c = cls as IngressClass;
      if (c.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true' && c.spec?.controller === this.options.controller) return true;
    }
    return false;
  }

  // ---- per-object refresh -----------------------------------------------------------

  private refreshIngress(key: string): void {
    const obj = this.objects.Ingress.get(key) as Ingress | undefined;
    const old = this.ours.get(key);
    let frag: IngressFragment | undefined;
    if (obj && this.isOurs(obj)) {
      const m = this.ingressMemo.get(key);
      if (m && m.memo === memoOf(obj)) frag = m.frag;
      else {
        frag = parseIngress(obj);
        this.ingressMemo.set(key, { memo: memoOf(obj), frag });
      }
    } else {
      this.ingressMemo.delete(key);
    }
    if (old === frag) return;
    if (old) {
      for (const svc of servicesOf(old)) removeFrom(this.ingressesByService, svc, key);
      for (const host of hostsOf(old)) { removeFrom(this.hostIngresses, host, key); this.dirtyHosts.add(host); }
      if (old.defaultBackend || old.tls.some((t) => t.hosts.length === 0)) this.listenerDirty = true;
      this.withDefaultBackend.delete(key);
      this.withHostlessTls.delete(key);
    }
    if (frag) {
      this.ours.set(key, frag);
      for (const svc of servicesOf(frag)) addTo(this.ingressesByService, svc, key);
      for (const host of hostsOf(frag)) { addTo(this.hostIngresses, host, key); this.dirtyHosts.add(host); }
      if (frag.defaultBackend) { this.withDefaultBackend.add(key); this.listenerDirty = true; }
      if (frag.tls.some((t) => t.hosts.length === 0 && t.secret)) { this.withHostlessTls.add(key); this.listenerDirty = true; }
    } else {
      this.ours.delete(key);
      this.statuses.delete(`Ingress/${key}`);
    }
  }

  /** refreshCanary re-reads one Canary and returns the Ingress keys it was or is attached to. */
  private refreshCanary(key: string): string[] {
    const obj = this.objects.Canary.get(key) as Canary | undefined;
    const old = this.canaryMemo.get(key)?.frag;
    let frag: CanaryFragment | undefined;
    if (obj) {
      const m = this.canaryMemo.get(key);
      frag = m && m.memo === memoOf(obj) ? m.frag : parseCanary(obj);
      this.canaryMemo.set(key, { memo: memoOf(obj), frag });
    } else {
      this.canaryMemo.delete(key);
      this.statuses.delete(`Canary/${key}`);
    }
    const touched: string[] = [];
    if (old === frag) return touched;
    for (const f of [old, frag]) {
      if (!f) continue;
      const ingKey = `${f.namespace}/${f.ingress}`;
      touched.push(ingKey);
      const services = [`${f.namespace}/${f.service}`, `${f.namespace}/${f.canaryService}`];
      if (f === old) {
        removeFrom(this.canariesByIngress, ingKey, key);
        for (const svc of services) removeFrom(this.canariesByService, svc, key);
      } else {
        addTo(this.canariesByIngress, ingKey, key);
        for (const svc of services) addTo(this.canariesByService, svc, key);
      }
      const ing = this.ours.get(ingKey);
      if (ing) for (const host of hostsOf(ing)) this.dirtyHosts.add(host);
    }
    return touched;
  }

  // ---- resources --------------------------------------------------------------------

  private put(input: Resource): void {
    // Every resource is built with its keys in canonical order, so hashing skips the
    // canonicaliser (core/canonical.ts, hashOrdered; held to it by a property test).
    const resource = { name: input.name, spec: input.spec, type: input.type } as Resource;
    const hash = hashOrdered(resource);
    const old = this.resources.get(resource.name);
    if (old?.hash === hash) return;
    if (!this.changes.has(resource.name)) this.changes.set(resource.name, old?.hash ?? null);
    if (old) this.root.remove(resource.name, old.hash);
    this.root.add(resource.name, hash);
    this.resources.set(resource.name, { resource, hash });
  }

  private drop(name: string): void {
    const old = this.resources.get(name);
    if (!old) return;
    if (!this.changes.has(name)) this.changes.set(name, old.hash);
    this.root.remove(name, old.hash);
    this.resources.delete(name);
  }

  /** setRefs records what an owner refers to and marks newly (un)referenced backends and secrets. */
  private setRefs(owner: string, backends: Set<string>, secrets: Set<string>): void {
    const oldBackends = this.backendRefs.get(owner) ?? new Set<string>();
    for (const b of oldBackends) if (!backends.has(b)) { removeFrom(this.backendUsers, b, owner); this.backendUsageChanged(b); }
    for (const b of backends) if (!oldBackends.has(b)) { addTo(this.backendUsers, b, owner); this.backendUsageChanged(b); }
    if (backends.size) this.backendRefs.set(owner, backends); else this.backendRefs.delete(owner);

    const oldSecrets = this.secretRefs.get(owner) ?? new Set<string>();
    for (const s of oldSecrets) if (!secrets.has(s)) { removeFrom(this.secretUsers, s, owner); this.secretUsageChanged(s); }
    for (const s of secrets) if (!oldSecrets.has(s)) { addTo(this.secretUsers, s, owner); this.secretUsageChanged(s); }
    if (secrets.size) this.secretRefs.set(owner, secrets); else this.secretRefs.delete(owner);
  }

  private backendUsageChanged(name: string): void {
    const spec = parseBackendName(name);
    const svcKey = `${spec.namespace}/${spec.service}`;
    if (this.backendUsers.has(name)) addTo(this.backendsByService, svcKey, name);
    else removeFrom(this.backendsByService, svcKey, name);
    this.dirtyBackends.add(name);
    this.dirtyEndpoints.add(name);
  }

  private secretUsageChanged(key: string): void {
    const name = secretName(...splitKey(key));
    const verdict = this.secretVerdict(key);
    if (this.secretUsers.has(key) && verdict.ok && verdict.spec) this.put({ type: 'secret', name, spec: verdict.spec });
    else this.drop(name);
  }

  private secretVerdict(key: string): SecretVerdict {
    let m = this.secretMemo.get(key);
    const obj = this.objects.Secret.get(key);
    if (!obj) return { ok: false, message: 'Secret not found' };
    if (!m || m.memo !== memoOf(obj)) {
      m = { memo: memoOf(obj), frag: this.readSecret(obj) };
      this.secretMemo.set(key, m);
    }
    return m.frag;
  }

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
    };
  }

  private canarySplit(ingressKey: string, backend: BackendRef): CanarySplit | undefined {
    const keys = this.canariesByIngress.get(ingressKey);
    if (!keys) return undefined;
    let best: CanaryFragment | undefined;
    for (const key of keys) {
      const c = this.canaryMemo.get(key)?.frag;
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
    const keys = [...(this.hostIngresses.get(host) ?? [])];
    const frags = keys.map((k) => this.ours.get(k)!).sort(ingressOrder);
    const problems = new Map<string, Problem[]>();
    const note = (ing: string, p: Problem) => { const list = problems.get(ing) ?? []; list.push(p); problems.set(ing, list); };
    const claimed = new Map<string, { ingress: string; field: string }>();
    const routes: RouteSpec[] = [];
    const backends = new Set<string>();
    const secrets = new Set<string>();
    let fallback: RouteSpec | undefined;
    let tls: VirtualHostSpec['tls'];
    let passthrough: VirtualHostSpec['passthrough'];

    for (const frag of frags) {
      const mine: PathEntry[] = frag.entries.filter((e) => e.host === host);
      for (const entry of mine) {
        const claimKey = `${entry.match} ${entry.path}`;
        const winner = claimed.get(claimKey);
        if (winner) {
          note(frag.key, warning('HostConflict', entry.field,
            `host "${host}" path "${entry.path}" (${entry.match}) is already served by Ingress ${winner.ingress} (${winner.field}), which is older; this path is ignored`));
          continue;
        }
        claimed.set(claimKey, { ingress: frag.key, field: entry.field });
        routes.push(this.route(frag, entry, this.canarySplit(frag.key, entry.backend)));
      }
      if (!fallback && frag.defaultBackend && mine.length > 0) fallback = this.route(frag, { path: '/', match: 'Prefix', backend: frag.defaultBackend });
      if (!tls && host !== '*') {
        const entry = frag.tls.find((t) => t.hosts.includes(host));
        if (entry) {
          let secret: string | null = null;
          if (entry.secret) {
            const secretKey = `${frag.namespace}/${entry.secret}`;
            secrets.add(secretKey);
            const verdict = this.secretVerdict(secretKey);
            if (verdict.ok) secret = secretName(frag.namespace, entry.secret);
            else note(frag.key, warning('TLSSecretInvalid', `${entry.field}.secretName`, `Secret ${secretKey}: ${verdict.message}; host "${host}" uses the default certificate`));
          }
          tls = { secret, sslRedirect: frag.settings.sslRedirect };
        }
      }
      if (!passthrough && frag.settings.sslPassthrough && host !== '*' && mine.length > 0) {
        const root = mine.find((e) => e.path === '/') ?? mine[0]!;
        passthrough = { backend: backendName(frag.namespace, root.backend.service, root.backend.port), ingress: frag.key };
      }
    }

    if (frags.length === 0) this.drop(name);
    else {
      routes.sort(routeOrder);
      for (const r of routes) { backends.add(r.backend); if (r.canary) backends.add(r.canary.backend); }
      if (fallback) backends.add(fallback.backend);
      if (passthrough) backends.add(passthrough.backend);
      const spec: VirtualHostSpec = {
        ...(fallback ? { fallback } : {}),
        host,
        ...(passthrough ? { passthrough } : {}),
        routes,
        ...(tls ? { tls } : {}),
      };
      this.put({ type: 'vhost', name, spec });
    }
    this.setRefs(name, backends, secrets);
    if (problems.size) this.hostProblems.set(host, problems); else this.hostProblems.delete(host);
  }

  private buildListener(): void {
    const backends = new Set<string>();
    const secrets = new Set<string>();
    const spec: ListenerSpec = { defaultCertificate: null, mergeSlashes: this.options.mergeSlashes };
    const configured = this.options.defaultCertificate;
    if (configured) {
      secrets.add(configured);
      if (this.secretVerdict(configured).ok) spec.defaultCertificate = secretName(...splitKey(configured));
    }
    if (!spec.defaultCertificate) {
      const oldest = [...this.withHostlessTls].map((k) => this.ours.get(k)!).sort(ingressOrder);
      for (const frag of oldest) {
        const entry = frag.tls.find((t) => t.hosts.length === 0 && t.secret);
        const key = `${frag.namespace}/${entry!.secret}`;
        secrets.add(key);
        if (this.secretVerdict(key).ok) { spec.defaultCertificate = secretName(frag.namespace, entry!.secret!); break; }
      }
    }
    const withDefault = [...this.withDefaultBackend].map((k) => this.ours.get(k)!).sort(ingressOrder);
    const first = withDefault[0];
    if (first?.defaultBackend) {
      spec.defaultRoute = this.route(first, { path: '/', match: 'Prefix', backend: first.defaultBackend });
      backends.add(spec.defaultRoute.backend);
    }
    this.put({ type: 'listener', name: LISTENER_NAME, spec: { defaultCertificate: spec.defaultCertificate, ...(spec.defaultRoute ? { defaultRoute: spec.defaultRoute } : {}), mergeSlashes: spec.mergeSlashes } });
    this.setRefs(LISTENER_NAME, backends, secrets);
  }

  private buildBackend(name: string): void {
    if (!this.backendUsers.has(name)) { this.drop(name); return; }
    const ref = parseBackendName(name);
    const svc = this.objects.Service.get(`${ref.namespace}/${ref.service}`) as Service | undefined;
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
    this.put({ type: 'backend', name, spec });
  }

  private buildEndpoints(backend: string): void {
    const name = endpointsName(backend);
    const ref = parseBackendName(backend);
    const svcKey = `${ref.namespace}/${ref.service}`;
    const svc = this.objects.Service.get(svcKey) as Service | undefined;
    if (!this.backendUsers.has(backend) || svc?.spec?.type === 'ExternalName') { this.drop(name); return; }
    const addresses: EndpointAddress[] = [];
    const port = svc ? servicePort(svc, ref.port) : undefined;
    if (port) {
      const portName = port.name ?? '';
      const seen = new Set<string>();
      for (const sliceKey of this.slicesByService.get(svcKey) ?? []) {
        const slice = this.objects.EndpointSlice.get(sliceKey) as EndpointSlice | undefined;
        if (!slice || (slice.addressType && slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6')) continue;
        const sp = (Array.isArray(slice.ports) ? slice.ports : []).find((p) => (p?.name ?? '') === portName);
        const targetPort = sp?.port ?? (typeof port.targetPort === 'number' ? port.targetPort : undefined);
        if (!targetPort || !Number.isInteger(targetPort)) continue;
        for (const ep of Array.isArray(slice.endpoints) ? slice.endpoints : []) {
          const ready = ep?.conditions?.ready ?? true;
          const serving = ep?.conditions?.serving ?? ready;
          const terminating = ep?.conditions?.terminating ?? false;
          for (const address of Array.isArray(ep?.addresses) ? ep.addresses : []) {
            if (typeof address !== 'string' || seen.has(`${address} ${targetPort}`)) continue;
            seen.add(`${address} ${targetPort}`);
            const a: EndpointAddress = { address, port: targetPort, ready: ready === true, serving: serving === true, terminating: terminating === true };
            if (typeof ep.zone === 'string') a.zone = ep.zone;
            addresses.push(a);
          }
        }
      }
    }
    addresses.sort((a, b) => byText(a.address, b.address) || a.port - b.port);
    this.put({ type: 'endpoints', name, spec: { addresses, backend } });
  }

  // ---- statuses ---------------------------------------------------------------------

  private ingressStatus(key: string): void {
    const frag = this.ours.get(key);
    if (!frag) { this.statuses.delete(`Ingress/${key}`); return; }
    const problems = [...frag.problems];
    for (const host of hostsOf(frag)) for (const p of this.hostProblems.get(host)?.get(key) ?? []) problems.push(p);
    const refs = new Map<string, string>();
    for (const e of frag.entries) if (!refs.has(e.backend.service)) refs.set(e.backend.service, `${e.field}.backend.service.name`);
    if (frag.defaultBackend && !refs.has(frag.defaultBackend.service)) refs.set(frag.defaultBackend.service, 'spec.defaultBackend.service.name');
    for (const [service, field] of refs) {
      if (!this.objects.Service.has(`${frag.namespace}/${service}`)) {
        problems.push(warning('ServiceNotFound', field, `Service ${frag.namespace}/${service} not found; its routes answer 503 until it exists`));
      }
    }
    this.statuses.set(`Ingress/${key}`, { kind: 'Ingress', key, problems: sortProblems(dedupe(problems)) });
  }

  private canaryStatus(key: string): void {
    const frag = this.canaryMemo.get(key)?.frag;
    if (!frag) { this.statuses.delete(`Canary/${key}`); return; }
    const problems = [...frag.problems];
    if (frag.valid) {
      const ingKey = `${frag.namespace}/${frag.ingress}`;
      const ing = this.ours.get(ingKey);
      if (!this.objects.Ingress.has(ingKey)) problems.push(warning('IngressNotFound', 'spec.ingressRef.name', `Ingress ${ingKey} not found; the canary routes nothing until it exists`));
      else if (!ing) problems.push(warning('IngressNotServed', 'spec.ingressRef.name', `Ingress ${ingKey} is not of Vane's IngressClass`));
      else if (!ing.entries.some((e) => e.backend.service === frag.service)) {
        problems.push(warning('NoMatchingRoute', 'spec.service', `Ingress ${ingKey} has no route to Service ${frag.service}; the canary splits nothing`));
      }
      if (!this.objects.Service.has(`${frag.namespace}/${frag.canaryService}`)) {
        problems.push(warning('ServiceNotFound', 'spec.canaryService.name', `Service ${frag.namespace}/${frag.canaryService} not found; canary requests answer 503`));
      }
      for (const other of this.canariesByIngress.get(ingKey) ?? []) {
        const o = this.canaryMemo.get(other)?.frag;
        if (o && o !== frag && o.valid && o.service === frag.service && ingressOrder(o, frag) < 0) {
          problems.push(warning('CanaryConflict', 'spec.service', `Canary ${o.key} already splits Service ${frag.service} on Ingress ${ingKey}; this one is ignored`));
        }
      }
    }
    this.statuses.set(`Canary/${key}`, { kind: 'Canary', key, problems: sortProblems(problems) });
  }
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.severity} ${p.reason} ${p.field} ${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function hostsOf(frag: IngressFragment): Set<string> {
  const hosts = new Set<string>();
  for (const e of frag.entries) hosts.add(e.host);
  return hosts;
}

function servicesOf(frag: IngressFragment): Set<string> {
  const services = new Set<string>();
  for (const e of frag.entries) services.add(`${frag.namespace}/${e.backend.service}`);
  if (frag.defaultBackend) services.add(`${frag.namespace}/${frag.defaultBackend.service}`);
  return services;
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

/** compile is the whole pipeline in one call: a fresh Compiler given every object. */
export function compile(objects: Iterable<KubeObject>, options: CompileOptions = {}): CompileResult {
  const compiler = new Compiler(options);
  for (const obj of objects) compiler.set(obj);
  const result = compiler.build();
  return { ...result, resources: new Map(result.resources), statuses: new Map(result.statuses) };
}

