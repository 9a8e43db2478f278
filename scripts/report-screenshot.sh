#!/bin/sh
# Renders the HTML report of a database in headless Chromium (Debian's
# `chromium` package: apt-get install -y chromium) and writes a PNG, so a
# person can look at what a reader will see. Network access is disabled for
# the browser: the page must be fully self-contained to render at all.
#
# Usage: scripts/report-screenshot.sh DB [OUT.png]
#   e.g. understudy demo --db /tmp/demo.db && scripts/report-screenshot.sh /tmp/demo.db
set -eu
cd "$(dirname "$0")/.."
DB=${1:?usage: scripts/report-screenshot.sh DB [OUT.png]}
OUT=${2:-target/report.png}
HTML=${OUT%.png}.html
BIN=${UNDERSTUDY:-${CARGO_TARGET_DIR:-target}/debug/understudy}
[ -x "$BIN" ] || cargo build --quiet
"$BIN" report --db "$DB" --format html -o "$HTML"
chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --hide-scrollbars --window-size=1100,2600 \
    --screenshot="$(realpath "$OUT")" "file://$(realpath "$HTML")"
echo "wrote $HTML and $OUT"
