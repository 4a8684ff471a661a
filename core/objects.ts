/**
 * The Kubernetes objects core/ compiles from, reduced to the fields Vane reads. They are
 * structural types so that objects straight from the API server, from YAML files or from
 * tests all fit; every field is optional because input is never trusted.
 */
import type { CanarySpec, CanaryStatus } from './canary-types.gen.ts';

export type * from './canary-types.gen.ts';

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  deletionTimestamp?: string;
  finalizers?: string[];
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export interface ServiceBackendPort { number?: number; name?: string }

export interface IngressBackend {
  service?: { name?: string; port?: ServiceBackendPort };
  resource?: { apiGroup?: string; kind?: string; name?: string };
}

export interface HTTPIngressPath {
  path?: string;
  pathType?: string;
  backend?: IngressBackend;
}

export interface IngressRule {
  host?: string;
  http?: { paths?: HTTPIngressPath[] };
}

export interface IngressTLS { hosts?: string[]; secretName?: string }

export interface Ingress extends KubeObject {
  spec?: {
    ingressClassName?: string;
    defaultBackend?: IngressBackend;
    rules?: IngressRule[];
    tls?: IngressTLS[];
  };
}

export interface IngressClass extends KubeObject {
  spec?: { controller?: string; parameters?: unknown };
}

export interface ServicePort {
  name?: string;
  port?: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

export interface Service extends KubeObject {
  spec?: {
    type?: string;
    externalName?: string;
    ports?: ServicePort[];
  };
}

export interface EndpointConditions { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null }

export interface Endpoint {
  addresses?: string[];
  conditions?: EndpointConditions;
  zone?: string;
  nodeName?: string;
}

export interface EndpointSlice extends KubeObject {
  addressType?: string;
  endpoints?: Endpoint[] | null;
  ports?: { name?: string; port?: number; protocol?: string; appProtocol?: string }[] | null;
}

export interface Secret extends KubeObject {
  type?: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** The Canary's spec and status types are generated from the CRD (crds/), their one source of truth. */
export interface Canary extends KubeObject {
  spec?: CanarySpec;
  status?: CanaryStatus;
}

export const INGRESS_CONTROLLER = 'vane.dev/ingress-controller';
export const DEFAULT_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';
export const LEGACY_CLASS_ANNOTATION = 'kubernetes.io/ingress.class';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** ObjectKind names the inputs compile() understands, as `kind` says them. */
export type ObjectKind = 'Ingress' | 'IngressClass' | 'Service' | 'EndpointSlice' | 'Secret' | 'Canary';

export const OBJECT_KINDS: readonly ObjectKind[] = ['Ingress', 'IngressClass', 'Service', 'EndpointSlice', 'Secret', 'Canary'];

/** kindOf tells which input an object is, by apiVersion group and kind; null for anything else. */
export function kindOf(obj: KubeObject): ObjectKind | null {
  const group = (obj.apiVersion ?? '').includes('/') ? (obj.apiVersion ?? '').split('/')[0] : '';
  switch (obj.kind) {
    case 'Ingress': return group === 'networking.k8s.io' ? 'Ingress' : null;
    case 'IngressClass': return group === 'networking.k8s.io' ? 'IngressClass' : null;
    case 'Service': return group === '' ? 'Service' : null;
    case 'EndpointSlice': return group === 'discovery.k8s.io' ? 'EndpointSlice' : null;
    case 'Secret': return group === '' ? 'Secret' : null;
    case 'Canary': return group === 'vane.dev' ? 'Canary' : null;
    default: return null;
  }
}

/** namespaceOf is the object's namespace; `default` when a manifest leaves it out, as kubectl does. */
export function namespaceOf(obj: KubeObject): string {
  const ns: unknown = obj.metadata?.namespace;
  return typeof ns === 'string' && ns !== '' ? ns : 'default';
}

/** objectKey is `namespace/name` (just `name` for IngressClass, which is cluster-scoped), the key logs and statuses use. */
export function objectKey(kind: ObjectKind, obj: KubeObject): string {
  // Only a string is a name: a hostile manifest's object would run its own toString here.
  const raw: unknown = obj.metadata?.name;
  const name = typeof raw === 'string' ? raw : '';
  return kind === 'IngressClass' ? name : `${namespaceOf(obj)}/${name}`;
}

/** memoKey identifies one version of an object: uid + resourceVersion when the API server set them. */
export function memoKey(obj: KubeObject): string | null {
  const uid = obj.metadata?.uid;
  const rv = obj.metadata?.resourceVersion;
  return uid && rv ? `${uid}@${rv}` : null;
}
