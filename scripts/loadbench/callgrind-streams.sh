#!/usr/bin/env bash
# Instructions per client chunk of a mirrored, `llm`-compared SSE stream
# (issue 25): the streams scenario run twice under callgrind, with streams
# of two lengths; the difference in instructions over the difference in
# client chunks leaves out start-up and per-stream costs.
# Usage: scripts/loadbench/callgrind-streams.sh [understudy-binary]
# Environment: STREAMS (default 20), SHORT and LONG stream seconds (5, 15).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-target/release/understudy}")
streams=${STREAMS:-20}
short=${SHORT:-5}
long=${LONG:-15}
out=$(mktemp -d)
wrap="$out/understudy-under-callgrind"
cat >"$wrap" <<WRAP
#!/usr/bin/env bash
exec valgrind --tool=callgrind --callgrind-out-file=$out/cg.\$\$.%p.out "$bin" "\$@"
WRAP
chmod +x "$wrap"
total() { # instructions of all threads in the newest profile
  local f
  f=$(find "$out" -name 'cg.*.out' -newer "$out/stamp" | head -n 1)
  callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
run() {
  touch "$out/stamp"
  LOAD_ONLY=streams LOAD_STREAMS=$streams LOAD_STREAM_SECS=$1 LOAD_BIN=$wrap \
    target/release/loadbench >/dev/null 2>"$out/loadbench.$1.log"
  total
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
a=$(run "$short")
b=$(run "$long")
chunks=$(( streams * (long - short) * 10 ))
echo "instructions: ${short}s streams $a, ${long}s streams $b"
echo "per client chunk (each also read from the candidate): $(( (b - a) / chunks ))"
echo "profiles in $out"
