/**
 * Which Ingresses are Vane's, and which cached objects can change the verdict on one object.
 * Handing validate() only those keeps a review O(related objects) instead of a compile of
 * the whole cluster; tests/unit/webhook/context.test.ts holds the selection to the verdict
 * validate() gives with every object. Class membership and what an object names come from
 * core's selectors (core/selectors.ts), the very ones the compiler indexes by.
 */
import {
  classIsVane, hostsOfIngress, servicesOfIngress, secretsOfIngress, ingressOfCanary, serviceOfCanary,
  namespaceOf, INGRESS_CONTROLLER, DEFAULT_CLASS_ANNOTATION,
  type Canary, type ClassSelection, type Ingress, type IngressClass, type IngressClassLookup, type KubeObject, type ObjectKind,
} from '../core/index.ts';
import type { ObjectCache } from './cache.ts';

/**
 * CONTEXT_KINDS: every kind contextFor reads from the cache — what `--watch-cluster` lists and
 * watches, and nothing more (no EndpointSlices: no verdict depends on them). Secrets are read
 * for their existence only; the watch fetches their metadata, never their data.
 */
export const CONTEXT_KINDS: readonly ObjectKind[] = ['IngressClass', 'Ingress', 'Service', 'Secret', 'Canary'];

export interface ClassOptions extends ClassSelection {
  /** Class-less Ingresses are Vane's when the cache holds no IngressClass to tell (Vane is the cluster default). */
  defaultClass: boolean;
}

export const DEFAULT_CLASS_OPTIONS: ClassOptions = { ingressClass: 'vane', controller: INGRESS_CONTROLLER, defaultClass: false };

/**
 * classesOf lists the cache's IngressClasses or, when it holds none and options.defaultClass
 * says Vane is the cluster default, a stand-in default IngressClass of Vane's: the one
 * contextFor hands compile() too, so that both decide class membership alike.
 */
function classesOf(cache: ObjectCache, options: ClassOptions): IngressClass[] {
  const known = [...cache.list('IngressClass')] as IngressClass[];
  if (known.length > 0 || !options.defaultClass) return known;
  return [{
    apiVersion: 'networking.k8s.io/v1',
    kind: 'IngressClass',
    metadata: { name: options.ingressClass, annotations: { [DEFAULT_CLASS_ANNOTATION]: 'true' } },
    spec: { controller: options.controller },
  }];
}

/** isVaneIngress decides as compile() does (core's classIsVane), over the cache's IngressClasses. */
export function isVaneIngress(ing: Ingress, cache: ObjectCache, options: ClassOptions): boolean {
  const classes: IngressClassLookup = {
    get: (name) => cache.get('IngressClass', '', name) as IngressClass | undefined,
    all: () => classesOf(cache, options),
  };
  return classIsVane(ing, classes, options);
}

function pushGet(out: KubeObject[], cache: ObjectCache, kind: 'Service' | 'Secret' | 'Ingress', namespace: string, name: string | undefined): void {
  if (name === undefined) return;
  const obj = cache.get(kind, namespace, name);
  if (obj) out.push(obj);
}

/**
 * contextFor lists the cached objects that can change obj's verdict. When options.defaultClass
 * stands in for a missing default IngressClass, a synthetic one says so to compile().
 */
export function contextFor(kind: 'Ingress' | 'Canary', obj: KubeObject, cache: ObjectCache, options: ClassOptions): KubeObject[] {
  const out: KubeObject[] = classesOf(cache, options);
  const namespace = namespaceOf(obj);
  if (kind === 'Ingress') {
    const ing = obj as Ingress;
    for (const name of servicesOfIngress(ing)) pushGet(out, cache, 'Service', namespace, name);
    for (const name of secretsOfIngress(ing)) pushGet(out, cache, 'Secret', namespace, name);
    const hosts = hostsOfIngress(ing);
    if (hosts.size > 0) {
      for (const other of cache.list('Ingress')) {
        for (const h of hostsOfIngress(other as Ingress)) if (hosts.has(h)) { out.push(other); break; }
      }
    }
    return out;
  }
  const ingress = ingressOfCanary(obj as Canary);
  pushGet(out, cache, 'Ingress', namespace, ingress);
  pushGet(out, cache, 'Service', namespace, serviceOfCanary(obj as Canary));
  if (ingress !== undefined) {
    for (const other of cache.list('Canary', namespace)) {
      if (ingressOfCanary(other as Canary) === ingress) out.push(other);
    }
  }
  return out;
}
