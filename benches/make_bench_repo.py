"""Writes the benchmark feature repo: entity `driver` (INT64 join key `driver_id`), feature
view `bench_fv` with 50 Float32 features f0..f49 and ttl 0, one row per driver.

Usage: make_bench_repo.py DIR --redis-port PORT [--entities N]
"""

import argparse
import os
from datetime import datetime, timezone

import numpy as np
import pandas as pd

DEFS = '''
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

bench_fv = FeatureView(
    name="bench_fv",
    entities=[driver],
    ttl=timedelta(seconds=0),
    schema=[Field(name=f"f{i}", dtype=Float32) for i in range(50)],
    source=FileSource(path="data/bench.parquet", timestamp_field="event_timestamp"),
)
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("repo")
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--entities", type=int, default=10000)
    a = ap.parse_args()
    os.makedirs(os.path.join(a.repo, "data"), exist_ok=True)
    with open(os.path.join(a.repo, "feature_store.yaml"), "w") as f:
        f.write(
            "project: bench\nregistry: data/registry.db\nprovider: local\n"
            f"online_store:\n  type: redis\n  connection_string: 127.0.0.1:{a.redis_port}\n"
            "entity_key_serialization_version: 3\n"
        )
    with open(os.path.join(a.repo, "features.py"), "w") as f:
        f.write(DEFS)
    rng = np.random.default_rng(1)
    df = pd.DataFrame({f"f{i}": rng.random(a.entities, dtype=np.float32) for i in range(50)})
    df.insert(0, "driver_id", np.arange(1, a.entities + 1, dtype=np.int64))
    df["event_timestamp"] = datetime(2026, 11, 28, 8, tzinfo=timezone.utc)
    df.to_parquet(os.path.join(a.repo, "data", "bench.parquet"))


if __name__ == "__main__":
    main()
