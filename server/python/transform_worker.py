"""Larder's Python engine for on-demand views: Feast's transformation service protocol
(`feast.serving.TransformationService`, Arrow IPC file-format tables), serving pandas- and
python-mode UDFs of the repo's registry with Feast's own code (the UDF is the dill-pickled
function the registry keeps).

Usage: python transform_worker.py FEATURE_STORE_YAML
Binds 127.0.0.1 on a free port, prints `PORT <n>` on stdout, then serves until killed. Input
columns are the UDF's input frame (join keys, source features, request data); output columns
are named `<view>__<feature>`, as `feast serve_transformations` names them.
"""

import logging
import os
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pyarrow as pa
from feast import FeatureStore
from feast.protos.feast.serving.TransformationService_pb2 import (
    TRANSFORMATION_SERVICE_TYPE_PYTHON,
    GetTransformationServiceInfoResponse,
    TransformFeaturesResponse,
    ValueType,
)
from feast.protos.feast.serving.TransformationService_pb2_grpc import (
    TransformationServiceServicer,
    add_TransformationServiceServicer_to_server,
)
from feast.version import get_version


class Worker(TransformationServiceServicer):
    def __init__(self, store):
        self.store = store

    def view(self, name):
        try:
            return self.store.get_on_demand_feature_view(name)
        except Exception:
            # The registry may have changed since it was read.
            self.store.refresh_registry()
            return self.store.get_on_demand_feature_view(name)

    def GetTransformationServiceInfo(self, request, context):
        return GetTransformationServiceInfoResponse(
            type=TRANSFORMATION_SERVICE_TYPE_PYTHON,
            transformation_service_type_details=f"Python: {sys.version}, Feast: {get_version()}",
        )

    def TransformFeatures(self, request, context):
        try:
            odfv = self.view(request.on_demand_feature_view_name)
        except Exception as e:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{type(e).__name__}: {e}")
        table = pa.ipc.open_file(request.transformation_input.arrow_value).read_all()
        try:
            if odfv.mode == "python":
                out = odfv.transform_dict(table.to_pydict())
                prefix = odfv.projection.name_to_use()
                declared = {f.name for f in odfv.features}
                n = table.num_rows
                result = pa.Table.from_pydict({
                    f"{prefix}__{k}": (v if isinstance(v, list) else [v] * n)
                    for k, v in out.items() if k in declared
                })
            else:
                result = odfv.transform_arrow(table, True)
        except Exception as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{type(e).__name__}: {e}")
        sink = pa.BufferOutputStream()
        writer = pa.ipc.new_file(sink, result.schema)
        writer.write_table(result)
        writer.close()
        return TransformFeaturesResponse(
            transformation_output=ValueType(arrow_value=sink.getvalue().to_pybytes())
        )


def exit_with_parent():
    """Ends the worker when the process that started it is gone (killed too: the worker is
    then re-parented), so no worker outlives its Larder."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main():
    exit_with_parent()
    logging.basicConfig(level=logging.WARNING)
    yaml = Path(sys.argv[1])
    store = FeatureStore(repo_path=str(yaml.parent), fs_yaml_file=yaml)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_TransformationServiceServicer_to_server(Worker(store), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
