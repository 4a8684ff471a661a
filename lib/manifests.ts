/**
 * Manifest files as `kubectl apply -f` takes them: files or directories (recursively) of
 * multi-document YAML or JSON, `List` objects expanded. Each file is read and parsed on its
 * own, within limits — size, YAML aliases, nesting depth — so a bad file (unreadable,
 * malformed, too large, an alias bomb) is one problem naming it and never stops the other
 * files from loading. Problem text is clipped, as core's is: values can be megabytes.
 */
import { open, readdir, stat } from 'node:fs/promises';
import { join, extname } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { clip, formatProblem, type KubeObject, type ObjectKind, type ObjectStatus, type Problem } from '../core/index.ts';
import type { Logger } from './log.ts';

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
/**
 * Alias expansions a YAML file may make (the yaml package's default, stated because it is a
 * limit Vane promises): anchors for shared snippets are normal, a billion laughs is not.
 */
export const MAX_YAML_ALIASES = 100;
/**
 * Nesting a document may have. Kubernetes objects stay far below it; a deeper value would
 * overflow the stack of JSON.stringify, structuredClone and the compiler (JSON.parse itself
 * takes 100,000 levels).
 */
export const MAX_DEPTH = 64;

export const NO_MANIFESTS = 'no manifest files (.yaml, .yml, .json) here';

export interface Listing {
  files: string[];
  errors: ManifestError[];
  /** Paths that could not be listed: what lies under them is unknown, not gone. */
  unlisted: string[];
  /** Directories walked, for a watcher to watch. */
  dirs: string[];
}

function errnoText(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? clip((err as Error).message ?? String(err));
}

/** listManifestFiles finds the manifest files under paths, in a stable order. */
export async function listManifestFiles(paths: string[]): Promise<Listing> {
  const listing: Listing = { files: [], errors: [], unlisted: [], dirs: [] };
  // A symlink back to an ancestor directory would otherwise be walked for ever.
  const dirsSeen = new Set<string>();
  const walk = async (path: string): Promise<void> => {
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      listing.errors.push({ file: path, message: `cannot read: ${errnoText(err)}` });
      listing.unlisted.push(path);
      return;
    }
    if (!info.isDirectory()) { listing.files.push(path); return; }
    const id = `${info.dev}:${info.ino}`;
    if (dirsSeen.has(id)) return;
    dirsSeen.add(id);
    listing.dirs.push(path);
    let entries: string[];
    try {
      entries = (await readdir(path)).sort();
    } catch (err) {
      listing.errors.push({ file: path, message: `cannot list: ${errnoText(err)}` });
      listing.unlisted.push(path);
      return;
    }
    for (const entry of entries) {
      // Hidden entries are skipped: editors' swap files, and a ConfigMap volume's `..data`
      // (its files are reached through the symlinks beside it).
      if (entry.startsWith('.')) continue;
      const child = join(path, entry);
      const childInfo = await stat(child).catch(() => null);
      if (childInfo?.isDirectory() || EXTENSIONS.has(extname(entry))) await walk(child);
    }
  };
  for (const p of paths) await walk(p);
  return listing;
}

export type ManifestRead = { text: string } | { error: ManifestError } | { gone: true };

/** readManifest reads one file within the size limit; `gone` when it was removed meanwhile. */
export async function readManifest(file: string): Promise<ManifestRead> {
  let handle;
  try {
    handle = await open(file, 'r');
    const info = await handle.stat();
    if (!info.isFile()) return { error: { file, message: 'not a regular file' } };
    if (info.size > MAX_MANIFEST_BYTES) return { error: { file, message: `${info.size} bytes, larger than the limit of ${MAX_MANIFEST_BYTES}` } };
    const bytes = await handle.readFile();
    // It may have grown between the stat and the read.
    if (bytes.length > MAX_MANIFEST_BYTES) return { error: { file, message: `${bytes.length} bytes, larger than the limit of ${MAX_MANIFEST_BYTES}` } };
    return { text: bytes.toString('utf8') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { gone: true };
    return { error: { file, message: `cannot read: ${errnoText(err)}` } };
  } finally {
    await handle?.close();
  }
}

function isObject(v: unknown): v is KubeObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** deeperThan walks without recursion, since what it guards against is a stack overflow. */
function deeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

type Parsed = { objects: LoadedObject[]; errors: ManifestError[] };

function addDocument(value: unknown, file: string, out: Parsed): void {
  if (value === null || value === undefined) return;
  if (!isObject(value)) { out.errors.push({ file, message: 'a document is not an object' }); return; }
  if (deeperThan(value, MAX_DEPTH)) { out.errors.push({ file, message: `a document is nested deeper than ${MAX_DEPTH} levels` }); return; }
  const items = value.kind === 'List' && Array.isArray((value as { items?: unknown }).items) ? (value as { items: unknown[] }).items : [value];
  for (const item of items) {
    if (isObject(item)) out.objects.push({ object: item, file });
    else out.errors.push({ file, message: 'a List item is not an object' });
  }
}

function parseYaml(text: string, file: string): Parsed {
  const out: Parsed = { objects: [], errors: [] };
  for (const doc of parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true })) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) out.errors.push({ file, message: clip(`line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`, 300) });
      continue;
    }
    addDocument(doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }), file, out);
  }
  return out;
}

