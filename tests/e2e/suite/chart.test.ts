/**
 * The Helm chart (charts/vane) with the real helm and the real API server: it lints strictly,
 * renders objects the API server accepts (server-side dry run) with the default values and
 * with the non-default ones in charts/vane/ci/, refuses bad values naming the field, passes
 * only flags its `vane` commands know, and its RBAC — applied for real — grants each
 * component exactly what it needs, checked with `kubectl auth can-i --as`.
 *
 * Only RBAC objects are really created: a real ValidatingWebhookConfiguration or IngressClass
 * would reach into the other files' tests on the same API server. The ServiceMonitor kind is
 * not part of Kubernetes; a minimal CustomResourceDefinition for it (no schema) is installed so
 * the dry run covers those objects too, and their selectors and ports are checked here.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { envWithoutProxies } from '../../../devtools/controlplane/index.ts';
import { buildProgram } from '../../../cli/main.ts';
import { cluster, e2eSkip, type Cluster } from '../harness/index.ts';
import { eventually } from '../../support/wait.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHART = join(ROOT, 'charts', 'vane');
const CI_VALUES = ['daemonset-nodeport-values.yaml', 'deployment-hpa-values.yaml'].map((f) => join(CHART, 'ci', f));
const RBAC_KINDS = new Set(['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding']);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}
interface Rule { apiGroups?: string[]; resources?: string[]; resourceNames?: string[]; verbs: string[]; nonResourceURLs?: string[] }
interface Container { name: string; args?: string[]; command?: string[]; securityContext?: Record<string, unknown> }
interface PodSpec { containers: Container[]; securityContext?: Record<string, unknown>; automountServiceAccountToken?: boolean; serviceAccountName?: string }
interface Result { code: number; stdout: string; stderr: string }

let c: Cluster;
let helmEnv: NodeJS.ProcessEnv;

function helm(args: string[]): Promise<Result> {
  return new Promise((done) => {
    execFile(join(c.bin, 'helm'), args, { env: helmEnv, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr: stderr || (err ? err.message : '') });
    });
  });
}

/** render runs `helm template RELEASE charts/vane -n NS ...` and parses what it prints. */
async function render(release: string, ns: string, extra: string[] = []): Promise<{ text: string; objects: K8sObject[] }> {
  const r = await helm(['template', release, CHART, '--namespace', ns, ...extra]);
  assert.equal(r.code, 0, `helm template ${extra.join(' ')} failed: ${r.stderr}`);
  const objects = parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject | null).filter((o): o is K8sObject => o !== null);
  return { text: r.stdout, objects };
}

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind} ${name} rendered (have: ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')})`);
  return o;
}

function podSpec(o: K8sObject): PodSpec {
  if (o.kind === 'Pod') return o.spec as PodSpec;
  return (o.spec as { template: { spec: PodSpec } }).template.spec;
}

/** dryRun sends every object to the API server with `kubectl apply --dry-run=server` and returns what it accepted. */
async function dryRun(text: string): Promise<string[]> {
  const r = await c.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: text, timeoutMs: 60_000 });
  assert.equal(r.code, 0, `server-side dry run refused objects:\n${r.stderr}`);
  return r.stdout.trim().split('\n').filter((l) => l.includes('(server dry run)'));
}

let home: string | undefined;

after(() => {
  if (home) rmSync(home, { recursive: true, force: true });
});

before(async () => {
  if (e2eSkip) return;
  c = await cluster();
  home = mkdtempSync(join(tmpdir(), 'vane-helm-'));
  helmEnv = { ...envWithoutProxies(), HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data'), KUBECONFIG: c.kubeconfig };
  // The Canary CRD (the chart's crds/ copy, as `helm install` would apply it) and a bare
  // ServiceMonitor CRD, Established before anything is dry-run against them.
  await c.kubectlOk(['apply', '-f', join(CHART, 'crds')]);
  await c.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(serviceMonitorCrd()) });
  await c.kubectlOk(['wait', '--for=condition=Established', 'crd/canaries.vane.dev', 'crd/servicemonitors.monitoring.coreos.com', '--timeout=30s']);
});

