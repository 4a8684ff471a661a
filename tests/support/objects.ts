/** Builders for the Kubernetes objects tests feed to core, named by what they vary. */
import type { Ingress, Service, EndpointSlice, Secret, Canary, IngressClass } from '../../core/index.ts';

export interface PathSpec { path?: string; pathType?: string; service: string; port?: number | string }

export interface IngressSpec {
  name: string;
  namespace?: string;
  className?: string | null;
  created?: string;
  annotations?: Record<string, string>;
  rules?: { host?: string; paths: PathSpec[] }[];
  defaultBackend?: { service: string; port?: number | string };
  tls?: { hosts?: string[]; secretName?: string }[];
  uid?: string;
  resourceVersion?: string;
}

function backend(service: string, port: number | string = 80) {
  return { service: { name: service, port: typeof port === 'number' ? { number: port } : { name: port } } };
}

export function ingress(s: IngressSpec): Ingress {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: {
      name: s.name,
      namespace: s.namespace ?? 'default',
      ...(s.created ? { creationTimestamp: s.created } : {}),
      ...(s.annotations ? { annotations: s.annotations } : {}),
      ...(s.uid ? { uid: s.uid } : {}),
      ...(s.resourceVersion ? { resourceVersion: s.resourceVersion } : {}),
    },
    spec: {
      ...(s.className === null ? {} : { ingressClassName: s.className ?? 'vane' }),
      ...(s.defaultBackend ? { defaultBackend: backend(s.defaultBackend.service, s.defaultBackend.port) } : {}),
      ...(s.rules ? {
        rules: s.rules.map((r) => ({
          ...(r.host !== undefined ? { host: r.host } : {}),
          http: { paths: r.paths.map((p) => ({ path: p.path ?? '/', pathType: p.pathType ?? 'Prefix', backend: backend(p.service, p.port) })) },
        })),
      } : {}),
      ...(s.tls ? { tls: s.tls } : {}),
    },
  };
}

export function ingressClass(name: string, controller = 'vane.dev/ingress-controller', isDefault = false): IngressClass {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass',
    metadata: { name, ...(isDefault ? { annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' } } : {}) },
    spec: { controller },
  };
}

export function service(name: string, namespace = 'default', ports: { name?: string; port: number; targetPort?: number; appProtocol?: string }[] = [{ name: 'http', port: 80 }]): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { ports } };
}

export function externalService(name: string, externalName: string, namespace = 'default'): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { type: 'ExternalName', externalName, ports: [{ name: 'http', port: 80 }] } };
}

export interface EndpointSpec { ip: string; ready?: boolean; serving?: boolean; terminating?: boolean }

export function slice(name: string, serviceName: string, endpoints: EndpointSpec[], opts: { namespace?: string; port?: number; portName?: string; resourceVersion?: string } = {}): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: {
      name, namespace: opts.namespace ?? 'default', labels: { 'kubernetes.io/service-name': serviceName },
      ...(opts.resourceVersion ? { uid: `uid-${name}`, resourceVersion: opts.resourceVersion } : {}),
    },
    addressType: 'IPv4',
    ports: [{ name: opts.portName ?? 'http', port: opts.port ?? 8080, protocol: 'TCP' }],
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ...(e.ready !== undefined ? { ready: e.ready } : {}),
        ...(e.serving !== undefined ? { serving: e.serving } : {}),
        ...(e.terminating !== undefined ? { terminating: e.terminating } : {}),
      },
    })),
  };
}

export function tlsSecret(name: string, cert: string, key: string, namespace = 'default'): Secret {
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace },
    data: { 'tls.crt': Buffer.from(cert).toString('base64'), 'tls.key': Buffer.from(key).toString('base64') },
  };
}

export function canary(name: string, spec: Canary['spec'], opts: { namespace?: string; status?: Canary['status']; created?: string } = {}): Canary {
  return {
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary',
    metadata: { name, namespace: opts.namespace ?? 'default', ...(opts.created ? { creationTimestamp: opts.created } : {}) },
    spec,
    ...(opts.status ? { status: opts.status } : {}),
  };
}
