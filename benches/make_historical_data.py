"""Data for benches/historical.sh: a Feast repo with VIEWS feature views of 10 float features
each over FEATURE_ROWS rows (one Parquet file per view, ~10 rows per driver over 30 days, a
created column), and an entity dataframe of ENTITY_ROWS rows over the same drivers and days.

Usage: make_historical_data.py DIR ENTITY_ROWS FEATURE_ROWS VIEWS
"""

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

d, n_entity, n_feature, n_views = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(os.path.join(d, "data"), exist_ok=True)
drivers = max(1, n_feature // 10)
start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
span = 30 * 86400 * 10**6
rng = np.random.default_rng(42)

defs = ["from datetime import timedelta",
        "from feast import Entity, FeatureView, Field, FileSource, ValueType",
        "from feast.types import Float64",
        'driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)']
for v in range(n_views):
    path = os.path.join(d, "data", f"view{v}.parquet")
    if not os.path.exists(path):
        # Written in row groups, as a batch job writes them: ~1M rows each.
        writer = None
        for at in range(0, n_feature, 1_000_000):
            n = min(1_000_000, n_feature - at)
            ts = start + rng.integers(0, span, n)
            cols = {"driver_id": rng.integers(0, drivers, n),
                    "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
                    "created": pa.array(ts + rng.integers(0, 3600 * 10**6, n),
                                        pa.timestamp("us", tz="UTC"))}
            for f in range(10):
                cols[f"f{f}"] = rng.random(n)
            table = pa.table(cols)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        writer.close()
    fields = ", ".join(f'Field(name="f{f}", dtype=Float64)' for f in range(10))
    defs.append(
        f'view{v} = FeatureView(name="view{v}", entities=[driver], ttl=timedelta(days=1), '
        f'schema=[{fields}], source=FileSource(name="src{v}", path="data/view{v}.parquet", '
        f'timestamp_field="event_timestamp", created_timestamp_column="created"))')
with open(os.path.join(d, "definitions.py"), "w") as f:
    f.write("\n".join(defs) + "\n")
with open(os.path.join(d, "feature_store.yaml"), "w") as f:
    f.write("project: hist_bench\nregistry: data/registry.db\nprovider: local\n"
            "online_store:\n  type: sqlite\n  path: data/online.db\noffline_store:\n  type: file\n"
            "entity_key_serialization_version: 3\n")
entity = os.path.join(d, f"entity_{n_entity}.parquet")
if not os.path.exists(entity):
    ts = start + rng.integers(0, span, n_entity)
    pq.write_table(pa.table({
        "driver_id": rng.integers(0, int(drivers * 1.1) + 1, n_entity),
        "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "label": rng.integers(0, 2, n_entity),
    }), entity)
subprocess.run([os.path.join(os.path.dirname(sys.executable), "feast"), "apply"], cwd=d,
               check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONWARNINGS="ignore"))
