#!/usr/bin/env bash
# Smoke test of the built tools: etcd + kube-apiserver on loopback, kubectl against them.
# Starts both, waits for /readyz, runs a few kubectl commands, stops both, removes temp dirs.
#
#   bash tests/e2e/tools/smoke.sh [BIN_DIR]     (default: the output of build.sh)
# VANE_SMOKE_KEEP=1 keeps the temp dir (certs, logs) for inspection.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
BIN="${1:-$(bash "$HERE/build.sh" | tail -1)}"
for t in etcd kube-apiserver kubectl; do [[ -x "$BIN/$t" ]] || { echo "missing $BIN/$t" >&2; exit 1; }; done

T0=$SECONDS
log() { printf '[vane-smoke %3ds] %s\n' $((SECONDS - T0)) "$*" >&2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/vane-smoke.XXXXXX")"
ETCD_PID="" APISERVER_PID="" OK=0

stop_pid() {  # stop_pid PID NAME — TERM, wait up to 10 s, then KILL
  local pid="$1" name="$2" i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "$name did not stop on TERM; KILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$APISERVER_PID" kube-apiserver
  stop_pid "$ETCD_PID" etcd
  if (( ! OK )); then
    for f in etcd.log apiserver.log; do
      [[ -f "$WORK/$f" ]] && { echo "----- last lines of $f" >&2; tail -n 40 "$WORK/$f" >&2; }
    done
  fi
  if [[ "${VANE_SMOKE_KEEP:-}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port on 127.0.0.1 in a high range (nothing accepts a connection on it).
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((30000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
wait_until() {  # wait_until SECONDS DESCRIPTION CMD... — poll every 0.25 s
  local deadline=$((SECONDS + $1)) what="$2"; shift 2
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then log "timed out waiting for $what"; return 1; fi
    sleep 0.25
  done
}

ETCD_CLIENT_PORT="$(free_port)"
ETCD_PEER_PORT="$(free_port)"
API_PORT="$(free_port)"
while [[ "$ETCD_PEER_PORT" == "$ETCD_CLIENT_PORT" ]]; do ETCD_PEER_PORT="$(free_port)"; done
while [[ "$API_PORT" == "$ETCD_CLIENT_PORT" || "$API_PORT" == "$ETCD_PEER_PORT" ]]; do API_PORT="$(free_port)"; done

# --- certificates (CA, serving cert for 127.0.0.1/localhost, admin client, SA key pair) ---
PKI="$WORK/pki"
mkdir -p "$PKI"
(
  cd "$PKI"
  exec 2>/dev/null >/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=vane-e2e-ca"
  openssl req -newkey rsa:2048 -nodes -keyout serving.key -out serving.csr -subj "/CN=localhost"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >serving.ext
  openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out serving.crt -days 2 -extfile serving.ext
  openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=vane-e2e-admin"
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >admin.ext
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 2 -extfile admin.ext
  openssl genrsa -out sa.key 2048
  openssl rsa -in sa.key -pubout -out sa.pub
)
log "certificates in $PKI"

# --- etcd ---------------------------------------------------------------------------------
ETCD_URL="http://127.0.0.1:$ETCD_CLIENT_PORT"
PEER_URL="http://127.0.0.1:$ETCD_PEER_PORT"
ETCD_ARGS=(
  --name=vane-e2e
  --data-dir="$WORK/etcd"
  --listen-client-urls="$ETCD_URL"
  --advertise-client-urls="$ETCD_URL"
  --listen-peer-urls="$PEER_URL"
  --initial-advertise-peer-urls="$PEER_URL"
  --initial-cluster="vane-e2e=$PEER_URL"
  --initial-cluster-state=new
  --unsafe-no-fsync
  --log-level=warn
)
env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u no_proxy -u NO_PROXY \
  "$BIN/etcd" "${ETCD_ARGS[@]}" >"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!
etcd_healthy() { [[ "$(curl -sf --noproxy '*' "$ETCD_URL/health")" == *'"health":"true"'* ]]; }
wait_until 30 "etcd /health" etcd_healthy
log "etcd $ETCD_VERSION healthy on $ETCD_URL (pid $ETCD_PID)"

# --- kube-apiserver -----------------------------------------------------------------------
APISERVER_ARGS=(
  --etcd-servers="$ETCD_URL"
  --bind-address=127.0.0.1
  --secure-port="$API_PORT"
  --advertise-address=127.0.0.1
  --endpoint-reconciler-type=none
  --cert-dir="$WORK/apiserver-certs"
  --tls-cert-file="$PKI/serving.crt"
  --tls-private-key-file="$PKI/serving.key"
  --client-ca-file="$PKI/ca.crt"
  --authorization-mode=RBAC
  --service-account-issuer=https://kubernetes.default.svc
  --service-account-key-file="$PKI/sa.pub"
  --service-account-signing-key-file="$PKI/sa.key"
  --disable-admission-plugins=ServiceAccount
  --service-cluster-ip-range=203.0.113.0/24
)
env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u no_proxy -u NO_PROXY \
  "$BIN/kube-apiserver" "${APISERVER_ARGS[@]}" >"$WORK/apiserver.log" 2>&1 &
APISERVER_PID=$!
API_URL="https://127.0.0.1:$API_PORT"
START=$SECONDS
readyz() {
  kill -0 "$APISERVER_PID" || { log "kube-apiserver exited"; exit 1; }
  [[ "$(curl -s --noproxy '*' --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$API_URL/readyz")" == ok ]]
}
wait_until 90 "kube-apiserver /readyz" readyz
log "kube-apiserver ready on $API_URL in $((SECONDS - START))s (pid $APISERVER_PID)"

# --- kubectl ------------------------------------------------------------------------------
KUBECONFIG_FILE="$WORK/admin.kubeconfig"
cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vane-e2e
  cluster:
    server: $API_URL
    certificate-authority: $PKI/ca.crt
users:
- name: vane-e2e-admin
  user:
    client-certificate: $PKI/admin.crt
    client-key: $PKI/admin.key
contexts:
- name: vane-e2e
  context: {cluster: vane-e2e, user: vane-e2e-admin}
current-context: vane-e2e
EOF
k() { env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY "$BIN/kubectl" --kubeconfig="$KUBECONFIG_FILE" "$@"; }

[[ "$(k get --raw /readyz)" == ok ]] || { log "kubectl get --raw /readyz is not ok"; exit 1; }
log "kubectl get --raw /readyz: ok"
server_version="$(k get --raw /version | jq -r .gitVersion)"
[[ "$server_version" == "$KUBERNETES_VERSION" ]] || { log "server reports $server_version, expected $KUBERNETES_VERSION"; exit 1; }
log "server /version: $server_version"
k create namespace vane-smoke >/dev/null
k -n vane-smoke create configmap hello --from-literal=greeting=hi >/dev/null
[[ "$(k -n vane-smoke get configmap hello -o jsonpath='{.data.greeting}')" == hi ]] || { log "configmap round trip failed"; exit 1; }
log "namespace + configmap round trip through etcd: ok"
k auth can-i '*' '*' >/dev/null || { log "admin is not cluster-admin"; exit 1; }
log "admin (O=system:masters) can do everything under RBAC: ok"

if [[ -x "$BIN/helm" ]]; then
  CHART="$WORK/chart"
  mkdir -p "$CHART/templates"
  printf 'apiVersion: v2\nname: vane-smoke\nversion: 0.1.0\nkubeVersion: ">=1.20.0-0"\n' >"$CHART/Chart.yaml"
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-helm\ndata:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n' \
    >"$CHART/templates/cm.yaml"
  h() { env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY HELM_CACHE_HOME="$WORK/helm/cache" \
    HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data" \
    "$BIN/helm" --kubeconfig="$KUBECONFIG_FILE" "$@"; }
  h install vane-smoke "$CHART" -n vane-smoke >/dev/null
  seen="$(k -n vane-smoke get configmap from-helm -o jsonpath='{.data.kube}')"
  [[ "$seen" == "$KUBERNETES_VERSION" ]] || { log "helm install: configmap says '$seen'"; exit 1; }
  h uninstall vane-smoke -n vane-smoke >/dev/null
  log "helm install/uninstall against the server (KubeVersion $seen): ok"
fi

OK=1
stop_pid "$APISERVER_PID" kube-apiserver; APISERVER_PID=""
stop_pid "$ETCD_PID" etcd; ETCD_PID=""
log "stopped kube-apiserver and etcd"
echo "smoke ok: kube-apiserver $KUBERNETES_VERSION + etcd $ETCD_VERSION + kubectl + helm $HELM_VERSION in $((SECONDS - T0))s"
