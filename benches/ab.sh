#!/usr/bin/env bash
# Interleaved A/B of two larder builds at wrk peak, on the same Redis data (the bench repo,
# materialized by Feast): each round starts A, then B (`larder serve`, default threads), and
# measures both shapes (1 entity x 10 features, 100 x 50) with `wrk -t2 -c16` for DURATION
# seconds each, and the server's CPU per lookup (utime+stime from /proc over the run).
# Interleaving spreads the host's drift over both builds; compare the means.
# Usage: LARDER_A=/path/to/old/larder benches/ab.sh   (env: ROUNDS=3 DURATION=10; B is this
# checkout's release build, or LARDER=/path/to/new/larder)
# Needs what scripts/test installs (Feast venv, redis-server); installs wrk if missing.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
: "${LARDER_A:?set LARDER_A to the build to compare against}"
# shellcheck source=benches/common.sh
. "$(dirname "$0")/common.sh"
need wrk wrk
serving_repo
request_bodies

HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # build bodies -> "req/s cpu_us_per_request"
  local port pid before after out rps
  port=$(free_port)
  "$1" -c "$work/repo" serve -p "$port" 2>/dev/null &
  pid=$!
  wait_http "http://127.0.0.1:$port" >/dev/null
  before=$(cpu_ticks "$pid")
  out=$(BODIES=$2 wrk -t2 -c16 -d"${DURATION}s" -s benches/bodies.lua "http://127.0.0.1:$port")
  after=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$out" | grep -q "Non-2xx" && { echo "non-2xx answers: $out" >&2; exit 1; }
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  awk -v r="$rps" -v t=$((after - before)) -v hz="$HZ" -v d="$DURATION" \
    'BEGIN {printf "%.0f %.1f", r, 1e6 * t / hz / (r * d)}'
}
echo "round,build,shape,req_per_s,cpu_us_per_request"
for round in $(seq 1 "$ROUNDS"); do
  for build in A B; do
    bin=$LARDER_A; [ "$build" = B ] && bin=$LARDER
    for shape in one hundred; do
      r=$(run "$bin" "$work/$shape.jsonl")
      echo "$round,$build,$shape,${r// /,}"
    done
  done
done
