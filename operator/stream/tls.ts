/**
 * Stream TLS in a cluster: the operator's replicas share one CA and serving certificate in a
 * Secret (lib/certs, the webhook's mechanism: generated on first start, rotated before
 * expiry, several replicas racing safely), and publish the CA bundle in a ConfigMap
 * (`ca.crt`) that proxy pods mount to verify the operator.
 */
import { CertError, type CaBundleTarget } from '../../lib/certs/index.ts';
import { RESOURCES, apiStatusOf, fieldPatch, isConflict, kubeOf, type Kube, type KubeConfig } from '../../lib/kube/index.ts';

interface ConfigMap { metadata?: { resourceVersion?: string }; data?: Record<string, string> }

export class ConfigMapCaBundle implements CaBundleTarget {
  private readonly kube: Kube;
  private readonly namespace: string;
  private readonly name: string;

  constructor(kube: KubeConfig | Kube, namespace: string, name: string) {
    this.kube = kubeOf(kube);
    this.namespace = namespace;
    this.name = name;
  }

  describe(): string { return `configmap ${this.namespace}/${this.name}`; }

  async sync(caBundlePem: string): Promise<boolean> {
    const ref = { namespace: this.namespace, name: this.name };
    let current: ConfigMap | null;
    try {
      current = await this.kube.getOrNull<ConfigMap>(RESOURCES.ConfigMap, ref);
    } catch (err) {
      throw new CertError('EAPI', `reading ${this.describe()} failed`, { cause: err });
    }
    if (!current) {
      try {
        await this.kube.create(RESOURCES.ConfigMap, {
          apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: this.name, namespace: this.namespace, labels: { 'app.kubernetes.io/part-of': 'vane' } }, data: { 'ca.crt': caBundlePem },
        });
        return true;
      } catch (createErr) {
        if (apiStatusOf(createErr) === 409) throw new CertError('ECONFLICT', `${this.describe()} was created concurrently`, { cause: createErr });
        throw new CertError('EAPI', `creating ${this.describe()} failed`, { cause: createErr });
      }
    }
    if (current.data?.['ca.crt'] === caBundlePem) return false;
    const ops = fieldPatch('data', current.data, { ...(current.data ?? {}), 'ca.crt': caBundlePem }, current.metadata?.resourceVersion);
    try {
      await this.kube.jsonPatch(RESOURCES.ConfigMap, ref, ops);
    } catch (err) {
      if (isConflict(err)) throw new CertError('ECONFLICT', `${this.describe()} changed while patching`, { cause: err });
      throw new CertError('EAPI', `patching ${this.describe()} failed`, { cause: err });
    }
    return true;
  }
}
