#!/usr/bin/env bash
# Start-up time: `larder serve` and `larder serve-registry` on a registry of VIEWS (default
# 1,000) feature views, from spawning the process to the first correct answer (an online lookup;
# a ListFeatureViews listing every view), beside the time a process takes to spawn and exit
# (`larder version`, the floor). Target (issue 14): within 200 ms of launch.
#
#   benches/startup.sh            VIEWS=1000 RUNS=5
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
VIEWS=${VIEWS:-1000}
RUNS=${RUNS:-5}
repo=$CACHE/startup-repo-$VIEWS
if [ ! -f "$repo/data/registry.db" ]; then
  mkdir -p "$repo/data"
  "$VENV/bin/python" - "$repo" "$VIEWS" <<'PY'
import os, sys
import pandas as pd
repo, views = sys.argv[1], int(sys.argv[2])
pd.DataFrame({"driver_id": [1, 2], "event_timestamp": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
              **{f"f{i}": [1.0, 2.0] for i in range(5)}}).to_parquet(f"{repo}/data/stats.parquet")
lines = ["from datetime import timedelta",
         "from feast import Entity, FeatureView, Field, FileSource, ValueType",
         "from feast.types import Float64",
         'driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)',
         'src = FileSource(name="stats", path="data/stats.parquet", timestamp_field="event_timestamp")']
fields = ", ".join(f'Field(name="f{i}", dtype=Float64)' for i in range(5))
for v in range(views):
    lines.append(f'view{v} = FeatureView(name="view{v}", entities=[driver], ttl=timedelta(days=1), '
                 f'schema=[{fields}], source=src)')
open(f"{repo}/definitions.py", "w").write("\n".join(lines) + "\n")
open(f"{repo}/feature_store.yaml", "w").write(
    "project: startup_bench\nregistry: data/registry.db\nprovider: local\n"
    "online_store:\n  type: sqlite\n  path: data/online.db\nentity_key_serialization_version: 3\n")
PY
  (cd "$repo" && PYTHONWARNINGS=ignore "$VENV/bin/feast" apply >/dev/null)
fi
echo "registry: $(stat -c %s "$repo/data/registry.db") bytes, $VIEWS feature views"
floor=$("$VENV/bin/python" - "$LARDER" "$RUNS" <<'PY'
import statistics, subprocess, sys, time
ms = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    subprocess.run([sys.argv[1], "version"], stdout=subprocess.DEVNULL, check=True)
    ms.append((time.perf_counter() - t0) * 1000)
print(f"{statistics.median(ms):.1f}")
PY
)
echo "larder version  spawn and exit   ${floor} ms (median of $RUNS: the floor)"
"$VENV/bin/python" benches/startup.py "$LARDER" "$repo" "$VIEWS" "$RUNS"
