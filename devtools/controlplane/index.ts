/**
 * devtools/controlplane: a real etcd + kube-apiserver on loopback, for the e2e tests (attached, one
 * per run) and `vane local` (detached, pid files). Tools come from tests/e2e/tools/build.sh.
 */
export {
  startControlPlane, stopControlPlane, removeState, attachControlPlane, controlPlaneStatus, readControlPlaneState, readPid, writePid,
  layout, pidMarker, inNetns, ControlPlaneError, SERVICE_ACCOUNT_ISSUER, STREAM_AUDIENCE, SERVICE_CLUSTER_IP_RANGE,
  type ControlPlane, type ControlPlaneOptions, type ControlPlanePorts, type ControlPlaneState, type ControlPlaneStatus, type StopOptions, type NodeNetwork,
} from './controlplane.ts';
export { apiRequest, type ApiCredentials, type ApiResponse, type ApiRequestOptions } from './client.ts';
export { locateTools, buildTools, missingTools, defaultToolsBin, toolVersions, REQUIRED_TOOLS, BUILD_SCRIPT, type ToolVersions } from './tools.ts';
export { envWithoutProxies, startProcess, stopProcess, isAlive, isOurs, killSync, logTail, commandLine, procStart, type Identity } from './processes.ts';
export { onExitSync } from './exit.ts';
export { ensurePki, pkiFiles, ADMIN_USER, ADMIN_GROUP, type PkiFiles } from './pki.ts';
export {
  startNodeCluster, stopNodeCluster, readNodeClusterState, reapStaleNode, checkNodeHost, nodeDaemonsRunning, NodeClusterError,
  NODE_NAME, NODE_ADDRESS, NODE_HOST_ADDRESS, NODE_DNS_ADDRESS, POD_CIDR, KUBERNETES_SERVICE_IP, NODE_TOOLS,
  type NodeCluster, type NodeClusterOptions, type NodeClusterState,
} from './node.ts';
