"""Asks Feast's own registry servicer (in process, over the repo's registry) and Larder's
`serve-registry` (gRPC at 127.0.0.1:PORT) the derived reads — lineage, object relationships,
features — with filters, pagination and sorting; prints both answers as JSON.

Usage: registry_derived.py REPO PORT
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")

import grpc  # noqa: E402
from feast import FeatureStore  # noqa: E402
from feast.protos.feast.registry import RegistryServer_pb2 as rs  # noqa: E402
from feast.protos.feast.registry import RegistryServer_pb2_grpc as rg  # noqa: E402
from feast.registry_server import RegistryServer  # noqa: E402
from google.protobuf.json_format import MessageToDict  # noqa: E402

repo, port = sys.argv[1], sys.argv[2]
store = FeatureStore(repo_path=repo)
feast = RegistryServer(store.registry)
stub = rg.RegistryServerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
p = store.project
page = rs.PaginationParams
sort = rs.SortingParams
requests = [
    ("GetRegistryLineage", rs.GetRegistryLineageRequest(project=p)),
    ("GetRegistryLineage", rs.GetRegistryLineageRequest(
        project=p, filter_object_type="featureView", filter_object_name="driver_hourly_stats")),
    ("GetRegistryLineage", rs.GetRegistryLineageRequest(
        project=p, pagination=page(page=2, limit=5), sorting=sort(sort_by="source.name", sort_order="desc"))),
    ("GetRegistryLineage", rs.GetRegistryLineageRequest(project="no_such_project")),
    ("GetObjectRelationships", rs.GetObjectRelationshipsRequest(
        project=p, object_type="entity", object_name="driver", include_indirect=True)),
    ("GetObjectRelationships", rs.GetObjectRelationshipsRequest(
        project=p, object_type="featureService", object_name="driver_activity_v1")),
    ("GetObjectRelationships", rs.GetObjectRelationshipsRequest(
        project=p, object_type="dataSource", object_name="driver_hourly_stats_source",
        include_indirect=True, pagination=page(page=1, limit=2))),
    ("ListFeatures", rs.ListFeaturesRequest(project=p)),
    ("ListFeatures", rs.ListFeaturesRequest(project=p, feature_view="driver_hourly_stats")),
    ("ListFeatures", rs.ListFeaturesRequest(project=p, kind="label")),
    ("ListFeatures", rs.ListFeaturesRequest(project=p, name="conv_rate")),
    ("ListFeatures", rs.ListFeaturesRequest(
        project=p, pagination=page(page=2, limit=3), sorting=sort(sort_by="name"))),
    ("GetFeature", rs.GetFeatureRequest(project=p, feature_view="driver_hourly_stats", name="conv_rate")),
    ("GetFeature", rs.GetFeatureRequest(project=p, feature_view="driver_hourly_stats", name="driver_profile")),
]
out = []
for method, req in requests:
    a = MessageToDict(getattr(feast, method)(req, None))
    b = MessageToDict(getattr(stub, method)(req))
    out.append({"request": f"{method} {MessageToDict(req)}", "feast": a, "larder": b})
try:
    stub.GetFeature(rs.GetFeatureRequest(project=p, feature_view="driver_hourly_stats", name="nope"))
except grpc.RpcError as e:
    out.append({"request": "GetFeature missing", "feast": "NOT_FOUND FeastObjectNotFoundException",
                "larder": f"{e.code().name} {json.loads(e.details())['class']}"})
print(json.dumps(out))
