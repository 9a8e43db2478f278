#!/usr/bin/env bash
# Instructions per request of Understudy's mirrored path (issue 25): the
# proxy under callgrind in front of two nginx-served upstreams that answer
# the load benchmark's 190-byte JSON (the candidate's differs in the ignored
# `request_id`, so the comparison walks both documents), driven by
# `wrk -t1 -c8`; counters zeroed after a warm-up, then user-space
# instructions of all threads over wrk's request count.
# Usage: scripts/loadbench/callgrind-requests.sh [understudy-binary]
# Environment: MIRROR (1; 0 = no candidate), SECS (8), METHOD (GET or POST),
# BARE (0; 1 = the load benchmark's bare hyper proxy instead, the floor: the
# binary argument is then a loadbench build, by default target/release/loadbench
# from `cargo build --release -p loadbench`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bare=${BARE:-0}
default=target/release/understudy
if [ "$bare" = 1 ]; then default=target/release/loadbench; fi
bin=$(realpath "${1:-$default}")
mirror=${MIRROR:-1}
secs=${SECS:-8}
method=${METHOD:-GET}
out=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
inc=$(free_port); cand=$(free_port); port=$(free_port); admin=$(free_port)
answer() {
  printf '{"request_id":"%s","score":0.87,"label":"hot","model":"v1","reasons":["recent visit","enterprise domain","pricing page"],"items":[{"id":1,"w":0.5},{"id":2,"w":0.25},{"id":3,"w":0.125}]}' "$1"
}
mkdir -p "$out/nginx"
cat >"$out/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $out/nginx/nginx.pid;
error_log $out/nginx/error.log error;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $out/nginx/body;
    proxy_temp_path $out/nginx/proxy;
    fastcgi_temp_path $out/nginx/fastcgi;
    uwsgi_temp_path $out/nginx/uwsgi;
    scgi_temp_path $out/nginx/scgi;
    default_type application/json;
    server { listen 127.0.0.1:$inc; location / { return 200 '$(answer r-1)'; } }
    server { listen 127.0.0.1:$cand; location / { return 200 '$(answer r-2)'; } }
}
CONF
nginx -p "$out/nginx" -e "$out/nginx/error.log" -c "$out/nginx/nginx.conf" &
nginx_pid=$!
candidate=""
if [ "$mirror" = 1 ]; then candidate="candidate = \"http://127.0.0.1:$cand\""; fi
cat >"$out/proxy.toml" <<TOML
[listen]
addr = "127.0.0.1:$port"
[admin]
addr = "127.0.0.1:$admin"
[store]
path = "$out/bench.db"
[[routes]]
name = "bench"
path_prefix = "/"
incumbent = "http://127.0.0.1:$inc"
$candidate
mirror = { methods = ["GET", "POST"] }
compare = { mode = "json", ignore = ["/request_id"] }
TOML
ready="http://127.0.0.1:$admin/healthz"
if [ "$bare" = 1 ]; then
  export LOAD_BARE=1 LOAD_BARE_TPC=1
  ready="http://127.0.0.1:$port/score"
fi
valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p.out" "$bin" serve -c "$out/proxy.toml" \
  >"$out/proxy.log" 2>&1 &
proxy_pid=$!
trap 'kill $proxy_pid $nginx_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  curl -fs "$ready" >/dev/null 2>&1 && break
  sleep 0.1
done
lua=""
if [ "$method" = POST ]; then lua="-s scripts/loadbench/load_post.lua"; fi
# shellcheck disable=SC2086
wrk -t1 -c8 -d2s $lua "http://127.0.0.1:$port/score" >/dev/null
callgrind_control -z "$proxy_pid" >/dev/null
# shellcheck disable=SC2086
requests=$(wrk -t1 -c8 -d"${secs}s" $lua "http://127.0.0.1:$port/score" \
  | awk '/requests in/ { print $1 }')
callgrind_control -d "$proxy_pid" >/dev/null
sleep 1
total=0
for f in "$out"/cg.*.out.*; do
  [ -e "$f" ] || continue
  n=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  total=$(( total + ${n:-0} ))
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "requests: $requests (mirror=$mirror, bare=$bare, $method)"
echo "instructions: $total; per request: $(( total / requests ))"
echo "profiles in $out"
