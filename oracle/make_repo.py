"""Writes a Feast feature repo (feature_store.yaml, definitions, Parquet data) for oracle tests.

Usage: make_repo.py DIR --project NAME --registry REGISTRY_YAML_VALUE [--online ONLINE_YAML] [--seed N]

The definitions cover what Larder must read like Feast does: multi-key and string-key entities,
every value type (scalars, lists, sets, Map/Json/Struct), ttl 0 and non-zero, field_mapping,
created-timestamp columns, push and request sources, on-demand views, stream and label views,
feature services with projections, aliases and join_key_map, tags and permissions.
"""

import argparse
import json
import os
import random
from datetime import datetime, timedelta, timezone

import pandas as pd

DEFS = r'''
from datetime import timedelta

import pandas as pd

from feast import (Entity, FeatureService, FeatureView, Field, FileSource, Project, PushSource,
                   RequestSource, StreamFeatureView, ValueType)
from feast.aggregation import Aggregation
from feast.data_source import KafkaSource
from feast.data_format import JsonFormat
from feast.on_demand_feature_view import on_demand_feature_view
from feast.permissions.action import AuthzedAction
from feast.permissions.permission import Permission
from feast.permissions.policy import RoleBasedPolicy
from feast.types import (Array, Bool, Bytes, Float32, Float64, Int32, Int64, Json, Map, Set, String,
                         Struct, UnixTimestamp)

project = Project(name="__PROJECT__", description="oracle project __PROJECT__",
                  tags={"team": "larder", "seed": "__SEED__"}, owner="oracle@larder.dev")

driver = Entity(name="driver", join_keys=["driver_id"], description="a driver",
                tags={"pii": "false"}, owner="ops@larder.dev")
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
location = Entity(name="location", join_keys=["location_id"], value_type=ValueType.INT64)

driver_source = FileSource(
    name="driver_stats_source",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="driver stats", tags={"kind": "file"}, owner="data@larder.dev",
)

driver_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=__TTL_DAYS__),
    schema=[
        Field(name="conv_rate", dtype=Float32, description="conversion rate"),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64, tags={"unit": "trips"}),
        Field(name="rating", dtype=Float64),
    ],
    online=True,
    source=driver_source,
    tags={"team": "driver_performance"},
    owner="driver@larder.dev",
    description="hourly driver statistics",
)

all_types_source = FileSource(
    name="all_types_source",
    path="data/all_types.parquet",
    timestamp_field="ts",
    field_mapping={"raw_str": "str_f"},
)

all_types = FeatureView(
    name="all_types",
    entities=[customer],
    ttl=timedelta(seconds=0),
    schema=[
        Field(name="customer_id", dtype=String),
        Field(name="int32_f", dtype=Int32),
        Field(name="int64_f", dtype=Int64),
        Field(name="float32_f", dtype=Float32),
        Field(name="float64_f", dtype=Float64),
        Field(name="bool_f", dtype=Bool),
        Field(name="str_f", dtype=String),
        Field(name="bytes_f", dtype=Bytes),
        Field(name="ts_f", dtype=UnixTimestamp),
        Field(name="int32_list", dtype=Array(Int32)),
        Field(name="int64_list", dtype=Array(Int64)),
        Field(name="float32_list", dtype=Array(Float32)),
        Field(name="float64_list", dtype=Array(Float64)),
        Field(name="bool_list", dtype=Array(Bool)),
        Field(name="str_list", dtype=Array(String)),
        Field(name="bytes_list", dtype=Array(Bytes)),
        Field(name="ts_list", dtype=Array(UnixTimestamp)),
        Field(name="str_set", dtype=Set(String)),
        Field(name="map_f", dtype=Map),
        Field(name="json_f", dtype=Json),
        Field(name="struct_f", dtype=Struct({"a": Int64, "b": String})),
    ],
    source=all_types_source,
)

trip_source = FileSource(
    name="trip_source",
    path="data/trips.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

trip_push = PushSource(name="trip_push", batch_source=trip_source)

trip_stats = FeatureView(
    name="driver_customer_trips",
    entities=[driver, customer],
    ttl=timedelta(hours=2),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="customer_id", dtype=String),
        Field(name="trips", dtype=Int64),
        Field(name="fare", dtype=Float64),
    ],
    source=trip_push,
)

location_source = FileSource(path="data/locations.parquet", timestamp_field="event_timestamp")

location_stats = FeatureView(
    name="location_stats",
    entities=[location],
    ttl=timedelta(days=1),
    schema=[Field(name="temperature", dtype=Float64), Field(name="busy", dtype=Bool)],
    source=location_source,
    online=True,
)

global_stats = FeatureView(
    name="global_stats",
    entities=[],
    ttl=timedelta(days=7),
    schema=[Field(name="total_drivers", dtype=Int64)],
    source=FileSource(name="global_source", path="data/global.parquet", timestamp_field="event_timestamp"),
)

input_request = RequestSource(
    name="vals_to_add",
    schema=[Field(name="val_to_add", dtype=Int64), Field(name="val_to_add_2", dtype=Int64)],
)

@on_demand_feature_view(
    sources=[driver_stats, input_request],
    schema=[Field(name="conv_rate_plus_val1", dtype=Float64), Field(name="conv_rate_plus_val2", dtype=Float64)],
    tags={"odfv": "pandas"},
)
def transformed_conv_rate(inputs: pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame()
    df["conv_rate_plus_val1"] = inputs["conv_rate"] + inputs["val_to_add"]
    df["conv_rate_plus_val2"] = inputs["conv_rate"] + inputs["val_to_add_2"]
    return df

@on_demand_feature_view(
    sources=[driver_stats],
    schema=[Field(name="trips_doubled", dtype=Int64)],
    write_to_online_store=True,
)
def trips_doubled(inputs: pd.DataFrame) -> pd.DataFrame:
    # mode="python" would make `feast registry-dump` itself crash (KeyError 'substraitPlan'
    # in Feast 0.67), so the oracle repos use pandas mode; Larder's own tests cover python mode.
    return pd.DataFrame({"trips_doubled": inputs["avg_daily_trips"] * 2})

stream_source = KafkaSource(
    name="driver_stream",
    kafka_bootstrap_servers="localhost:9092",
    topic="drivers",
    timestamp_field="event_timestamp",
    batch_source=driver_source,
    message_format=JsonFormat(schema_json="driver_id integer, event_timestamp timestamp, conv_rate double"),
    watermark_delay_threshold=timedelta(minutes=5),
)

def stream_udf(df):
    return df

# Without a udf `feast registry-dump` crashes (KeyError 'userDefinedFunction' in Feast 0.67).
driver_stream_view = StreamFeatureView(
    name="driver_stream_view",
    entities=[driver],
    ttl=timedelta(hours=1),
    schema=[Field(name="conv_rate", dtype=Float32)],
    source=stream_source,
    timestamp_field="event_timestamp",
    online=True,
    tags={"stream": "kafka"},
    udf=stream_udf,
    udf_string="def stream_udf(df):\n    return df\n",
    mode="pandas",
    aggregations=[Aggregation(column="conv_rate", function="max", time_window=timedelta(hours=1))],
)

service_v1 = FeatureService(
    name="driver_activity_v1",
    features=[driver_stats[["conv_rate", "avg_daily_trips"]], transformed_conv_rate],
    tags={"version": "1"},
    description="first service",
    owner="ml@larder.dev",
)

service_v2 = FeatureService(
    name="driver_activity_v2",
    features=[
        driver_stats.with_name("ds_alias"),
        location_stats.with_name("origin").with_join_key_map({"location_id": "origin_id"}),
        location_stats.with_name("destination").with_join_key_map({"location_id": "destination_id"}),
        all_types[["int64_f", "str_list"]],
    ],
)

reader = Permission(
    name="reader",
    types=[FeatureView, FeatureService],
    policy=RoleBasedPolicy(roles=["reader"]),
    actions=[AuthzedAction.DESCRIBE, AuthzedAction.READ_ONLINE],
    name_patterns=["driver.*"],
    required_tags={"team": "driver_performance"},
)
'''

