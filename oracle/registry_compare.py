"""Prints two Feast registry files as comparable JSON: {"a": ..., "b": ...}.

Usage: registry_compare.py A B [--ignore-view-source-class]. What two applies of one repo may differ in is normalized away:
timestamps, version ids, project uuids, pickled UDF bodies (they hold the defining file's
path; the source text is compared), infra paths (reduced to their file names); lists of
objects are sorted. Version records' feature view protos are decoded and normalized too.
With --ignore-view-source-class, the `dataSourceClassType` of the sources inside feature
views is dropped: Feast's in-place update of a view's metadata (`_update_metadata_fields`)
writes its sources without it, which Larder keeps (a deviation listed in the README).
"""
import base64
import json
import os
import sys

from google.protobuf.json_format import MessageToDict

from feast.protos.feast.core.FeatureView_pb2 import FeatureView
from feast.protos.feast.core.LabelView_pb2 import LabelView
from feast.protos.feast.core.OnDemandFeatureView_pb2 import OnDemandFeatureView
from feast.protos.feast.core.Registry_pb2 import Registry
from feast.protos.feast.core.StreamFeatureView_pb2 import StreamFeatureView

DROP = {"createdTimestamp", "lastUpdatedTimestamp", "lastUpdated", "versionId", "projectUuid", "body"}
TYPES = {
    "feature_view": FeatureView,
    "stream_feature_view": StreamFeatureView,
    "on_demand_feature_view": OnDemandFeatureView,
    "label_view": LabelView,
}


def norm(x):
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if k in DROP:
                continue
            if k == "path" and isinstance(v, str) and v.endswith(".db"):
                v = os.path.basename(v)
            out[k] = norm(v)
        return out
    if isinstance(x, list):
        return sorted((norm(v) for v in x), key=lambda v: json.dumps(v, sort_keys=True))
    return x


def drop_view_source_class(d):
    for kind in ("featureViews", "streamFeatureViews"):
        for v in d.get(kind, []):
            for src in ("batchSource", "streamSource"):
                v.get("spec", {}).get(src, {}).pop("dataSourceClassType", None)


def load(path):
    r = Registry()
    with open(path, "rb") as f:
        r.ParseFromString(f.read())
    d = MessageToDict(r)
    for rec in d.get("featureViewVersionHistory", {}).get("records", []):
        msg = TYPES[rec["featureViewType"]]()
        msg.ParseFromString(base64.b64decode(rec.pop("featureViewProto")))
        rec["featureView"] = MessageToDict(msg)
    if "--ignore-view-source-class" in sys.argv:
        drop_view_source_class(d)
    return norm(d)


print(json.dumps({"a": load(sys.argv[1]), "b": load(sys.argv[2])}))
