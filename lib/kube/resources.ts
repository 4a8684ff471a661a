/**
 * ResourceType: where a kind lives on the API server (group, version, plural, scope), and the
 * kinds Vane reads or writes. pathOf builds the REST path of a collection, an object or a
 * subresource from one of them.
 */

export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

export interface ObjectRef { namespace?: string; name?: string }

function type(apiVersion: string, kind: string, plural: string, namespaced: boolean): ResourceType {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') as [string, string] : ['', apiVersion];
  return { group, version, plural, kind, namespaced };
}

export const RESOURCES = {
  ConfigMap: type('v1', 'ConfigMap', 'configmaps', true),
  Secret: type('v1', 'Secret', 'secrets', true),
  Service: type('v1', 'Service', 'services', true),
  Pod: type('v1', 'Pod', 'pods', true),
  Event: type('v1', 'Event', 'events', true),
  Lease: type('coordination.k8s.io/v1', 'Lease', 'leases', true),
  Ingress: type('networking.k8s.io/v1', 'Ingress', 'ingresses', true),
  IngressClass: type('networking.k8s.io/v1', 'IngressClass', 'ingressclasses', false),
  EndpointSlice: type('discovery.k8s.io/v1', 'EndpointSlice', 'endpointslices', true),
  Canary: type('vane.dev/v1alpha1', 'Canary', 'canaries', true),
  TokenReview: type('authentication.k8s.io/v1', 'TokenReview', 'tokenreviews', false),
  ValidatingWebhookConfiguration: type('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', 'validatingwebhookconfigurations', false),
} as const satisfies Record<string, ResourceType>;

export function apiVersionOf(t: ResourceType): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

/**
 * pathOf is the REST path of t's collection (no name; every namespace when namespace is
 * absent), of one object, or of its subresource (`status`).
 */
export function pathOf(t: ResourceType, ref: ObjectRef = {}, subresource?: string): string {
  let path = t.group ? `/apis/${t.group}/${t.version}` : `/api/${t.version}`;
  if (t.namespaced && ref.namespace !== undefined) path += `/namespaces/${encodeURIComponent(ref.namespace || 'default')}`;
  path += `/${t.plural}`;
  if (ref.name !== undefined) {
    if (!ref.name) throw new Error(`${t.kind}: an object path needs a name`);
    path += `/${encodeURIComponent(ref.name)}`;
    if (subresource) path += `/${subresource}`;
  }
  return path;
}
