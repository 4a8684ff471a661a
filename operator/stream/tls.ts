/**
 * Stream TLS in a cluster: the operator's replicas share one CA and serving certificate in a
 * Secret (lib/certs, the webhook's mechanism: generated on first start, rotated before
 * expiry, several replicas racing safely), and publish the CA bundle in a ConfigMap
 * (`ca.crt`) that proxy pods mount to verify the operator.
 */
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import { CertError, type CaBundleTarget } from '../../lib/certs/index.ts';

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: number; statusCode?: number };
  return e.code ?? e.statusCode;
}

export class ConfigMapCaBundle implements CaBundleTarget {
  private readonly api: CoreV1Api;
  private readonly namespace: string;
  private readonly name: string;

  constructor(kc: KubeConfig, namespace: string, name: string) {
    this.api = kc.makeApiClient(CoreV1Api);
    this.namespace = namespace;
    this.name = name;
  }

  describe(): string { return `configmap ${this.namespace}/${this.name}`; }

  async sync(caBundlePem: string): Promise<boolean> {
    let current;
    try {
      current = await this.api.readNamespacedConfigMap({ name: this.name, namespace: this.namespace });
    } catch (err) {
      if (statusOf(err) !== 404) throw new CertError('EAPI', `reading ${this.describe()} failed`, { cause: err });
      try {
        await this.api.createNamespacedConfigMap({
          namespace: this.namespace,
          body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: this.name, namespace: this.namespace, labels: { 'app.kubernetes.io/part-of': 'vane' } }, data: { 'ca.crt': caBundlePem } },
        });
        return true;
      } catch (createErr) {
        if (statusOf(createErr) === 409) throw new CertError('ECONFLICT', `${this.describe()} was created concurrently`, { cause: createErr });
        throw new CertError('EAPI', `creating ${this.describe()} failed`, { cause: createErr });
      }
    }
    if (current.data?.['ca.crt'] === caBundlePem) return false;
    const ops = fastJsonPatch.compare({ data: current.data ?? {} }, { data: { ...(current.data ?? {}), 'ca.crt': caBundlePem } });
    if (!current.data) ops.splice(0, ops.length, { op: 'add', path: '/data', value: { 'ca.crt': caBundlePem } });
    if (current.metadata?.resourceVersion) ops.unshift({ op: 'test', path: '/metadata/resourceVersion', value: current.metadata.resourceVersion });
    try {
      await this.api.patchNamespacedConfigMap({ name: this.name, namespace: this.namespace, body: ops }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
    } catch (err) {
      if (statusOf(err) === 422 || statusOf(err) === 409) throw new CertError('ECONFLICT', `${this.describe()} changed while patching`, { cause: err });
      throw new CertError('EAPI', `patching ${this.describe()} failed`, { cause: err });
    }
    return true;
  }
}
