#!/usr/bin/env bash
# Installs the Debian packages Vane's tests and benchmarks use; a no-op when all are present.
set -euo pipefail
want=(openssl iproute2 nginx wrk prometheus)
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
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[vane-deps] installed ${missing[*]}" >&2
