/**
 * The RFC 6902 JSON patches the canary controller sends: Canary status, Canary finalizers,
 * and the Ingress switch of an `UpdateIngress` promotion. Each carries a `test` of what it
 * was computed from (lib/kube's resourceVersion fence where the whole object is the basis),
 * so a concurrent writer makes the patch fail (and the controller look again) instead of
 * being overwritten. Pure: tests/unit/canary/controller-patches.test.ts.
 */
import fastJsonPatch from 'fast-json-patch';
import type { Canary, CanaryStatus, Ingress } from '../../core/index.ts';
import { fencedPatch, fieldPatch, type PatchOp } from '../../lib/kube/index.ts';

export type { PatchOp };

type IngressBackend = NonNullable<NonNullable<Ingress['spec']>['defaultBackend']>;

/** statusPatch turns the status the object holds into `next`, guarded by its resourceVersion. */
export function statusPatch(canary: Canary, next: CanaryStatus): PatchOp[] {
  return fieldPatch('status', canary.status, next, canary.metadata?.resourceVersion);
}

/** addFinalizerPatch appends a finalizer, guarded by the list it read (or the resourceVersion when there is none). */
export function addFinalizerPatch(canary: Canary, finalizer: string): PatchOp[] | null {
  const list = canary.metadata?.finalizers;
  if (list?.includes(finalizer)) return null;
  if (!list) return fencedPatch([{ op: 'add', path: '/metadata/finalizers', value: [finalizer] }], canary.metadata?.resourceVersion);
  return [{ op: 'test', path: '/metadata/finalizers', value: list }, { op: 'add', path: '/metadata/finalizers/-', value: finalizer }];
}

/** removeFinalizerPatch removes one finalizer by index, after testing the index still holds it. */
export function removeFinalizerPatch(canary: Canary, finalizer: string): PatchOp[] | null {
  const i = canary.metadata?.finalizers?.indexOf(finalizer) ?? -1;
  if (i < 0) return null;
  return [{ op: 'test', path: `/metadata/finalizers/${i}`, value: finalizer }, { op: 'remove', path: `/metadata/finalizers/${i}` }];
}

function backendPaths(ing: Ingress): { path: string; backend: IngressBackend }[] {
  const out: { path: string; backend: IngressBackend }[] = [];
  if (ing.spec?.defaultBackend) out.push({ path: '/spec/defaultBackend', backend: ing.spec.defaultBackend });
  (ing.spec?.rules ?? []).forEach((rule, r) => {
    (rule.http?.paths ?? []).forEach((p, i) => {
      if (p.backend) out.push({ path: `/spec/rules/${r}/http/paths/${i}/backend`, backend: p.backend });
    });
  });
  return out;
}

/**
 * ingressSwitchPatch points every backend of the Ingress that names `from` at `to` (and at
 * `port` when given; null keeps each backend's port). Each replaced value is tested first.
 * Null when no backend names `from`.
 */
export function ingressSwitchPatch(ing: Ingress, from: string, to: string, port: number | string | null): PatchOp[] | null {
  const ops: PatchOp[] = [];
  for (const { path, backend } of backendPaths(ing)) {
    if (backend.service?.name !== from) continue;
    ops.push({ op: 'test', path: `${path}/service/name`, value: from });
    ops.push({ op: 'replace', path: `${path}/service/name`, value: to });
    if (port !== null) {
      ops.push({ op: backend.service.port ? 'replace' : 'add', path: `${path}/service/port`, value: typeof port === 'number' ? { number: port } : { name: port } });
    }
  }
  return ops.length > 0 ? ops : null;
}

/** ingressSwitched: the Ingress names `to` and no longer `from` (the promotion reached it). */
export function ingressSwitched(ing: Ingress | undefined, from: string, to: string): boolean {
  if (!ing) return false;
  const names = new Set(backendPaths(ing).map((b) => b.backend.service?.name));
  return names.has(to) && !names.has(from);
}

/** applyPatch applies ops to a copy of obj (file mode, where no API server applies them); null when a test fails. */
export function applyPatch<T extends object>(obj: T, ops: PatchOp[]): T | null {
  try {
    return fastJsonPatch.applyPatch(structuredClone(obj), ops, true, false).newDocument;
  } catch {
    return null;
  }
}
