#!/usr/bin/env bash
# Render a report HTML file to a PNG screenshot with headless Chromium, to look at it or
# attach it somewhere that cannot show HTML.
#   scripts/render_report.sh reports/S1.html [out.png] [width] [height]
# Chromium: apt-get update && apt-get install -y chromium
set -euo pipefail
html=${1:?usage: $0 REPORT.html [OUT.png] [WIDTH] [HEIGHT]}
out=${2:-${html%.html}.png}
width=${3:-1400}
height=${4:-3000}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$browser" ]]; then
  echo "error: no chromium found; install it with: apt-get update && apt-get install -y chromium" >&2
  exit 1
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --screenshot="$(realpath -m "$out")" --window-size="${width},${height}" \
  "file://$(realpath "$html")" >/dev/null 2>&1
echo "$out"