function serviceMonitorCrd(): object {
  return {
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition',
    metadata: { name: 'servicemonitors.monitoring.coreos.com' },
    spec: {
      group: 'monitoring.coreos.com', scope: 'Namespaced',
      names: { plural: 'servicemonitors', singular: 'servicemonitor', kind: 'ServiceMonitor', listKind: 'ServiceMonitorList' },
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
    },
  };
}

test('helm lint --strict passes with the default values and with every ci/ values file', { skip: e2eSkip }, async () => {
  for (const extra of [[], ...CI_VALUES.map((f) => ['-f', f])]) {
    const r = await helm(['lint', '--strict', CHART, ...extra]);
    assert.equal(r.code, 0, `helm lint --strict ${extra.join(' ')}:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

test('the default install is accepted by the API server, CRD included, and names line up', { skip: e2eSkip }, async () => {
  const ns = await c.namespace('chart-default');
  const { text, objects } = await render('vane', ns, ['--include-crds']);
  const accepted = await dryRun(text);
  assert.equal(accepted.length, objects.length, `every rendered object accepted:\n${accepted.join('\n')}`);
  assert.ok(objects.some((o) => o.kind === 'CustomResourceDefinition' && o.metadata.name === 'canaries.vane.dev'));
  for (const o of objects) {
    if (o.kind === 'CustomResourceDefinition' || o.kind.startsWith('Cluster') || o.kind === 'IngressClass' || o.kind === 'ValidatingWebhookConfiguration') continue;
    assert.equal(o.metadata.namespace, ns, `${o.kind}/${o.metadata.name} is in the release namespace`);
  }

  // The names the operator, the proxies and the webhook find each other by.
  const operator = podSpec(find(objects, 'Deployment', 'vane-operator')).containers[0]!.args!;
  for (const flag of [
    '--stream-host=0.0.0.0', '--admin-host=0.0.0.0',
    `--lease-namespace=${ns}`, '--lease-name=vane-operator', '--identity=$(POD_NAME)',
    `--stream-tls-secret=${ns}/vane-stream-tls`, `--stream-ca-configmap=${ns}/vane-stream-ca`,
    `--stream-dns-name=vane-operator.${ns}.svc`, `--stream-dns-name=vane-operator.${ns}.svc.cluster.local`,
    `--proxy-service=${ns}/vane-proxy`, `--proxy-service-account=${ns}/vane-proxy`,
    '--proxy-pod-label=app.kubernetes.io/component=proxy', '--proxy-pod-label=app.kubernetes.io/instance=vane', '--ingress-class=vane',
  ]) assert.ok(operator.includes(flag), `operator runs with ${flag}: ${operator.join(' ')}`);
  const stream = find(objects, 'Service', 'vane-operator') as K8sObject & { spec: { ports: { name: string; port: number }[] } };
  assert.deepEqual(stream.spec.ports.map((p) => [p.name, p.port]), [['stream', 7443]]);
  find(objects, 'Service', 'vane-operator-admin');

  const proxyDeployment = find(objects, 'Deployment', 'vane-proxy');
  const proxy = podSpec(proxyDeployment);
  const proxyArgs = proxy.containers[0]!.args!;
  assert.ok(proxyArgs.includes(`--operator=wss://vane-operator.${ns}.svc:7443/stream`));
  assert.ok(proxyArgs.includes('--proxy-name=$(POD_NAME)'));
  assert.equal(proxy.automountServiceAccountToken, false, 'proxies mount no API token');
  const volumes = (proxy as PodSpec & { volumes: { name: string; projected?: { sources: { serviceAccountToken?: { audience: string; expirationSeconds: number } }[] }; configMap?: { name: string; optional?: boolean }; emptyDir?: { medium?: string } }[] }).volumes;
  assert.deepEqual(volumes.find((v) => v.projected)?.projected?.sources[0]?.serviceAccountToken, { audience: 'vane-stream', expirationSeconds: 3600, path: 'token' });
  assert.equal(volumes.find((v) => v.configMap)?.configMap?.name, 'vane-stream-ca');
  assert.notEqual(volumes.find((v) => v.configMap)?.configMap?.optional, true, 'the kubelet waits for the CA');
  assert.equal(volumes.find((v) => v.name === 'state')?.emptyDir?.medium, 'Memory');
  const grace = (proxyDeployment.spec as { template: { spec: { terminationGracePeriodSeconds: number } } }).template.spec.terminationGracePeriodSeconds;
  assert.ok(grace > 10 + 30, `proxy grace ${grace} s outlasts the shutdown delay and the drain`);
  const proxyService = find(objects, 'Service', 'vane-proxy') as K8sObject & { spec: { type: string; ports: { name: string; port: number; targetPort: string }[] } };
  assert.equal(proxyService.spec.type, 'LoadBalancer');
  assert.deepEqual(proxyService.spec.ports.map((p) => [p.name, p.port, p.targetPort]), [['http', 80, 'http'], ['https', 443, 'https']]);

  const webhook = podSpec(find(objects, 'Deployment', 'vane-webhook')).containers[0]!.args!;
  const config = find(objects, 'ValidatingWebhookConfiguration', `vane-webhook-${ns}`) as K8sObject & { webhooks: { name: string; failurePolicy: string; clientConfig: Record<string, unknown>; matchConditions: { expression: string }[] }[] };
  for (const flag of ['--in-cluster', '--watch-cluster', '--secret-name=vane-webhook-tls', '--service-name=vane-webhook', `--webhook-config=vane-webhook-${ns}`]) {
    assert.ok(webhook.includes(flag), `webhook runs with ${flag}: ${webhook.join(' ')}`);
  }
  assert.ok(!webhook.includes('--default-class'), 'Vane is not the default class unless ingressClass.default');
  assert.deepEqual(config.webhooks.map((w) => [w.name, w.failurePolicy]), [['canaries.vane.dev', 'Fail'], ['ingresses.vane.dev', 'Ignore']]);
  for (const w of config.webhooks) {
    assert.deepEqual(w.clientConfig, { service: { name: 'vane-webhook', namespace: ns, path: '/validate', port: 443 } }, 'no caBundle: the webhook owns it');
  }
  assert.match(config.webhooks[0]!.matchConditions[0]!.expression, new RegExp(`'system:serviceaccount:${ns}:vane-operator'`));
  const ingressClass = find(objects, 'IngressClass', 'vane') as K8sObject & { spec: { controller: string } };
  assert.equal(ingressClass.spec.controller, 'vane.dev/ingress-controller');
  assert.equal(ingressClass.metadata.annotations?.['ingressclass.kubernetes.io/is-default-class'], undefined);
});

test('the non-default installs (DaemonSet + NodePort + ServiceMonitor + default class; HPA + ClusterIP without webhook) are accepted too', { skip: e2eSkip }, async () => {
  const [daemonset, hpa] = CI_VALUES;
  const ns = await c.namespace('chart-ds');
  const ds = await render('vane', ns, ['-f', daemonset!]);
  assert.equal((await dryRun(ds.text)).length, ds.objects.length);
  const proxy = find(ds.objects, 'DaemonSet', 'vane-proxy');
  assert.equal(podSpec(proxy).containers[0]!.args!.includes('--proxy-protocol=http,https'), true);
  assert.equal((proxy.spec as { template: { spec: { terminationGracePeriodSeconds: number } } }).template.spec.terminationGracePeriodSeconds, 90);
  const service = find(ds.objects, 'Service', 'vane-proxy') as K8sObject & { spec: { type: string; externalTrafficPolicy: string; ports: { name: string; nodePort: number }[] } };
  assert.equal(service.spec.type, 'NodePort');
  assert.equal(service.spec.externalTrafficPolicy, 'Local');
  assert.deepEqual(service.spec.ports.map((p) => [p.name, p.nodePort]), [['http', 30080], ['https', 30443]]);
  const ingressClass = find(ds.objects, 'IngressClass', 'vane-edge');
  assert.equal(ingressClass.metadata.annotations?.['ingressclass.kubernetes.io/is-default-class'], 'true');
  assert.ok(podSpec(find(ds.objects, 'Deployment', 'vane-webhook')).containers[0]!.args!.includes('--default-class'));
  assert.ok(!ds.objects.some((o) => o.kind === 'ClusterRole' && o.metadata.name.endsWith('-watch')), 'no cluster-wide watch RBAC without crossObjectWarnings');
  assert.equal(ds.objects.filter((o) => o.kind === 'NetworkPolicy').length, 0);
  const dashboard = find(ds.objects, 'ConfigMap', 'vane-dashboard') as K8sObject & { data: Record<string, string> };
  assert.equal(dashboard.metadata.labels?.grafana_dashboard, '1');
  assert.equal((JSON.parse(dashboard.data['vane.json']!) as { uid: string }).uid, 'vane-overview');

  // Each ServiceMonitor selects exactly one rendered Service, and scrapes a port it has.
  const monitors = ds.objects.filter((o) => o.kind === 'ServiceMonitor') as (K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; scheme: string }[] } })[];
  assert.deepEqual(monitors.map((m) => m.metadata.name).sort(), ['vane-operator', 'vane-proxy', 'vane-webhook']);
  for (const m of monitors) {
    assert.equal(m.metadata.labels?.release, 'prometheus');
    const selected = ds.objects.filter((o) => o.kind === 'Service' && Object.entries(m.spec.selector.matchLabels).every(([k, v]) => o.metadata.labels?.[k] === v)) as (K8sObject & { spec: { ports: { name: string }[] } })[];
    assert.equal(selected.length, 1, `ServiceMonitor ${m.metadata.name} selects one Service, got ${selected.map((s) => s.metadata.name).join(', ')}`);
    for (const e of m.spec.endpoints) assert.ok(selected[0]!.spec.ports.some((p) => p.name === e.port), `${selected[0]!.metadata.name} has port ${e.port}`);
  }

  const ns2 = await c.namespace('chart-hpa');
  const h = await render('vane', ns2, ['-f', hpa!]);
  assert.equal((await dryRun(h.text)).length, h.objects.length);
  const deployment = find(h.objects, 'Deployment', 'edge-proxy');
  assert.equal((deployment.spec as { replicas?: number }).replicas, undefined, 'the HPA owns the replica count');
  const autoscaler = find(h.objects, 'HorizontalPodAutoscaler', 'edge-proxy') as K8sObject & { spec: { minReplicas: number; maxReplicas: number; scaleTargetRef: { kind: string; name: string } } };
  assert.deepEqual([autoscaler.spec.scaleTargetRef.kind, autoscaler.spec.scaleTargetRef.name, autoscaler.spec.minReplicas, autoscaler.spec.maxReplicas], ['Deployment', 'edge-proxy', 3, 12]);
  assert.ok(!h.objects.some((o) => o.metadata.name.includes('webhook')), 'webhook.enabled=false renders no webhook object');
  assert.ok(!h.objects.some((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === 'edge-operator'), 'no PDB that would block every drain of a single operator');
  assert.ok(!podSpec(deployment).containers[0]!.args!.some((a) => a.startsWith('--workers')), 'workers 0: one per core');
});

