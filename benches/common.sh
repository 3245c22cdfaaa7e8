# Sourced by the benchmark scripts: caches, a release build of larder ($LARDER), a work
# directory ($work) removed on exit, and $pids, the processes to stop on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE=${LARDER_CACHE:-$HOME/.cache/larder}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
VENV=${LARDER_FEAST_VENV:-$CACHE/feast-venv}
# LARDER=/path/to/larder measures another build (an A/B against an older commit, say).
if [ -z "${LARDER:-}" ]; then
  cargo build --release -q -p larder-server
  LARDER=$CARGO_TARGET_DIR/release/larder
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# need CMD PACKAGE: installs Debian's PACKAGE when CMD is missing.
need() { command -v "$1" >/dev/null || apt-get install -y -qq "$2" >/dev/null; }
# $LOADGEN and $STALLPROBE: benches/loadgen's binaries, built in release.
with_loadgen() {
  cargo build --release -q -p larder-loadgen
  LOADGEN=$CARGO_TARGET_DIR/release/loadgen
  STALLPROBE=$CARGO_TARGET_DIR/release/stallprobe
}
# wait_http URL [SECONDS]: until URL/health answers 200 (default 30 s); fails after that.
wait_http() {
  for _ in $(seq 1 $(( ${2:-30} * 5 ))); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/health")" = 200 ] && return
    sleep 0.2
  done
  echo "$1 not healthy"
  return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The serving benchmarks' data: redis-server on a free port ($REDIS_PORT, $REDIS_PID) and the
# benchmark repo in $work/repo, applied and materialized into it by Feast.
serving_repo() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
  REDIS_PID=$!
  pids+=("$REDIS_PID")
  sleep 0.5
  "$VENV/bin/python" benches/make_bench_repo.py "$work/repo" --redis-port "$REDIS_PORT" "$@"
  (cd "$work/repo" && PYTHONWARNINGS=ignore "$VENV/bin/feast" apply >/dev/null && \
    PYTHONWARNINGS=ignore "$VENV/bin/feast" materialize 2026-11-27T00:00:00 2026-11-29T00:00:00 >/dev/null)
}

# Request bodies: $work/one.jsonl (1,000 single-driver lookups of 10 features) and
# $work/hundred.jsonl (100 lookups of 100 drivers x 50 features).
request_bodies() {
  python3 - "$work" <<'PY'
import json, random, sys
work = sys.argv[1]
random.seed(1)
with open(f"{work}/one.jsonl", "w") as f:
    for _ in range(1000):
        f.write(json.dumps({"features": [f"bench_fv:f{i}" for i in range(10)],
                            "entities": {"driver_id": [random.randint(1, 10000)]}}) + "\n")
with open(f"{work}/hundred.jsonl", "w") as f:
    for _ in range(100):
        f.write(json.dumps({"features": [f"bench_fv:f{i}" for i in range(50)],
                            "entities": {"driver_id": random.sample(range(1, 10001), 100)}}) + "\n")
PY
}

# $work/grpc.bin: one gRPC-framed ServingService/GetOnlineFeatures request (driver 4242, 10
# features), for h2load.
grpc_body() {
  "$VENV/bin/python" - "$work/grpc.bin" <<'PY'
import struct, sys
from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesRequest
from feast.protos.feast.types.Value_pb2 import Value
r = GetOnlineFeaturesRequest()
r.features.val.extend([f"bench_fv:f{i}" for i in range(10)])
r.entities["driver_id"].val.append(Value(int64_val=4242))
b = r.SerializeToString()
open(sys.argv[1], "wb").write(b"\x00" + struct.pack(">I", len(b)) + b)
PY
}

# Starts `larder serve -w 1` on the repo under callgrind: sets $PORT and $VG (valgrind's pid).
serve_under_callgrind() {
  PORT=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$LARDER" -c "$work/repo" serve -p "$PORT" -w 1 \
    >"$work/serve.log" 2>&1 &
  VG=$!
  pids+=("$VG")
  wait_http "http://127.0.0.1:$PORT" 60 || { cat "$work/serve.log"; exit 1; }
}
