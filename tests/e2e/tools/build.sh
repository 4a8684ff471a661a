#!/usr/bin/env bash
# Build the real Kubernetes test tools (kube-apiserver, kubectl, kube-controller-manager,
# etcd, helm) from Go modules into a cache keyed by version. A no-op when the cache is warm.
# With --node, also what a real node needs (kubelet, kube-scheduler, kube-proxy, CoreDNS and
# a static pause binary for the sandbox image): about 15 minutes more, cold.
#
#   BIN=$(bash tests/e2e/tools/build.sh [--node] | tail -1)
#
# Progress goes to stderr; the bin directory is the last line of stdout.
# Env: VANE_TOOLS_DIR (default $HOME/.cache/vane/tools), GO (default: go on PATH, else
# /usr/local/go/bin/go). GOMODCACHE/GOCACHE are the Go defaults unless set by the caller.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

NODE=0
for arg in "$@"; do
  case "$arg" in
    --node) NODE=1 ;;
    *) echo "usage: build.sh [--node]" >&2; exit 2 ;;
  esac
done

# Bump when the way a binary is built changes (flags, stamping): forces a rebuild.
RECIPE=1
# The wrapper module names every Kubernetes tool either set may build, so its go.mod stays
# the same whether or not --node is given.
WRAPPER_TOOLS=(kube-apiserver kubectl kube-controller-manager kubelet kube-scheduler kube-proxy)
KUBE_TOOLS=(kube-apiserver kubectl kube-controller-manager)
ALL_TOOLS=("${KUBE_TOOLS[@]}" etcd helm)
if (( NODE )); then
  KUBE_TOOLS+=(kubelet kube-scheduler kube-proxy)
  ALL_TOOLS=("${KUBE_TOOLS[@]}" etcd helm coredns pause)
fi

TOOLS_DIR="${VANE_TOOLS_DIR:-$HOME/.cache/vane/tools}"
ROOT="$TOOLS_DIR/k8s-$KUBERNETES_VERSION"
BIN="$ROOT/bin"
STAMP="$ROOT/.complete"
KEY="recipe=$RECIPE kubernetes=$KUBERNETES_VERSION etcd=$ETCD_VERSION helm=$HELM_VERSION tools=${ALL_TOOLS[*]}"
if (( NODE )); then
  STAMP="$ROOT/.complete-node"
  KEY+=" coredns=$COREDNS_VERSION"
fi
KEY="${KEY// /,}"

