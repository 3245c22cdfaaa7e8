#!/usr/bin/env bash
# CPU instructions Larder executes per get-online-features request, counted by valgrind's
# callgrind: the same binary and requests give the same count whatever else the machine is
# doing, so this tracks the request path's cost where wall-clock figures swing with the host.
# One serving thread (-w 1), Redis with the benchmark repo's data (Feast materialized it); the
# counter is reset after a warm-up and read after REQUESTS requests of each shape, sent at a
# low fixed rate by benches/loadgen (the count includes the runtime's own wake-ups).
# Usage: benches/instructions.sh   (env: REQUESTS=2000; a tenth as many of 100x50)
# Needs what scripts/test installs (Feast venv, redis-server); installs valgrind if missing.
set -euo pipefail
REQUESTS=${REQUESTS:-2000}
# shellcheck source=benches/common.sh
. "$(dirname "$0")/common.sh"
need valgrind valgrind
need h2load nghttp2-client
with_loadgen

serving_repo
request_bodies
grpc_body

serve_under_callgrind

# Requests Larder has answered (its own counter; read outside the counted stretch).
served() {
  curl -sf "http://127.0.0.1:$PORT/metrics" | awk '/^feast_online_features_request_total / {print int($2)}'
}
# Dumps the counters; prints "shape,requests,instructions,per request" for the requests Larder
# answered since `before`.
dump() {
  callgrind_control -d "$VG" >/dev/null 2>&1
  local sent=$(( $(served) - $2 ))
  local file; file=$(ls -t "$work"/cg.* | head -1)
  local total; total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  rm -f "$file"
  echo "$1,$sent,$total,$(( total / sent ))"
}
count() { # shape bodies rate requests -> "shape,requests,instructions,per request"
  local seconds
  "$LOADGEN" "http://127.0.0.1:$PORT/get-online-features" "$2" "$3" 1 4 >/dev/null
  local before; before=$(served)
  callgrind_control -z "$VG" >/dev/null 2>&1
  seconds=$(( ($4 + $3 - 1) / $3 ))
  local out; out=$("$LOADGEN" "http://127.0.0.1:$PORT/get-online-features" "$2" "$3" "$seconds" 4)
  [ "$(echo "$out" | cut -d, -f8)" = 0 ] || { echo "errors: $out"; exit 1; }
  dump "$1" "$before"
}
# gRPC: the 1 x 10 lookup over one h2 connection, one stream at a time (h2load -n).
count_grpc() {
  local url="http://127.0.0.1:$PORT/feast.serving.ServingService/GetOnlineFeatures"
  local h2=(h2load -c 1 -m 1 -t 1 -d "$work/grpc.bin" -H 'content-type: application/grpc' -H 'te: trailers')
  "${h2[@]}" -n 20 "$url" >/dev/null
  local before; before=$(served)
  callgrind_control -z "$VG" >/dev/null 2>&1
  local out; out=$("${h2[@]}" -n "$1" "$url")
  echo "$out" | grep -q " 0 failed, 0 errored" || { echo "$out"; exit 1; }
  dump "1x10 gRPC" "$before"
}
echo "shape,requests,instructions,instructions_per_request"
count 1x10 "$work/one.jsonl" 200 "$REQUESTS"
count 100x50 "$work/hundred.jsonl" 10 "$(( REQUESTS / 10 ))"
count_grpc "$REQUESTS"
