#!/usr/bin/env bash
# Vendor a viewer into static/vendor/ from its npm package, pinned, with its licence (no CDN at run time).
#   scripts/vendor.sh openseadragon [VERSION]    (default 6.1.1)
#   scripts/vendor.sh mirador [VERSION]          (default 4.0.0)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?name openseadragon or mirador}
case "$name" in
  openseadragon) version=${2:-6.1.1}; files=(build/openseadragon/openseadragon.min.js build/openseadragon/images LICENSE.txt) ;;
  mirador)       version=${2:-4.0.0}; files=(dist/mirador.min.js LICENSE) ;;
  *) echo "unknown viewer: $name" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$name@$version" >/dev/null && tar xzf "$name"-*.tgz)
target=static/vendor/$name
rm -rf "$target" && mkdir -p "$target"
for file in "${files[@]}"; do cp -r "$work/package/$file" "$target/"; done
echo "$version" > "$target/VERSION"
echo "$name $version vendored into $target"
