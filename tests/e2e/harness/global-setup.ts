/**
 * `node --test --test-global-setup=tests/e2e/harness/global-setup.ts …`: one control plane
 * for the whole run, started only when e2e files are part of it.
 *
 * - Tools come from $VANE_K8S_BIN or the build cache (scripts/test.sh builds them first).
 *   Missing: with CI=true the run fails here, loudly; otherwise the e2e tests are skipped
 *   and this says how to enable them.
 * - `ip netns add` is probed once; refused: fails under CI=true, else netns tests skip.
 * - Leftovers of earlier runs that died without teardown are reaped first.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  locateTools, startControlPlane, onExitSync, reapStaleNode, BUILD_SCRIPT, type ControlPlane,
} from '../../../devtools/controlplane/index.ts';
import { destroyRunNetnsSync, probeNetns, reapStaleNetns, releaseIfIdle } from '../../../devtools/netns.ts';
import {
  RUN_FILE_ENV, SKIP_ENV, STATE_PREFIX, currentOwner, newRunId, ownerFile, reapStaleStateDirs, type RunInfo,
} from './run.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const E2E_DIR = `tests${sep}e2e${sep}`;
const GLOB = /[*?[{]/;

function say(message: string): void {
  console.error(`[vane-e2e] ${message}`);
}

function loud(lines: string[]): void {
  const bar = '!'.repeat(78);
  console.error(['', bar, ...lines.map((l) => `!! ${l}`), bar, ''].join('\n'));
}

/**
 * runIncludesE2e says whether the test file patterns of this run can match tests/e2e: no
 * pattern (node's default finds every test file), or one whose literal head is a prefix of
 * tests/e2e/ or lies inside it.
 */
export function runIncludesE2e(argv: readonly string[], cwd: string): boolean {
  const patterns = argv.filter((a) => !a.startsWith('-'));
  if (patterns.length === 0) return true;
  return patterns.some((p) => {
    const head = p.split(GLOB)[0]!;
    const rel = relative(ROOT, resolve(cwd, head)) + (head.endsWith('/') || head === '' ? sep : '');
    const norm = rel === sep ? '' : rel;
    return E2E_DIR.startsWith(norm) || norm.startsWith(E2E_DIR);
  });
}

let plane: ControlPlane | null = null;
let info: RunInfo | null = null;
let runFile: string | null = null;

export async function globalSetup(): Promise<void> {
  if (!runIncludesE2e(process.argv.slice(1), process.cwd())) return;
  const ci = process.env.CI === 'true';
  const tools = locateTools();
  if ('missing' in tools) {
    const lines = [
      `e2e tests need the real Kubernetes tools; ${tools.missing.join(', ')} missing in ${tools.bin}.`,
      `Build them once (about 12 min cold, cached after): bash ${relative(process.cwd(), BUILD_SCRIPT)}`,
      'or run scripts/test.sh, which builds them and runs everything; or set VANE_K8S_BIN to their directory.',
    ];
    if (ci) throw new Error(`CI=true and the e2e tools are missing:\n${lines.join('\n')}`);
    loud(['SKIPPING the e2e tier.', ...lines]);
    process.env[SKIP_ENV] = `e2e tools missing (${tools.missing.join(', ')} in ${tools.bin}); build them with bash tests/e2e/tools/build.sh`;
    return;
  }

  const t0 = Date.now();
  const reapedDirs = await reapStaleStateDirs();
  const reapedNetns = reapStaleNetns();
  const reapedNode = reapStaleNode();
  const reaped = [...reapedDirs, ...reapedNetns, ...(reapedNode ? [`node cluster ${reapedNode}`] : [])];
  if (reaped.length > 0) say(`reaped leftovers of dead runs: ${reaped.join(', ')}`);

  const run = newRunId();
  const probe = probeNetns(run);
  if (!probe.ok) {
    const why = `network namespaces unavailable here: ${probe.reason}`;
    if (ci) throw new Error(`CI=true and ${why} (the e2e backends need root or CAP_NET_ADMIN + CAP_SYS_ADMIN, and the ip tool)`);
    loud([`SKIPPING e2e tests that need backends in network namespaces: ${why}`, 'Run as root (or with CAP_NET_ADMIN and CAP_SYS_ADMIN) to enable them.']);
  }

  const dir = mkdtempSync(join(tmpdir(), STATE_PREFIX));
  writeFileSync(ownerFile(dir), JSON.stringify(currentOwner()));
  onExitSync(() => {
    destroyRunNetnsSync(run);
    releaseIfIdle();
  });
  plane = await startControlPlane({ dir, bin: tools.bin, removeOnExit: true, onProgress: say });
  info = {
    run,
    dir,
    kubeconfig: plane.state.kubeconfig,
    bin: tools.bin,
    netns: probe.ok ? 'ok' : { unavailable: probe.reason },
  };
  runFile = join(dir, 'run.json');
  writeFileSync(runFile, JSON.stringify(info, null, 2));
  process.env[RUN_FILE_ENV] = runFile;
  process.env.VANE_E2E_KUBECONFIG = info.kubeconfig;
  process.env.VANE_K8S_BIN = tools.bin;
  say(`control plane up in ${Date.now() - t0} ms (run ${run}, state ${dir})`);
}

export async function globalTeardown(): Promise<void> {
  if (!plane || !info) return;
  // Quiet unless something was left behind: the run's summary stays the last thing printed.
  const left = destroyRunNetnsSync(info.run);
  releaseIfIdle();
  await plane.stop({ removeState: true });
  rmSync(info.dir, { recursive: true, force: true });
  if (left.length > 0) say(`network namespaces left by tests, removed: ${left.join(', ')}`);
  plane = null;
  info = null;
}
