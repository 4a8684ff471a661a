/** Builders shared by the webhook tests: AdmissionReview bodies and fixture files. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeObject } from '../../../core/index.ts';
import { parseManifestText } from '../../../lib/manifests.ts';

export const KIND_OF = {
  Canary: { group: 'vane.dev', version: 'v1alpha1', kind: 'Canary' },
  Ingress: { group: 'networking.k8s.io', version: 'v1', kind: 'Ingress' },
} as const;

export interface ReviewInput {
  uid?: string;
  operation?: string;
  object: unknown;
  oldObject?: unknown;
  kind?: { group?: string; version?: string; kind?: string };
  subResource?: string;
}

/** review builds an admission.k8s.io/v1 AdmissionReview as the API server sends it. */
export function review(input: ReviewInput): Record<string, unknown> {
  const obj = input.object as KubeObject | undefined;
  const kind = input.kind ?? (obj?.kind === 'Ingress' ? KIND_OF.Ingress : KIND_OF.Canary);
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: input.uid ?? 'a1b2c3d4-0000-4000-8000-000000000001',
      kind,
      resource: { group: kind.group, version: kind.version, resource: kind.kind === 'Ingress' ? 'ingresses' : 'canaries' },
      requestKind: kind,
      ...(input.subResource ? { subResource: input.subResource } : {}),
      name: obj?.metadata?.name,
      namespace: obj?.metadata?.namespace,
      operation: input.operation ?? 'CREATE',
      userInfo: { username: 'kubernetes-admin', groups: ['system:masters'] },
      object: input.object,
      oldObject: input.oldObject ?? null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

export function reviewBody(input: ReviewInput): string {
  return JSON.stringify(review(input));
}

export const ROOT = new URL('../../../', import.meta.url).pathname;

export interface FixtureCase {
  file: string;
  /** Every document but the last: applied first, the cluster around the subject. */
  context: KubeObject[];
  subject: KubeObject;
  expect: { denied?: string; warning?: string; skipped?: boolean; allowed?: boolean; crdToo?: boolean };
}

/** webhookFixtures reads tests/fixtures/webhook: one case a file, expectations in `# expect-…:` comments. */
export function webhookFixtures(): FixtureCase[] {
  const base = join(ROOT, 'tests/fixtures/webhook');
  const out: FixtureCase[] = [];
  for (const group of readdirSync(base).sort()) {
    for (const name of readdirSync(join(base, group)).sort()) {
      const file = join(base, group, name);
      const text = readFileSync(file, 'utf8');
      const parsed = parseManifestText(text, file);
      if (parsed.errors.length) throw new Error(`${file}: ${parsed.errors[0]!.message}`);
      const objects = parsed.objects.map((o) => o.object);
      const tag = (key: string) => new RegExp(`^# ${key}: (.+)$`, 'm').exec(text)?.[1]?.trim();
      out.push({
        file: `${group}/${name}`,
        context: objects.slice(0, -1),
        subject: objects[objects.length - 1]!,
        expect: {
          ...(tag('expect-denied') ? { denied: tag('expect-denied') } : {}),
          ...(tag('expect-warning') ? { warning: tag('expect-warning') } : {}),
          ...(tag('expect-skipped') ? { skipped: true } : {}),
          ...(tag('expect-allowed') ? { allowed: true } : {}),
          ...(tag('refused-by-crd-too') ? { crdToo: true } : {}),
        },
      });
    }
  }
  return out;
}

/** fixtureRoots lists the manifest sets the agreement test runs: each directory under tests/fixtures and examples. */
export function fixtureRoots(): string[] {
  const roots: string[] = [];
  for (const top of ['tests/fixtures', 'examples']) {
    const dir = join(ROOT, top);
    let entries: string[];
    try { entries = readdirSync(dir).sort(); } catch { continue; }
    for (const e of entries) if (statSync(join(dir, e)).isDirectory()) roots.push(join(dir, e));
  }
  return roots;
}
