#!/usr/bin/env bash
# Vendor Mirador into static/ from its npm package (pinned; no CDN at run time).
#   scripts/vendor_mirador.sh [VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-4.0.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "mirador@$version" >/dev/null && tar xzf mirador-*.tgz)
target=static/vendor/mirador
rm -rf "$target" && mkdir -p "$target"
cp "$work/package/dist/mirador.min.js" "$target/"
cp "$work/package/LICENSE" "$target/LICENSE"
echo "$version" > "$target/VERSION"
echo "Mirador $version vendored into $target"