test('bad values are refused before anything is rendered, naming the field', { skip: e2eSkip }, async () => {
  const cases: [string[], RegExp][] = [
    [['--set', 'proxy.service.type=Foo'], /proxy\/service\/type'?: value must be one of 'LoadBalancer', 'NodePort', 'ClusterIP'/],
    [['--set', 'proxy.replicas=-1'], /proxy\/replicas'?: minimum: got -1/],
    [['--set', 'proxy.kind=StatefulSet'], /proxy\/kind'?: value must be one of 'Deployment', 'DaemonSet'/],
    [['--set', 'bogusKey=1'], /additional properties 'bogusKey' not allowed/],
    [['--set', 'webhook.failurPolicy.canaries=Fail'], /\/webhook'?: additional properties 'failurPolicy' not allowed/],
    [['--set', 'proxy.service.nodePorts.http=99999'], /proxy\/service\/nodePorts\/http'?: maximum/],
    [['--set', 'webhook.failurePolicy.canaries=Sometimes'], /webhook\/failurePolicy\/canaries'?: value must be one of 'Fail', 'Ignore'/],
    [['--set', 'proxy.kind=DaemonSet', '--set', 'proxy.autoscaling.enabled=true'], /proxy\.autoscaling\.enabled: a HorizontalPodAutoscaler cannot scale a DaemonSet/],
    [['--set', 'proxy.proxyProtocol={http}'], /proxy\.proxyProtocolPeers: needed with proxy\.proxyProtocol/],
    [['--set', 'proxy.terminationGracePeriodSeconds=40'], /proxy\.terminationGracePeriodSeconds \(40\) must be greater than proxy\.shutdownDelaySeconds \+ proxy\.drainTimeoutSeconds \(40\)/],
    [['--kube-version', '1.29.0'], /chart requires kubeVersion: >=1\.30\.0-0/],
  ];
  const results = await Promise.all(cases.map(([args]) => helm(['template', 'vane', CHART, ...args])));
  results.forEach((r, i) => {
    const [args, message] = cases[i]!;
    assert.equal(r.code, 1, `helm template ${args.join(' ')} must fail`);
    assert.match(r.stderr, message, `helm template ${args.join(' ')}`);
    assert.equal(r.stdout, '', 'nothing rendered');
  });
  // The same chart renders when the values are right.
  assert.equal((await helm(['template', 'vane', CHART, '--set', 'proxy.service.type=NodePort', '--set', 'proxy.terminationGracePeriodSeconds=41'])).code, 0);
});

test('helm install (dry run against the API server) prints NOTES that say how to reach the proxies for each Service type', { skip: e2eSkip }, async () => {
  const ns = await c.namespace('chart-notes');
  const expectations: [string[], RegExp[]][] = [
    [[], [/kubectl -n \S+ get service vane-proxy -w/, /\.status\.loadBalancer\.ingress\[0\]\.ip/]],
    [['-f', CI_VALUES[0]!], [/jsonpath='\{\.spec\.ports\[\?\(@\.name=="http"\)\]\.nodePort\}'/, /daemonset\/vane-proxy/]],
    [['-f', CI_VALUES[1]!], [/port-forward service\/edge-proxy 8080:80/, new RegExp(`http://edge-proxy\\.${ns}\\.svc:80`)]],
  ];
  for (const [values, patterns] of expectations) {
    // A class of its own: other e2e files may have created IngressClass vane in this shared
    // control plane, and helm refuses to adopt an object it did not make.
    const r = await helm(['install', 'vane', CHART, '--namespace', ns, '--dry-run=server', ...values, '--set', `ingressClass.name=${ns}`]);
    assert.equal(r.code, 0, r.stderr);
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    for (const p of [...patterns, /examples\/quickstart\/30-canary\.yaml/, /pod-security\.kubernetes\.io\/enforce=restricted/, /helm test vane/]) {
      assert.match(notes, p, `NOTES with ${values.join(' ') || 'default values'}`);
    }
  }
});

test('every flag the chart passes is one its `vane` command knows', { skip: e2eSkip }, async () => {
  const program = buildProgram();
  const flags = (command: string) => new Set(program.commands.find((cmd) => cmd.name() === command)!.options.map((o) => o.long));
  for (const values of [[], ...CI_VALUES.map((f) => ['-f', f])]) {
    const { objects } = await render('vane', 'vane-system', values);
    for (const o of objects.filter((x) => ['Deployment', 'DaemonSet'].includes(x.kind))) {
      const args = podSpec(o).containers[0]!.args!;
      const known = flags(args[0]!);
      assert.ok(known.size > 0, `${args[0]} is a vane command`);
      for (const a of args.slice(1)) assert.ok(known.has(a.split('=')[0]!), `${o.metadata.name}: ${a} is a flag of vane ${args[0]}`);
    }
  }
});

test('every pod meets the restricted Pod Security profile, helm test pods included', { skip: e2eSkip }, async () => {
  // The API server's own Pod Security admission judges the pods of a namespace that enforces
  // "restricted": the dry run creates every workload's pod template as a Pod there.
  const ns = await c.namespace('chart-pss');
  await c.kubectlOk(['label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=restricted']);
  const { objects } = await render('vane', ns, ['-f', CI_VALUES[0]!]);
  // Pods need their ServiceAccounts to exist (the test pods run as "default").
  const accounts = objects.filter((o) => o.kind === 'ServiceAccount').concat({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: ns } });
  await c.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: accounts }) });
  const pods = objects.filter((o) => ['Deployment', 'DaemonSet', 'Pod'].includes(o.kind)).map((o) => ({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: `${o.kind.toLowerCase()}-${o.metadata.name}`, namespace: ns },
    spec: podSpec(o),
  }));
  assert.equal(pods.length, 5, 'operator, proxy, webhook and two test pods');
  const r = await c.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: pods }) });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /violate|PodSecurity/i, r.stderr);
  // The check bites: a pod that may escalate is refused in the same namespace.
  const bad = structuredClone(pods[0]!) as { metadata: { name: string }; spec: PodSpec };
  bad.metadata.name = 'escalating';
  bad.spec.containers[0]!.securityContext = { ...bad.spec.containers[0]!.securityContext, allowPrivilegeEscalation: true };
  const refused = await c.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify(bad) });
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false/);
  // The test pods use the image's node, not curl, and poll until a deadline.
  for (const o of objects.filter((x) => x.metadata.annotations?.['helm.sh/hook'] === 'test')) {
    assert.deepEqual(podSpec(o).containers[0]!.command, ['/usr/local/bin/node', '-e']);
  }
});

