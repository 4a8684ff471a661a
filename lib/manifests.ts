/**
 * Manifest files as `kubectl apply -f` takes them: files or directories (recursively) of
 * multi-document YAML or JSON, `List` objects expanded. Errors name the file and line and
 * never stop the other files from loading.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, extname } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../core/index.ts';

export interface LoadedObject {
  object: KubeObject;
  file: string;
}

export interface ManifestError {
  file: string;
  message: string;
}

export interface Manifests {
  objects: LoadedObject[];
  errors: ManifestError[];
  files: string[];
}

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
/** A manifest larger than this is refused rather than parsed: files come from users. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

async function listFiles(path: string, out: string[], errors: ManifestError[]): Promise<void> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    errors.push({ file: path, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return;
  }
  if (info.isDirectory()) {
    const entries = (await readdir(path)).sort();
    for (const entry of entries) {
      if (entry.startsWith('.')) continue;
      const child = join(path, entry);
      const childInfo = await stat(child).catch(() => null);
      if (childInfo?.isDirectory() || EXTENSIONS.has(extname(entry))) await listFiles(child, out, errors);
    }
  } else {
    out.push(path);
  }
}

function isObject(v: unknown): v is KubeObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** parseManifestText parses one file's text; exported for tests and the webhook's fuzzing. */
export function parseManifestText(text: string, file: string): { objects: LoadedObject[]; errors: ManifestError[] } {
  const objects: LoadedObject[] = [];
  const errors: ManifestError[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) errors.push({ file, message: `line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}` });
      continue;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue;
    if (!isObject(value)) { errors.push({ file, message: 'a document is not an object' }); continue; }
    const items = value.kind === 'List' && Array.isArray((value as { items?: unknown }).items) ? (value as { items: unknown[] }).items : [value];
    for (const item of items) {
      if (isObject(item)) objects.push({ object: item, file });
      else errors.push({ file, message: 'a List item is not an object' });
    }
  }
  return { objects, errors };
}

/**
 * parseJsonManifest takes the fast path for JSON files (large generated lists parse an
 * order of magnitude faster and smaller than through the YAML parser); invalid JSON falls
 * back to the YAML parser, whose errors name the line.
 */
function parseJsonManifest(text: string, file: string): { objects: LoadedObject[]; errors: ManifestError[] } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return parseManifestText(text, file);
  }
  const objects: LoadedObject[] = [];
  const errors: ManifestError[] = [];
  if (!isObject(value)) return { objects, errors: [{ file, message: 'a document is not an object' }] };
  const items = value.kind === 'List' && Array.isArray((value as { items?: unknown }).items) ? (value as { items: unknown[] }).items : [value];
  for (const item of items) {
    if (isObject(item)) objects.push({ object: item, file });
    else errors.push({ file, message: 'a List item is not an object' });
  }
  return { objects, errors };
}

/** loadManifests reads every manifest under the given paths, in a stable order. */
export async function loadManifests(paths: string[]): Promise<Manifests> {
  const files: string[] = [];
  const errors: ManifestError[] = [];
  for (const p of paths) await listFiles(p, files, errors);
  const objects: LoadedObject[] = [];
  for (const file of files) {
    let text: string;
    try {
      const info = await stat(file);
      if (info.size > MAX_MANIFEST_BYTES) { errors.push({ file, message: `larger than ${MAX_MANIFEST_BYTES} bytes` }); continue; }
      text = await readFile(file, 'utf8');
    } catch (err) {
      errors.push({ file, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      continue;
    }
    const parsed = extname(file) === '.json' ? parseJsonManifest(text, file) : parseManifestText(text, file);
    objects.push(...parsed.objects);
    errors.push(...parsed.errors);
  }
  return { objects, errors, files };
}
