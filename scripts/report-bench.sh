#!/bin/sh
# Times `understudy report` over 1,000,000 exchanges (3 routes x 5 segments).
#
# The first run writes the database through the real schema and writer
# (benches/report.rs); later runs reuse it. Then the report is built and
# rendered five times in-process, and the CLI is timed once more end to end.
#
# Usage: scripts/report-bench.sh [DB]   (default: target/report-bench.db)
set -eu
cd "$(dirname "$0")/.."
DB=${1:-target/report-bench.db}
UNDERSTUDY_BENCH_DB=$DB cargo bench --bench report
cargo build --release --quiet
echo
echo "CLI, end to end (process start, open, scan, render):"
/usr/bin/time -f "understudy report: %e s wall, %M KiB max RSS" \
    "${CARGO_TARGET_DIR:-target}/release/understudy" report --db "$DB" > /dev/null
