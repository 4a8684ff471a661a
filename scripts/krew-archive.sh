#!/usr/bin/env bash
# The archive krew installs `kubectl vane` from: the `npm pack` tarball laid out with its
# production dependencies (scripts/stage-app.sh) under vane/, as kubectl-vane-VERSION.tar.gz.
# Reproducible: fixed owners and times, sorted names, gzip without a timestamp.
#
#   ARCHIVE=$(bash scripts/krew-archive.sh vane-0.1.0.tgz [OUT_DIR] | tail -1)
#
# Progress goes to stderr; the archive's path is the last line of stdout. Then
# scripts/krew-manifest.sh ARCHIVE URL prints the krew manifest for it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[vane-krew] %s\n' "$*" >&2; }
[[ $# -ge 1 && $# -le 2 ]] || { log "usage: $0 NPM_TARBALL [OUT_DIR]"; exit 1; }
TARBALL="$1"
OUT_DIR="${2:-$(dirname "$TARBALL")}"
S="$(mktemp -d "${TMPDIR:-/tmp}/vane-krew.XXXXXX")"
trap 'rm -rf "$S"' EXIT

bash "$ROOT/scripts/stage-app.sh" "$TARBALL" "$S/vane" >/dev/null
VERSION="$(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' "$S/vane/package.json" | head -1)"
[[ -n "$VERSION" ]] || { log "no version in the tarball's package.json"; exit 1; }
mkdir -p "$OUT_DIR"
OUT="$(cd "$OUT_DIR" && pwd)/kubectl-vane-$VERSION.tar.gz"
# 1985-10-26T08:15:00Z: the time npm pack gives every file.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@499162500 -C "$S" -cf - vane | gzip -9n >"$OUT.tmp"
mv -f "$OUT.tmp" "$OUT"
log "$OUT: $(du -h "$OUT" | cut -f1), sha256 $(sha256sum "$OUT" | cut -d' ' -f1)"
echo "$OUT"
