/**
 * validate(): the one verdict on an object that `vane validate`, the admission webhook and
 * the operator's status conditions all show. Without context it checks the object on its
 * own; with the other objects of the cluster (or directory) it also reports what involves
 * them — missing Services and Secrets, conflicts — exactly as compile() would in status.
 */
import { kindOf, objectKey, type KubeObject } from './objects.ts';
import { parseIngress } from './ingress.ts';
import { parseCanary } from './canary.ts';
import { Compiler, type CompileOptions } from './compile.ts';
import { error, type Problem } from './problems.ts';

export interface ValidationContext {
  /** The other objects the verdict may depend on; the object itself is taken from the argument. */
  objects?: Iterable<KubeObject>;
  options?: CompileOptions;
}

export interface Verdict {
  kind: string;
  key: string;
  errors: Problem[];
  warnings: Problem[];
}

function split(kind: string, key: string, problems: Problem[]): Verdict {
  return {
    kind, key,
    errors: problems.filter((p) => p.severity === 'error'),
    warnings: problems.filter((p) => p.severity === 'warning'),
  };
}

/** validate never throws; objects of kinds Vane does not read get a single error. */
export function validate(obj: KubeObject, context: ValidationContext = {}): Verdict {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
    return split('', '', [error('InvalidObject', '', 'not a Kubernetes object')]);
  }
  const kind = kindOf(obj);
  if (kind !== 'Ingress' && kind !== 'Canary') {
    const text = (v: unknown): string => (typeof v === 'string' ? v : '');
    return split(text(obj.kind), '', [error('UnsupportedKind', 'kind', `${text(obj.apiVersion)} ${text(obj.kind)} is not validated by Vane (Ingress networking.k8s.io/v1 and Canary vane.dev/v1alpha1 are)`)]);
  }
  const key = objectKey(kind, obj);
  if (typeof obj.metadata?.name !== 'string' || obj.metadata.name === '') {
    return split(kind, key, [error('InvalidObject', 'metadata.name', 'is required')]);
  }
  if (!context.objects) {
    return split(kind, key, kind === 'Ingress' ? parseIngress(obj).problems : parseCanary(obj).problems);
  }
  const compiler = new Compiler(context.options);
  for (const other of context.objects) {
    const k = kindOf(other);
    if (k && !(k === kind && objectKey(k, other) === key)) compiler.set(other);
  }
  compiler.set(obj);
  const status = compiler.build().statuses.get(`${kind}/${key}`);
  // An Ingress of another class has no status: its own fields are still worth checking.
  return split(kind, key, status ? status.problems : (kind === 'Ingress' ? parseIngress(obj).problems : parseCanary(obj).problems));
}