/**
 * parseManifestText parses one file's text, never throwing: whatever the parsers throw (the
 * yaml package refuses an alias bomb that way) is the file's problem. A `.json` file takes
 * JSON.parse, an order of magnitude faster and smaller on large generated lists; invalid
 * JSON falls back to the YAML parser, whose errors name the line.
 */
export function parseManifestText(text: string, file: string): Parsed {
  try {
    if (extname(file) === '.json') {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        return parseYaml(text, file);
      }
      const out: Parsed = { objects: [], errors: [] };
      addDocument(value, file, out);
      return out;
    }
    return parseYaml(text, file);
  } catch (err) {
    return { objects: [], errors: [{ file, message: `refused: ${clip((err as Error)?.message ?? String(err), 300)}` }] };
  }
}

/** loadManifests reads every manifest under the given paths, in a stable order. */
export async function loadManifests(paths: string[]): Promise<Manifests> {
  const { files, errors } = await listManifestFiles(paths);
  const objects: LoadedObject[] = [];
  for (const file of files) {
    const read = await readManifest(file);
    if ('gone' in read) continue;
    if ('error' in read) { errors.push(read.error); continue; }
    const parsed = parseManifestText(read.text, file);
    objects.push(...parsed.objects);
    errors.push(...parsed.errors);
  }
  return { objects, errors, files };
}

/** One line, whatever a value holds: a newline in a name must not forge a second line. */
function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, ' ');
}

/**
 * problemLine is the one form of an object's problem, printed by `vane validate` and logged
 * by the proxy and the operator: `FILE: [warning: ]Kind namespace/name: field: message`
 * (without `FILE: ` when the object came from the API server).
 */
export function problemLine(file: string | undefined, kind: string, key: string, p: Problem): string {
  return oneLine(`${file ? `${file}: ` : ''}${p.severity === 'warning' ? 'warning: ' : ''}${kind} ${clip(key)}: ${formatProblem(p)}`);
}

/** fileProblemLine is the form of a file's own problem: `FILE: message`. */
export function fileProblemLine(e: ManifestError): string {
  return oneLine(`${e.file}: ${e.message}`);
}

/**
 * ProblemLog logs each object's problems when they appear or change, and not again while
 * they stay as they are: every rebuild sees every status, and repeating a page of errors on
 * each would bury the new one.
 */
export class ProblemLog {
  private readonly logger: Logger;
  private readonly fileOf: (kind: ObjectKind, key: string) => string | undefined;
  private readonly logged = new Map<string, string>();

  constructor(logger: Logger, fileOf: (kind: ObjectKind, key: string) => string | undefined = () => undefined) {
    this.logger = logger;
    this.fileOf = fileOf;
  }

  report(statuses: ReadonlyMap<string, ObjectStatus>): void {
    const seen = new Set<string>();
    for (const [id, status] of statuses) {
      seen.add(id);
      const file = this.fileOf(status.kind, status.key);
      const lines = status.problems.map((p) => problemLine(file, status.kind, status.key, p));
      const text = lines.join('\n');
      if ((this.logged.get(id) ?? '') === text) continue;
      this.logged.set(id, text);
      status.problems.forEach((p, i) => {
        const entry = { ...(file ? { file } : {}), object: `${status.kind} ${clip(status.key)}`, field: p.field, reason: p.reason };
        if (p.severity === 'error') this.logger.error(entry, lines[i]); else this.logger.warn(entry, lines[i]);
      });
    }
    for (const id of this.logged.keys()) if (!seen.has(id)) this.logged.delete(id);
  }
}
