#!/usr/bin/env bash
# Interleaved A/B of two larder builds on the same Redis data (the bench repo, materialized by
# Feast), `larder serve` with default threads:
#   - at wrk peak (`wrk -t2 -c16`, DURATION s) for both shapes (1 entity x 10 features,
#     100 x 50): requests per second and the server's CPU per lookup;
#   - at a fixed rate (benches/loadgen, RATE lookups/s of 1 x 10 for DURATION s, one serving
#     thread): the server's CPU per lookup, user and system — less sensitive to the host's
#     scheduling than a peak.
# CPU is utime+stime from /proc over the run. Rounds alternate which build goes first (the
# first of a pair measured faster here, whichever it was), so compare the means over rounds.
# Usage: LARDER_A=/path/to/old/larder benches/ab.sh   (env: ROUNDS=4 DURATION=8 RATE=4000;
# B is this checkout's release build, or LARDER=/path/to/new/larder)
# Needs what scripts/test installs (Feast venv, redis-server); installs wrk if missing.
set -euo pipefail
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-8}
RATE=${RATE:-4000}
: "${LARDER_A:?set LARDER_A to the build to compare against}"
# shellcheck source=benches/common.sh
. "$(dirname "$0")/common.sh"
need wrk wrk
with_loadgen
serving_repo
request_bodies

HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
start() { # build [serve args...] -> sets PID, URL
  local port; port=$(free_port)
  "$1" -c "$work/repo" serve -p "$port" "${@:2}" 2>/dev/null &
  PID=$!
  URL="http://127.0.0.1:$port"
  wait_http "$URL" >/dev/null
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
us_per() { awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN {printf "%.1f", 1e6 * t / hz / n}'; }
peak() { # build bodies -> "req/s cpu_us_per_request"
  local u0 s0 u1 s1 out rps
  start "$1"
  read -r u0 s0 < <(ticks "$PID")
  out=$(BODIES=$2 wrk -t2 -c16 -d"${DURATION}s" -s benches/bodies.lua "$URL")
  read -r u1 s1 < <(ticks "$PID")
  stop
  echo "$out" | grep -q "Non-2xx" && { echo "non-2xx answers: $out" >&2; exit 1; }
  rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  echo "$rps $(us_per $((u1 - u0 + s1 - s0)) "$(awk -v r="$rps" -v d="$DURATION" 'BEGIN {print r * d}')")"
}
fixed() { # build -> "user_us system_us per request"
  local u0 s0 u1 s1 out n
  start "$1" -w 1
  "$LOADGEN" "$URL/get-online-features" "$work/one.jsonl" 1000 1 4 >/dev/null
  read -r u0 s0 < <(ticks "$PID")
  out=$("$LOADGEN" "$URL/get-online-features" "$work/one.jsonl" "$RATE" "$DURATION" 4)
  read -r u1 s1 < <(ticks "$PID")
  stop
  [ "$(echo "$out" | cut -d, -f8)" = 0 ] || { echo "errors: $out" >&2; exit 1; }
  n=$(echo "$out" | awk -F, -v d="$DURATION" '{printf "%.0f", $2 * d}')
  echo "$(us_per $((u1 - u0)) "$n") $(us_per $((s1 - s0)) "$n")"
}
echo "round,build,measure,value1,value2"
for round in $(seq 1 "$ROUNDS"); do
  order="A B"; [ $((round % 2)) = 0 ] && order="B A"
  for build in $order; do
    bin=$LARDER_A; [ "$build" = B ] && bin=$LARDER
    for shape in one hundred; do
      r=$(peak "$bin" "$work/$shape.jsonl")
      echo "$round,$build,peak $shape (req/s cpu_us),${r// /,}"
    done
    r=$(fixed "$bin")
    echo "$round,$build,fixed $RATE/s (user_us system_us),${r// /,}"
  done
done
