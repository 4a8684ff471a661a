/**
 * Where Vane's own files are at run time. The package root is the nearest directory above
 * this module that holds a package.json: the checkout when the TypeScript runs directly
 * (lib/package-root.ts), the same checkout or the installed package when the compiled
 * JavaScript runs (dist/lib/package-root.js, node_modules/vane/dist/lib/…, /app/dist/lib/…).
 * Paths to shipped files (crds/, tests/e2e/tools/…) are joined to it, never to a module's
 * own URL, so source and compiled code find the same files.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json in ${from} or any directory above it`);
  }
}

/** PACKAGE_ROOT is the directory with Vane's package.json. */
export const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

/** packagePath joins parts to PACKAGE_ROOT. */
export function packagePath(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts);
}

let version: string | undefined;

/** packageVersion is the version in Vane's package.json (what `vane --version` prints). */
export function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string }).version;
  return version;
}
