#!/usr/bin/env bash
# Make the published asv dashboard (benchmarks/html) work without internet access: asv's page loads
# jQuery, flot, bootstrap and friends from CDNs; fetch the same libraries from the npm registry and
# point the page at local copies. Run after `asv publish`, from anywhere.
set -euo pipefail
HTML="$(cd "$(dirname "$0")" && pwd)/html"
[ -f "$HTML/index.html" ] || { echo "no $HTML/index.html: run 'asv publish' first" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
for pkg in jquery@3.3.1 flot@0.8.3 flot-orderbars@1.0.0 stupid-table-plugin@1.1.3 blueimp-md5@2.19.0 bootstrap@3.1.1; do
  npm pack "$pkg" --silent >/dev/null
done
mkdir -p "$HTML/vendor"
for t in *.tgz; do mkdir -p "x/${t%.tgz}" && tar -xzf "$t" -C "x/${t%.tgz}"; done
cp x/jquery-*/package/dist/jquery.min.js x/flot-0*/package/jquery.flot*.js \
   x/flot-orderbars-*/package/js/jquery.flot.orderBars.js x/stupid-table-plugin-*/package/stupidtable.min.js \
   x/blueimp-md5-*/package/js/md5.min.js x/bootstrap-*/package/dist/js/bootstrap.min.js \
   x/bootstrap-*/package/dist/css/bootstrap.min.css "$HTML/vendor/"
# every CDN reference -> vendor/<file name>
sed -i -E 's#(src|href)="https://[^"]*/([^/"]+\.(js|css))"#\1="vendor/\2"#g' "$HTML/index.html"
sed -i -E 's#vendor/jquery\.flot\.(min)\.js#vendor/jquery.flot.js#; s#vendor/jquery\.flot\.([a-z]+)\.min\.js#vendor/jquery.flot.\1.js#g' "$HTML/index.html"
sed -i -E "s#vendor/jquery-[0-9.]+\.min\.js#vendor/jquery.min.js#" "$HTML/index.html"
sed -i -E "s/ integrity=\"[^\"]*\"//g" "$HTML/index.html"  # the hashes are of the CDN builds
missing=$(grep -oE '(src|href)="vendor/[^"]+"' "$HTML/index.html" | sed -E 's/.*"vendor\/([^"]+)"/\1/' | while read -r f; do [ -f "$HTML/vendor/$f" ] || echo "$f"; done)
[ -z "$missing" ] || { echo "not vendored: $missing" >&2; exit 1; }
echo "dashboard vendored for offline use: $HTML/index.html"
