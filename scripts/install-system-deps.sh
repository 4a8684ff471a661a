#!/usr/bin/env bash
# Installs the Debian packages Vane's tests and benchmarks use; a no-op when all are present.
set -euo pipefail
# The real node of the e2e tier and `vane local up --node` (shared/notes/real-node.md): a
# container runtime, CNI plugins, iptables for kube-proxy, buildah for images without a
# registry, gcc for the static pause binary, util-linux for nsenter; jq for build.sh;
# binutils (strip) for scripts/build-image.sh, busybox-static for the Dockerfile test; h2load
# (nghttp2-client) for the HTTP/2 benchmark.
want=(openssl iproute2 nginx wrk nghttp2-client prometheus jq util-linux containerd runc buildah containernetworking-plugins iptables gcc libc6-dev binutils busybox-static)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[vane-deps] system packages present: ${want[*]}" >&2
  exit 0
fi
echo "[vane-deps] installing ${missing[*]} (apt-get)…" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# Package scripts may replace /usr/sbin/policy-rc.d (which keeps services from starting on
# install); put back whatever was there, or nothing.
policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then saved="$(mktemp)"; cp -p "$policy" "$saved"; fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [ -n "$saved" ]; then $SUDO cp -p "$saved" "$policy"; rm -f "$saved"; else $SUDO rm -f "$policy"; fi
echo "[vane-deps] installed ${missing[*]}" >&2
