/** `vane validate FILE|DIR...`: the webhook's verdict, offline, one line per problem. */
import { kindOf, objectKey, validate, formatProblem, type KubeObject } from '../core/index.ts';
import { loadManifests } from '../lib/manifests.ts';

export interface ValidateReport {
  lines: string[];
  errorCount: number;
  warningCount: number;
}

/** validateFiles checks every Ingress and Canary against the others in the same files. */
export async function validateFiles(paths: string[]): Promise<ValidateReport> {
  const manifests = await loadManifests(paths);
  const lines: string[] = [];
  let errorCount = 0;
  let warningCount = 0;
  for (const e of manifests.errors) { lines.push(`${e.file}: ${e.message}`); errorCount++; }
  const all: KubeObject[] = manifests.objects.map((o) => o.object);
  for (const { object, file } of manifests.objects) {
    const kind = kindOf(object);
    if (kind !== 'Ingress' && kind !== 'Canary') continue;
    const verdict = validate(object, { objects: all });
    const label = `${kind} ${objectKey(kind, object)}`;
    for (const p of verdict.errors) { lines.push(`${file}: ${label}: ${formatProblem(p)}`); errorCount++; }
    for (const p of verdict.warnings) { lines.push(`${file}: warning: ${label}: ${formatProblem(p)}`); warningCount++; }
  }
  if (manifests.files.length === 0 && manifests.errors.length === 0) {
    lines.push(`no manifest files (.yaml, .yml, .json) under ${paths.join(', ')}`);
    errorCount++;
  }
  return { lines, errorCount, warningCount };
}
