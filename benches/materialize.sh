#!/usr/bin/env bash
# Materialization benchmark, all figures from one run: `larder materialize` of N rows x 10
# features from Parquet into Redis (rows/s, peak RSS), beside redis-benchmark pipelined HSET of
# the same shape and batch size, and `feast materialize` on a sample.
# Usage: benches/materialize.sh   (env: ROWS=1000000 FEAST_ROWS=20000 BATCH=8192)
set -euo pipefail
ROWS=${ROWS:-1000000}
FEAST_ROWS=${FEAST_ROWS:-20000}
BATCH=${BATCH:-8192}
# shellcheck source=benches/common.sh
. "$(dirname "$0")/common.sh"
need /usr/bin/time time

make_repo() { # dir rows redis_port
  mkdir -p "$1/data"
  cat > "$1/feature_store.yaml" <<YAML
project: bench
registry: data/registry.db
provider: local
online_store:
  type: redis
  connection_string: 127.0.0.1:$3
materialization:
  online_write_batch_size: $BATCH
entity_key_serialization_version: 3
YAML
  cat > "$1/features.py" <<'PY'
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
bench_mat = FeatureView(name="bench_mat", entities=[driver], ttl=timedelta(seconds=0),
    schema=[Field(name=f"f{i}", dtype=Float32) for i in range(10)],
    source=FileSource(path="data/rows.parquet", timestamp_field="event_timestamp", created_timestamp_column="created"))
PY
  "$VENV/bin/python" - "$1" "$2" <<'PY'
import sys
from datetime import datetime, timezone
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
repo, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(1)
ts = np.datetime64("2026-11-28T08:00:00", "us") - rng.integers(0, 86_400_000_000, n).astype("timedelta64[us]")
cols = {"driver_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "event_timestamp": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
        "created": pa.array(ts, type=pa.timestamp("us", tz="UTC"))}
for i in range(10):
    cols[f"f{i}"] = pa.array(rng.random(n, dtype=np.float32))
pq.write_table(pa.table(cols), f"{repo}/data/rows.parquet", row_group_size=128 * 1024)
PY
  (cd "$1" && PYTHONWARNINGS=ignore "$VENV/bin/feast" apply >/dev/null)
}

# Sets REDIS_PORT (not in a subshell, so that cleanup knows the pid).
start_redis() { REDIS_PORT=$(free_port); redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!); sleep 0.3; }

start_redis; P1=$REDIS_PORT; make_repo "$work/larder" "$ROWS" "$P1"
start_redis; P2=$REDIS_PORT; make_repo "$work/feast" "$FEAST_ROWS" "$P2"
start_redis; P3=$REDIS_PORT

/usr/bin/time -v "$LARDER" -c "$work/larder" materialize 2026-11-01T00:00:00 2026-11-29T00:00:00 2> "$work/larder.err" >/dev/null || { cat "$work/larder.err"; exit 1; }
L_SECS=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$work/larder.err")
L_RSS=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/larder.err")
KEYS=$(redis-cli -p "$P1" dbsize)
[ "$KEYS" = "$ROWS" ] || { echo "larder wrote $KEYS keys, expected $ROWS"; exit 1; }

F_START=$(date +%s.%N)
(cd "$work/feast" && PYTHONWARNINGS=ignore "$VENV/bin/feast" materialize 2026-11-01T00:00:00 2026-11-29T00:00:00 >/dev/null 2>&1)
F_SECS=$(python3 -c "import time; print(time.time() - $F_START)")

FIELDS=$(for i in $(seq 0 9); do printf 'f%04d vvvvv ' "$i"; done)
# shellcheck disable=SC2086
R=$(redis-benchmark -p "$P3" -c 1 -P "$BATCH" -n "$ROWS" -r "$ROWS" --csv HSET key:__rand_int__ $FIELDS _ts:bench_mat tttttttttttt | tail -1 | tr -d '"' | cut -d, -f2)

python3 - "$ROWS" "$L_SECS" "$L_RSS" "$FEAST_ROWS" "$F_SECS" "$R" "$BATCH" <<'PY'
import sys
rows, ls, rss, frows, fs, r, batch = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
l = rows / ls; f = frows / fs
print("run,rows,seconds,rows_per_s,peak_rss_mb")
print(f"larder materialize,{rows},{ls:.2f},{l:.0f},{rss/1024:.0f}")
print(f"feast materialize,{frows},{fs:.2f},{f:.0f},")
print(f"redis-benchmark HSET -P {batch},{rows},,{r:.0f},")
print(f"# ratios: larder/feast {l/f:.1f}x, larder/HSET {l/r:.2f}x")
PY
