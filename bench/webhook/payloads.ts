/** The AdmissionReviews bench/webhook/run.ts sends: a typical Canary, and two 1 MB objects. */
import type { KubeObject } from '../../core/index.ts';

const MB = 1024 * 1024;

export function benchServices(): KubeObject[] {
  return ['web-a', 'web-b', 'web-c', 'web-d'].map((name) => ({
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { ports: [{ name: 'http', port: 80 }] },
  } as KubeObject));
}

function review(uid: string, object: KubeObject, kind: { group: string; version: string; kind: string }): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: {
      uid, kind, resource: { group: kind.group, version: kind.version, resource: `${kind.kind.toLowerCase()}s` }, requestKind: kind,
      name: object.metadata?.name, namespace: object.metadata?.namespace, operation: 'CREATE',
      userInfo: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
      object, oldObject: null, dryRun: false, options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions', fieldManager: 'kubectl-client-side-apply' },
    },
  });
}

const CANARY_KIND = { group: 'vane.dev', version: 'v1alpha1', kind: 'Canary' };
const INGRESS_KIND = { group: 'networking.k8s.io', version: 'v1', kind: 'Ingress' };

function canary(annotations: Record<string, string> = {}): KubeObject {
  return {
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary',
    metadata: { name: 'checkout', namespace: 'shop', uid: '5d2c8f4e-7a1b-4c3d-9e8f-0a1b2c3d4e5f', creationTimestamp: '2025-01-01T00:00:00Z', annotations },
    spec: {
      ingressRef: { name: 'shop' }, service: 'checkout', canaryService: { name: 'checkout-v2', port: { number: 80 } },
      traffic: { header: { name: 'X-Canary', regex: '^(always|beta-[a-z0-9]+)$' }, cookie: { name: 'canary' }, sticky: true },
      analysis: { interval: '30s', stepWeights: [5, 10, 25, 50], threshold: 3, minRequests: 100, metrics: [{ name: 'success-rate', min: 99 }, { name: 'latency-p99', maxMs: 500 }] },
    },
  } as KubeObject;
}

export interface Payload { name: string; description: string; body: (uid: string) => Buffer; bytes: number }

const PLACEHOLDER = '00000000-0000-4000-8000-000000000000';

/** payload serialises once; each request only splices its uid in, outside the timed section. */
function payload(name: string, description: string, make: (uid: string) => string): Payload {
  const [before, after] = make(PLACEHOLDER).split(PLACEHOLDER) as [string, string];
  return { name, description, body: (uid) => Buffer.from(before + uid + after), bytes: Buffer.byteLength(before + PLACEHOLDER + after) };
}

/** lastApplied is what `kubectl apply` keeps in an annotation: the whole object again, here padded to about 1 MB. */
function lastApplied(obj: KubeObject): Record<string, string> {
  const copy = { ...obj, metadata: { name: obj.metadata?.name, namespace: obj.metadata?.namespace }, padding: '' };
  copy.padding = 'x'.repeat(MB - JSON.stringify(copy).length - 200);
  return { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(copy) };
}

function ingress(rules: unknown[], annotations: Record<string, string> = {}): KubeObject {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress',
    metadata: { name: 'portal', namespace: 'shop', uid: '6e3d9f5a-8b2c-4d4e-af90-1b2c3d4e5f60', creationTimestamp: '2025-01-01T00:00:00Z', annotations: { 'vane.dev/read-timeout': '30s', ...annotations } },
    spec: { ingressClassName: 'vane', rules },
  } as KubeObject;
}

function rulesOf(hosts: number, paths: number): unknown[] {
  const rules = [];
  for (let h = 0; h < hosts; h++) {
    const list = [];
    for (let i = 0; i < paths; i++) {
      list.push({ path: `/api/v${i % 7}/resource-${i}`, pathType: i % 3 ? 'Prefix' : 'Exact', backend: { service: { name: ['web-a', 'web-b', 'web-c', 'web-d'][i % 4], port: { number: 80 } } } });
    }
    rules.push({ host: `app-${h}.shop.example.com`, http: { paths: list } });
  }
  return rules;
}

/** payloads: the 1 MB ones are gated by the goal; the others give context. */
export function payloads(): Payload[] {
  const typicalIngress = ingress(rulesOf(3, 10));
  const stressRules = rulesOf(20, 350);
  return [
    payload('canary-small', 'a typical Canary', (uid) => review(uid, canary(), CANARY_KIND)),
    payload('canary-1mb', 'that Canary with 1 MB of last-applied-configuration', (uid) => review(uid, canary(lastApplied(canary())), CANARY_KIND)),
    payload('ingress-1mb', 'an Ingress of 3 hosts, 30 paths, with 1 MB of last-applied-configuration', (uid) => review(uid, ingress(rulesOf(3, 10), lastApplied(typicalIngress)), INGRESS_KIND)),
    payload('ingress-7k', 'stress: an Ingress of 20 hosts and 7,000 paths, 1 MB of rules', (uid) => review(uid, ingress(stressRules), INGRESS_KIND)),
  ];
}

/** GATED: the payloads the p99 goal applies to. */
export const GATED = new Set(['canary-1mb', 'ingress-1mb']);
