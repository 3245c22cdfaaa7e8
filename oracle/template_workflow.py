"""The online steps of the `test_workflow.py` that `feast init` writes, through the Feast SDK,
printed as JSON (a list of `to_dict()` results, keys sorted).

Usage: template_workflow.py REPO local          # Feast alone: the SDK materializes, then reads
       template_workflow.py REPO remote URL     # online_store: remote at URL (Larder); the
                                                # repo's online store is materialized already
       template_workflow.py REPO historical [PORT]  # the workflow's retrievals (with
                                                # offline_store: remote at PORT: Larder's Flight)

Steps: the feature list with on-demand features, the feature service driver_activity_v1,
driver_activity_v3, a push of one row to ONLINE_AND_OFFLINE with dict values, and
driver_activity_v3 again; then the same feature list with full feature names and with a row
whose request data is a float. `NOW` (ISO, naive UTC) fixes the push's timestamps and the
materialization's end so that both runs see the same times.
"""

import contextlib
import json
import os
import sys
import warnings
from datetime import datetime

warnings.filterwarnings("ignore")

import pandas as pd  # noqa: E402
from feast import FeatureStore  # noqa: E402
from feast.data_source import PushMode  # noqa: E402
from remote_yaml import remote_yaml  # noqa: E402

ENTITY_ROWS = [
    {"driver_id": 1001, "val_to_add": 1000, "val_to_add_2": 2000},
    {"driver_id": 1002, "val_to_add": 1001, "val_to_add_2": 2002},
]
FEATURES = [
    "driver_hourly_stats:acc_rate",
    "driver_hourly_stats:driver_metadata",
    "driver_hourly_stats:driver_config",
    "driver_hourly_stats:driver_profile",
    "transformed_conv_rate:conv_rate_plus_val1",
    "transformed_conv_rate:conv_rate_plus_val2",
]


def fetch(store, features, rows=ENTITY_ROWS, full=False):
    if isinstance(features, str):
        features = store.get_feature_service(features)
    d = store.get_online_features(
        features=features, entity_rows=rows, full_feature_names=full
    ).to_dict()
    return {k: d[k] for k in sorted(d)}


def historical(repo, now, port):
    """The workflow's two retrievals (training, batch scoring) with on-demand features."""
    if port:
        store = FeatureStore(repo_path=repo, fs_yaml_file=remote_yaml(repo, offline_port=port))
    else:
        store = FeatureStore(repo_path=repo)
    entity_df = pd.DataFrame.from_dict({
        "driver_id": [1001, 1002, 1003],
        "event_timestamp": [datetime(2021, 4, 12, 10, 59, 42), datetime(2021, 4, 12, 8, 12, 10),
                            datetime(2021, 4, 12, 16, 40, 26)],
        "label_driver_reported_satisfaction": [1, 5, 3],
        "val_to_add": [1, 2, 3],
        "val_to_add_2": [10, 20, 30],
    })
    out = []
    for batch_scoring in (False, True):
        if batch_scoring:
            entity_df["event_timestamp"] = pd.Timestamp(now, tz="UTC")
        df = store.get_historical_features(entity_df=entity_df, features=[
            "driver_hourly_stats:conv_rate",
            "driver_hourly_stats:acc_rate",
            "driver_hourly_stats:avg_daily_trips",
            "transformed_conv_rate:conv_rate_plus_val1",
            "transformed_conv_rate:conv_rate_plus_val2",
        ]).to_df()
        df = df.sort_values("driver_id").reset_index(drop=True)
        cols = ["driver_id", "event_timestamp", "conv_rate", "acc_rate", "avg_daily_trips",
                "conv_rate_plus_val1", "conv_rate_plus_val2"]
        rows = []
        for r in df[cols].itertuples(index=False):
            rows.append([None if isinstance(v, float) and v != v else
                         v.isoformat() if hasattr(v, "isoformat") else
                         v.item() if hasattr(v, "item") else v for v in r])
        out.append({"columns": cols, "rows": rows})
    print(json.dumps(out, default=repr, sort_keys=True))


def main():
    repo, mode = sys.argv[1], sys.argv[2]
    now = datetime.fromisoformat(os.environ["NOW"])
    if mode == "historical":
        return historical(repo, now, sys.argv[3] if len(sys.argv) > 3 else None)
    if mode == "remote":
        store = FeatureStore(repo_path=repo, fs_yaml_file=remote_yaml(repo, url=sys.argv[3]))
    else:
        store = FeatureStore(repo_path=repo)
        with contextlib.redirect_stdout(sys.stderr):
            store.materialize_incremental(end_date=now)
    out = [
        fetch(store, FEATURES),
        fetch(store, "driver_activity_v1"),
        fetch(store, "driver_activity_v3"),
    ]
    event_df = pd.DataFrame.from_dict(
        {
            "driver_id": [1001],
            "event_timestamp": [now],
            "created": [now],
            "conv_rate": [1.0],
            "acc_rate": [1.0],
            "avg_daily_trips": [1000],
            "driver_metadata": [{"vehicle_type": "truck", "rating": "5.0"}],
            "driver_config": [
                json.dumps({"max_distance_km": 500, "preferred_zones": ["north"]})
            ],
            "driver_profile": [{"name": "driver_1001_updated", "age": "30"}],
        }
    )
    store.push("driver_stats_push_source", event_df, to=PushMode.ONLINE_AND_OFFLINE)
    out.append(fetch(store, "driver_activity_v3"))
    out.append(fetch(store, FEATURES, full=True))
    out.append(
        fetch(
            store,
            FEATURES[-2:],
            rows=[{"driver_id": 1003, "val_to_add": 0.5, "val_to_add_2": -3}],
        )
    )
    print(json.dumps(out, default=repr, sort_keys=True))


if __name__ == "__main__":
    main()