LABEL_DEFS = r'''
from feast.labeling.label_view import LabelView

label_push = PushSource(name="label_push", batch_source=FileSource(
    name="labels_source", path="data/labels.parquet", timestamp_field="event_timestamp"))

driver_labels = LabelView(
    name="driver_labels",
    source=label_push,
    entities=[driver],
    schema=[Field(name="is_fraud", dtype=Bool), Field(name="labeler", dtype=String)],
    ttl=timedelta(days=30),
    reference_feature_view="driver_hourly_stats",
)
'''


def write_data(repo: str, rng: random.Random) -> None:
    data = os.path.join(repo, "data")
    os.makedirs(data, exist_ok=True)
    now = datetime(2026, 11, 28, 8, 0, tzinfo=timezone.utc)
    n = 20
    ts = [now - timedelta(hours=rng.randint(0, 48)) for _ in range(n)]
    pd.DataFrame({
        "driver_id": [1000 + i % 7 for i in range(n)],
        "event_timestamp": ts,
        "created": [t + timedelta(minutes=1, seconds=i) for i, t in enumerate(ts)],
        "conv_rate": [rng.random() for _ in range(n)],
        "acc_rate": [rng.random() for _ in range(n)],
        "avg_daily_trips": [rng.randint(0, 1000) for _ in range(n)],
        "rating": [rng.random() * 5 for _ in range(n)],
    }).astype({"conv_rate": "float32", "acc_rate": "float32"}).to_parquet(os.path.join(data, "driver_stats.parquet"))
    pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "ts": ts,
        "int32_f": pd.array([rng.randint(-5, 5) for _ in range(n)], dtype="int32"),
        "int64_f": [rng.randint(-2**40, 2**40) for _ in range(n)],
        "float32_f": pd.array([rng.random() for _ in range(n)], dtype="float32"),
        "float64_f": [rng.random() for _ in range(n)],
        "bool_f": [rng.random() < 0.5 for _ in range(n)],
        "raw_str": [f"s{i}" for i in range(n)],
        "bytes_f": [bytes([i, 255 - i]) for i in range(n)],
        "ts_f": ts,
        "int32_list": [[1, 2] for _ in range(n)],
        "int64_list": [[2**40, -1] for _ in range(n)],
        "float32_list": [[0.5, 0.25] for _ in range(n)],
        "float64_list": [[0.1, 1e-5] for _ in range(n)],
        "bool_list": [[True, False] for _ in range(n)],
        "str_list": [["a", "é"] for _ in range(n)],
        "bytes_list": [[b"\x00", b"\x01"] for _ in range(n)],
        "ts_list": [[ts[0], ts[1]] for _ in range(n)],
        "str_set": [["x", "y"] for _ in range(n)],
        "map_f": [json.dumps({"k": i}) for i in range(n)],
        "json_f": [json.dumps({"j": [i]}) for i in range(n)],
        "struct_f": [json.dumps({"a": i, "b": "v"}) for i in range(n)],
    }).to_parquet(os.path.join(data, "all_types.parquet"))
    pd.DataFrame({
        "driver_id": [1000 + i % 3 for i in range(n)],
        "customer_id": [f"c{i % 4}" for i in range(n)],
        "event_timestamp": ts,
        # Distinct created times: rows with equal keys and event times have no arbitrary winner.
        "created": [t + timedelta(seconds=i) for i, t in enumerate(ts)],
        "trips": [rng.randint(0, 9) for _ in range(n)],
        "fare": [rng.random() * 30 for _ in range(n)],
    }).to_parquet(os.path.join(data, "trips.parquet"))
    pd.DataFrame({
        "location_id": [i % 5 for i in range(n)],
        "event_timestamp": ts,
        "temperature": [rng.random() * 30 for _ in range(n)],
        "busy": [rng.random() < 0.5 for _ in range(n)],
    }).to_parquet(os.path.join(data, "locations.parquet"))
    pd.DataFrame({"event_timestamp": ts, "total_drivers": list(range(n))}).to_parquet(
        os.path.join(data, "global.parquet"))
    pd.DataFrame({"driver_id": [1000], "event_timestamp": [now], "is_fraud": [False], "labeler": ["x"]}).to_parquet(
        os.path.join(data, "labels.parquet"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo")
    ap.add_argument("--project", required=True)
    ap.add_argument("--registry", required=True, help="YAML value of the registry key")
    ap.add_argument("--online", default=None, help="YAML value of the online_store key")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ttl-days", type=int, default=1)
    ap.add_argument("--labels", action="store_true", help="also define a LabelView")
    ap.add_argument("--source-prefix", default=None,
                    help="read sources from this URL prefix (e.g. s3://bucket/data) instead of data/")
    ap.add_argument("--for-serving", action="store_true",
                    help="leave out the write-to-online on-demand view (Feast 0.67 cannot materialize it)")
    a = ap.parse_args()
    os.makedirs(a.repo, exist_ok=True)
    rng = random.Random(a.seed)
    yaml = [f"project: {a.project}", f"registry: {a.registry}", "provider: local"]
    if a.online:
        yaml.append(f"online_store: {a.online}")
    yaml.append("entity_key_serialization_version: 3")
    with open(os.path.join(a.repo, "feature_store.yaml"), "w") as f:
        f.write("\n".join(yaml) + "\n")
    defs = DEFS.replace("__PROJECT__", a.project).replace("__SEED__", str(a.seed))
    defs = defs.replace("__TTL_DAYS__", str(a.ttl_days))
    if a.labels:
        defs += LABEL_DEFS
    if a.for_serving:
        start = defs.index("@on_demand_feature_view(\n    sources=[driver_stats],")
        end = defs.index("stream_source = KafkaSource(")
        defs = defs[:start] + defs[end:]
        # Feast's local engine cannot materialize stream views with aggregations.
        defs = defs.replace(
            '    aggregations=[Aggregation(column="conv_rate", function="max", time_window=timedelta(hours=1))],\n', "")
    if a.source_prefix:
        endpoint = os.environ.get("FEAST_S3_ENDPOINT_URL", "")
        defs = defs.replace('path="data/', f's3_endpoint_override="{endpoint}", path="{a.source_prefix}/')
    with open(os.path.join(a.repo, "features.py"), "w") as f:
        f.write(defs)
    write_data(a.repo, rng)


if __name__ == "__main__":
    main()
