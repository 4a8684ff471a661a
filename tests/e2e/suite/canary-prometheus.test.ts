/**
 * A Prometheus-backed metric decides a run: a real Prometheus (the Debian package, from
 * scripts/install-system-deps.sh) scrapes both proxies' /metrics; the canary's only metric
 * is a PromQL error ratio of its side, asked of the Prometheus the operator is configured
 * with (--prometheus-url). Healthy, the query passes and the canary advances; once the
 * canary backend fails half its requests, the query fails the checks and rolls it back.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { e2eSkip, netnsSkip } from '../harness/index.ts';
import { canaryWorld, condition, NAME, type CanaryWorld, everySecond } from './canary-support.ts';
import { eventually, freePortRange } from '../../support/wait.ts';

const PROMETHEUS = '/usr/bin/prometheus';
function prometheusSkip(): string | false {
  if (existsSync(PROMETHEUS)) return false;
  if (process.env.CI === 'true') throw new Error(`CI=true and ${PROMETHEUS} is missing: run bash scripts/install-system-deps.sh`);
  return `${PROMETHEUS} missing: bash scripts/install-system-deps.sh installs it`;
}

const skip = e2eSkip || netnsSkip || prometheusSkip();
let w: CanaryWorld;
let prom: ChildProcess | null = null;
let dir: string;
let promUrl: string;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'vane-prometheus-'));
  writeFileSync(join(dir, 'targets.json'), '[]');
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global: { scrape_interval: 1s, evaluation_interval: 1s }',
    'scrape_configs:',
    '  - job_name: vane-proxy',
    `    file_sd_configs: [{ files: ["${join(dir, 'targets.json')}"] }]`,
    '',
  ].join('\n'));
  const port = await freePortRange(1);
  promUrl = `http://127.0.0.1:${port}`;
  prom = spawn(PROMETHEUS, [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=error',
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
  await eventually('Prometheus to be ready', async () => (await fetch(`${promUrl}/-/ready`)).status === 200, 30_000);
  w = await canaryWorld(import.meta.url, { operatorArgs: ['--prometheus-url', promUrl] });
  const targets = JSON.stringify([{ targets: w.proxies.map((p) => `127.0.0.1:${p.admin}`), labels: { namespace: w.ns } }]);
  writeFileSync(join(dir, 'targets.tmp'), targets);
  renameSync(join(dir, 'targets.tmp'), join(dir, 'targets.json'));
  await eventually('Prometheus to scrape both proxies', async () => {
    const r = await (await fetch(`${promUrl}/api/v1/targets`)).json() as { data: { activeTargets: { health: string }[] } };
    return r.data.activeTargets.filter((x) => x.health === 'up').length === 2;
  }, 60_000);
});

after(async () => {
  await w?.close();
  if (prom && prom.exitCode === null) {
    const exited = new Promise((r) => prom!.once('exit', r));
    prom.kill('SIGTERM');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a PromQL error ratio from a real Prometheus passes a healthy step, then fails the canary back', { skip, timeout: 150_000 }, async (t) => {
  const traffic = everySecond(120_000, () => w.send(40));
  const side = `ingress="${w.ns}/shop",canary="canary"`;
  try {
    await w.apply({
      ingressRef: { name: 'shop' }, service: NAME, canaryService: { name: `${NAME}-v2` },
      analysis: {
        interval: '10s', stepWeights: [20, 50], threshold: 2,
        metrics: [{
          name: 'error-ratio', max: 0.05,
          prometheus: { query: `(sum(rate(vane_proxy_requests_total{${side},code="5xx"}[10s])) or vector(0)) / sum(rate(vane_proxy_requests_total{${side}}[10s]))` },
        }],
      },
    });
    const passed = await w.until('a passing Prometheus check', (c) => c.status?.weight === 50, 45_000);
    const healthy = passed.status?.lastChecks?.find((x) => x.name === 'error-ratio');
    assert.equal(healthy?.result, 'Pass');
    assert.equal(healthy?.value, 0);

    await w.canary.fail(500, 0.5);
    const failed = await w.until('the rollback', (c) => c.status?.phase === 'Failed', 45_000);
    const last = failed.status?.lastChecks?.find((x) => x.name === 'error-ratio');
    t.diagnostic(`error-ratio at the rollback: ${last?.value} (${last?.message})`);
    assert.equal(last?.result, 'Fail');
    assert.ok((last?.value ?? 0) > 0.05, last?.message);
    assert.equal(condition(failed, 'Failed').reason, 'ThresholdReached');
    assert.equal(failed.status?.weight, 0);
  } finally {
    await traffic.stop();
  }
});
