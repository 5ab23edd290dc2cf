#!/usr/bin/env bash
# Vendor OpenSeadragon into static/ from its npm package (pinned; no CDN at run time).
#   scripts/vendor_openseadragon.sh [VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-6.1.1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "openseadragon@$version" >/dev/null && tar xzf openseadragon-*.tgz)
target=static/vendor/openseadragon
rm -rf "$target" && mkdir -p "$target"
cp "$work/package/build/openseadragon/openseadragon.min.js" "$target/"
cp -r "$work/package/build/openseadragon/images" "$target/"
cp "$work/package/LICENSE.txt" "$target/LICENSE.txt"
echo "$version" > "$target/VERSION"
echo "OpenSeadragon $version vendored into $target"
