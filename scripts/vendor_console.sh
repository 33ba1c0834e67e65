#!/usr/bin/env bash
# Refresh the console's vendored front-end libraries from the npm registry (`make vendor`).
#
# htmx (progressive enhancement) and uPlot (the spend charts: small, maintained, canvas, no
# innerHTML) are copied into gateway/console/static/ (served by the gateway itself: no CDN)
# and their versions and Subresource Integrity hashes are written to gateway/console/VENDORED,
# which the templates' integrity= attributes are checked against by the console tests.
# Usage: scripts/vendor_console.sh [htmx version spec, default 2] [uPlot version spec, default 1]
set -euo pipefail
htmx_spec="${1:-2}"
uplot_spec="${2:-1}"
here="$(cd "$(dirname "$0")/.." && pwd)"
static="$here/gateway/console/static"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
command -v npm >/dev/null || { echo "vendor: npm is needed (apt-get install -y npm)" >&2; exit 1; }

# fetch NAME SPEC: unpack the package into $work/NAME, print its version
fetch() {
  mkdir -p "$work/$1"
  (cd "$work/$1" && npm pack --silent "$1@$2" >/dev/null && tar -xzf ./*.tgz)
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['version'])" "$work/$1/package/package.json"
}
sri() { echo "sha384-$(openssl dgst -sha384 -binary "$1" | base64 -w0)"; }

htmx_version="$(fetch htmx.org "$htmx_spec")"
cp "$work/htmx.org/package/dist/htmx.min.js" "$static/htmx.min.js"
uplot_version="$(fetch uplot "$uplot_spec")"
cp "$work/uplot/package/dist/uPlot.iife.min.js" "$static/uplot.iife.min.js"
cp "$work/uplot/package/dist/uPlot.min.css" "$static/uplot.min.css"

cat > "$here/gateway/console/VENDORED" <<DOC
# Front-end code vendored into gateway/console/static/ (refresh: make vendor).
# name       version   source                         file                        integrity
htmx.org     $htmx_version    npm:htmx.org@$htmx_version/dist      static/htmx.min.js          $(sri "$static/htmx.min.js")
uplot        $uplot_version    npm:uplot@$uplot_version/dist        static/uplot.iife.min.js    $(sri "$static/uplot.iife.min.js")
uplot        $uplot_version    npm:uplot@$uplot_version/dist        static/uplot.min.css        $(sri "$static/uplot.min.css")
DOC
echo "vendor: htmx.org $htmx_version, uplot $uplot_version -> $static"
