/**
 * The webhook's certificates against the real API server. Two replicas start together with
 * nothing stored: one creates the CA and serving certificate in the Secret and patches
 * caBundle into the configuration Helm installed, the other adopts them, and the API server
 * calls the webhook over TLS. Then what GitOps tools and Helm do to that configuration, and a
 * CA rollover followed by a serving-certificate renewal while the API server keeps calling.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCertificate, generateKeyPair, privateKeyPem, splitPemCertificates } from '../../../lib/certs/index.ts';
import { envWithoutProxies } from '../../../devtools/controlplane/index.ts';
import { cluster, e2eSkip, type Cluster } from '../harness/index.ts';
import {
  PLACEHOLDER_URL, SNIPPET_DENIAL, awaitAdmission, cleanup, fingerprint, metric, pointAt, prepareWebhook, readConfig, readSecret,
  reviews, served, snippetIngress, startWebhook, webhookConfigFor, writeSecretData, type WebhookEnv, type WebhookProcess,
} from './webhook-support.ts';
import { eventually } from '../../support/wait.ts';

const DAY_MS = 86_400_000;
const RESYNC = ['--resync', '500ms'];

let c: Cluster;
let env: WebhookEnv;
let a: WebhookProcess;
let b: WebhookProcess;

before(async () => {
  if (e2eSkip) return;
  c = await cluster();
  env = await prepareWebhook(c, import.meta.url, { register: false });
});

after(() => cleanup(env));

/** helm runs the real helm against the run's cluster, in the webhook's namespace, with its state in the file's directory. */
function helm(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(join(c.bin, 'helm'), [...args, '--kubeconfig', c.kubeconfig, '-n', env.ns], {
      timeout: 60_000,
      env: envWithoutProxies(process.env, {
        HELM_CACHE_HOME: join(env.dir, 'helm/cache'), HELM_CONFIG_HOME: join(env.dir, 'helm/config'), HELM_DATA_HOME: join(env.dir, 'helm/data'),
      }),
    }, (err, stdout, stderr) => (err ? reject(new Error(`helm ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

/** writeChart is a chart holding only deploy/webhook's configuration, its URL a value: how a chart ships it without caBundle. */
function writeChart(): string {
  const dir = join(env.dir, 'chart');
  mkdirSync(join(dir, 'templates'), { recursive: true });
  writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: vane-webhook-e2e\nversion: 0.1.0\n');
  const template = JSON.stringify(webhookConfigFor(env.vwc, env.ns, '__URL__'), null, 2).replaceAll('"__URL__"', '{{ .Values.url | quote }}');
  writeFileSync(join(dir, 'templates/validatingwebhookconfiguration.yaml'), template);
  return dir;
}

async function canI(verb: string, resource: string): Promise<string> {
  return (await c.kubectl(['auth', 'can-i', verb, resource, `--as=${env.user}`, '-n', env.ns])).stdout.trim();
}

function written(): number {
  return a.count('certificates written') + b.count('certificates written');
}

/**
 * prober keeps asking the API server to admit a snippet Ingress (a server-side dry run, as the
 * administrator) until stopped. The Ingress webhook fails open, so any moment at which the API
 * server could not verify the webhook's certificate shows up as an allowed request.
 */
function prober(): { denied(): number; stop(): Promise<string[]> } {
  let running = true;
  let denied = 0;
  const other: string[] = [];
  const loop = (async () => {
    for (let i = 0; running && i < 2_000; i++) {
      const r = await c.api<{ message?: string }>('POST', `/apis/networking.k8s.io/v1/namespaces/${env.ns}/ingresses?dryRun=All`, snippetIngress(`probe-${i}`));
      if (r.status === 403 && r.body.message?.includes(SNIPPET_DENIAL)) denied++;
      else other.push(`HTTP ${r.status}: ${r.text.slice(0, 300)}`);
      await new Promise((r) => setTimeout(r, 40));
    }
  })();
  return { denied: () => denied, stop: async () => { running = false; await loop; return other; } };
}

test('first start: one replica creates the CA and serving certificate, patches caBundle, the API server calls it over TLS', { skip: e2eSkip }, async () => {
  assert.equal(await readSecret(env), null, 'nothing is stored before the first start');
  await helm('install', 'vane-webhook', writeChart(), '--set', `url=${PLACEHOLDER_URL}`);
  assert.deepEqual((await readConfig(env)).caBundles, ['', ''], 'the chart carries no caBundle');

  [a, b] = await Promise.all([startWebhook(env, RESYNC), startWebhook(env, RESYNC)]);
  assert.equal(written(), 1, 'exactly one replica wrote the certificates; the other adopted them');

  const secret = (await readSecret(env))!;
  assert.equal(secret.type, 'kubernetes.io/tls');
  assert.deepEqual(Object.keys(secret.data).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
  assert.ok(secret.managers.includes('vane-certs'), `Secret managers: ${secret.managers.join(', ')}`);
  const ca = new X509Certificate(secret.data['ca.crt']!);
  const serving = new X509Certificate(secret.data['tls.crt']!);
  assert.equal(ca.ca, true);
  assert.equal(serving.ca, false);
  assert.ok(serving.checkIssued(ca) && serving.verify(ca.publicKey), 'the serving certificate is signed by the CA');
  assert.equal(serving.subjectAltName, 'IP Address:127.0.0.1');
  for (const p of [a, b]) assert.equal(await served(p, secret.data['ca.crt']!), fingerprint(secret.data['tls.crt']!), 'both replicas serve the stored certificate');

  const config = await readConfig(env);
  assert.deepEqual(config.caBundles, [secret.data['ca.crt'], secret.data['ca.crt']], 'caBundle of both webhooks is the CA');
  assert.deepEqual(config.caBundleManagers, ['vane-certs'], 'caBundle is owned by the webhook alone');

  // The webhook did all that with deploy/webhook/rbac.yaml: by name, and nothing else.
  assert.equal(await canI('patch', `validatingwebhookconfigurations/${env.vwc}`), 'yes');
  assert.equal(await canI('patch', 'validatingwebhookconfigurations/someone-else'), 'no');
  assert.equal(await canI('update', `secrets/${env.secret}`), 'yes');
  assert.equal(await canI('get', 'secrets/someone-else'), 'no');
  assert.equal(await canI('list', 'secrets'), 'no');

  // helm upgrade points the configuration at replica a and, not templating caBundle, keeps it.
  await helm('upgrade', 'vane-webhook', join(env.dir, 'chart'), '--set', `url=${a.url}`);
  const upgraded = await readConfig(env);
  assert.deepEqual(upgraded.urls, [a.url, a.url]);
  assert.deepEqual(upgraded.caBundles, config.caBundles, 'helm upgrade leaves caBundle alone');

  const denial = await awaitAdmission(env);
  assert.match(denial, /^Error from server \(Forbidden\): error when creating "STDIN": admission webhook "ingresses\.vane\.dev" denied the request: /);
  assert.ok(await reviews(a, secret.data['ca.crt']!) >= 1, 'replica a counted the review');

  // Replicas that share the Secret do not fight. An absence is watched for a while: 2 s is
  // about four 500 ms resync passes of each replica, and none of them may write.
  const still = { secret: secret.resourceVersion, config: (await readConfig(env)).resourceVersion };
  await new Promise((r) => setTimeout(r, 2_000));
  assert.equal((await readSecret(env))!.resourceVersion, still.secret, 'the Secret is not rewritten');
  assert.equal((await readConfig(env)).resourceVersion, still.config, 'the configuration is not repatched');
  assert.equal(written(), 1);
});

test('kubectl apply keeps caBundle; kubectl replace blanks it and the next resync restores it', { skip: e2eSkip }, async () => {
  const ca = (await readSecret(env))!.data['ca.crt']!;
  const manifest = JSON.stringify(webhookConfigFor(env.vwc, env.ns, a.url));
  await c.kubectlOk(['apply', '-f', '-'], { input: manifest });
  await c.kubectlOk(['apply', '--server-side', '--field-manager=e2e-gitops', '--force-conflicts', '-f', '-'], { input: manifest });
  assert.deepEqual((await readConfig(env)).caBundles, [ca, ca], 'client- and server-side apply leave caBundle alone');

  const replaced = JSON.parse(await c.kubectlOk(['replace', '-o', 'json', '-f', '-'], { input: manifest })) as { webhooks: { clientConfig: { caBundle?: string } }[] };
  assert.deepEqual(replaced.webhooks.map((w) => w.clientConfig.caBundle), [undefined, undefined], 'replace stores the manifest as it is');
  const started = Date.now();
  await eventually('caBundle to be restored', async () => (await readConfig(env)).caBundles.every((x) => x === ca), 5_000);
  assert.ok(Date.now() - started < 5_000);
  await awaitAdmission(env);
});

test('rotation: a CA near expiry gets a successor in caBundle, then the serving certificate moves to it; admission never lapses', { skip: e2eSkip }, async () => {
  const start = (await readSecret(env))!;
  const oldCa = new X509Certificate(start.data['ca.crt']!);
  const caKey = createPrivateKey(start.data['ca.key']!);
  const now = Date.now();
  // The same CA (subject and key) re-issued to expire in 100 days, inside the 365-day renewal
  // window: the serving certificate it signed and the caBundle the API server holds stay valid.
  const expiring = createCertificate({
    commonName: /CN=(.+)/.exec(oldCa.subject)![1]!, organization: /O=(.+)/.exec(oldCa.subject)![1]!, publicKey: createPublicKey(caKey),
    notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 100 * DAY_MS), isCA: true,
  }, { privateKey: caKey });
  assert.equal(new X509Certificate(expiring).subject, oldCa.subject);

  const base = written();
  const probe = prober();
  /** exercised waits until the API server has had n more requests denied through the webhook since now. */
  const exercised = (n: number) => { const from = probe.denied(); return eventually(`${n} more denials`, () => probe.denied() >= from + n, 10_000, { intervalMs: 20 }); };
  let other: string[];
  const writes: number[] = [];
  try {
    await exercised(3);
    let mark = written();
    await writeSecretData(env, { 'ca.crt': expiring });
    const rotated = await eventually('a second CA in the Secret and in caBundle', async () => {
      const s = (await readSecret(env))!;
      const config = await readConfig(env);
      return splitPemCertificates(s.data['ca.crt']!).length === 2 && config.caBundles.every((x) => x === s.data['ca.crt']) ? s : null;
    });
    const bundle = rotated.data['ca.crt']!;
    const [newCa, kept] = splitPemCertificates(bundle).map((p) => new X509Certificate(p)) as [X509Certificate, X509Certificate];
    assert.equal(newCa.ca, true);
    assert.notEqual(newCa.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'), oldCa.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'), 'a new CA key');
    assert.ok(Date.parse(newCa.validTo) > now + 4 * 365 * DAY_MS, 'the new CA lives years');
    assert.equal(kept.fingerprint256, fingerprint(expiring), 'the expiring CA stays trusted until it expires');
    assert.equal(rotated.data['tls.crt'], start.data['tls.crt'], 'the serving certificate stays on the old CA until the new one has settled');
    assert.notEqual(rotated.data['ca.key'], start.data['ca.key'], 'ca.key is the new signer\'s');
    assert.deepEqual((await readConfig(env)).caBundleManagers, ['vane-certs']);
    // The API server builds a new client for a changed caBundle: these are fresh handshakes.
    await exercised(3);
    writes.push(await eventually('the rollover in the log', () => written() - mark));

    // A serving certificate 10 days from expiry (inside the 30-day window), still from the old CA.
    const key = generateKeyPair();
    const short = createCertificate({
      commonName: 'vane-webhook', publicKey: key.publicKey, notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 10 * DAY_MS),
      isCA: false, ipAddresses: ['127.0.0.1'],
    }, { certificate: kept, privateKey: caKey });
    mark = written();
    await writeSecretData(env, { 'tls.crt': short, 'tls.key': privateKeyPem(key.privateKey) });
    const renewed = await eventually('a serving certificate from the new CA', async () => {
      const s = (await readSecret(env))!;
      const cert = new X509Certificate(s.data['tls.crt']!);
      return cert.checkIssued(newCa) && cert.verify(newCa.publicKey) ? s : null;
    });
    const cert = new X509Certificate(renewed.data['tls.crt']!);
    assert.ok(Date.parse(cert.validTo) > now + 80 * DAY_MS, 'a full 90-day certificate');
    assert.equal(renewed.data['ca.crt'], bundle, 'the bundle did not change again');
    const want = fingerprint(renewed.data['tls.crt']!);
    await eventually('both replicas to serve the renewed certificate', async () => (await served(a, bundle)) === want && (await served(b, bundle)) === want, 5_000);
    assert.equal(await metric(a, bundle, 'vane_webhook_certificate_expiry_timestamp_seconds'), Date.parse(cert.validTo) / 1000);
    writes.push(await eventually('the renewal in the log', () => written() - mark));

    // A new URL makes the API server open new connections: to b, with the renewed certificate.
    const atB = await reviews(b, bundle);
    await pointAt(env, b.url);
    await eventually('the API server to call replica b', async () => (await reviews(b, bundle)) > atB);
    await exercised(3);
  } finally {
    other = await probe.stop();
  }
  assert.deepEqual(other, [], 'every request during the rotation was reviewed and denied');
  assert.deepEqual(writes, [1, 1], 'each time one replica wrote the Secret and the other adopted it');
  assert.equal(written() - base, 2, 'and nobody wrote since');
});
