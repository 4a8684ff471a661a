/**
 * loadKubeConfig: the KubeConfig a command runs with — a file (--kubeconfig), the pod's
 * ServiceAccount (--in-cluster), or kubectl's default ($KUBECONFIG, else ~/.kube/config) —
 * with an optional context, as @kubernetes/client-node reads them.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { KubeError } from './errors.ts';

export interface KubeConfigSource {
  kubeconfig?: string;
  inCluster?: boolean;
  context?: string;
}

export function loadKubeConfig(source: KubeConfigSource): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (source.kubeconfig) kc.loadFromFile(source.kubeconfig);
    else if (source.inCluster) kc.loadFromCluster();
    else kc.loadFromDefault();
  } catch (err) {
    throw new KubeError('ECONFIG', `cannot load the kubeconfig${source.kubeconfig ? ` ${source.kubeconfig}` : ''}: ${(err as Error).message}`, { cause: err });
  }
  if (source.context) {
    if (!kc.getContextObject(source.context)) {
      throw new KubeError('ECONFIG', `context "${source.context}" does not exist in the kubeconfig (have: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'})`);
    }
    kc.setCurrentContext(source.context);
  }
  return kc;
}
