#!/usr/bin/env bash
# Fuzzes a running admin API against its OpenAPI document with Schemathesis
# (docs/src/reference/admin-api.md): no 5xx, every answer within its schema,
# every status documented, and the server still up without a panic after. Run by .ci/run after `cargo test` (which builds the
# binary); by hand: `scripts/schemathesis.sh` from the repository root.
#
# Bounded: at most $SCHEMATHESIS_EXAMPLES cases per operation (default 60)
# and $SCHEMATHESIS_MAX_TIME seconds (default 90). Everything listens on
# 127.0.0.1 with ports the kernel picks.
set -euo pipefail
cd "$(dirname "$0")/.."

version="4.32.5"
venv="${UNDERSTUDY_CI_CACHE:-$HOME/.cache/understudy-ci}/schemathesis-$version"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv" || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  }
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version"
fi

cargo build -q --bin understudy
bin="${CARGO_TARGET_DIR:-target}/debug/understudy"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Wait (at most 30 s) for `pattern` in `file`; print the line.
await_line() {
  local file="$1" pattern="$2"
  for _ in $(seq 300); do
    if line="$(grep -m1 -E "$pattern" "$file" 2>/dev/null)"; then
      echo "$line"
      return 0
    fi
    sleep 0.1
  done
  echo "timed out waiting for /$pattern/ in $file:" >&2
  cat "$file" >&2
  return 1
}

# The incumbent and the candidate: one static HTTP server on loopback.
mkdir -p "$work/www"
echo '{"score": 0.5}' >"$work/www/index.html"
python3 -m http.server 0 --bind 127.0.0.1 --directory "$work/www" >"$work/upstream.log" 2>&1 &
pids+=($!)
upstream_port="$(await_line "$work/upstream.log" 'port [0-9]+' | sed -E 's/.*port ([0-9]+).*/\1/')"

cat >"$work/proxy.toml" <<EOF
[listen]
addr = "127.0.0.1:0"

[admin]
addr = "127.0.0.1:0"
token_env = "SCHEMATHESIS_ADMIN_TOKEN"

[store]
path = "$work/understudy.db"

[[routes]]
name = "r"
path_prefix = "/"
incumbent = "http://127.0.0.1:$upstream_port"
candidate = "http://127.0.0.1:$upstream_port"
segment = { header = "x-tier", values = ["gold", "silver"] }
rollout = { segments = { gold = 100.0 } }
guard = { min_samples = 5 }

[routes.autonomy]
stages = { gold = "approve" }
EOF

token="fuzz-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
SCHEMATHESIS_ADMIN_TOKEN="$token" NO_COLOR=1 RUST_LOG=info \
  "$bin" serve -c "$work/proxy.toml" >"$work/serve.log" 2>&1 &
pids+=($!)
listening="$(await_line "$work/serve.log" 'admin_addr=')"
addr="$(sed -E 's/.* addr=([^ ]+).*/\1/' <<<"$listening")"
admin="$(sed -E 's/.*admin_addr=([^ ]+).*/\1/' <<<"$listening")"

# It serves the document it is fuzzed against.
curl -fsS "http://$admin/api/v1/openapi.json" | cmp - src/admin/openapi.json

# Some traffic, so that guards have figures and approvals exist.
for i in $(seq 20); do
  curl -fsS -o /dev/null -H 'x-tier: silver' "http://$addr/"
  curl -fsS -o /dev/null -H 'x-tier: gold' "http://$addr/?n=$i"
done

# Every check Schemathesis has: no 5xx, statuses, content types, headers and
# bodies as documented, invalid input refused and valid input accepted, 405
# with a true Allow for other methods, auth not ignored. The one exception is
# narrow and explained in scripts/schemathesis.toml.
checks="${SCHEMATHESIS_CHECKS:-all}"
status=0
"$venv/bin/schemathesis" --config-file scripts/schemathesis.toml run src/admin/openapi.json \
  --url "http://$admin" \
  --header "Authorization: Bearer $token" \
  --checks "$checks" \
  --phases examples,coverage,fuzzing \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-60}" \
  --max-time "${SCHEMATHESIS_MAX_TIME:-90}" \
  --workers 2 \
  --seed 27 \
  --request-timeout 10 \
  --suppress-health-check too_slow \
  --report junit --report-dir "$work/report" || status=$?

# The server must still be up and its log free of panics.
if ! curl -fsS "http://$admin/healthz" >/dev/null; then
  echo "the admin server did not survive the fuzzing:" >&2
  tail -50 "$work/serve.log" >&2
  status=1
fi
if grep -q "panicked" "$work/serve.log"; then
  echo "the server panicked:" >&2
  grep -A5 "panicked" "$work/serve.log" >&2
  status=1
fi
exit "$status"
