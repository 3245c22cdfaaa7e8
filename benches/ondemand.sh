#!/usr/bin/env bash
# On-demand views on the lookup path, in one run on one Larder: the 1 x 10 lookup alone, with
# one on-demand feature on the native engine, and with the same UDF on the Python engine (the
# venv's Feast in Larder's worker). Instructions per request under callgrind (Larder's process
# only: the Python worker's work is not in the count), then peak req/s and latency under wrk.
# Usage: benches/ondemand.sh   (env: REQUESTS=2000 DURATION=10 CONNECTIONS=16)
# Needs what scripts/test installs (Feast venv with grpcio, redis-server); installs valgrind
# and wrk if missing.
set -euo pipefail
REQUESTS=${REQUESTS:-2000}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
# shellcheck source=benches/common.sh
. "$(dirname "$0")/common.sh"
need valgrind valgrind
need wrk wrk
with_loadgen

serving_repo --on-demand "$VENV/bin/python"
python3 - "$work" <<'PY'
import json, random, sys
work = sys.argv[1]
for name, extra in [("plain", []), ("native", ["bench_odfv:o"]), ("python", ["bench_odfv_py:o"])]:
    random.seed(1)
    with open(f"{work}/{name}.jsonl", "w") as f:
        for _ in range(1000):
            entities = {"driver_id": [random.randint(1, 10000)]}
            if extra:
                entities["val"] = [random.randint(0, 100)]
            f.write(json.dumps({"features": [f"bench_fv:f{i}" for i in range(10)] + extra,
                                "entities": entities}) + "\n")
PY

served() { curl -sf "http://127.0.0.1:$1/metrics" | awk '/^feast_online_features_request_total / {print int($2)}'; }

# Instructions: one serving thread under callgrind.
serve_under_callgrind
count() { # shape rate requests
  "$LOADGEN" "http://127.0.0.1:$PORT/get-online-features" "$work/$1.jsonl" "$2" 2 4 >/dev/null
  local before; before=$(served "$PORT")
  callgrind_control -z "$VG" >/dev/null 2>&1
  local out; out=$("$LOADGEN" "http://127.0.0.1:$PORT/get-online-features" "$work/$1.jsonl" "$2" $(( ($3 + $2 - 1) / $2 )) 4)
  [ "$(echo "$out" | cut -d, -f8)" = 0 ] || { echo "errors: $out"; exit 1; }
  callgrind_control -d "$VG" >/dev/null 2>&1
  local sent=$(( $(served "$PORT") - before ))
  local file; file=$(ls -t "$work"/cg.* | head -1)
  local total; total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  rm -f "$file"
  echo "$1,$sent,$total,$(( total / sent ))"
}
# The first Python-engine request starts the worker (seconds): before anything is counted.
start_worker() {
  curl -sf -m 180 -o /dev/null -H 'Content-Type: application/json' \
    -d "$(head -1 "$work/python.jsonl")" "http://127.0.0.1:$1/get-online-features"
}
start_worker "$PORT"
echo "shape,requests,instructions,instructions_per_request"
count plain 200 "$REQUESTS"
count native 200 "$REQUESTS"
count python 50 "$(( REQUESTS / 4 ))"
kill "$VG"; wait "$VG" 2>/dev/null || true

# Peak req/s: Larder with its default threads.
PORT=$(free_port)
"$LARDER" -c "$work/repo" serve -p "$PORT" >/dev/null 2>&1 &
pids+=("$!")
wait_http "http://127.0.0.1:$PORT"
start_worker "$PORT"
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.3f", v}'; }
echo "shape,req_per_s,p50_ms,p99_ms"
for shape in plain native python; do
  out=$(BODIES="$work/$shape.jsonl" wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s benches/bodies.lua "http://127.0.0.1:$PORT")
  errs=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  [ -z "$errs" ] || { echo "$shape: $errs non-2xx responses"; exit 1; }
  echo "$shape,$(echo "$out" | awk '/Requests\/sec/ {print $2}'),$(echo "$out" | awk '$1=="50%" {print $2}' | to_ms),$(echo "$out" | awk '$1=="99%" {print $2}' | to_ms)"
done
