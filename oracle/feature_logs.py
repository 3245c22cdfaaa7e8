"""Feast's served-feature logs, for comparing Larder's with Feast's.

Usage: feature_logs.py REPO apply
           adds the feature service `driver_logged_by_date` (driver_hourly_stats' conv_rate and
           acc_rate, logged to data/logs_by_date partitioned by __log_date) to the registry
       feature_logs.py REPO read SERVICE FILE...
           Feast's log schema of SERVICE (`FeatureServiceLoggingSource.get_schema`), that
           schema as pyarrow stores it in Parquet, and the schema and rows of the given
           Parquet files, as JSON {"schema": [[name, type]], "stored_schema": ...,
           "files_schema": ..., "rows": [...]}
       feature_logs.py REPO write SERVICE PORT
           a log table of Feast's schema written with `FeatureStore.write_logged_features`,
           first by Feast alone (the repo's file offline store), then through
           `offline_store: remote` at PORT (Larder's Flight server); prints, for each, the new
           files (relative to the destination, partition directories included) and their rows

Timestamps and dates print as ISO strings.
"""

import json
import sys
import warnings
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

warnings.filterwarnings("ignore")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from feast import FeatureService, FeatureStore  # noqa: E402
from feast.feature_logging import FeatureServiceLoggingSource, LoggingConfig  # noqa: E402
from feast.infra.offline_stores.file_source import FileLoggingDestination  # noqa: E402
from remote_yaml import remote_yaml  # noqa: E402


def plain(v):
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def schema_json(schema):
    return [[f.name, str(f.type)] for f in schema]


def log_schema(store, service):
    fs = store.get_feature_service(service)
    return FeatureServiceLoggingSource(fs, store.project).get_schema(store.registry)


def stored(schema):
    """The schema as a Parquet file written by pyarrow holds it (seconds become ms)."""
    buf = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), buf)
    return pq.read_schema(pa.BufferReader(buf.getvalue()))


def rows_of(files):
    tables = [pq.read_table(f) for f in files]
    if not tables:
        return None, []
    return tables[0].schema, [plain(r) for t in tables for r in t.to_pylist()]


def destination(store, service):
    fs = store.get_feature_service(service)
    path = Path(fs.logging_config.destination.path)
    return path if path.is_absolute() else Path(store.repo_path) / path


def parquet_files(root):
    return {p for p in root.rglob("*.parquet")} if root.exists() else set()


def main():
    repo, mode = sys.argv[1], sys.argv[2]
    store = FeatureStore(repo_path=repo)
    if mode == "apply":
        fv = store.get_feature_view("driver_hourly_stats")
        store.apply(
            [
                FeatureService(
                    name="driver_logged_by_date",
                    features=[fv[["conv_rate", "acc_rate"]]],
                    logging_config=LoggingConfig(
                        destination=FileLoggingDestination(
                            path="data/logs_by_date", partition_by=["__log_date"]
                        )
                    ),
                )
            ]
        )
        print("{}")
        return
    service = sys.argv[3]
    if mode == "read":
        files_schema, rows = rows_of(sys.argv[4:])
        print(
            json.dumps(
                {
                    "schema": schema_json(log_schema(store, service)),
                    "stored_schema": schema_json(stored(log_schema(store, service))),
                    "files_schema": schema_json(files_schema) if files_schema else None,
                    "rows": rows,
                }
            )
        )
        return
    port = sys.argv[4]
    schema = log_schema(store, service)
    base = datetime(2026, 11, 30, 23, 59, 0, tzinfo=timezone.utc)
    rows = []
    for i in range(5):
        row = {}
        for f in schema:
            if f.name == "__log_timestamp":
                row[f.name] = base + timedelta(minutes=i)
            elif f.name == "__log_date":
                row[f.name] = (base + timedelta(minutes=i)).date()
            elif f.name == "__request_id":
                row[f.name] = f"req-{i // 2}"
            elif f.name.endswith("__timestamp"):
                row[f.name] = base - timedelta(hours=i)
            elif f.name.endswith("__status"):
                row[f.name] = 1 if i % 3 else 3
            elif pa.types.is_integer(f.type):
                row[f.name] = 1000 + i
            elif pa.types.is_floating(f.type):
                row[f.name] = None if i == 4 else i / 4
            else:
                row[f.name] = None
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=schema)
    root = destination(store, service)
    out = {}
    remote = FeatureStore(repo_path=repo, fs_yaml_file=remote_yaml(repo, offline_port=port))
    for name, s in [("feast", store), ("larder", remote)]:
        before = parquet_files(root)
        s.write_logged_features(logs=table, source=s.get_feature_service(service))
        new = sorted(parquet_files(root) - before)
        files_schema, got = rows_of(new)
        out[name] = {
            "dirs": sorted(str(p.parent.relative_to(root)) for p in new),
            "files_schema": schema_json(files_schema) if files_schema else None,
            "rows": got,
        }
        for p in new:
            p.unlink()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
