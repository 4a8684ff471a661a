/** `vane validate FILE|DIR...`: the webhook's verdict, offline, one line per problem. */
import { kindOf, objectKey, validate, type KubeObject } from '../core/index.ts';
import { loadManifests, problemLine, fileProblemLine, NO_MANIFESTS } from '../lib/manifests.ts';

export interface ValidateReport {
  lines: string[];
  errorCount: number;
  warningCount: number;
}

/**
 * validateFiles checks every Ingress and Canary against the others in the same files. A file
 * that cannot be read or parsed is one finding among the others, never the end of the run.
 */
export async function validateFiles(paths: string[]): Promise<ValidateReport> {
  const manifests = await loadManifests(paths);
  const lines: string[] = [];
  let errorCount = 0;
  let warningCount = 0;
  for (const e of manifests.errors) { lines.push(fileProblemLine(e)); errorCount++; }
  const all: KubeObject[] = manifests.objects.map((o) => o.object);
  for (const { object, file } of manifests.objects) {
    const kind = kindOf(object);
    if (kind !== 'Ingress' && kind !== 'Canary') continue;
    const verdict = validate(object, { objects: all });
    const key = objectKey(kind, object);
    for (const p of verdict.errors) { lines.push(problemLine(file, kind, key, p)); errorCount++; }
    for (const p of verdict.warnings) { lines.push(problemLine(file, kind, key, p)); warningCount++; }
  }
  if (manifests.files.length === 0 && manifests.errors.length === 0) {
    lines.push(fileProblemLine({ file: paths.join(', '), message: NO_MANIFESTS }));
    errorCount++;
  }
  return { lines, errorCount, warningCount };
}
