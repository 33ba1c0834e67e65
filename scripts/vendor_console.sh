#!/usr/bin/env bash
# Refresh the console's vendored front-end library from the npm registry (`make vendor`).
#
# htmx is copied into gateway/console/static/ (served by the gateway itself: no CDN) and its
# version and Subresource Integrity hash are written to gateway/console/VENDORED, which the
# base template's integrity= attribute is checked against by tests/console/test_console_http.py.
# Usage: scripts/vendor_console.sh [htmx version spec, default 2]
set -euo pipefail
spec="${1:-2}"
here="$(cd "$(dirname "$0")/.." && pwd)"
static="$here/gateway/console/static"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
command -v npm >/dev/null || { echo "vendor: npm is needed (apt-get install -y npm)" >&2; exit 1; }
(cd "$work" && npm pack --silent "htmx.org@${spec}" >/dev/null)
tar -xzf "$work"/htmx.org-*.tgz -C "$work"
version="$(node -p "require('$work/package/package.json').version" 2>/dev/null || \
  python3 -c "import json,sys; print(json.load(open('$work/package/package.json'))['version'])")"
cp "$work/package/dist/htmx.min.js" "$static/htmx.min.js"
sri="sha384-$(openssl dgst -sha384 -binary "$static/htmx.min.js" | base64 -w0)"
cat > "$here/gateway/console/VENDORED" <<DOC
# Front-end code vendored into gateway/console/static/ (refresh: make vendor).
# name       version   source                         file                   integrity
htmx.org     $version    npm:htmx.org@$version/dist      static/htmx.min.js     $sri
DOC
echo "vendor: htmx.org $version -> $static/htmx.min.js ($sri)"
