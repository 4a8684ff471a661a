/**
 * The packed package, installed the way a user installs it: `npm pack` (its prepack compiles
 * to dist/), `npm install -g --prefix TMP vane-VERSION.tgz`, then `vane` and `kubectl-vane`
 * from PATH, run from a directory outside the checkout. Every module the processes load is
 * recorded through a module hook: they run compiled JavaScript from dist/, never a .ts file.
 * `kubectl vane` goes through a real kubectl when the built tools have one ($VANE_K8S_BIN or
 * the build cache); without it the route is skipped locally and fails under CI=true.
 *
 * The krew archive and manifest (scripts/krew-archive.sh, scripts/krew-manifest.sh) are made
 * from the same tarball and installed the way krew lays a plugin out.
 *
 * Takes about 30 s (build 8 s, pack, install from the local npm cache 5 s, krew archive 6 s).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { defaultToolsBin } from '../../devtools/controlplane/tools.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
const ci = process.env.CI === 'true';

let tmp = '';
let tarball = '';
let prefix = '';
let installed = '';
let traceHook = '';

/** env: Node 24 (this test's) first on PATH, then the install prefix's bin, then the system. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, PATH: [dirname(process.execPath), join(prefix, 'bin'), process.env.PATH ?? ''].join(delimiter) };
  delete e.NODE_OPTIONS;
  return { ...e, ...extra };
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? tmp, env: opts.env ?? env(), encoding: 'utf8', timeout: opts.timeout ?? 120_000 });
  if (r.error) throw r.error;
  return r;
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** traced runs an installed command with the module hook and returns what it printed and every file it loaded. */
function traced(cmd: string, args: string[], extra: Record<string, string> = {}) {
  const trace = join(tmp, `trace-${Math.random().toString(36).slice(2)}.txt`);
  const r = run(cmd, args, { env: env({ ...extra, VANE_TRACE_FILE: trace, NODE_OPTIONS: `--import=${pathToFileURL(traceHook).href}` }) });
  const loaded = existsSync(trace) ? readFileSync(trace, 'utf8').split('\n').filter((l) => l.startsWith('file:')).map((u) => fileURLToPath(u)) : [];
  return { r, loaded };
}

/** assertCompiledOnly: the package's own modules that ran are bin/*.js and dist/**.js, and the entry point is among them. */
function assertCompiledOnly(loaded: string[], entry: string): void {
  const own = loaded.filter((f) => f.startsWith(installed + '/') && !relative(installed, f).startsWith('node_modules/'));
  assert.ok(own.length > 5, `too few of the package's modules were traced:\n${loaded.join('\n')}`);
  for (const f of own) {
    const rel = relative(installed, f);
    assert.match(rel, /^(bin\/[^/]+\.js|dist\/.+\.js)$/, `ran ${rel}, which is not compiled JavaScript`);
  }
  assert.ok(own.some((f) => relative(installed, f) === entry), `${entry} did not run; ran:\n${own.join('\n')}`);
  assert.ok(!loaded.some((f) => f.endsWith('.ts') || f.endsWith('.mts') || f.endsWith('.cts')), 'a TypeScript file ran');
}

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'vane-package-'));
  prefix = join(tmp, 'prefix');
  traceHook = join(tmp, 'trace-hook.mjs');
  writeFileSync(traceHook, [
    "import { registerHooks } from 'node:module';",
    "import { appendFileSync } from 'node:fs';",
    'registerHooks({ load(url, context, next) { appendFileSync(process.env.VANE_TRACE_FILE, url + "\\n"); return next(url, context); } });',
    '',
  ].join('\n'));
  const packed = ok(run('npm', ['pack', '--pack-destination', tmp, '--loglevel=error'], { cwd: root, timeout: 300_000 }), 'npm pack');
  tarball = join(tmp, packed.trim().split('\n').pop()!);
  assert.equal(tarball, join(tmp, `${pkg.name}-${pkg.version}.tgz`));
  ok(run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], { timeout: 300_000 }), 'npm install -g');
  installed = join(prefix, 'lib', 'node_modules', pkg.name);
});

after(() => { if (tmp) rmSync(tmp, { recursive: true, force: true }); });

