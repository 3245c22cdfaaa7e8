#!/usr/bin/env bash
# Historical retrieval: `larder get-historical-features` beside DuckDB's ASOF LEFT JOIN plus
# the ttl filter on the same Parquet files (all cores) and Feast's file offline store (where it
# finishes in FEAST_TIMEOUT), in one run: wall time and peak RSS of each, and the ratios.
#
#   benches/historical.sh                      the issue's sizes (100K x 1M, 1M x 1M, 1M x 10M
#                                              with 1 and 3 views)
#   SIZES="10000000:100000000:1" MEMORY=2GiB benches/historical.sh   one size, a memory limit
#
# Each size: ENTITY_ROWS:FEATURE_ROWS:VIEWS. Data is cached in $CACHE/historical-data and read
# once before the runs (warm page cache for every engine); larder and DuckDB run RUNS times,
# alternating, and the median run (by wall time) of each is reported.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
SIZES=${SIZES:-"100000:1000000:1 1000000:1000000:1 1000000:10000000:1 1000000:10000000:3"}
FEAST_TIMEOUT=${FEAST_TIMEOUT:-300}
MEMORY=${MEMORY:-1GiB}
RUNS=${RUNS:-3}
DATA=${HIST_DATA:-$CACHE/historical-data}
"$VENV/bin/python" -c 'import duckdb' 2>/dev/null || "$VENV/bin/pip" install -q duckdb==2.0.1

# median LINES: the line whose second field (seconds) is the median.
median() { sort -k2,2n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

# measure NAME CMD...: "NAME seconds peak_MiB" from GNU time (or "NAME - -" when it failed).
measure() {
  local name=$1; shift
  if /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out.log" 2>&1; then
    read -r secs kb <"$work/time"
    echo "$name $secs $(( kb / 1024 ))"
  else
    echo "$name - -   ($(tail -1 "$work/out.log" | cut -c1-100))"
  fi
}

printf '%-28s %10s %10s\n' "size / engine" "seconds" "peak MiB"
for size in $SIZES; do
  IFS=: read -r ne nf nv <<<"$size"
  repo=$DATA/${nf}_${nv}
  mkdir -p "$repo"
  "$VENV/bin/python" benches/make_historical_data.py "$repo" "$ne" "$nf" "$nv"
  entity=$repo/entity_${ne}.parquet
  refs=""; for v in $(seq 0 $((nv - 1))); do for f in $(seq 0 9); do refs+="view$v:f$f,"; done; done
  refs=${refs%,}
  views=$(seq 0 $((nv - 1)) | tr '\n' ' ')
  cat >"$work/duck.py" <<PY
import duckdb, sys
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("CREATE TABLE e AS SELECT *, row_number() OVER () AS __row FROM read_parquet('$entity')")
q = "SELECT e.* EXCLUDE (__row)"
j = ""
for v in [$(echo $views | sed 's/ /, /g')]:
    cols = ", ".join(f"CASE WHEN v{v}.event_timestamp >= e.event_timestamp - INTERVAL 1 DAY THEN v{v}.f{f} END AS view{v}__f{f}" for f in range(10))
    q += ", " + cols
    j += f" ASOF LEFT JOIN read_parquet('$repo/data/view{v}.parquet') v{v} ON e.driver_id = v{v}.driver_id AND e.event_timestamp >= v{v}.event_timestamp"
con.execute(f"COPY ({q} FROM e {j}) TO '$work/duck.parquet' (FORMAT parquet)")
PY
  cat >"$work/feast_job.py" <<PY
import pandas as pd
from feast import FeatureStore
store = FeatureStore(repo_path="$repo")
entity = pd.read_parquet("$entity")
refs = "$refs".split(",")
store.get_historical_features(entity_df=entity, features=refs, full_feature_names=True).to_df().to_parquet("$work/feast.parquet")
PY
  label="${ne} x ${nf} x ${nv}"
  cat "$repo"/data/*.parquet "$entity" "$LARDER" >/dev/null
  ls=(); ds=()
  for _ in $(seq 1 "$RUNS"); do
    ls+=("$(measure larder "$LARDER" -c "$repo" get-historical-features --entity-df "$entity" \
          --features "$refs" --full-feature-names --memory-limit "$MEMORY" -o "$work/larder.parquet")")
    ds+=("$(measure duckdb "$VENV/bin/python" "$work/duck.py")")
  done
  l=$(printf '%s\n' "${ls[@]}" | median)
  d=$(printf '%s\n' "${ds[@]}" | median)
  echo "  runs: larder $(printf '%s\n' "${ls[@]}" | cut -d' ' -f2 | tr '\n' ' ')/ duckdb $(printf '%s\n' "${ds[@]}" | cut -d' ' -f2 | tr '\n' ' ')"
  if [ "$FEAST_TIMEOUT" -gt 0 ] && [ "$ne" -le 100000 ]; then
    f=$(measure feast timeout "$FEAST_TIMEOUT" "$VENV/bin/python" "$work/feast_job.py")
  else
    f="feast - -   (not run at this size: FEAST_TIMEOUT=0 or > 100K entity rows; it ran out of memory at 1M x 1M)"
  fi
  for r in "$l" "$d" "$f"; do printf '%-28s %10s %10s %s\n' "$label ${r%% *}" $(echo "$r" | cut -d' ' -f2-3) "$(echo "$r" | cut -d' ' -f4-)"; done
  read -r _ ls lm <<<"$l"; read -r _ ds dm <<<"$d"; read -r _ fs fm <<<"$f"
  if [ "$ls" != - ] && [ "$ds" != - ]; then
    python3 -c "print(f'  larder / duckdb: time {$ls/$ds:.2f}x, peak RSS {$lm/$dm:.2f}x')"
  fi
  if [ "$ls" != - ] && [ "$fs" != - ]; then
    python3 -c "print(f'  feast / larder: time {$fs/$ls:.1f}x, peak RSS {$fm/$lm:.1f}x')"
  fi
  rm -f "$work"/*.parquet
done
