/**
 * CRD upgrades as docs/upgrades.md prescribes them: Helm installs crds/ once and never
 * upgrades it, so before `helm upgrade` the operator of the cluster runs
 * `helm show crds <chart> | kubectl apply --server-side --force-conflicts -f -`.
 *
 * Here an older canaries.vane.dev — the repo's CRD with one schema property removed, one
 * description in older words and one property since dropped — is in place, written by field
 * manager `helm` as `helm install` would have. A plain server-side apply of the chart's CRD conflicts with Helm's ownership;
 * with --force-conflicts it takes over, the property is back, and a Canary stored before
 * keeps its identity and its value of that property throughout. The CRD name is fixed, so
 * the test restores the repo's CRD whatever happens (files run one at a time).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { envWithoutProxies } from '../../../devtools/controlplane/index.ts';
import { cluster, e2eSkip, fileNamespace, type Cluster } from '../harness/index.ts';
import { ROOT, installCrds } from './webhook-support.ts';
import { eventually } from '../../support/wait.ts';

const CRD_FILE = join(ROOT, 'crds/canaries.vane.dev.yaml');
const CHART = join(ROOT, 'charts/vane');
const REMOVED = 'paused';

type Schema = { type?: string; description?: string; properties?: Record<string, Schema>; 'x-kubernetes-validations'?: { rule: string }[] };
interface Crd {
  metadata: { name: string; resourceVersion?: string; [k: string]: unknown };
  spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
  status?: { conditions?: { type: string; status: string }[] };
}

let c: Cluster;
let ns: string;

before(async () => {
  if (e2eSkip) return;
  c = await cluster();
  await installCrds(c);
  ns = await fileNamespace(import.meta.url);
});

function specSchema(crd: Crd): Schema {
  return crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
}

/** chartCrds is what `helm show crds charts/vane` prints — or, while the chart does not exist, the repo's crds/ file. */
function chartCrds(): Promise<string> {
  if (!existsSync(join(CHART, 'Chart.yaml'))) return Promise.resolve(readFileSync(CRD_FILE, 'utf8'));
  return new Promise((resolve, reject) => {
    execFile(join(c.bin, 'helm'), ['show', 'crds', CHART], { env: envWithoutProxies(), timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`helm show crds: ${stderr || err.message}`)); else resolve(stdout);
    });
  });
}

async function readCrd(): Promise<Crd> {
  return JSON.parse(await c.kubectlOk(['get', 'crd', 'canaries.vane.dev', '-o', 'json'])) as Crd;
}

/** unknownPaused: a server-side dry run of a Canary setting the property, and whether the API server calls the field unknown. */
async function unknownPaused(): Promise<boolean> {
  const probe = {
    apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'probe', namespace: ns },
    spec: { ingressRef: { name: 'shop' }, service: 'checkout', canaryService: { name: 'checkout-v2' }, [REMOVED]: true },
  };
  const r = await c.kubectl(['create', '--dry-run=server', '--validate=warn', '-f', '-'], { input: JSON.stringify(probe) });
  assert.equal(r.code, 0, r.stderr);
  return r.stderr.includes(`unknown field "spec.${REMOVED}"`);
}

test('a CRD upgrade with `kubectl apply --server-side --force-conflicts` restores the schema over Helm\'s older CRD; Canaries survive', { skip: e2eSkip }, async () => {
  const current = parse(readFileSync(CRD_FILE, 'utf8')) as Crd;
  const shipped = await chartCrds();
  const shippedDocs = parseAllDocuments(shipped).map((d) => d.toJSON() as Crd).filter(Boolean);
  assert.deepEqual(shippedDocs, [current], 'the chart ships exactly the repo\'s CRD');
  assert.ok(specSchema(current).properties![REMOVED], `crds/ has spec.${REMOVED}`);

  await c.kubectlOk(['-n', ns, 'apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'vane.dev/v1alpha1', kind: 'Canary', metadata: { name: 'checkout' },
      spec: { ingressRef: { name: 'shop' }, service: 'checkout', canaryService: { name: 'checkout-v2', port: { number: 80 } }, traffic: { weight: 10 }, [REMOVED]: true },
    }),
  });
  const stored = JSON.parse(await c.kubectlOk(['-n', ns, 'get', 'canaries.vane.dev', 'checkout', '-o', 'json'])) as { metadata: { uid: string }; spec: Record<string, unknown> };
  assert.equal(stored.spec[REMOVED], true);

  try {
    // The older CRD, as `helm install` of an older chart left it: field manager helm.
    const older = structuredClone(current);
    delete specSchema(older).properties![REMOVED];
    const rules = JSON.stringify(older.spec.versions[0]!.schema);
    assert.ok(!rules.includes(`self.${REMOVED}`), `no CEL rule reads spec.${REMOVED}, so the older CRD is valid`);
    const traffic = specSchema(older).properties!.traffic!;
    traffic.description = 'How requests are split (older wording).';
    // A property a later release dropped: the forced apply must remove it too.
    specSchema(older).properties!.legacy = { type: 'string', description: 'Dropped since.' };
    older.metadata.resourceVersion = (await readCrd()).metadata.resourceVersion!;
    await c.kubectlOk(['replace', '--field-manager=helm', '-f', '-'], { input: JSON.stringify(older) });
    await eventually(`the API server to serve the older schema (spec.${REMOVED} unknown)`, () => unknownPaused());
    const during = await c.kubectl(['-n', ns, 'get', 'canaries.vane.dev', 'checkout', '-o', 'json']);
    assert.equal(during.code, 0, 'the Canary is still there under the older CRD');
    const seen = JSON.parse(during.stdout) as typeof stored;
    assert.equal(seen.metadata.uid, stored.metadata.uid);
    // Pruned when read under the older schema, still in etcd: a write now would lose it for good.
    assert.equal(seen.spec[REMOVED], undefined, `the older CRD hides spec.${REMOVED}`);

    // Without --force-conflicts, server-side apply refuses to take fields Helm owns.
    const plain = await c.kubectl(['apply', '--server-side', '-f', '-'], { input: shipped });
    assert.notEqual(plain.code, 0, 'a plain server-side apply conflicts with the fields Helm wrote');
    assert.match(plain.stderr, /conflict with "helm"/);

    const forced = await c.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], { input: shipped });
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /customresourcedefinition\.apiextensions\.k8s\.io\/canaries\.vane\.dev serverside-applied/);

    const upgraded = await readCrd();
    assert.deepEqual(specSchema(upgraded).properties![REMOVED], specSchema(current).properties![REMOVED], `spec.${REMOVED} is back`);
    assert.equal(specSchema(upgraded).properties!.traffic!.description, specSchema(current).properties!.traffic!.description);
    assert.equal(specSchema(upgraded).properties!.legacy, undefined, 'what only the older CRD had is gone: the schema is the chart\'s, exactly');
    await c.kubectlOk(['wait', '--for=condition=Established', 'crd/canaries.vane.dev', '--timeout=30s']);
    await eventually(`the API server to serve spec.${REMOVED} again`, async () => !(await unknownPaused()));

    const after = JSON.parse(await c.kubectlOk(['-n', ns, 'get', 'canaries.vane.dev', 'checkout', '-o', 'json'])) as typeof stored;
    assert.equal(after.metadata.uid, stored.metadata.uid, 'the same Canary, never deleted');
    assert.deepEqual(after.spec, stored.spec, `its spec, ${REMOVED} included, as it was stored`);
  } finally {
    await c.kubectl(['apply', '--server-side', '--force-conflicts', '-f', CRD_FILE]);
  }
});
