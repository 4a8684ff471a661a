/**
 * defaultListenHost: where a component's own ports (the operator's stream and admin, the
 * proxy's admin) listen unless a flag says otherwise. In a pod they must be reachable by the
 * kubelet's probes, Services and Prometheus; on a workstation or a shared host nothing outside
 * it should reach them by accident, so loopback. A pod is recognised as client-go does it:
 * the kubelet sets KUBERNETES_SERVICE_HOST in every container.
 */
export function defaultListenHost(env: NodeJS.ProcessEnv = process.env): string {
  return env.KUBERNETES_SERVICE_HOST ? '0.0.0.0' : '127.0.0.1';
}
