/**
 * The repository's Dockerfile, built for real with `buildah bud --isolation chroot`. No
 * registry is reachable, so its two base images are stand-ins made here from scratch
 * (tests/support/standin-node-images.sh: Node 24 and its libraries; plus busybox and npm for
 * the builder) and passed as NODE_IMAGE and RUNTIME_IMAGE. The npm cache of this machine is
 * mounted into the build's RUN steps, so `npm ci --prefer-offline` needs no network.
 * The image is then run under chroot as its user: compiled JavaScript only, as 65532.
 *
 * Needs root, buildah and busybox-static: missing, it skips locally and fails under CI=true.
 * Takes about 40 s (stand-ins 10 s, the build 20 s).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
const ci = process.env.CI === 'true';

function which(cmd: string): string {
  const r = spawnSync('bash', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}
const missing = [
  ...(process.getuid?.() === 0 ? [] : ['root']),
  ...['buildah', 'strip', 'chroot', 'npm'].filter((c) => !which(c)),
  ...(existsSync('/bin/busybox') ? [] : ['busybox-static']),
];
const skip = missing.length > 0 && !ci ? `missing: ${missing.join(', ')} (bash scripts/install-system-deps.sh)` : false;
const chroot = which('chroot');

const tag = `${process.pid}-${Date.now().toString(36)}`;
const standin = `localhost/vane-standin-node-${tag}`;
const image = `localhost/vane-dockerfile-test-${tag}:${version}`;
const containers: string[] = [];
let built: SpawnSyncReturns<string>;
let rootfs = '';
let config: { User?: string; Entrypoint?: string[]; Cmd?: string[] | null; WorkingDir?: string; Env?: string[]; Labels?: Record<string, string> };

function run(cmd: string, args: string[], timeout = 120_000): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return r;
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} exited ${r.status}:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

before(() => {
  if (skip) return;
  if (missing.length > 0) throw new Error(`CI=true and ${missing.join(', ')} missing: run bash scripts/install-system-deps.sh as root`);
  ok(run('bash', [join(root, 'tests', 'support', 'standin-node-images.sh'), standin], 300_000), 'standin-node-images.sh');
  const npmCache = ok(run('npm', ['config', 'get', 'cache']), 'npm config get cache').trim();
  built = run('buildah', ['bud', '--isolation', 'chroot', '--pull-never',
    '--build-arg', `NODE_IMAGE=${standin}:builder`, '--build-arg', `RUNTIME_IMAGE=${standin}:runtime`,
    '--build-arg', `VERSION=${version}`, '-v', `${npmCache}:/root/.npm`, '-t', image, '-f', 'Dockerfile', '.'], 600_000);
});

after(() => {
  if (skip) return;
  for (const c of containers) run('buildah', ['rm', c]);
  for (const i of [image, `${standin}:builder`, `${standin}:runtime`]) run('buildah', ['rmi', i]);
});

test('buildah bud builds the Dockerfile on the stand-in base images', { skip }, () => {
  ok(built, 'buildah bud');
  const inspect = JSON.parse(ok(run('buildah', ['inspect', '--type', 'image', image]), 'buildah inspect')) as { OCIv1: { config: typeof config } };
  config = inspect.OCIv1.config;
  assert.equal(config.User, '65532:65532');
  assert.deepEqual(config.Entrypoint, ['/usr/local/bin/node', '/app/bin/vane.js']);
  assert.ok(!config.Cmd || config.Cmd.length === 0, `the base image's CMD leaks through: ${JSON.stringify(config.Cmd)}`);
  assert.equal(config.WorkingDir, '/app');
  assert.ok(config.Env?.includes('NODE_ENV=production'));
  assert.equal(config.Labels?.['org.opencontainers.image.version'], version);
  assert.equal(config.Labels?.['org.opencontainers.image.title'], 'vane');
});

test('/app holds the packed package with production dependencies, owned by root', { skip }, () => {
  assert.ok(config, 'the image was built');
  const ctr = ok(run('buildah', ['from', '--pull-never', image]), 'buildah from').trim();
  containers.push(ctr);
  rootfs = ok(run('buildah', ['mount', ctr]), 'buildah mount').trim();
  const app = join(rootfs, 'app');
  assert.ok(existsSync(join(app, 'dist', 'cli', 'main.js')));
  assert.ok(existsSync(join(app, 'node_modules', 'commander')));
  for (const absent of ['cli', 'core', 'node_modules/typescript', 'node_modules/eslint', 'bench', 'tests/unit', 'tsconfig.json']) {
    assert.ok(!existsSync(join(app, absent)), `${absent} is in the image`);
  }
  const bad: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const rel = relative(app, p);
      const st = lstatSync(p);
      if (!st.isSymbolicLink() && (st.uid !== 0 || (st.mode & 0o022) !== 0)) bad.push(`${rel}: uid ${st.uid} mode ${(st.mode & 0o7777).toString(8)}`);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mts|cts)$/.test(e.name) && !rel.startsWith('node_modules/')) bad.push(`${rel}: TypeScript`);
    }
  };
  walk(app);
  assert.deepEqual(bad, []);
});

test('the image runs vane as 65532 under chroot', { skip }, () => {
  assert.ok(rootfs, 'the previous test mounted the image');
  const inImage = (argv: string[]) => run('env', ['-i', ...config.Env!, chroot, `--userspec=${config.User}`, rootfs, ...config.Entrypoint!, ...argv]);
  assert.equal(ok(inImage(['--version']), 'vane --version').trim(), version);
  const v = inImage(['validate', '/app/examples/quickstart']);
  ok(v, 'vane validate');
  assert.match(v.stderr, /ok: no errors/);
});
