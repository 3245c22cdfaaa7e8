"""Writes the benchmark feature repo: entity `driver` (INT64 join key `driver_id`), feature
view `bench_fv` with 50 Float32 features f0..f49 and ttl 0, one row per driver.

With --on-demand, also a request source and two on-demand views with the same pandas UDF
(`f0 + val`), one left to the native engine and one put on the Python engine (the venv's
Python, `larder.on_demand.engines`), for benches/ondemand.sh.

Usage: make_bench_repo.py DIR --redis-port PORT [--entities N] [--on-demand PYTHON]
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

ON_DEMAND = '''
import pandas as pd

from feast import RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64

req = RequestSource(name="req", schema=[Field(name="val", dtype=Int64)])


@on_demand_feature_view(sources=[bench_fv[["f0"]], req], schema=[Field(name="o", dtype=Float64)])
def bench_odfv(inputs: pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame()
    df["o"] = inputs["f0"] + inputs["val"]
    return df


@on_demand_feature_view(sources=[bench_fv[["f0"]], req], schema=[Field(name="o", dtype=Float64)])
def bench_odfv_py(inputs: pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame()
    df["o"] = inputs["f0"] + inputs["val"]
    return df
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("repo")
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--entities", type=int, default=10000)
    ap.add_argument("--on-demand", metavar="PYTHON")
    a = ap.parse_args()
    os.makedirs(os.path.join(a.repo, "data"), exist_ok=True)
    with open(os.path.join(a.repo, "feature_store.yaml"), "w") as f:
        f.write(
            "project: bench\nregistry: data/registry.db\nprovider: local\n"
            f"online_store:\n  type: redis\n  connection_string: 127.0.0.1:{a.redis_port}\n"
            "entity_key_serialization_version: 3\n"
        )
        if a.on_demand:
            f.write(
                f"larder:\n  on_demand:\n    python: {a.on_demand}\n"
                "    engines:\n      bench_odfv_py: python\n"
            )
    with open(os.path.join(a.repo, "features.py"), "w") as f:
        f.write(DEFS + (ON_DEMAND if a.on_demand else ""))
    rng = np.random.default_rng(1)
    df = pd.DataFrame({f"f{i}": rng.random(a.entities, dtype=np.float32) for i in range(50)})
    df.insert(0, "driver_id", np.arange(1, a.entities + 1, dtype=np.int64))
    df["event_timestamp"] = datetime(2026, 11, 28, 8, tzinfo=timezone.utc)
    df.to_parquet(os.path.join(a.repo, "data", "bench.parquet"))


if __name__ == "__main__":
    main()
