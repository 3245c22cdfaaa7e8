"""Randomized historical-retrieval cases, and their answers by a reference written in DuckDB SQL
from the canonical point-in-time semantics (spec §9.2).

  historical_case.py make DIR --seed N     a Feast repo (applied with the Feast SDK), its source
                                           data, an entity dataframe (Parquet and CSV) and
                                           DIR/requests.json
  historical_case.py reference DIR I OUT   request I's answer by DuckDB SQL, to OUT (Parquet)
  historical_case.py compare EXPECTED GOT  exit 1 with the first difference
  historical_case.py remote DIR PORT I OUT request I through the Feast SDK with
                                           `offline_store: remote` at 127.0.0.1:PORT, to OUT
  historical_case.py remote-pulls DIR PORT  feast materialize and pull_all through the server,
                                           against Feast's file store
  historical_case.py remote-write DIR PORT  write_to_offline_store through the server, then a
                                           retrieval sees the rows
  historical_case.py remote-persist DIR PORT [BUCKET]
                                           job.persist through the server (to S3 with
                                           BUCKET), read back
  historical_case.py remote-error DIR PORT print the exception class the SDK raises for an
                                           unknown view

The data is made to hit every rule: ties on the event time broken by the created time, rows
exactly at the ttl bound, keys without rows, entity rows before any row, duplicate entity rows,
null feature values, a field_mapping, a join_key_map through an aliased feature-service
projection, string and integer keys, ttl 0 (no lower bound).
"""

import json
import os
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone

DEFS = r'''
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    ttl=timedelta(seconds=__DRIVER_TTL__),
    schema=[Field(name="conv_rate", dtype=Float64), Field(name="trips", dtype=Int64)],
    source=FileSource(name="driver_src", path="data/driver.parquet",
                      timestamp_field="event_timestamp", created_timestamp_column="created",
                      field_mapping={"conv_raw": "conv_rate"}),
)

customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(seconds=__CUSTOMER_TTL__),
    schema=[Field(name="spend", dtype=Float64), Field(name="tier", dtype=String)],
    source=FileSource(name="customer_src", path="data/customer", timestamp_field="ts"),
)

training_out = FileSource(name="data/training.parquet", path="data/training.parquet",
                          timestamp_field="event_timestamp")

svc = FeatureService(
    name="svc",
    features=[
        driver_stats.with_name("ds")[["conv_rate"]],
        customer_profile.with_name("cp")[["tier", "spend"]],
        driver_stats.with_name("origin").with_join_key_map({"driver_id": "origin_id"})[["trips"]],
    ],
)
'''