test('RBAC: each component can do what it needs and nothing else (kubectl auth can-i on the applied roles)', { skip: e2eSkip }, async () => {
  const ns = await c.namespace('chart-rbac');
  const { objects } = await render('vane', ns);
  const roles = objects.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole') as (K8sObject & { rules: Rule[] })[];
  assert.ok(roles.length >= 4);
  for (const role of roles) {
    for (const rule of role.rules) {
      for (const field of ['apiGroups', 'resources', 'resourceNames', 'verbs', 'nonResourceURLs'] as const) {
        assert.ok(!(rule[field] ?? []).some((v) => v.includes('*')), `${role.kind} ${role.metadata.name}: no wildcard in ${field}`);
      }
    }
  }
  const rbac = objects.filter((o) => RBAC_KINDS.has(o.kind));
  await c.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }) });
  try {
    const sa = (name: string) => `--as=system:serviceaccount:${ns}:${name}`;
    const canI = async (who: string, ...args: string[]): Promise<boolean> => {
      const r = await c.kubectl(['auth', 'can-i', sa(who), ...args]);
      assert.ok(r.code === 0 || r.code === 1, `kubectl auth can-i ${args.join(' ')}: ${r.stderr}`);
      return r.stdout.trim() === 'yes';
    };
    const allowed: [string, string[]][] = [
      ['vane-operator', ['list', 'secrets', '--all-namespaces']],
      ['vane-operator', ['watch', 'secrets', '-n', 'kube-system']],
      ['vane-operator', ['create', 'tokenreviews.authentication.k8s.io']],
      ['vane-operator', ['get', 'pods', '-n', 'default']],
      ['vane-operator', ['patch', 'canaries.vane.dev', '--subresource=status', '-n', 'default']],
      ['vane-operator', ['patch', 'ingresses.networking.k8s.io', '--subresource=status', '-n', 'default']],
      ['vane-operator', ['list', 'endpointslices.discovery.k8s.io', '--all-namespaces']],
      ['vane-operator', ['create', 'events', '-n', 'default']],
      ['vane-operator', ['update', 'leases.coordination.k8s.io/vane-operator', '-n', ns]],
      ['vane-operator', ['create', 'leases.coordination.k8s.io', '-n', ns]],
      ['vane-operator', ['update', 'secrets/vane-stream-tls', '-n', ns]],
      ['vane-operator', ['patch', 'configmaps/vane-stream-ca', '-n', ns]],
      ['vane-webhook', ['patch', `validatingwebhookconfigurations.admissionregistration.k8s.io/vane-webhook-${ns}`]],
      ['vane-webhook', ['get', 'secrets/vane-webhook-tls', '-n', ns]],
      ['vane-webhook', ['update', 'secrets/vane-webhook-tls', '-n', ns]],
      ['vane-webhook', ['list', 'ingresses.networking.k8s.io', '--all-namespaces']],
      ['vane-webhook', ['watch', 'canaries.vane.dev', '--all-namespaces']],
      ['vane-webhook', ['list', 'secrets', '--all-namespaces']],
    ];
    // Bindings reach the authorizer through its informers: wait until every grant is visible,
    // so that the refusals below are the roles' doing, not a cache that has not caught up.
    await eventually('the applied RBAC to take effect', async () => {
      const answers = await Promise.all(allowed.map(([who, args]) => canI(who, ...args)));
      return answers.every(Boolean);
    });
    const denied: [string, string[]][] = [
      ['vane-operator', ['delete', 'secrets', '-n', ns]],
      ['vane-operator', ['get', 'secrets/other', '-n', ns]],
      ['vane-operator', ['*', '*', '--all-namespaces']],
      ['vane-operator', ['update', 'leases.coordination.k8s.io/kube-controller-manager', '-n', ns]],
      ['vane-operator', ['update', 'leases.coordination.k8s.io/vane-operator', '-n', 'kube-system']],
      ['vane-operator', ['update', 'secrets/vane-stream-tls', '-n', 'default']],
      ['vane-operator', ['delete', 'canaries.vane.dev', '-n', 'default']],
      ['vane-operator', ['create', 'pods', '-n', ns]],
      ['vane-proxy', ['get', 'secrets', '-n', ns]],
      ['vane-proxy', ['list', 'secrets', '--all-namespaces']],
      ['vane-proxy', ['list', 'pods', '-n', ns]],
      ['vane-proxy', ['get', 'configmaps/vane-stream-ca', '-n', ns]],
      ['vane-proxy', ['create', 'tokenreviews.authentication.k8s.io']],
      ['vane-proxy', ['get', 'ingresses.networking.k8s.io', '-n', ns]],
      ['vane-webhook', ['patch', 'validatingwebhookconfigurations.admissionregistration.k8s.io/some-other-webhook']],
      ['vane-webhook', ['get', 'secrets/vane-stream-tls', '-n', ns]],
      ['vane-webhook', ['get', 'secrets/other', '-n', 'default']],
      ['vane-webhook', ['delete', 'secrets/vane-webhook-tls', '-n', ns]],
      ['vane-webhook', ['patch', 'canaries.vane.dev', '-n', 'default']],
      ['vane-webhook', ['*', '*', '--all-namespaces']],
      ['vane-webhook', ['list', 'endpointslices.discovery.k8s.io', '--all-namespaces']],
    ];
    const answers = await Promise.all(denied.map(([who, args]) => canI(who, ...args)));
    const wrong = denied.filter((_, i) => answers[i]).map(([who, args]) => `${who} can ${args.join(' ')}`);
    assert.deepEqual(wrong, [], 'refused');
  } finally {
    await c.kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac.filter((o) => o.kind.startsWith('Cluster')) }) });
  }
});