T0=$SECONDS
elapsed() { local s=$((SECONDS - ${1:-$T0})); printf '%d:%02d' $((s / 60)) $((s % 60)); }
log() { printf '[vane-tools %s] %s\n' "$(elapsed)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

all_bins_present() {
  local t
  for t in "${ALL_TOOLS[@]}"; do [[ -x "$BIN/$t" ]] || return 1; done
}

is_warm() { [[ -f "$STAMP" ]] && [[ "$(head -1 "$STAMP")" == "$KEY" ]] && all_bins_present; }

# --- warm path: no Go, no network, no lock -----------------------------------------------
if is_warm; then
  log "cache warm: $BIN ($KEY)"
  echo "$BIN"
  exit 0
fi

# --- cold path ---------------------------------------------------------------------------
if [[ -z "${GO:-}" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"; else GO=/usr/local/go/bin/go; fi
fi
[[ -x "$GO" ]] || die "no Go toolchain found (set GO=/path/to/go); Go >= 1.26 is needed"

export GOTOOLCHAIN=local CGO_ENABLED=0 GO111MODULE=on
export GOFLAGS="-mod=mod -buildvcs=false"
unset GOOS GOARCH GOWORK 2>/dev/null || true
export GOWORK=off

mkdir -p "$ROOT" "$BIN" "$ROOT/stamps" "$ROOT/build"
exec 9>"$ROOT/.lock"
if ! flock -n 9; then
  log "another build holds $ROOT/.lock; waiting"
  flock 9
fi
if is_warm; then  # built by whoever held the lock
  log "cache warm: $BIN"
  echo "$BIN"
  exit 0
fi
rm -f "$STAMP"

log "cold build into $ROOT with $("$GO" version) ($(nproc) cores)"
log "versions: kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION$( (( NODE )) && echo ", coredns $COREDNS_VERSION")"

BG_PID=""
# Each step runs in its own process group (setsid) so an interrupt stops go build and its
# compiler/linker children too.
cleanup() { if [[ -n "$BG_PID" ]] && kill -0 "$BG_PID" 2>/dev/null; then kill -- "-$BG_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# run LABEL CMD... — run a command with a heartbeat every 30 s; report time and peak RSS.
run() {
  local label="$1"; shift
  local start=$SECONDS last=$SECONDS rc=0 rss="" timef="$ROOT/build/.time"
  rm -f "$timef"
  if [[ -x /usr/bin/time ]]; then
    setsid /usr/bin/time -f '%M' -o "$timef" "$@" >&2 &
  else
    setsid "$@" >&2 &
  fi
  BG_PID=$!
  while kill -0 "$BG_PID" 2>/dev/null; do
    sleep 1
    if (( SECONDS - last >= 30 )); then
      last=$SECONDS
      log "… still $label ($(elapsed "$start") so far)"
    fi
  done
  wait "$BG_PID" || rc=$?
  BG_PID=""
  [[ -s "$timef" ]] && rss="$(tail -1 "$timef")"
  if (( rc != 0 )); then
    die "$label failed (exit $rc) after $(elapsed "$start"); command: $*"
  fi
  if [[ "$rss" =~ ^[0-9]+$ ]]; then
    log "done $label in $(elapsed "$start") (peak RSS $((rss / 1024)) MiB)"
  else
    log "done $label in $(elapsed "$start")"
  fi
}

tool_key() { echo "$1 $2 recipe=$RECIPE"; }
tool_fresh() { [[ -x "$BIN/$1" && -f "$ROOT/stamps/$1" && "$(cat "$ROOT/stamps/$1")" == "$(tool_key "$1" "$2")" ]]; }
tool_done() { tool_key "$1" "$2" >"$ROOT/stamps/$1"; }

# mod_json MODULE@VERSION FIELD — download a module into the module cache, print a field.
mod_json() {
  local dl="$ROOT/build/.dl"
  mkdir -p "$dl"
  (cd "$dl" && GOFLAGS=-buildvcs=false "$GO" mod download -json "$1") | jq -r ".$2 // empty"
}
# Commit hash if the module proxy's .info carries an Origin, else "unknown".
mod_commit() {
  local info; info="$(mod_json "$1" Info)"
  [[ -n "$info" && -f "$info" ]] && jq -r '.Origin.Hash // "unknown"' "$info" || echo unknown
}
# Release time of the module version (used as buildDate: reproducible builds).
mod_time() {
  local info; info="$(mod_json "$1" Info)"
  jq -r '.Time' "$info" | sed -E 's/\.[0-9]+Z$/Z/'
}

# build_into MODDIR PKG OUT LDFLAGS — go build in a wrapper module, install atomically.
build_into() {
  local dir="$1" pkg="$2" out="$3" ldflags="$4"
  run "building $(basename "$out")" env -C "$dir" "$GO" build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg"
  mv -f "$out.tmp" "$out"
}

command -v jq >/dev/null || die "jq is needed"

# install_gomod DIR — make DIR/go.mod.new the wrapper's go.mod when it differs from the one
# generated last time (a changed go.mod drops go.sum, which the build then re-resolves).
install_gomod() {
  local dir="$1"
  if ! cmp -s "$dir/go.mod.new" "$dir/go.mod.gen" 2>/dev/null; then
    cp "$dir/go.mod.new" "$dir/go.mod"; cp "$dir/go.mod.new" "$dir/go.mod.gen"; rm -f "$dir/go.sum"
  fi
  rm -f "$dir/go.mod.new"
}

# --- Kubernetes: kube-apiserver, kubectl, kube-controller-manager -------------------------
kube_needed=0
for t in "${KUBE_TOOLS[@]}"; do tool_fresh "$t" "$KUBERNETES_VERSION" || kube_needed=1; done
if (( kube_needed )); then
  KV="$KUBERNETES_VERSION"
  [[ "$KV" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBERNETES_VERSION must look like v1.X.Y"
  KMINOR="${BASH_REMATCH[1]}"
  STAGING_V="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
  log "resolving k8s.io/kubernetes@$KV"
  kgomod="$(mod_json "k8s.io/kubernetes@$KV" GoMod)"
  [[ -f "$kgomod" ]] || die "could not download k8s.io/kubernetes@$KV"
  kgover="$(sed -nE 's/^go ([0-9.]+).*/\1/p' "$kgomod")"
  # Staging modules: the `k8s.io/X => ./staging/src/k8s.io/X` lines of the release's go.mod,
  # restricted to those it requires (unrequired ones, e.g. sample-controller, may be unpublished).
  mapfile -t staging < <(sed -nE 's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/.*#\2#p' "$kgomod" | sort -u)
  (( ${#staging[@]} > 10 )) || die "found only ${#staging[@]} staging replaces in $kgomod"
  required="$(sed -nE 's#^[[:space:]]*(require[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+v0\.0\.0([[:space:]].*)?$#\2#p' "$kgomod" | sort -u)"
  kdir="$ROOT/build/kubernetes"
  mkdir -p "$kdir"
  {
    echo "// Generated by tests/e2e/tools/build.sh — do not edit."
    echo "module vane.local/e2e-tools/kubernetes"
    echo
    echo "go $kgover"
    echo
    echo "require k8s.io/kubernetes $KV"
    echo
    echo "tool ("
    for t in "${WRAPPER_TOOLS[@]}"; do echo "	k8s.io/kubernetes/cmd/$t"; done
    echo ")"
    echo
    echo "replace ("
    for m in "${staging[@]}"; do
      if grep -qxF "$m" <<<"$required"; then echo "	$m => $m $STAGING_V"; fi
    done
    echo ")"
  } >"$kdir/go.mod.new"
  install_gomod "$kdir"
  log "wrapper module $kdir/go.mod: k8s.io/kubernetes $KV + $(grep -c '=>' "$kdir/go.mod.gen") staging replaces → $STAGING_V"

  kdate="$(mod_time "k8s.io/kubernetes@$KV")"
  kcommit="$(mod_commit "k8s.io/kubernetes@$KV")"
  kld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kld+=" -X $p.gitVersion=$KV -X $p.gitMajor=1 -X $p.gitMinor=$KMINOR"
    kld+=" -X $p.gitCommit=$kcommit -X $p.gitTreeState=clean -X $p.buildDate=$kdate"
  done

  for t in "${KUBE_TOOLS[@]}"; do
    if tool_fresh "$t" "$KV"; then log "$t $KV already built"; continue; fi
    case "$t" in
      kube-apiserver) hint=" (this takes several minutes on 2 cores; the link needs ~2-3 GB)" ;;
      kubelet) hint=" (several minutes on 2 cores)" ;;
      *) hint="" ;;
    esac
    log "building $t $KV …$hint"
    build_into "$kdir" "k8s.io/kubernetes/cmd/$t" "$BIN/$t" "$kld"
    tool_done "$t" "$KV"
  done
else
  log "${KUBE_TOOLS[*]} $KUBERNETES_VERSION already built"
fi

# --- etcd ---------------------------------------------------------------------------------
if ! tool_fresh etcd "$ETCD_VERSION"; then
  log "resolving go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  egomod="$(mod_json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" GoMod)"
  [[ -f "$egomod" ]] || die "could not download go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  egover="$(sed -nE 's/^go ([0-9.]+).*/\1/p' "$egomod")"
  # etcd's server go.mod replaces its sibling modules with local directories (invisible to
  # us): pin each of them to the same release instead.
  mapfile -t esib < <(sed -nE 's#^[[:space:]]*(replace[[:space:]]+)?(go\.etcd\.io/etcd/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\.\./.*#\2#p' "$egomod" | sort -u)
  edir="$ROOT/build/etcd"
  mkdir -p "$edir"
  {
    echo "// Generated by tests/e2e/tools/build.sh — do not edit."
    echo "module vane.local/e2e-tools/etcd"
    echo
    echo "go $egover"
    echo
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo
    echo "replace ("
    for m in "${esib[@]}"; do echo "	$m => $m $ETCD_VERSION"; done
    echo ")"
  } >"$edir/go.mod.new"
  install_gomod "$edir"
  cat >"$edir/main.go" <<'EOF'
// Generated by tests/e2e/tools/build.sh — do not edit.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  ecommit="$(mod_commit "go.etcd.io/etcd/server/v3@$ETCD_VERSION")"
  log "building etcd $ETCD_VERSION …"
  build_into "$edir" . "$BIN/etcd" "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ecommit"
  tool_done etcd "$ETCD_VERSION"
else
  log "etcd $ETCD_VERSION already built"
fi

# --- helm ---------------------------------------------------------------------------------
if ! tool_fresh helm "$HELM_VERSION"; then
  log "resolving helm.sh/helm/v3@$HELM_VERSION"
  hgomod="$(mod_json "helm.sh/helm/v3@$HELM_VERSION" GoMod)"
  [[ -f "$hgomod" ]] || die "could not download helm.sh/helm/v3@$HELM_VERSION"
  if grep -qE '^[[:space:]]*replace|=>' "$hgomod"; then
    log "warning: helm $HELM_VERSION's go.mod has replace directives; the build may differ from upstream"
  fi
  hgover="$(sed -nE 's/^go ([0-9.]+).*/\1/p' "$hgomod")"
  # Helm's Makefile derives the default Kubernetes version (.Capabilities.KubeVersion for
  # `helm template`, lint deprecations) from its k8s.io/client-go version: v0.X.Y → 1.X.
  cgminor="$(sed -nE 's#^[[:space:]]*k8s\.io/client-go[[:space:]]+v0\.([0-9]+)\..*#\1#p' "$hgomod" | head -1)"
  [[ -n "$cgminor" ]] || die "cannot find k8s.io/client-go in $hgomod"
  hdir="$ROOT/build/helm"
  mkdir -p "$hdir"
  {
    echo "// Generated by tests/e2e/tools/build.sh — do not edit."
    echo "module vane.local/e2e-tools/helm"
    echo
    echo "go $hgover"
    echo
    echo "require helm.sh/helm/v3 $HELM_VERSION"
    echo
    echo "tool helm.sh/helm/v3/cmd/helm"
  } >"$hdir/go.mod.new"
  install_gomod "$hdir"
  hcommit="$(mod_commit "helm.sh/helm/v3@$HELM_VERSION")"
  hv=helm.sh/helm/v3
  hld="-s -w -X $hv/internal/version.version=$HELM_VERSION -X $hv/internal/version.metadata="
  hld+=" -X $hv/internal/version.gitCommit=$hcommit -X $hv/internal/version.gitTreeState=clean"
  hld+=" -X $hv/pkg/lint/rules.k8sVersionMajor=1 -X $hv/pkg/lint/rules.k8sVersionMinor=$cgminor"
  hld+=" -X $hv/pkg/chartutil.k8sVersionMajor=1 -X $hv/pkg/chartutil.k8sVersionMinor=$cgminor"
  log "building helm $HELM_VERSION …"
  build_into "$hdir" helm.sh/helm/v3/cmd/helm "$BIN/helm" "$hld"
  tool_done helm "$HELM_VERSION"
else
  log "helm $HELM_VERSION already built"
fi

# --- node only: CoreDNS and the pause binary ---------------------------------------------
if (( NODE )); then
  if ! tool_fresh coredns "$COREDNS_VERSION"; then
    log "resolving github.com/coredns/coredns@$COREDNS_VERSION"
    cgomod="$(mod_json "github.com/coredns/coredns@$COREDNS_VERSION" GoMod)"
    [[ -f "$cgomod" ]] || die "could not download github.com/coredns/coredns@$COREDNS_VERSION"
    if grep -qE '^[[:space:]]*replace|=>' "$cgomod"; then die "coredns $COREDNS_VERSION's go.mod has replace directives; pin them as etcd's are"; fi
    cgover="$(sed -nE 's/^go ([0-9.]+).*/\1/p' "$cgomod")"
    cdir="$ROOT/build/coredns"
    mkdir -p "$cdir"
    {
      echo "// Generated by tests/e2e/tools/build.sh — do not edit."
      echo "module vane.local/e2e-tools/coredns"
      echo
      echo "go $cgover"
      echo
      echo "require github.com/coredns/coredns $COREDNS_VERSION"
      echo
      echo "tool github.com/coredns/coredns"
    } >"$cdir/go.mod.new"
    install_gomod "$cdir"
    ccommit="$(mod_commit "github.com/coredns/coredns@$COREDNS_VERSION")"
    log "building coredns $COREDNS_VERSION …"
    build_into "$cdir" github.com/coredns/coredns "$BIN/coredns" "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$ccommit"
    tool_done coredns "$COREDNS_VERSION"
  else
    log "coredns $COREDNS_VERSION already built"
  fi

  # The sandbox ("pause") image's one binary: it sleeps until TERM or INT and exits 0.
  PAUSE_RECIPE=1
  if ! tool_fresh pause "$PAUSE_RECIPE"; then
    command -v gcc >/dev/null || die "gcc is needed for the pause binary (scripts/install-system-deps.sh installs it)"
    pdir="$ROOT/build/pause"
    mkdir -p "$pdir"
    cat >"$pdir/pause.c" <<'EOF'
/* Generated by tests/e2e/tools/build.sh — do not edit. */
#include <signal.h>
#include <unistd.h>
static void bye(int sig) { (void)sig; _exit(0); }
int main(void) {
  signal(SIGTERM, bye);
  signal(SIGINT, bye);
  for (;;) pause();
}
EOF
    run "building pause" gcc -static -Os -s -o "$BIN/pause.tmp" "$pdir/pause.c"
    mv -f "$BIN/pause.tmp" "$BIN/pause"
    tool_done pause "$PAUSE_RECIPE"
  else
    log "pause already built"
  fi
fi

# --- check and stamp (last) ---------------------------------------------------------------
# (outputs captured first: `cmd | grep -q` can fail under pipefail when grep exits early)
check_version() {  # check_version WANT CMD...
  local want="$1" out; shift
  out="$("$@" 2>&1)" || die "$* failed: $out"
  [[ "$out" == *"$want"* ]] || die "$* does not report $want: $out"
}
check_version "$KUBERNETES_VERSION" "$BIN/kubectl" version --client
check_version "$KUBERNETES_VERSION" "$BIN/kube-apiserver" --version
check_version "$KUBERNETES_VERSION" "$BIN/kube-controller-manager" --version
check_version "Version: ${ETCD_VERSION#v}" "$BIN/etcd" --version
check_version "$HELM_VERSION" "$BIN/helm" version --short
if (( NODE )); then
  check_version "$KUBERNETES_VERSION" "$BIN/kubelet" --version
  check_version "$KUBERNETES_VERSION" "$BIN/kube-scheduler" --version
  check_version "$KUBERNETES_VERSION" "$BIN/kube-proxy" --version
  check_version "CoreDNS-${COREDNS_VERSION#v}" "$BIN/coredns" -version
fi

all_bins_present || die "some binaries are missing in $BIN"
{ echo "$KEY"; echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) with $("$GO" version) in $(elapsed)"; } >"$STAMP.tmp"
mv -f "$STAMP.tmp" "$STAMP"
log "all tools built in $(elapsed): $BIN"
echo "$BIN"