test('the tarball holds the compiled CLI, the CRDs and the tools recipe, and no sources, tests or bench', () => {
  const files = ok(run('tar', ['-tzf', tarball]), 'tar').trim().split('\n').map((f) => f.replace(/^package\//, ''));
  for (const want of ['package.json', 'README.md', 'bin/vane.js', 'bin/kubectl-vane.js', 'dist/cli/main.js', 'dist/cli/kubectl-vane.js',
    'dist/proxy/worker-main.js', 'dist/lib/package-root.js', 'tests/e2e/tools/build.sh', 'tests/e2e/tools/versions.env']) {
    assert.ok(files.includes(want), `${want} is not in the tarball`);
  }
  assert.ok(files.some((f) => /^crds\/.+\.ya?ml$/.test(f)), 'no CRD in the tarball');
  const unwanted = files.filter((f) => /\.(ts|mts|cts|map)$/.test(f) || f.startsWith('bench/') || /\.test\./.test(f) ||
    (f.startsWith('tests/') && !['tests/e2e/tools/build.sh', 'tests/e2e/tools/versions.env'].includes(f)) ||
    /^(core|operator|proxy|webhook|cli|lib|scripts|node_modules)\//.test(f));
  assert.deepEqual(unwanted, []);
});

test('the installed tree has vane and kubectl-vane on PATH and no TypeScript of its own', () => {
  for (const bin of ['vane', 'kubectl-vane']) accessSync(join(prefix, 'bin', bin), constants.X_OK);
  const ts: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules') continue;
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (/\.(ts|mts|cts)$/.test(e.name)) ts.push(relative(installed, join(dir, e.name)));
    }
  };
  walk(installed);
  assert.deepEqual(ts, []);
  assert.ok(!existsSync(join(installed, 'node_modules', 'typescript')), 'devDependencies were installed');
});

test('vane --version and vane validate run from PATH, on dist/', () => {
  const v = traced('vane', ['--version']);
  assert.equal(ok(v.r, 'vane --version').trim(), pkg.version);
  assertCompiledOnly(v.loaded, 'dist/cli/main.js');

  const good = traced('vane', ['validate', join(root, 'examples')]);
  ok(good.r, 'vane validate examples/');
  assert.match(good.r.stderr, /ok: no errors/);
  assertCompiledOnly(good.loaded, 'dist/cli/validate.js');

  const bad = run('vane', ['validate', join(root, 'tests', 'fixtures', 'invalid')]);
  assert.equal(bad.status, 1, bad.stdout + bad.stderr);
  assert.match(bad.stdout, /Canary demo\/self-split: spec\.canaryService\.name: must differ from spec\.service/);
});

test('vane local finds the tools recipe in the installed package, not under dist/', () => {
  const tools = join(tmp, 'no-tools');
  const r = run('vane', ['local', 'up', '--no-build', '--dir', join(tmp, 'local')], { env: env({ VANE_TOOLS_DIR: tools, VANE_K8S_BIN: '' }) });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  const versions = readFileSync(join(root, 'tests', 'e2e', 'tools', 'versions.env'), 'utf8');
  const k8s = /^KUBERNETES_VERSION=(\S+)/m.exec(versions)![1]!;
  // The version comes from the installed versions.env: the path names it.
  assert.ok(r.stderr.includes(`missing in ${join(tools, `k8s-${k8s}`, 'bin')}`), r.stderr);
});

test('kubectl-vane runs from PATH, on dist/', () => {
  const help = traced('kubectl-vane', ['--help']);
  assert.match(ok(help.r, 'kubectl-vane --help'), /Usage: kubectl vane/);
  assertCompiledOnly(help.loaded, 'dist/cli/kubectl-vane.js');
  assert.equal(ok(run('kubectl-vane', ['--version']), 'kubectl-vane --version').trim(), pkg.version);
});

const kubectlDir = process.env.VANE_K8S_BIN || defaultToolsBin();
const kubectl = join(kubectlDir, 'kubectl');
const haveKubectl = existsSync(kubectl);
const haveTools = ['etcd', 'kube-apiserver', 'kubectl'].every((t) => existsSync(join(kubectlDir, t)));

test('kubectl finds the plugin: kubectl plugin list, kubectl vane', { skip: !haveKubectl && !ci && `no kubectl in ${kubectlDir} (bash tests/e2e/tools/build.sh builds it)` }, () => {
  if (!haveKubectl) throw new Error(`CI=true and ${kubectl} is missing: build the tools (bash tests/e2e/tools/build.sh) and export VANE_K8S_BIN`);
  // Only the install prefix and Node on PATH: kubectl must find kubectl-vane there, not elsewhere.
  const pathEnv = env({ PATH: [dirname(process.execPath), join(prefix, 'bin'), '/usr/bin', '/bin'].join(delimiter), KUBECONFIG: join(tmp, 'no-kubeconfig') });
  const list = run(kubectl, ['plugin', 'list'], { env: pathEnv });
  assert.ok(list.stdout.includes(join(prefix, 'bin', 'kubectl-vane')), `kubectl plugin list:\n${list.stdout}\n${list.stderr}`);
  const help = run(kubectl, ['vane', '--help'], { env: pathEnv });
  assert.match(ok(help, 'kubectl vane --help'), /Usage: kubectl vane/);
  assert.equal(ok(run(kubectl, ['vane', '--version'], { env: pathEnv }), 'kubectl vane --version').trim(), pkg.version);
});

test('the installed vane local up runs the control plane and its components on dist/', { skip: !haveTools && !ci && `no built tools in ${kubectlDir}`, timeout: 180_000 }, () => {
  if (!haveTools) throw new Error(`CI=true and the tools are missing in ${kubectlDir}: build them (bash tests/e2e/tools/build.sh) and export VANE_K8S_BIN`);
  const dir = join(tmp, 'local');
  const localEnv = env({ VANE_K8S_BIN: kubectlDir });
  try {
    const up = run('vane', ['local', 'up', '--no-build', '--dir', dir], { env: localEnv, timeout: 150_000 });
    ok(up, 'vane local up');
    assert.match(up.stderr, /CRDs applied and Established: canaries\.vane\.dev/);
    const pids = [...up.stderr.matchAll(/(\S+) started \(pid (\d+)/g)].map((m) => ({ name: m[1]!, pid: Number(m[2]) }));
    assert.ok(pids.length >= 1, up.stderr);
    for (const { name, pid } of pids) {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      assert.equal(argv[1], join(installed, 'dist', 'cli', 'main.js'), `${name} runs ${argv.join(' ')}`);
    }
  } finally {
    run('vane', ['local', 'down', '--dir', dir], { env: localEnv });
  }
});

interface KrewPlugin {
  apiVersion: string; kind: string; metadata: { name: string };
  spec: {
    version: string; shortDescription: string; description: string; caveats?: string;
    platforms: { selector: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values: string[] }[] }; uri: string; sha256: string; bin: string; files?: { from: string; to: string }[] }[];
  };
}

