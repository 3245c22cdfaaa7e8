"""Runs the same get_online_features calls through the Feast SDK twice — reading the repo's
online store directly, and with `online_store: {type: remote, path: LARDER_URL}` — and prints
both results as JSON: {"local": [...], "remote": [...]}.

Usage: remote_check.py REPO LARDER_URL CASES_JSON_FILE
Each case: {"features": [...]} or {"feature_service": name}, plus "entity_rows" and
"full_feature_names".
"""

import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")

from feast import FeatureStore  # noqa: E402
from remote_yaml import remote_yaml as make_remote_yaml  # noqa: E402


def run(store, cases):
    out = []
    for c in cases:
        if "feature_service" in c:
            features = store.get_feature_service(c["feature_service"])
        else:
            features = c["features"]
        d = store.get_online_features(
            features=features,
            entity_rows=c["entity_rows"],
            full_feature_names=c.get("full_feature_names", False),
        ).to_dict()
        out.append({k: d[k] for k in sorted(d)})
    return out


def main():
    repo, url, cases_file = sys.argv[1], sys.argv[2], sys.argv[3]
    cases = json.load(open(cases_file))
    local = run(FeatureStore(repo_path=repo), cases)
    remote_yaml = make_remote_yaml(repo, url=url)
    remote = run(FeatureStore(repo_path=repo, fs_yaml_file=remote_yaml), cases)
    os.remove(remote_yaml)
    print(json.dumps({"local": local, "remote": remote}, default=repr, sort_keys=True))


if __name__ == "__main__":
    main()
