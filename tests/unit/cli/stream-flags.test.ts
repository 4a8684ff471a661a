/**
 * The stream's CLI defaults (issue 18, weakness 6): outside a pod the operator's stream and
 * admin ports and the proxy's admin port listen on loopback unless a flag says otherwise; the
 * operator serves plain ws:// and the proxy dials it only when --allow-plaintext-stream says so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { defaultListenHost } from '../../../cli/listen.ts';

const CLI = fileURLToPath(new URL('../../../cli/main.ts', import.meta.url));

function outsideAPod(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, VANE_LOG_LEVEL: 'info' };
  delete env.KUBERNETES_SERVICE_HOST;
  return env;
}

test('listen addresses default to loopback outside a pod and to every address in one', () => {
  assert.equal(defaultListenHost({}), '127.0.0.1');
  assert.equal(defaultListenHost({ KUBERNETES_SERVICE_HOST: '10.96.0.1' }), '0.0.0.0');
});

test('vane operator and vane proxy take those defaults for the stream and admin ports', async () => {
  const saved = process.env.KUBERNETES_SERVICE_HOST;
  delete process.env.KUBERNETES_SERVICE_HOST;
  try {
    const { buildProgram } = await import('../../../cli/main.ts');
    const program = buildProgram();
    const defaults = (name: string) => Object.fromEntries((program.commands.find((c) => c.name() === name) as Command).options.map((o) => [o.long, o.defaultValue as unknown]));
    const operator = defaults('operator');
    assert.deepEqual([operator['--stream-host'], operator['--admin-host']], ['127.0.0.1', '127.0.0.1']);
    assert.equal(defaults('proxy')['--admin-host'], '127.0.0.1');
  } finally {
    if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
  }
});

test('vane operator --from-files refuses to serve the stream without TLS unless --allow-plaintext-stream; a certificate needs its key', () => {
  const plain = spawnSync(process.execPath, [CLI, 'operator', '--from-files', 'examples/quickstart', '--stream-port', '0', '--admin-port', '0'], { encoding: 'utf8', env: outsideAPod(), timeout: 60_000 });
  assert.equal(plain.status, 2, plain.stderr);
  assert.match(plain.stderr, /--from-files: the stream needs --tls-cert and --tls-key .*, or --allow-plaintext-stream for local development/);
  const half = spawnSync(process.execPath, [CLI, 'operator', '--from-files', 'examples/quickstart', '--tls-cert', 'cert.pem'], { encoding: 'utf8', env: outsideAPod(), timeout: 60_000 });
  assert.equal(half.status, 2, half.stderr);
  assert.match(half.stderr, /--tls-key is required with --tls-cert/);
});

test('vane proxy refuses a ws:// operator URL unless --allow-plaintext-stream', () => {
  const r = spawnSync(process.execPath, [CLI, 'proxy', '--operator', 'wss://a.test/stream,ws://127.0.0.1:9/stream', '--proxy-name', 'p'], { encoding: 'utf8', env: outsideAPod(), timeout: 60_000 });
  assert.equal(r.status, 2, r.stderr);
  const fatal = r.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: string; msg: string; urls?: string[] }).find((l) => l.level === 'fatal');
  assert.match(fatal?.msg ?? '', /^--operator: plain ws:\/\/ sends the stream token unencrypted; use wss:\/\/ .*, or --allow-plaintext-stream/);
  assert.deepEqual(fatal?.urls, ['ws://127.0.0.1:9/stream']);
});