YAML = """project: hist
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""

BASE = datetime(2024, 3, 1, tzinfo=timezone.utc)


def minutes(m):
    return BASE + timedelta(minutes=m)


# The order of the entity SQL query's rows (rows equal in it are equal in every column).
SQL_ORDER = "driver_id, event_timestamp, label"


def make(d, seed):
    import pandas as pd

    rnd = random.Random(seed)
    os.makedirs(os.path.join(d, "data", "customer"), exist_ok=True)
    driver_ttl = rnd.choice([0, 3 * 3600, 86400])
    customer_ttl = rnd.choice([0, 2 * 3600])
    with open(os.path.join(d, "feature_store.yaml"), "w") as f:
        f.write(YAML)
    with open(os.path.join(d, "definitions.py"), "w") as f:
        f.write(DEFS.replace("__DRIVER_TTL__", str(driver_ttl))
                .replace("__CUSTOMER_TTL__", str(customer_ttl)))

    span = 48 * 60
    drows, seen = [], set()
    for _ in range(600):
        k = rnd.randint(1, 30)
        ts = rnd.randrange(0, span, 15)  # coarse times: many ties on (key, ts)
        created = ts + rnd.randint(0, 600)
        if (k, ts, created) in seen:
            continue
        seen.add((k, ts, created))
        drows.append({
            "driver_id": k,
            "conv_raw": None if rnd.random() < 0.05 else round(rnd.random(), 6),
            "trips": None if rnd.random() < 0.05 else rnd.randint(0, 1000),
            "event_timestamp": minutes(ts),
            "created": minutes(created),
        })
    ddf = pd.DataFrame(drows)
    ddf["trips"] = ddf["trips"].astype("Int64")
    ddf.to_parquet(os.path.join(d, "data", "driver.parquet"), index=False)

    # The customer source is a directory of two files; (key, ts) is unique (no created column).
    crows, seen = [], set()
    for _ in range(400):
        k = f"c{rnd.randint(0, 19)}"
        ts = rnd.randrange(0, span, 10)
        if (k, ts) in seen:
            continue
        seen.add((k, ts))
        crows.append({"customer_id": k, "spend": round(rnd.uniform(0, 500), 3),
                      "tier": rnd.choice(["gold", "silver", None]), "ts": minutes(ts)})
    cdf = pd.DataFrame(crows)
    half = len(cdf) // 2
    cdf.iloc[:half].to_parquet(os.path.join(d, "data", "customer", "a.parquet"), index=False)
    cdf.iloc[half:].to_parquet(os.path.join(d, "data", "customer", "b.parquet"), index=False)

    erows = []
    for i in range(300):
        if i % 5 == 0 and drows:
            # Exactly at a row's time, or exactly at its ttl bound.
            r = rnd.choice(drows)
            t = r["event_timestamp"] + timedelta(seconds=rnd.choice([0, driver_ttl]))
        else:
            t = minutes(rnd.randrange(-120, span + 240))
        erows.append({"driver_id": rnd.randint(1, 34), "customer_id": f"c{rnd.randint(0, 23)}",
                      "origin_id": rnd.randint(1, 34), "event_timestamp": t,
                      "label": rnd.randint(0, 1)})
    erows += [dict(r) for r in rnd.sample(erows, 20)]  # duplicates
    rnd.shuffle(erows)
    edf = pd.DataFrame(erows)
    edf.to_parquet(os.path.join(d, "entity.parquet"), index=False)
    csv = edf.copy()
    csv["event_timestamp"] = csv["event_timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    csv.to_csv(os.path.join(d, "entity.csv"), index=False)

    requests = [
        {"entity": "entity.parquet", "full_feature_names": False,
         "features": ["driver_stats:conv_rate", "driver_stats:trips",
                      "customer_profile:spend", "customer_profile:tier"]},
        {"entity": "entity.csv", "full_feature_names": True,
         "features": ["customer_profile:tier", "driver_stats:trips"]},
        {"entity": "entity.parquet", "full_feature_names": True, "feature_service": "svc"},
        # Entity-less: every key with rows in the window, at its end.
        {"entityless": True, "start": minutes(rnd.randrange(0, span // 2)).isoformat(),
         "end": minutes(rnd.randrange(span // 2, span)).isoformat(), "full_feature_names": False,
         "features": ["driver_stats:conv_rate", "driver_stats:trips"]},
        # The entity rows as SQL over the repo's sources (Feast's entity_df as a string).
        {"entity_sql": "SELECT driver_id, event_timestamp + INTERVAL '20 minutes' AS "
                       "event_timestamp, trips AS label FROM driver_src WHERE trips % 3 = 0 "
                       f"ORDER BY {SQL_ORDER}",
         "full_feature_names": True,
         "features": ["driver_stats:conv_rate", "driver_stats:trips"]},
    ]
    with open(os.path.join(d, "requests.json"), "w") as f:
        json.dump(requests, f)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "feast"), "apply"], cwd=d,
                   check=True, env=env, stdout=subprocess.DEVNULL)


# What each view is to the reference: source (as DuckDB reads it), key, features, columns.
VIEWS = {
    "driver_stats": {
        "source": "SELECT driver_id, conv_raw AS conv_rate, trips, event_timestamp AS ts, "
                  "created FROM read_parquet('{d}/data/driver.parquet')",
        "key": "driver_id", "created": True, "ttl": "DRIVER",
    },
    "customer_profile": {
        "source": "SELECT customer_id, spend, tier, ts, NULL::TIMESTAMPTZ AS created "
                  "FROM read_parquet('{d}/data/customer/*.parquet')",
        "key": "customer_id", "created": False, "ttl": "CUSTOMER",
    },
}

SERVICES = {
    "svc": [("driver_stats", "ds", ["conv_rate"], {}),
            ("customer_profile", "cp", ["tier", "spend"], {}),
            ("driver_stats", "origin", ["trips"], {"driver_id": "origin_id"})],
}


def ttls(d):
    text = open(os.path.join(d, "definitions.py")).read()
    out = {}
    for name, var in (("DRIVER", "driver_stats"), ("CUSTOMER", "customer_profile")):
        block = text[text.index(f'name="{var}"'):]
        out[name] = int(block[block.index("seconds=") + 8:].split(")")[0])
    return out


def reference(d, i, out):
    import duckdb

    req = json.load(open(os.path.join(d, "requests.json")))[i]
    ttl = ttls(d)
    if "feature_service" in req:
        projections = SERVICES[req["feature_service"]]
    else:
        projections, order = [], []
        for r in req["features"]:
            v, f = r.split(":")
            if v not in order:
                order.append(v)
                projections.append((v, None, [], {}))
            projections[order.index(v)][2].append(f)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if req.get("entityless"):
        (v, _, feats, _), = projections
        spec = VIEWS[v]
        seconds = ttl[spec["ttl"]]
        end = f"TIMESTAMPTZ '{req['end']}'"
        lo = f"TIMESTAMPTZ '{req['start']}'"
        if seconds:
            lo = f"greatest({lo}, {end} - INTERVAL {seconds} SECOND)"
        cols = ", ".join(feats)
        con.execute(f"""COPY (
            SELECT {spec['key']}, {end} AS event_timestamp, {cols} FROM (
              SELECT *, row_number() OVER (PARTITION BY {spec['key']}
                                           ORDER BY ts DESC, created DESC NULLS LAST) AS rn
              FROM ({spec['source'].format(d=d)}) WHERE ts >= {lo} AND ts <= {end})
            WHERE rn = 1 ORDER BY {spec['key']}) TO '{out}' (FORMAT parquet)""")
        return
    if "entity_sql" in req:
        # The same query over the source file, its rows numbered in the query's order.
        sql = req["entity_sql"].replace("driver_src", f"read_parquet('{d}/data/driver.parquet')")
        sql = sql[:sql.index(" ORDER BY")]
        con.execute(f"CREATE TABLE e AS SELECT *, row_number() OVER (ORDER BY {SQL_ORDER}) "
                    f"AS __row FROM ({sql})")
    elif req["entity"].endswith(".csv"):
        path = os.path.join(d, req["entity"])
        con.execute(f"CREATE TABLE e AS SELECT *, row_number() OVER () AS __row FROM "
                    f"read_csv('{path}', header = true)")
        con.execute("ALTER TABLE e ALTER event_timestamp TYPE TIMESTAMPTZ "
                    "USING event_timestamp::TIMESTAMP AT TIME ZONE 'UTC'")
    else:
        path = os.path.join(d, req["entity"])
        con.execute(f"CREATE TABLE e AS SELECT *, row_number() OVER () AS __row FROM "
                    f"read_parquet('{path}')")
    entity_cols = [c[0] for c in con.execute("DESCRIBE e").fetchall() if c[0] != "__row"]
    selects, joins = [], []
    for j, (v, alias, feats, jkm) in enumerate(projections):
        spec = VIEWS[v]
        key = spec["key"]
        ecol = jkm.get(key, key)
        seconds = ttl[spec["ttl"]]
        window = f"AND f.ts >= e.event_timestamp - INTERVAL {seconds} SECOND" if seconds else ""
        src = spec["source"].format(d=d)
        cols = ", ".join(f"f.{f}" for f in feats)
        con.execute(f"""
            CREATE TABLE m{j} AS SELECT * FROM (
              SELECT e.__row, {cols},
                     row_number() OVER (PARTITION BY e.__row
                                        ORDER BY f.ts DESC, f.created DESC NULLS LAST) AS rn
              FROM e JOIN ({src}) f
                ON f.{key} = e.{ecol} AND f.ts <= e.event_timestamp {window}
            ) WHERE rn = 1""")
        name = alias or v
        for f in feats:
            out_name = f"{name}__{f}" if req["full_feature_names"] else f
            selects.append(f'm{j}.{f} AS "{out_name}"')
        joins.append(f"LEFT JOIN m{j} ON m{j}.__row = e.__row")
    sql = (f"SELECT {', '.join('e.' + c for c in entity_cols)}, {', '.join(selects)} FROM e "
           f"{' '.join(joins)} ORDER BY e.__row")
    con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")


def remote_store(d, port):
    """A copy of the repo's configuration that points the offline store at the server (and
    the online store at a SQLite file of its own). PORT may be `PORT:CERT`: grpc+tls, trusting
    the certificate CERT."""
    from feast import FeatureStore

    port, _, cert = str(port).partition(":")
    tls = f"\n  scheme: https\n  cert: {cert}" if cert else ""
    r = os.path.join(d, "remote")
    os.makedirs(r, exist_ok=True)
    with open(os.path.join(r, "feature_store.yaml"), "w") as f:
        f.write(YAML.replace("registry: data/registry.db", f"registry: {d}/data/registry.db")
                .replace("path: data/online.db", f"path: {r}/online.db")
                .replace("  type: file",
                         f"  type: remote\n  host: 127.0.0.1\n  port: {port}{tls}"))
    return FeatureStore(repo_path=r)


def remote(d, port, i, out):
    import pandas as pd
    import pyarrow.parquet as pq

    store = remote_store(d, port)
    req = json.load(open(os.path.join(d, "requests.json")))[i]
    if req.get("entityless"):
        job = store.get_historical_features(
            features=req["features"], full_feature_names=req["full_feature_names"],
            start_date=datetime.fromisoformat(req["start"]),
            end_date=datetime.fromisoformat(req["end"]))
        pq.write_table(job.to_arrow(), out)
        return
    if "entity_sql" in req:
        job = store.get_historical_features(entity_df=req["entity_sql"], features=req["features"],
                                            full_feature_names=req["full_feature_names"])
        pq.write_table(job.to_arrow(), out)
        return
    path = os.path.join(d, req["entity"])
    entity = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(
        path, parse_dates=["event_timestamp"])
    if "feature_service" in req:
        features = store.get_feature_service(req["feature_service"])
    else:
        features = req["features"]
    job = store.get_historical_features(entity_df=entity, features=features,
                                        full_feature_names=req["full_feature_names"])
    pq.write_table(job.to_arrow(), out)


def remote_write(d, port):
    """write_to_offline_store through the server (offline_write_batch), then a retrieval through
    it sees the rows, in a directory source and in a single-file source."""
    import pandas as pd

    store = remote_store(d, port)
    when = BASE + timedelta(days=5)
    rows = pd.DataFrame({"customer_id": ["c99", "c98"], "spend": [12.5, 7.25],
                         "tier": ["gold", None],
                         "ts": pd.to_datetime([when, when - timedelta(hours=1)], utc=True)})
    store.write_to_offline_store("customer_profile", rows)
    entity = pd.DataFrame({"customer_id": ["c99", "c98", "c99"],
                           "event_timestamp": pd.to_datetime(
                               [when, when, when - timedelta(minutes=1)], utc=True)})
    got = store.get_historical_features(
        entity_df=entity, features=["customer_profile:spend", "customer_profile:tier"]
    ).to_arrow().to_pydict()
    want = {"spend": [12.5, 7.25, None], "tier": ["gold", None, None]}
    if {k: got[k] for k in want} != want:
        sys.exit(f"written rows not seen: {got}")
    # A single-file source takes the rows too (rewritten in place), as Feast's file store does.
    store.write_to_offline_store("driver_stats", pd.DataFrame({
        "driver_id": [1], "conv_raw": [0.5], "trips": [3],
        "event_timestamp": pd.to_datetime([when], utc=True),
        "created": pd.to_datetime([when], utc=True)}))
    got = store.get_historical_features(
        entity_df=pd.DataFrame({"driver_id": [1], "event_timestamp": pd.to_datetime([when], utc=True)}),
        features=["driver_stats:trips"],
    ).to_arrow().to_pydict()
    if got["trips"] != [3]:
        sys.exit(f"rows written to a single-file source not seen: {got}")
    print("written rows retrieved, in a directory source and in a single-file source")


def remote_persist(d, port, bucket=None):
    """job.persist(...) through the server writes the retrieval's answer to the registered
    destination, which reads back equal to the job's own to_arrow(); a second persist without
    allow_overwrite is refused with Feast's exception. With BUCKET the destination is
    s3://BUCKET/saved/training.parquet at $FEAST_S3_ENDPOINT_URL, registered as a data source
    first (Feast's server looks destinations up by name)."""
    import io

    import pandas as pd
    import pyarrow.parquet as pq
    from feast.infra.offline_stores.file_source import SavedDatasetFileStorage

    if bucket:
        import boto3
        from feast import FeatureStore, FileSource

        endpoint = os.environ["FEAST_S3_ENDPOINT_URL"]
        path = f"s3://{bucket}/saved/training.parquet"
        FeatureStore(repo_path=d).apply([FileSource(
            name=path, path=path, s3_endpoint_override=endpoint,
            timestamp_field="event_timestamp")])
        storage = SavedDatasetFileStorage(path=path, s3_endpoint_override=endpoint)
        s3 = boto3.client("s3", endpoint_url=endpoint)

        def read():
            body = s3.get_object(Bucket=bucket, Key="saved/training.parquet")["Body"].read()
            return pq.read_table(io.BytesIO(body))
    else:
        storage = SavedDatasetFileStorage(path="data/training.parquet")

        def read():
            return pq.read_table(os.path.join(d, "data", "training.parquet"))

    store = remote_store(d, port)
    entity = pd.read_parquet(os.path.join(d, "entity.parquet"))
    job = store.get_historical_features(entity_df=entity, features=[
        "driver_stats:conv_rate", "customer_profile:tier"])
    job.persist(storage)
    written = read()
    answer = job.to_arrow()
    if written.to_pydict() != answer.to_pydict():
        sys.exit("the persisted file differs from the retrieval")
    try:
        job.persist(storage)
    except Exception as e:
        if type(e).__name__ != "SavedDatasetLocationAlreadyExists":
            sys.exit(f"unexpected error: {type(e).__name__}: {e}")
    else:
        sys.exit("a second persist without allow_overwrite was not refused")
    job.persist(storage, allow_overwrite=True)
    print(f"persisted {written.num_rows} rows; overwrite refused, then allowed")


def remote_error(d, port):
    import pandas as pd

    store = remote_store(d, port)
    entity = pd.read_parquet(os.path.join(d, "entity.parquet"))
    try:
        store.get_historical_features(entity_df=entity, features=["nope:x"]).to_arrow()
    except Exception as e:
        print(f"{type(e).__module__}.{type(e).__name__}: {e}")
    else:
        sys.exit("no error raised")


def remote_pulls(d, port):
    """`feast materialize` through the remote offline store (the server's
    pull_latest_from_table_or_query) and through Feast's own file store give the same online
    values; pull_all_from_table_or_query gives the file store's rows. Both APIs name the
    source's own columns (conv_raw, before the field_mapping)."""
    import pyarrow.compute as pc
    from feast import FeatureStore
    from feast.infra.offline_stores.dask import DaskOfflineStore as FileOfflineStore
    from feast.infra.offline_stores.remote import RemoteOfflineStore

    import shutil

    remote, local = remote_store(d, port), FeatureStore(repo_path=d)
    # The remote copy's online store gets the tables `feast apply` made (still empty).
    shutil.copy(os.path.join(d, "data", "online.db"), os.path.join(d, "remote", "online.db"))
    start, end = BASE - timedelta(days=1), BASE + timedelta(days=3)
    for store in (remote, local):
        store.materialize(start_date=start, end_date=end)
    rows = [{"driver_id": i, "customer_id": f"c{i % 23}"} for i in range(0, 35)]
    refs = ["driver_stats:conv_rate", "driver_stats:trips", "customer_profile:spend",
            "customer_profile:tier"]
    got = remote.get_online_features(features=refs, entity_rows=rows).to_dict()
    want = local.get_online_features(features=refs, entity_rows=rows).to_dict()
    if got != want:
        sys.exit(f"online values differ:\n remote {got}\n local {want}")
    source = local.get_data_source("driver_src")
    args = dict(data_source=source, join_key_columns=["driver_id"],
                feature_name_columns=["conv_raw", "trips"], timestamp_field="event_timestamp",
                created_timestamp_column="created", start_date=BASE + timedelta(hours=6),
                end_date=BASE + timedelta(hours=30))
    got = RemoteOfflineStore.pull_all_from_table_or_query(config=remote.config, **args).to_arrow()
    want = FileOfflineStore.pull_all_from_table_or_query(config=local.config, **args).to_arrow()
    order = [("driver_id", "ascending"), ("event_timestamp", "ascending"),
             ("created", "ascending")]
    cols = ["driver_id", "conv_raw", "trips", "event_timestamp", "created"]
    g = got.select(cols).sort_by(order)
    w = want.select(cols).sort_by(order)
    gl = {c: [x for x in g.column(c).to_pylist()] for c in cols}
    wl = {c: [x for x in w.column(c).to_pylist()] for c in cols}
    if gl != wl or g.num_rows == 0:
        sys.exit(f"pull_all differs: {g.num_rows} rows vs {w.num_rows}")
    for name in ("driver_src", "customer_src"):
        source = local.get_data_source(name)
        got = RemoteOfflineStore().get_table_column_names_and_types_from_data_source(
            remote.config, source)
        want = source.get_table_column_names_and_types(local.config)
        if list(got) != list(want):
            sys.exit(f"{name}: columns differ: {list(got)} vs {list(want)}")
    # validate_data_source passes for a readable source and, as Feast's file source validates
    # (warnings only), for a path that does not exist.
    from feast import FileSource
    RemoteOfflineStore().validate_data_source(remote.config, local.get_data_source("driver_src"))
    RemoteOfflineStore().validate_data_source(
        remote.config, FileSource(name="nowhere", path="data/nowhere.parquet",
                                  timestamp_field="ts"))
    print(f"materialized online values equal for {len(rows)} entities; pull_all {g.num_rows} "
          "rows equal; source columns and types equal; sources validated")


def values(table, name):
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(name)
    if pa.types.is_timestamp(col.type):
        col = pc.cast(col, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return col.to_pylist()


def compare(expected, got):
    import pyarrow.parquet as pq

    e, g = pq.read_table(expected), pq.read_table(got)
    if e.column_names != g.column_names:
        sys.exit(f"columns differ: expected {e.column_names}, got {g.column_names}")
    if e.num_rows != g.num_rows:
        sys.exit(f"rows differ: expected {e.num_rows}, got {g.num_rows}")
    for name in e.column_names:
        ev, gv = values(e, name), values(g, name)
        for i, (a, b) in enumerate(zip(ev, gv)):
            if a != b and not (isinstance(a, float) and isinstance(b, float) and abs(a - b) < 1e-9):
                sys.exit(f"row {i} column {name}: expected {a!r}, got {b!r}")
    print(f"{e.num_rows} rows x {len(e.column_names)} columns equal")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], int(sys.argv[4]))
    elif cmd == "reference":
        reference(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3])
    elif cmd == "remote":
        remote(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif cmd == "remote-pulls":
        remote_pulls(sys.argv[2], sys.argv[3])
    elif cmd == "remote-persist":
        remote_persist(sys.argv[2], sys.argv[3], *sys.argv[4:5])
    elif cmd == "remote-write":
        remote_write(sys.argv[2], sys.argv[3])
    elif cmd == "remote-error":
        remote_error(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