function assertKrewShape(m: KrewPlugin): void {
  assert.equal(m.apiVersion, 'krew.googlecontainertools.github.com/v1alpha2');
  assert.equal(m.kind, 'Plugin');
  assert.equal(m.metadata.name, 'vane');
  assert.match(m.spec.version, /^v\d+\.\d+\.\d+/);
  assert.ok(m.spec.shortDescription.length > 0 && m.spec.shortDescription.length <= 80, 'shortDescription');
  assert.ok(m.spec.description.trim().length > 50, 'description');
  assert.ok(m.spec.platforms.length > 0);
  for (const p of m.spec.platforms) {
    assert.ok(p.selector.matchLabels || p.selector.matchExpressions, 'a platform selector');
    assert.match(p.uri, /^https?:\/\//);
    assert.match(p.sha256, /^[a-f0-9]{64}$/);
    assert.ok(p.bin.length > 0);
    for (const f of p.files ?? []) assert.ok(f.from && f.to);
  }
}

test('the krew manifest template is valid and clearly a template', () => {
  const template = parseYaml(readFileSync(join(root, 'plugins', 'krew', 'vane.yaml'), 'utf8')) as KrewPlugin;
  assertKrewShape(template);
  assert.match(template.spec.platforms[0]!.uri, /\.invalid\//);
  assert.equal(template.spec.platforms[0]!.sha256, '0'.repeat(64));
});

test('krew archive and manifest: the real sha256, and the plugin runs as krew installs it', () => {
  const out = join(tmp, 'krew');
  const made = run('bash', [join(root, 'scripts', 'krew-archive.sh'), tarball, out], { timeout: 300_000 });
  const archive = ok(made, 'krew-archive.sh').trim().split('\n').pop()!;
  assert.equal(archive, join(out, `kubectl-vane-${pkg.version}.tar.gz`));
  const url = `https://downloads.example.com/vane/v${pkg.version}/kubectl-vane-${pkg.version}.tar.gz`;
  const text = ok(run('bash', [join(root, 'scripts', 'krew-manifest.sh'), archive, url]), 'krew-manifest.sh');
  const manifest = parseYaml(text) as KrewPlugin;
  assertKrewShape(manifest);
  const platform = manifest.spec.platforms[0]!;
  assert.equal(manifest.spec.version, `v${pkg.version}`);
  assert.equal(platform.uri, url);
  assert.equal(platform.sha256, createHash('sha256').update(readFileSync(archive)).digest('hex'));

  // What krew does: unpack, move each files[].from glob to .to inside the install dir, link bin.
  const unpacked = join(tmp, 'krew-unpacked');
  const store = join(tmp, 'krew-store', 'vane', manifest.spec.version);
  const krewBin = join(tmp, 'krew-bin');
  mkdirSync(unpacked, { recursive: true });
  mkdirSync(store, { recursive: true });
  mkdirSync(krewBin);
  ok(run('tar', ['-xzf', archive, '-C', unpacked]), 'tar -x krew archive');
  for (const f of platform.files!) {
    assert.ok(f.from.endsWith('/*') && f.to === '.', `unexpected files entry ${JSON.stringify(f)}`);
    const from = join(unpacked, f.from.slice(0, -2));
    for (const e of readdirSync(from)) renameSync(join(from, e), join(store, e));
  }
  symlinkSync(join(store, platform.bin), join(krewBin, 'kubectl-vane'));
  const version = traced(join(krewBin, 'kubectl-vane'), ['--version']);
  assert.equal(ok(version.r, 'krew-installed kubectl-vane --version').trim(), pkg.version);
  const own = version.loaded.filter((f) => f.startsWith(store + '/') && !relative(store, f).startsWith('node_modules/'));
  assert.ok(own.some((f) => relative(store, f) === 'dist/cli/kubectl-vane.js'), `ran:\n${version.loaded.join('\n')}`);
  assert.ok(own.every((f) => f.endsWith('.js')), `ran:\n${own.join('\n')}`);
});
