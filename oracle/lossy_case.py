"""A repo whose data Feast 0.67 converts lossily when it materializes it, for the deviations the
README lists: an int64 feature column with a null (pandas makes it float64, so integers above
2**53 change) and a timestamp feature with a null (which Feast writes as INT64_MIN seconds).

Usage: lossy_case.py DIR            # writes DIR/feature_store.yaml, defs.py, data/lossy.parquet
"""

import os
import sys
from datetime import datetime, timezone

import pandas as pd

DEFS = '''
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Int64, UnixTimestamp

thing = Entity(name="thing", join_keys=["thing_id"], value_type=ValueType.INT64)
lossy = FeatureView(
    name="lossy",
    entities=[thing],
    ttl=timedelta(days=0),
    schema=[Field(name="big", dtype=Int64), Field(name="seen", dtype=UnixTimestamp)],
    source=FileSource(path="data/lossy.parquet", timestamp_field="event_timestamp"),
)
'''

d = sys.argv[1]
os.makedirs(os.path.join(d, "data"), exist_ok=True)
with open(os.path.join(d, "feature_store.yaml"), "w") as f:
    f.write("project: lossy\nregistry: data/registry.db\nprovider: local\n"
            "online_store:\n  type: sqlite\n  path: data/online.db\n"
            "entity_key_serialization_version: 3\n")
with open(os.path.join(d, "defs.py"), "w") as f:
    f.write(DEFS)
t = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
pd.DataFrame({
    "thing_id": pd.array([1, 2, 3], dtype="int64"),
    "big": pd.array([2**53 + 1, None, 2**62 + 7], dtype="Int64"),
    "seen": [t, None, t],
    "event_timestamp": [t, t, t],
}).to_parquet(os.path.join(d, "data", "lossy.parquet"))
print("{}")
