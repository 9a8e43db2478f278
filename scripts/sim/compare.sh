#!/bin/sh
# Runs the Rust simulation's per-run figures (src/stats/sim.rs, `exact`) and the
# independent Python reference (reference.py) on the same SplitMix64 streams, and
# diffs them: no output after "agree" means every figure matched run by run.
# Usage: scripts/sim/compare.sh [RUNS]   (default 10; ~1 min of Rust, ~3 min of Python)
set -e
cd "$(dirname "$0")/../.."
runs=${1:-10}
US_RUNS=$runs cargo test --release --lib stats::sim::exact -- --ignored --nocapture --test-threads 1 \
  | sed -n 's/^.*\(exact [a-z0-9].*:.*\)$/\1/p' > /tmp/understudy-sim-rust.txt
python3 scripts/sim/reference.py exact "$runs" > /tmp/understudy-sim-python.txt
cat /tmp/understudy-sim-rust.txt
diff /tmp/understudy-sim-rust.txt /tmp/understudy-sim-python.txt && echo "agree: Rust and Python, $runs runs each"
