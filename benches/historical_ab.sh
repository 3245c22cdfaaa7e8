#!/usr/bin/env bash
# Interleaved A/B of two larder builds on historical retrieval, with DuckDB's ASOF LEFT JOIN (plus
# the ttl filter) in every round as the anchor: ROUNDS rounds of A, B, DuckDB on the same data
# (benches/make_historical_data.py; 1M entity rows x 10M feature rows x 1 view by default).
# Reports per engine the median and best wall time, the median user and system CPU time and the
# median peak RSS (GNU time). On a VM whose first touches of memory are slow (see BENCHMARKS.md),
# system time swings from run to run; user time is the steadier measure of the program's work.
# Usage: LARDER_A=/path/to/old/larder benches/historical_ab.sh   (env: ROUNDS=10 ENTITY=1000000
# FEATURES=10000000; B is this checkout's release build, or LARDER=/path/to/new/larder)
set -euo pipefail
ROUNDS=${ROUNDS:-10}
ENTITY=${ENTITY:-1000000}
FEATURES=${FEATURES:-10000000}
: "${LARDER_A:?set LARDER_A to the build to compare against}"
# shellcheck source=benches/common.sh
. "$(dirname "$0")/common.sh"
"$VENV/bin/python" -c 'import duckdb' 2>/dev/null || "$VENV/bin/pip" install -q duckdb==2.0.1
repo=${HIST_DATA:-$CACHE/historical-data}/${FEATURES}_1
mkdir -p "$repo"
"$VENV/bin/python" benches/make_historical_data.py "$repo" "$ENTITY" "$FEATURES" 1
entity=$repo/entity_${ENTITY}.parquet
refs=$(for f in $(seq 0 9); do printf 'view0:f%s,' "$f"; done)
refs=${refs%,}
cat >"$work/duck.py" <<PY
import duckdb
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("CREATE TABLE e AS SELECT *, row_number() OVER () AS __row FROM read_parquet('$entity')")
cols = ", ".join(f"CASE WHEN v0.event_timestamp >= e.event_timestamp - INTERVAL 1 DAY THEN v0.f{f} END AS view0__f{f}" for f in range(10))
con.execute(f"COPY (SELECT e.* EXCLUDE (__row), {cols} FROM e ASOF LEFT JOIN read_parquet('$repo/data/view0.parquet') v0 ON e.driver_id = v0.driver_id AND e.event_timestamp >= v0.event_timestamp) TO '$work/duck.parquet' (FORMAT parquet)")
PY
cat "$repo"/data/*.parquet "$entity" >/dev/null
for _ in $(seq 1 "$ROUNDS"); do
  for ab in A B; do
    bin=$LARDER_A; [ "$ab" = B ] && bin=$LARDER
    /usr/bin/time -f "$ab %e %U %S %M" -a -o "$work/times" "$bin" -c "$repo" get-historical-features \
      --entity-df "$entity" --features "$refs" --full-feature-names -o "$work/$ab.parquet" >/dev/null 2>&1
  done
  /usr/bin/time -f "duckdb %e %U %S %M" -a -o "$work/times" "$VENV/bin/python" "$work/duck.py"
done
cmp -s "$work/A.parquet" "$work/B.parquet" && echo "A and B wrote the same file" || echo "A and B wrote different files"
python3 - "$work/times" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for name in ["A", "B", "duckdb"]:
    r = [list(map(float, x[1:])) for x in rows if x[0] == name]
    m = [st.median(a[i] for a in r) for i in range(4)]
    med[name] = m
    print(f"{name:7} wall median {m[0]:.2f} s (best {min(a[0] for a in r):.2f}) | user {m[1]:.2f} s | "
          f"sys {m[2]:.2f} s | peak RSS {m[3] / 1024:.0f} MiB | walls {' '.join(f'{a[0]:.2f}' for a in r)}")
for name in ["A", "B"]:
    print(f"{name} / duckdb: wall {med[name][0] / med['duckdb'][0]:.2f}x, user {med[name][1] / med['duckdb'][1]:.2f}x, "
          f"RSS {med[name][3] / med['duckdb'][3]:.2f}x")
PY
