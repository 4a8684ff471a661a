/**
 * One verdict everywhere: every Ingress and Canary under tests/fixtures/ and examples/ gets
 * the same errors and warnings from the webhook as from `vane validate` (cli/validate.ts,
 * itself core's validate() — what the operator writes into status). Each directory is one
 * cluster, as `vane validate DIR` treats it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relative } from 'node:path';
import { formatProblem, kindOf, objectKey, type KubeObject } from '../../../core/index.ts';
import { loadManifests } from '../../../lib/manifests.ts';
import { validateFiles } from '../../../cli/validate.ts';
import { reviewAdmission, isVaneIngress, MemoryObjectCache, DEFAULT_CLASS_OPTIONS } from '../../../webhook/index.ts';
import { fixtureRoots, reviewBody, ROOT } from './helpers.ts';

/** sameText: the webhook cuts a long warning with an ellipsis; what it kept must be the start of validate's. */
function sameText(webhook: string, cli: string): boolean {
  return webhook === cli || (webhook.endsWith('…') && cli.startsWith(webhook.slice(0, -1)));
}

const roots = fixtureRoots();

test('there are fixture sets to compare', () => {
  assert.ok(roots.some((r) => r.endsWith('examples/quickstart')));
  assert.ok(roots.some((r) => r.endsWith('tests/fixtures/webhook')));
});

for (const root of roots) {
  test(`webhook and \`vane validate\` agree on ${relative(ROOT, root)}`, async () => {
    const report = await validateFiles([root]);
    const manifests = await loadManifests([root]);
    const all: KubeObject[] = manifests.objects.map((o) => o.object);
    const cache = new MemoryObjectCache(all);
    const expected = report.lines.filter((l) => !manifests.errors.some((e) => l === `${e.file}: ${e.message}`));
    const got: string[] = [];
    let reviewed = 0;
    for (const { object, file } of manifests.objects) {
      const kind = kindOf(object);
      if (kind !== 'Ingress' && kind !== 'Canary') continue;
      const label = `${kind} ${objectKey(kind, object)}`;
      const out = reviewAdmission(reviewBody({ object }), { cache });
      const response = out.review.response;
      if (kind === 'Ingress' && !isVaneIngress(object, cache, DEFAULT_CLASS_OPTIONS)) {
        // Not Vane's: the webhook never judges it; `vane validate` still lints it, offline.
        assert.equal(response.allowed, true);
        assert.equal(response.warnings, undefined);
        for (let i = expected.length - 1; i >= 0; i--) if (expected[i]!.includes(`: ${label}: `)) expected.splice(i, 1);
        continue;
      }
      reviewed++;
      const causes = response.status?.details?.causes ?? [];
      assert.equal(response.allowed, causes.length === 0, `${label}: allowed iff no errors`);
      for (const c of causes) got.push(`${file}: ${label}: ${formatProblem({ severity: 'error', ...c })}`);
      for (const w of response.warnings ?? []) got.push(`${file}: warning: ${label}: ${w}`);
    }
    assert.ok(reviewed > 0, 'some objects reviewed');
    assert.equal(got.length, expected.length, `same number of problems\nwebhook:\n${got.join('\n')}\nvalidate:\n${expected.join('\n')}`);
    const unmatched = [...expected];
    for (const line of got) {
      const i = unmatched.findIndex((e) => sameText(line, e));
      assert.ok(i >= 0, `webhook said what validate did not:\n${line}\nvalidate:\n${expected.join('\n')}`);
      unmatched.splice(i, 1);
    }
  });
}
