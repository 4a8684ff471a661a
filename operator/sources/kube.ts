/**
 * KubeObjectSource: list+watch of every kind compile() reads. The reflectors live in lib/kube
 * (the one Kubernetes adapter, shared with the webhook's --watch-cluster); this is the
 * operator's name for them.
 */
export { KubeObjectSource, WATCHED_KINDS, type KubeSourceOptions } from '../../lib/kube/index.ts';
