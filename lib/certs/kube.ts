/**
 * The Kubernetes side of lib/certs, through lib/kube (every call bounded in time): the bundle in a
 * kubernetes.io/tls Secret (compare-and-swap on resourceVersion), and the caBundle of a
 * ValidatingWebhookConfiguration kept in sync by an RFC 6902 JSON patch whose `test`
 * operations make it a compare-and-swap too. RBAC for both can be limited by resourceNames
 * (get/update on the Secret, get/patch on the configuration); only the Secret's first
 * creation needs `create`, which Kubernetes cannot limit by name.
 *
 * The stores take a narrow port (SecretApi, WebhookApi: the generated clients' method names,
 * so a test double stays small); kubeCertBackends implements it on lib/kube.
 *
 * A separate door from index.ts so that file-mode processes never load the client.
 */
import jsonpatch, { type Operation } from 'fast-json-patch';
import { RESOURCES, apiStatusOf, isConflict, kubeOf, type Kube, type KubeConfig } from '../kube/index.ts';
import { CertError } from './errors.ts';
import type { CaBundleTarget } from './manager.ts';
import type { CertBundle } from './rotation.ts';
import { BUNDLE_KEYS, bundleFromTexts, type CertStore, type StoredBundle } from './stores.ts';

/** FIELD_MANAGER names Vane's writes in managedFields, so `kubectl get --show-managed-fields` says who owns caBundle. */
export const FIELD_MANAGER = 'vane-certs';

/** V1Secret: the fields of a Secret the store reads and writes. */
export interface V1Secret {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string>; managedFields?: unknown; [k: string]: unknown };
  type?: string;
  data?: Record<string, string>;
}

/** V1ValidatingWebhookConfiguration: the fields caBundlePatch reads. */
export interface V1ValidatingWebhookConfiguration {
  metadata?: { name?: string; resourceVersion?: string };
  webhooks?: { name: string; clientConfig?: { caBundle?: string; service?: { name: string; namespace: string; path?: string; port?: number }; url?: string } }[];
}

const statusOf = apiStatusOf;

function apiError(what: string, err: unknown): CertError {
  const status = statusOf(err);
  return new CertError('EAPI', `${what} failed${status ? ` with HTTP ${status}` : `: ${(err as Error)?.message ?? String(err)}`}`, { cause: err });
}

interface NamedRequest { name: string; namespace: string }

/** SecretApi: the Secret calls the store makes (as CoreV1Api names them). */
export interface SecretApi {
  readNamespacedSecret(req: NamedRequest): Promise<V1Secret>;
  createNamespacedSecret(req: { namespace: string; body: V1Secret; fieldManager?: string }): Promise<V1Secret>;
  replaceNamespacedSecret(req: NamedRequest & { body: V1Secret; fieldManager?: string }): Promise<V1Secret>;
}

/** KubeSecretStore keeps a CertBundle in one kubernetes.io/tls Secret: tls.crt, tls.key, ca.crt, ca.key. */
export class KubeSecretStore implements CertStore {
  private readonly api: SecretApi;
  private readonly namespace: string;
  private readonly name: string;
  private readonly labels: Record<string, string>;
  /** The Secret as last read, so replace keeps labels, annotations, owners and type that others set. */
  private last: V1Secret | null = null;

  constructor(api: SecretApi, namespace: string, name: string, labels: Record<string, string> = {}) {
    this.api = api;
    this.namespace = namespace;
    this.name = name;
    this.labels = labels;
  }

  describe(): string {
    return `secret ${this.namespace}/${this.name}`;
  }

  async read(): Promise<StoredBundle | null> {
    let secret: V1Secret;
    try {
      secret = await this.api.readNamespacedSecret({ name: this.name, namespace: this.namespace });
    } catch (err) {
      if (statusOf(err) === 404) { this.last = null; return null; }
      throw apiError(`reading ${this.describe()}`, err);
    }
    this.last = secret;
    return this.stored(secret);
  }

  async create(bundle: CertBundle): Promise<StoredBundle> {
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: this.name, namespace: this.namespace, labels: { ...this.labels } },
      type: 'kubernetes.io/tls',
      data: encode(bundle),
    };
    try {
      const created = await this.api.createNamespacedSecret({ namespace: this.namespace, body, fieldManager: FIELD_MANAGER });
      this.last = created;
      return this.stored(created);
    } catch (err) {
      if (statusOf(err) === 409) throw new CertError('EEXIST', `${this.describe()} already exists`, { cause: err });
      throw apiError(`creating ${this.describe()}`, err);
    }
  }

  async replace(bundle: CertBundle, version: string): Promise<StoredBundle> {
    const base = this.last?.metadata?.resourceVersion === version ? this.last : null;
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { ...(base?.metadata ?? {}), name: this.name, namespace: this.namespace, resourceVersion: version, labels: { ...(base?.metadata?.labels ?? {}), ...this.labels } },
      type: base?.type ?? 'kubernetes.io/tls',
      data: { ...(base?.data ?? {}), ...encode(bundle) },
    };
    delete body.metadata!.managedFields;
    try {
      const replaced = await this.api.replaceNamespacedSecret({ name: this.name, namespace: this.namespace, body, fieldManager: FIELD_MANAGER });
      this.last = replaced;
      return this.stored(replaced);
    } catch (err) {
      if (statusOf(err) === 409) throw new CertError('ECONFLICT', `${this.describe()} changed since it was read`, { cause: err });
      throw apiError(`replacing ${this.describe()}`, err);
    }
  }

  private stored(secret: V1Secret): StoredBundle {
    const data = secret.data ?? {};
    return {
      bundle: bundleFromTexts((key) => (typeof data[key] === 'string' ? Buffer.from(data[key], 'base64').toString('utf8') : undefined)),
      version: secret.metadata?.resourceVersion ?? '',
    };
  }
}

