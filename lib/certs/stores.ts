/**
 * Where a CertBundle lives. The Kubernetes Secret store is in kube.ts; here are the two
 * that need no cluster: memory (tests, and one process that needs a throwaway CA) and a
 * directory (local runs, `vane webhook --cert-dir`). Every store offers compare-and-swap,
 * so replicas sharing one store converge on one bundle instead of overwriting each other.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CertError } from './errors.ts';
import type { CertBundle } from './rotation.ts';

export interface StoredBundle {
  /** null when the store holds something, but not a complete bundle (e.g. a pre-created empty Secret). */
  bundle: CertBundle | null;
  /** Opaque version for compare-and-swap (a Secret's resourceVersion, a content hash). */
  version: string;
}

export interface CertStore {
  /** read returns null when nothing is stored yet. */
  read(): Promise<StoredBundle | null>;
  /** create stores the first bundle; rejects with CertError EEXIST when something already is. */
  create(bundle: CertBundle): Promise<StoredBundle>;
  /** replace stores bundle if the store is still at version; rejects with CertError ECONFLICT otherwise. */
  replace(bundle: CertBundle, version: string): Promise<StoredBundle>;
  /** describe names the store for logs (`secret vane-system/vane-webhook-tls`). */
  describe(): string;
}

/** The file (or Secret key) names of each part, as kubernetes.io/tls Secrets and cert-manager name them. */
export const BUNDLE_KEYS = {
  certPem: 'tls.crt',
  keyPem: 'tls.key',
  caBundlePem: 'ca.crt',
  caKeyPem: 'ca.key',
} as const satisfies Record<keyof CertBundle, string>;

const PARTS = Object.keys(BUNDLE_KEYS) as (keyof CertBundle)[];

/** bundleFromTexts assembles a bundle from named texts; null unless every part is present and non-empty. */
export function bundleFromTexts(get: (file: string) => string | undefined): CertBundle | null {
  const out: Partial<CertBundle> = {};
  for (const part of PARTS) {
    const text = get(BUNDLE_KEYS[part]);
    if (typeof text !== 'string' || text.trim() === '') return null;
    out[part] = text;
  }
  return out as CertBundle;
}

export class MemoryCertStore implements CertStore {
  private stored: StoredBundle | null = null;
  private generation = 0;
  /** writes counts successful create/replace calls, for tests. */
  writes = 0;

  async read(): Promise<StoredBundle | null> {
    return this.stored;
  }

  async create(bundle: CertBundle): Promise<StoredBundle> {
    if (this.stored) throw new CertError('EEXIST', 'bundle already stored');
    return this.put(bundle);
  }

  async replace(bundle: CertBundle, version: string): Promise<StoredBundle> {
    if (!this.stored || this.stored.version !== version) throw new CertError('ECONFLICT', `stored version is ${this.stored?.version ?? 'none'}, not ${version}`);
    return this.put(bundle);
  }

  describe(): string {
    return 'memory';
  }

  private put(bundle: CertBundle): StoredBundle {
    this.generation++;
    this.writes++;
    this.stored = { bundle: { ...bundle }, version: String(this.generation) };
    return this.stored;
  }
}

/**
 * DirCertStore keeps tls.crt, tls.key, ca.crt and ca.key in a directory (0700, files 0600,
 * each written to a temporary name and renamed). The version is a hash of the contents.
 * Compare-and-swap is per process call, not atomic across processes: share a directory
 * between replicas only for local runs; clusters use the Secret store.
 */
export class DirCertStore implements CertStore {
  private readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async read(): Promise<StoredBundle | null> {
    const texts = new Map<string, string>();
    for (const file of Object.values(BUNDLE_KEYS)) {
      try {
        texts.set(file, await readFile(join(this.dir, file), 'utf8'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CertError('EAPI', `cannot read ${join(this.dir, file)}: ${(err as NodeJS.ErrnoException).code}`, { cause: err });
      }
    }
    if (texts.size === 0) return null;
    return { bundle: bundleFromTexts((f) => texts.get(f)), version: versionOf(texts) };
  }

  async create(bundle: CertBundle): Promise<StoredBundle> {
    if (await this.read()) throw new CertError('EEXIST', `${this.dir} already holds certificates`);
    return this.write(bundle);
  }

  async replace(bundle: CertBundle, version: string): Promise<StoredBundle> {
    const current = await this.read();
    if (!current || current.version !== version) throw new CertError('ECONFLICT', `${this.dir} changed since it was read`);
    return this.write(bundle);
  }

  describe(): string {
    return `directory ${this.dir}`;
  }

  private async write(bundle: CertBundle): Promise<StoredBundle> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      // Keys before certificates: a reader that sees a new certificate also finds its key.
      for (const part of ['caKeyPem', 'keyPem', 'caBundlePem', 'certPem'] as const) {
        const target = join(this.dir, BUNDLE_KEYS[part]);
        const temp = `${target}.${process.pid}.tmp`;
        await writeFile(temp, bundle[part], { mode: 0o600 });
        await rename(temp, target);
      }
    } catch (err) {
      throw new CertError('EAPI', `cannot write ${this.dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    const texts = new Map(PARTS.map((p) => [BUNDLE_KEYS[p], bundle[p]] as const));
    return { bundle: { ...bundle }, version: versionOf(texts) };
  }
}

function versionOf(texts: Map<string, string>): string {
  const h = createHash('sha256');
  for (const file of Object.values(BUNDLE_KEYS)) h.update(`${file}\0${texts.get(file) ?? ''}\0`);
  return h.digest('hex').slice(0, 16);
}
