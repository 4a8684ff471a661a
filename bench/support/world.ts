/**
 * A synthetic but realistic cluster for benchmarks: Ingresses with several paths each,
 * wildcard and exact hosts, mixed pathTypes, TLS on a share of hosts, canaries on a share
 * of services, and EndpointSlices with several endpoints. Deterministic for a given size.
 */
import type { KubeObject } from '../../core/index.ts';

export interface WorldSize {
  ingresses: number;
  pathsPerIngress: number;
  endpointsPerService: number;
  /** Share of Ingresses with TLS (0–1). */
  tlsShare?: number;
  /** Share of Ingresses with a canary on their first service (0–1). */
  canaryShare?: number;
  /** A real certificate and key for the TLS Secrets (one pair shared by all). */
  tls?: { cert: string; key: string };
}

export interface World {
  objects: KubeObject[];
  /** The i-th Ingress with one path changed: what "change one Ingress" sends. */
  changedIngress: (i: number, revision: number) => KubeObject;
  /** The i-th service's EndpointSlice with one endpoint changed. */
  changedSlice: (i: number, revision: number) => KubeObject;
  hosts: string[];
  paths: string[][];
}

/** obj types a literal as an object compile() reads; the literals here are well-formed by construction. */
function obj(literal: Record<string, unknown>): KubeObject {
  return literal as KubeObject;
}

export function namespaceOfIndex(i: number): string { return `team-${i % 50}`; }

function ingressObject(i: number, size: WorldSize, revision: number): KubeObject {
  const ns = namespaceOfIndex(i);
  const host = i % 10 === 0 ? `*.wild-${i}.example.com` : `app-${i}.example.com`;
  const paths = [];
  for (let p = 0; p < size.pathsPerIngress; p++) {
    const path = p === 0 ? '/' : `/api/v${p}/items${p === 1 && revision > 0 ? `-r${revision}` : ''}`;
    paths.push({
      path,
      pathType: p % 3 === 2 ? 'Exact' : 'Prefix',
      backend: { service: { name: `svc-${i}-${p % 2}`, port: { number: 80 } } },
    });
  }
  const tls = (i % 100) / 100 < (size.tlsShare ?? 0.2) ? [{ hosts: [host], secretName: `tls-${i}` }] : undefined;
  return obj({
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress',
    metadata: { name: `ing-${i}`, namespace: ns, uid: `ing-${i}`, resourceVersion: String(1 + revision), creationTimestamp: '2024-01-01T00:00:00Z' },
    spec: { ingressClassName: 'vane', rules: [{ host, http: { paths } }], ...(tls ? { tls } : {}) },
  });
}

function sliceObject(i: number, s: number, size: WorldSize, revision: number): KubeObject {
  const endpoints = [];
  for (let e = 0; e < size.endpointsPerService; e++) {
    endpoints.push({ addresses: [`198.51.${(i * 2 + s) % 250}.${(e + revision) % 250 + 1}`], conditions: { ready: true } });
  }
  return obj({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: `svc-${i}-${s}-abc`, namespace: namespaceOfIndex(i), uid: `eps-${i}-${s}`, resourceVersion: String(1 + revision), labels: { 'kubernetes.io/service-name': `svc-${i}-${s}` } },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints,
  });
}

export function buildWorld(size: WorldSize): World {
  const objects: KubeObject[] = [
    obj({ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'vane', uid: 'class-vane', resourceVersion: '1' }, spec: { controller: 'vane.dev/ingress-controller' } }),
  ];
  const hosts: string[] = [];
  const paths: string[][] = [];
  for (let i = 0; i < size.ingresses; i++) {
    const ns = namespaceOfIndex(i);
    const ing = ingressObject(i, size, 0);
    objects.push(ing);
    const rule = (ing as { spec: { rules: { host: string; http: { paths: { path: string }[] } }[] } }).spec.rules[0]!;
    hosts.push(rule.host);
    paths.push(rule.http.paths.map((p) => p.path));
    for (let s = 0; s < 2; s++) {
      objects.push(obj({ apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}-${s}`, namespace: ns, uid: `svc-${i}-${s}`, resourceVersion: '1' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } }));
      objects.push(sliceObject(i, s, size, 0));
    }
    if ((i % 100) / 100 < (size.tlsShare ?? 0.2)) {
      objects.push(obj({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: `tls-${i}`, namespace: ns, uid: `tls-${i}`, resourceVersion: '1' }, stringData: { 'tls.crt': size.tls?.cert ?? '', 'tls.key': size.tls?.key ?? '' } }));
    }
    if ((i % 100) / 100 < (size.canaryShare ?? 0.1)) {
      objects.push(obj({ apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}-canary`, namespace: ns, uid: `svc-${i}-c`, resourceVersion: '1' }, spec: { ports: [{ name: 'http', port: 80 }] } }));
      objects.push(obj({
        apiVersion: 'vane.dev/v1alpha1', kind: 'Canary',
        metadata: { name: `canary-${i}`, namespace: ns, uid: `canary-${i}`, resourceVersion: '1' },
        spec: { ingressRef: { name: `ing-${i}` }, service: `svc-${i}-0`, canaryService: { name: `svc-${i}-canary` }, traffic: { weight: 10, header: { name: 'X-Canary' } } },
      }));
    }
  }
  return {
    objects,
    changedIngress: (i, revision) => ingressObject(i, size, revision),
    changedSlice: (i, revision) => sliceObject(i, 0, size, revision),
    hosts,
    paths,
  };
}