function encode(bundle: CertBundle): Record<string, string> {
  const data: Record<string, string> = {};
  for (const [part, key] of Object.entries(BUNDLE_KEYS)) data[key] = Buffer.from(bundle[part as keyof CertBundle], 'utf8').toString('base64');
  return data;
}

/**
 * caBundlePatch is the JSON patch that sets every webhook's clientConfig.caBundle of config to
 * caBundlePem: for each webhook that differs, a `test` of its name (the index still means the
 * same webhook), a `test` of the value read (nobody changed it since), then the change.
 * Empty when nothing differs.
 */
export function caBundlePatch(config: Pick<V1ValidatingWebhookConfiguration, 'webhooks'>, caBundlePem: string): Operation[] {
  const want = Buffer.from(caBundlePem, 'utf8').toString('base64');
  const ops: Operation[] = [];
  (config.webhooks ?? []).forEach((webhook, i) => {
    const have = webhook.clientConfig ?? {};
    if (have.caBundle === want) return;
    ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: webhook.name });
    const base = `/webhooks/${i}/clientConfig`;
    if (!webhook.clientConfig) ops.push({ op: 'add', path: base, value: { caBundle: want } });
    else {
      for (const op of jsonpatch.compare(have, { ...have, caBundle: want }, true)) {
        ops.push({ ...op, path: `${base}${op.path}` } as Operation);
      }
    }
  });
  return ops;
}

/** WebhookApi: the ValidatingWebhookConfiguration calls the target makes (as AdmissionregistrationV1Api names them). */
export interface WebhookApi {
  readValidatingWebhookConfiguration(req: { name: string }): Promise<V1ValidatingWebhookConfiguration>;
  patchValidatingWebhookConfiguration(req: { name: string; body: Operation[]; fieldManager?: string }): Promise<unknown>;
}

/** KubeWebhookCaBundle keeps the caBundle of one ValidatingWebhookConfiguration equal to the CA bundle. */
export class KubeWebhookCaBundle implements CaBundleTarget {
  private readonly api: WebhookApi;
  private readonly name: string;

  constructor(api: WebhookApi, name: string) {
    this.api = api;
    this.name = name;
  }

  describe(): string {
    return `validatingwebhookconfiguration ${this.name}`;
  }

  async sync(caBundlePem: string): Promise<boolean> {
    let config: V1ValidatingWebhookConfiguration;
    try {
      config = await this.api.readValidatingWebhookConfiguration({ name: this.name });
    } catch (err) {
      if (statusOf(err) === 404) throw new CertError('ENOTFOUND', `${this.describe()} not found`, { cause: err });
      throw apiError(`reading ${this.describe()}`, err);
    }
    const ops = caBundlePatch(config, caBundlePem);
    if (ops.length === 0) return false;
    try {
      await this.api.patchValidatingWebhookConfiguration({ name: this.name, body: ops, fieldManager: FIELD_MANAGER });
    } catch (err) {
      // A failed `test` is 422 (or 409): someone changed the configuration between read and patch.
      if (isConflict(err)) throw new CertError('ECONFLICT', `${this.describe()} changed while patching`, { cause: err });
      throw apiError(`patching ${this.describe()}`, err);
    }
    return true;
  }
}

export interface KubeCertOptions {
  namespace: string;
  secretName: string;
  /** ValidatingWebhookConfigurations whose caBundle follows the Secret's ca.crt. */
  webhookConfigurations?: readonly string[];
  labels?: Record<string, string>;
}

/** secretApi is SecretApi on lib/kube. */
export function secretApi(kube: Kube): SecretApi {
  return {
    readNamespacedSecret: ({ name, namespace }) => kube.get<V1Secret>(RESOURCES.Secret, { namespace, name }),
    createNamespacedSecret: ({ body, fieldManager }) => kube.create<V1Secret>(RESOURCES.Secret, body, fieldManager ? { fieldManager } : {}),
    replaceNamespacedSecret: ({ body, fieldManager }) => kube.replace<V1Secret>(RESOURCES.Secret, body, fieldManager ? { fieldManager } : {}),
  };
}

/** webhookApi is WebhookApi on lib/kube. */
export function webhookApi(kube: Kube): WebhookApi {
  return {
    readValidatingWebhookConfiguration: ({ name }) => kube.get<V1ValidatingWebhookConfiguration>(RESOURCES.ValidatingWebhookConfiguration, { name }),
    patchValidatingWebhookConfiguration: ({ name, body, fieldManager }) => kube.jsonPatch(RESOURCES.ValidatingWebhookConfiguration, { name }, body, fieldManager ? { fieldManager } : {}),
  };
}

/** kubeCertBackends builds the store and targets for a CertManager from a KubeConfig (or a lib/kube client). */
export function kubeCertBackends(kc: KubeConfig | Kube, options: KubeCertOptions): { store: KubeSecretStore; targets: KubeWebhookCaBundle[] } {
  const kube = kubeOf(kc);
  const core = secretApi(kube);
  const admission = webhookApi(kube);
  return {
    store: new KubeSecretStore(core, options.namespace, options.secretName, options.labels),
    targets: (options.webhookConfigurations ?? []).map((name) => new KubeWebhookCaBundle(admission, name)),
  };
}
