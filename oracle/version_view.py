"""Applies a new version of the `feast init` repo's driver_hourly_stats view through the SDK
(`FeatureStore.apply`, which also creates its online table): the view without
avg_daily_trips, so the registry's version history holds v0 (every feature) and v1 (active).

Usage: version_view.py REPO
"""

import copy
import sys
import warnings

warnings.filterwarnings("ignore")

from feast import FeatureStore  # noqa: E402

store = FeatureStore(repo_path=sys.argv[1])
fv = copy.deepcopy(store.get_feature_view("driver_hourly_stats"))
fv.features = [f for f in fv.features if f.name != "avg_daily_trips"]
store.apply([fv])
active = store.get_feature_view("driver_hourly_stats")
print(active.current_version_number)
