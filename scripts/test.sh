#!/usr/bin/env bash
# The whole test suite from a fresh clone: system packages, npm dependencies (which bring
# Node 24), the real Kubernetes tools (built once from Go modules, then cached), and then
# lint, typecheck, unit, integration and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { echo "[vane-test] $(( $(date +%s) - started ))s $*" >&2; }

step "system packages"
bash scripts/install-system-deps.sh
step "npm ci"
npm ci --no-audit --no-fund --loglevel=error
if [ -f tests/e2e/tools/build.sh ] && [ -d tests/e2e/suite ]; then
  step "Kubernetes test tools (cached after the first build)"
  VANE_K8S_BIN="$(bash tests/e2e/tools/build.sh --node | tail -n 1)"
  export VANE_K8S_BIN
fi
step "npm test"
npm test
step "done"
