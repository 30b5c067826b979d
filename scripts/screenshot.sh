#!/usr/bin/env bash
# A page as a person sees it: headless Chromium (Debian's `chromium`, installed when missing) renders
# an HTML file from disk into a PNG of the given window size (the page below it is cut off: give
# a height that holds it). Used for docs/report_screenshot.png.
# Usage: scripts/screenshot.sh PAGE.html OUT.png [WIDTH [HEIGHT]]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: scripts/screenshot.sh PAGE.html OUT.png [WIDTH [HEIGHT]]" >&2; exit 2; }
page=$1 out=$2 width=${3:-1400} height=${4:-2400}
[ -f "$page" ] || { echo "screenshot: '$page' is not a file" >&2; exit 2; }
[[ "$width" =~ ^[0-9]+$ && "$height" =~ ^[0-9]+$ && $width -ge 100 && $height -ge 100 && $width -le 8000 && $height -le 16000 ]] ||
  { echo "screenshot: width and height must be whole numbers in 100..8000 and 100..16000, got '$width' and '$height'" >&2; exit 2; }
if ! command -v chromium > /dev/null; then
  echo "screenshot: installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium > /dev/null
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# No background networking: this machine has no network, and Chromium would keep trying.
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
  --window-size="$width,$height" --screenshot="$(realpath -m "$out")" "file://$(realpath "$page")" 2> "$profile/chromium.log" ||
  { cat "$profile/chromium.log" >&2; exit 1; }
echo "wrote $out"
