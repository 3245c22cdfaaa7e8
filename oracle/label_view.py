"""The label view of the repo `feast init` writes, through the Feast SDK: labels pushed to its
push source (online, and offline where the store supports it), then read back online; printed
as JSON (the push's outcome and the `to_dict()` of the read, keys sorted).

Usage: label_view.py REPO [REMOTE_URL]   # with REMOTE_URL: online_store remote at it (Larder)
"""

import json
import sys
import warnings
from datetime import datetime, timezone

warnings.filterwarnings("ignore")

import pandas as pd  # noqa: E402
from feast import FeatureStore  # noqa: E402
from feast.data_source import PushMode  # noqa: E402
from remote_yaml import remote_yaml  # noqa: E402

repo = sys.argv[1]
kwargs = {"fs_yaml_file": remote_yaml(repo, url=sys.argv[2])} if len(sys.argv) > 2 else {}
store = FeatureStore(repo_path=repo, **kwargs)
now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
labels = pd.DataFrame({
    "driver_id": [1001, 1002, 1001],
    "is_reliable": [1, 0, 0],
    "quality_score": [4.5, 2.0, 3.25],
    "reviewer_notes": ["good", "late", "changed my mind"],
    "labeler": ["ann", "bob", "cy"],
    "event_timestamp": [now, now, now.replace(hour=13)],
})
out = {}
store.push("driver_quality_labels_push", labels, to=PushMode.ONLINE)
out["pushed"] = True
out["online"] = store.get_online_features(
    features=["driver_quality_labels:quality_score", "driver_quality_labels:labeler",
              "driver_quality_labels:is_reliable", "driver_quality_labels:reviewer_notes"],
    entity_rows=[{"driver_id": 1001}, {"driver_id": 1002}, {"driver_id": 5}],
).to_dict()
print(json.dumps(out, sort_keys=True, default=str))
