//! `larder materialize` must write what `feast materialize` writes: the same SQLite rows and
//! the same Redis keys, hash fields and value bytes, for the same repo and range; and Feast
//! must continue incrementally from the interval Larder recorded in the registry.
//!
//! Documented differences are normalized: Feast writes the members of a set feature and the
//! entries of a Map/Struct value in an order that changes from process to process (Python
//! `set` iteration); Larder writes set members in source order and map entries in key order.

use std::{collections::BTreeMap, path::Path, process::Command};

use larder_online::testkit::Servers;
use larder_protos::feast::types::{Value, value::Val};
use prost::Message;

use crate::support::{Oracle, copy_dir, larder, stdout_ok};

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

/// Value bytes with set members and map entries sorted (see the module docs).
fn normalized(bytes: &[u8]) -> Vec<u8> {
    let Ok(mut v) = Value::decode(bytes) else {
        return bytes.to_vec();
    };
    match &mut v.val {
        Some(Val::StringSetVal(s)) => s.val.sort(),
        Some(Val::Int64SetVal(s)) | Some(Val::UnixTimestampSetVal(s)) => s.val.sort(),
        Some(Val::Int32SetVal(s)) => s.val.sort(),
        Some(Val::BytesSetVal(s)) => s.val.sort(),
        // Re-encoding writes map entries in key order (the maps are BTreeMaps).
        Some(Val::MapVal(_)) | Some(Val::StructVal(_)) => {}
        _ => return bytes.to_vec(),
    }
    v.encode_to_vec()
}

/// Two copies of one applied oracle repo: `a` for Feast, `b` for Larder.
fn applied_pair(
    oracle: &Oracle,
    dir: &Path,
    online_a: Option<&str>,
    online_b: Option<&str>,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let a = dir.join("a");
    let mut extra = vec!["--for-serving"];
    if let Some(o) = online_a {
        extra.extend(["--online", o]);
    }
    oracle.make_repo(&a, "mat", "data/registry.db", &extra);
    oracle.feast(&a, &["apply"], &[]);
    let b = dir.join("b");
    copy_dir(&a, &b);
    if let (Some(from), Some(to)) = (online_a, online_b) {
        let yaml = b.join("feature_store.yaml");
        let text = std::fs::read_to_string(&yaml).unwrap().replace(from, to);
        std::fs::write(yaml, text).unwrap();
    }
    (a, b)
}

const RANGE: [&str; 2] = ["2026-11-25T00:00:00", "2026-11-29T00:00:00"];

fn materialize_both(oracle: &Oracle, a: &Path, b: &Path) {
    oracle.feast(a, &["materialize", RANGE[0], RANGE[1]], &[]);
    stdout_ok(
        larder(b, &["materialize", RANGE[0], RANGE[1]], &[]),
        "larder materialize",
    );
}

/// A row as the script prints it: key, feature, value (hex), value_text, event_ts, created_ts.
type HexRow = (
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

type Rows = Vec<(
    Vec<u8>,
    String,
    Vec<u8>,
    Option<String>,
    Option<i64>,
    Option<i64>,
)>;

/// A view as `feast registry-dump` shows it.
fn feast_view(oracle: &Oracle, repo: &Path, env: &[(&str, &str)], view: &str) -> serde_json::Value {
    let dump: serde_json::Value =
        serde_json::from_str(&oracle.feast(repo, &["registry-dump"], env)).unwrap();
    dump["featureViews"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["spec"]["name"] == view)
        .cloned()
        .unwrap_or_else(|| panic!("no view {view} in feast's dump"))
}

/// Every table's rows, read through the python3 standard library.
fn sqlite_rows(db: &Path) -> BTreeMap<String, Rows> {
    {
        let script = r#"
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
out = {}
for (t,) in c.execute("select name from sqlite_master where type='table' order by name"):
    rows = c.execute(f'select entity_key, feature_name, value, value_text, event_ts, created_ts from "{t}" order by entity_key, feature_name').fetchall()
    out[t] = [[r[0].hex(), r[1], r[2].hex(), r[3], r[4], r[5]] for r in rows]
print(json.dumps(out))
"#;
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(db)
            .output()
            .unwrap();
        let out = stdout_ok(out, "reading the SQLite store");
        let doc: BTreeMap<String, Vec<HexRow>> = serde_json::from_str(&out).unwrap();
        doc.into_iter()
            .map(|(t, rows)| {
                let rows = rows
                    .into_iter()
                    .map(|(k, f, v, text, ev, cr)| {
                        (unhex(&k), f, normalized(&unhex(&v)), text, ev, cr)
                    })
                    .collect();
                (t, rows)
            })
            .collect()
    }
}

#[test]
fn materialize_writes_what_feast_writes_to_sqlite() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = applied_pair(&oracle, dir.path(), None, None);
    materialize_both(&oracle, &a, &b);
    let feast = sqlite_rows(&a.join("data/online.db"));
    let ours = sqlite_rows(&b.join("data/online.db"));
    assert_eq!(
        feast.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>()
    );
    let mut total = 0;
    for (table, rows) in &feast {
        assert!(!rows.is_empty(), "feast wrote no rows to {table}");
        total += rows.len();
        assert_eq!(
            rows.len(),
            ours[table].len(),
            "table {table}: row counts differ"
        );
        for (f, l) in rows.iter().zip(&ours[table]) {
            assert_eq!(f, l, "table {table}: feast row != larder row");
        }
    }
    assert!(total > 50, "only {total} rows compared");

    // Feast continues from the interval Larder recorded, and reads Larder's registry.
    let out = Command::new(oracle.bin.join("feast"))
        .current_dir(&b)
        .args(["materialize-incremental", "2026-11-30T00:00:00"])
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("2026-11-29 00:00:00"),
        "feast did not start from larder's end:\n{text}"
    );
    let fv = feast_view(&oracle, &b, &[], "driver_hourly_stats");
    let intervals = fv["meta"]["materializationIntervals"].as_array().unwrap();
    assert_eq!(intervals[0]["startTime"], "2026-11-25T00:00:00Z", "{fv}");
    assert_eq!(intervals[0]["endTime"], "2026-11-29T00:00:00Z", "{fv}");
}

fn redis_dump(port: u16) -> BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>> {
    let script = r#"
import json, socket, sys
import redis
r = redis.Redis(port=int(sys.argv[1]))
out = {}
for k in r.scan_iter(count=1000):
    out[k.hex()] = {f.hex(): v.hex() for f, v in r.hgetall(k).items()}
print(json.dumps(out))
"#;
    let oracle = Oracle::get();
    let out = Command::new(oracle.bin.join("python"))
        .args(["-c", script, &port.to_string()])
        .output()
        .unwrap();
    let out = stdout_ok(out, "reading redis");
    let doc: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_str(&out).unwrap();
    doc.into_iter()
        .map(|(k, fields)| {
            let fields = fields
                .into_iter()
                .map(|(f, v)| {
                    let f = unhex(&f);
                    let v = if f.starts_with(b"_ts:") {
                        unhex(&v)
                    } else {
                        normalized(&unhex(&v))
                    };
                    (f, v)
                })
                .collect();
            (unhex(&k), fields)
        })
        .collect()
}

#[test]
fn materialize_writes_what_feast_writes_to_redis() {
    let oracle = Oracle::get();
    let (_ra, port_a) = Servers::standalone();
    let (_rb, port_b) = Servers::standalone();
    let dir = tempfile::tempdir().unwrap();
    let conn = |p: u16| format!("{{type: redis, connection_string: '127.0.0.1:{p}'}}");
    let (a, b) = applied_pair(
        &oracle,
        dir.path(),
        Some(&conn(port_a)),
        Some(&conn(port_b)),
    );
    materialize_both(&oracle, &a, &b);
    let feast = redis_dump(port_a);
    let ours = redis_dump(port_b);
    assert!(feast.len() > 20, "feast wrote {} keys", feast.len());
    assert_eq!(
        feast.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>(),
        "key sets differ"
    );
    for (k, fields) in &feast {
        assert_eq!(fields, &ours[k], "hash {k:02x?} differs");
    }
}

/// Parquet sources in S3 (moto): Feast (through s3fs) and Larder materialize the same objects
/// and write the same rows; Larder's registry is PostgreSQL's SQL registry, and Feast reads
/// the intervals Larder recorded there.
#[test]
fn materialize_from_s3_sources_into_a_sql_registry() {
    let s3 = crate::support::S3::get();
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("mat-{}", std::process::id());
    let env = s3.env();
    let prefix = format!("s3://{bucket}/data");
    // Larder: sources in S3, SQL registry.
    let db = format!("larder_mat_{}", std::process::id());
    crate::oracle_registry::psql(&format!("DROP DATABASE IF EXISTS {db}"));
    crate::oracle_registry::psql(&format!("CREATE DATABASE {db}"));
    let registry = format!(
        "{{registry_type: sql, path: 'postgresql+psycopg2://postgres@127.0.0.1:5432/{db}'}}"
    );
    let b = dir.path().join("b");
    oracle.make_repo_with_env(
        &b,
        "mat",
        &registry,
        &["--for-serving", "--source-prefix", &prefix],
        &env,
    );
    oracle.python(
        &format!(
            "import boto3,os,glob\n\
             s3 = boto3.client('s3', endpoint_url=os.environ['FEAST_S3_ENDPOINT_URL'])\n\
             s3.create_bucket(Bucket='{bucket}')\n\
             for f in glob.glob('{}/data/*.parquet'):\n    s3.upload_file(f, '{bucket}', 'data/' + os.path.basename(f))",
            b.display()
        ),
        &env,
    );
    oracle.feast(&b, &["apply", "--skip-source-validation"], &env);
    stdout_ok(
        larder(&b, &["materialize", RANGE[0], RANGE[1]], &env),
        "larder materialize from s3",
    );
    // Feast: the same repo definitions and the same objects, its own file registry.
    let a = dir.path().join("a");
    oracle.make_repo_with_env(
        &a,
        "mat",
        "data/registry.db",
        &["--for-serving", "--source-prefix", &prefix],
        &env,
    );
    oracle.feast(&a, &["apply", "--skip-source-validation"], &env);
    oracle.feast(&a, &["materialize", RANGE[0], RANGE[1]], &env);
    let feast = sqlite_rows(&a.join("data/online.db"));
    let ours = sqlite_rows(&b.join("data/online.db"));
    assert_eq!(
        feast.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &feast {
        assert!(!rows.is_empty(), "{table}");
        assert_eq!(rows, &ours[table], "table {table} differs");
    }
    let fv = feast_view(&oracle, &b, &env, "all_types");
    assert_eq!(
        fv["meta"]["materializationIntervals"][0]["endTime"], "2026-11-29T00:00:00Z",
        "{fv}"
    );
    crate::oracle_registry::psql(&format!("DROP DATABASE IF EXISTS {db}"));
}

/// An S3 registry: the interval lands in the object, through a conditional put.
#[test]
fn materialize_records_intervals_in_an_s3_registry() {
    let s3 = crate::support::S3::get();
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("matreg-{}", std::process::id());
    let env = s3.env();
    s3.create_bucket(&oracle, &bucket);
    let repo = dir.path().join("r");
    oracle.make_repo(
        &repo,
        "mat",
        &format!("s3://{bucket}/registry.pb"),
        &["--for-serving"],
    );
    oracle.feast(&repo, &["apply"], &env);
    stdout_ok(
        larder(
            &repo,
            &[
                "materialize",
                RANGE[0],
                RANGE[1],
                "-v",
                "driver_hourly_stats",
            ],
            &env,
        ),
        "larder materialize",
    );
    let fv = feast_view(&oracle, &repo, &env, "driver_hourly_stats");
    assert_eq!(
        fv["meta"]["materializationIntervals"][0]["startTime"], "2026-11-25T00:00:00Z",
        "{fv}"
    );
    let other = feast_view(&oracle, &repo, &env, "all_types");
    assert!(
        other["meta"].get("materializationIntervals").is_none(),
        "only the named view changes: {other}"
    );
}

/// `POST /push` (online) and `POST /write-to-online-store` on `larder serve` write the same
/// SQLite rows as the Feast SDK's `push` and `write_to_online_store` with the same rows.
#[test]
fn push_and_write_match_the_feast_sdk() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = applied_pair(&oracle, dir.path(), None, None);
    let trips = r#"{"driver_id": [4242, 4243], "customer_id": ["cx", "cy"], "event_timestamp": ["2026-11-28T09:00:00+00:00", "2026-11-28T09:30:00+00:00"], "created": ["2026-11-28T09:00:01+00:00", "2026-11-28T09:30:01+00:00"], "trips": [3, 4], "fare": [12.5, 7.25]}"#;
    let stats = r#"{"driver_id": [5555], "event_timestamp": ["2026-11-28T10:00:00+00:00"], "created": ["2026-11-28T10:00:00+00:00"], "conv_rate": [0.5], "acc_rate": [0.25], "avg_daily_trips": [146], "rating": [4.5]}"#;
    oracle.python(
        &format!(
            r#"
import pandas as pd, json, os, sys
sys.path.insert(0, "{0}")
os.chdir("{0}")
from feast import FeatureStore
from feast.data_source import PushMode
s = FeatureStore(repo_path="{0}")
def df(j):
    d = pd.DataFrame(json.loads(j))
    for c in ("event_timestamp", "created"):
        d[c] = pd.to_datetime(d[c], utc=True)
    return d
s.push("trip_push", df('{trips}'), to=PushMode.ONLINE)
s.write_to_online_store("driver_hourly_stats", df('{stats}'))
"#,
            a.display()
        ),
        &[],
    );
    let server = crate::oracle_serving::larder_serve(&b);
    let post = |path: &str, body: String| {
        crate::oracle_serving::post(
            &format!("{}{path}", server.url),
            &serde_json::from_str(&body).unwrap(),
        )
    };
    let (code, body) = post(
        "/push",
        format!(r#"{{"push_source_name": "trip_push", "df": {trips}, "to": "online"}}"#),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(
        "/write-to-online-store",
        format!(r#"{{"feature_view_name": "driver_hourly_stats", "df": {stats}}}"#),
    );
    assert_eq!((code, body.as_str()), (200, "null"));
    let (code, body) = post(
        "/push",
        format!(r#"{{"push_source_name": "nope", "df": {trips}}}"#),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("PushSourceNotFoundException"), "{body}");
    let (code, body) = post(
        "/push",
        format!(r#"{{"push_source_name": "trip_push", "df": {trips}, "to": "sideways"}}"#),
    );
    assert_eq!(code, 400, "{body}");
    drop(server);
    let feast = sqlite_rows(&a.join("data/online.db"));
    let ours = sqlite_rows(&b.join("data/online.db"));
    for table in ["mat_driver_customer_trips", "mat_driver_hourly_stats"] {
        assert!(!feast[table].is_empty(), "{table}");
        assert_eq!(feast[table], ours[table], "table {table} differs");
    }
}

/// Moves an unapplied oracle repo's trips into `data/trips/` and points the source there (the
/// layout offline pushes append to).
fn trips_in_a_directory(repo: &Path) {
    std::fs::create_dir(repo.join("data/trips")).unwrap();
    std::fs::rename(
        repo.join("data/trips.parquet"),
        repo.join("data/trips/part-0.parquet"),
    )
    .unwrap();
    let defs = repo.join("features.py");
    let text = std::fs::read_to_string(&defs)
        .unwrap()
        .replace(r#"path="data/trips.parquet""#, r#"path="data/trips""#);
    std::fs::write(&defs, text).unwrap();
}

/// `POST {url}/push` of `df` to the offline store of the `trip_push` source.
fn push_offline(url: &str, df: &str) -> (u16, String) {
    crate::oracle_serving::post(
        &format!("{url}/push"),
        &serde_json::from_str(&format!(
            r#"{{"push_source_name": "trip_push", "df": {df}, "to": "offline"}}"#
        ))
        .unwrap(),
    )
}

/// `POST /push` with `to: offline` appends one new Parquet file to a directory source: the rows
/// Feast then reads are the rows the Feast SDK's offline push writes into a single-file source
/// (same columns, same Arrow types, same values), existing files stay byte-identical, and
/// `feast materialize` over both sources fills identical online stores. A single-file source is
/// rewritten with the pushed rows (Feast's rows exactly); pushed columns must match the source's.
#[test]
fn push_to_offline_appends_a_file_feast_reads() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    // One generated repo, two copies applied separately (Feast's infra records absolute
    // paths: re-applying a copy of an applied repo would drop the original's tables).
    let a = dir.path().join("a");
    oracle.make_repo(&a, "mat", "data/registry.db", &["--for-serving"]);
    let b = dir.path().join("b");
    copy_dir(&a, &b);
    oracle.feast(&a, &["apply"], &[]);
    // Larder's copy keeps the trips in a directory (the layout appends need).
    trips_in_a_directory(&b);
    oracle.feast(&b, &["apply"], &[]);
    let original = std::fs::read(b.join("data/trips/part-0.parquet")).unwrap();

    let trips = r#"{"driver_id": [4242, 1000], "customer_id": ["cx", "c0"], "event_timestamp": ["2026-11-28T09:00:00+00:00", "2026-11-28T23:30:00"], "created": ["2026-11-28T09:00:01+00:00", "2026-11-28T23:30:01+00:00"], "trips": [3, 9], "fare": [12.5, 7.25]}"#;
    oracle.python(
        &format!(
            r#"
import pandas as pd, json, os, sys
sys.path.insert(0, "{0}")
os.chdir("{0}")
from feast import FeatureStore
from feast.data_source import PushMode
d = pd.DataFrame(json.loads('{trips}'))
for c in ("event_timestamp", "created"):
    d[c] = pd.to_datetime(d[c], utc=True, format="ISO8601")
FeatureStore(repo_path="{0}").push("trip_push", d, to=PushMode.OFFLINE)
"#,
            a.display()
        ),
        &[],
    );

    let server = crate::oracle_serving::larder_serve(&b);
    let post = |body: String| {
        crate::oracle_serving::post(
            &format!("{}/push", server.url),
            &serde_json::from_str(&body).unwrap(),
        )
    };
    let (code, body) = post(format!(
        r#"{{"push_source_name": "trip_push", "df": {trips}, "to": "online_and_offline"}}"#
    ));
    assert_eq!(code, 200, "{body}");
    let short = r#"{"driver_id": [1], "customer_id": ["c"], "event_timestamp": ["2026-11-28T09:00:00"], "created": ["2026-11-28T09:00:00"], "trips": [1], "tips": [1.0]}"#;
    let (code, body) = post(format!(
        r#"{{"push_source_name": "trip_push", "df": {short}, "to": "offline"}}"#
    ));
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains(r#"missing [\"fare\"]"#) && body.contains(r#"unexpected [\"tips\"]"#),
        "{body}"
    );
    let bad = trips.replace("[3, 9]", r#"[3, "nine"]"#);
    let (code, body) = post(format!(
        r#"{{"push_source_name": "trip_push", "df": {bad}, "to": "offline"}}"#
    ));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("column trips"), "{body}");
    drop(server);
    assert_eq!(
        std::fs::read(b.join("data/trips/part-0.parquet")).unwrap(),
        original,
        "the existing file is untouched"
    );
    let files = std::fs::read_dir(b.join("data/trips")).unwrap().count();
    assert_eq!(files, 2, "one new file; refused pushes wrote nothing");

    // The offline data as pyarrow reads it: same schema, same rows.
    let compare = oracle.python(
        &format!(
            r#"
import json, pyarrow.parquet as pq
def rows(path):
    t = pq.read_table(path)
    schema = [(f.name, str(f.type)) for f in t.schema if not f.name.startswith("__index_level_")]
    cols = [n for n, _ in schema]
    rs = sorted(json.dumps(r, sort_keys=True, default=str) for r in t.select(cols).to_pylist())
    return schema, rs
print(json.dumps({{"feast": rows("{0}/data/trips.parquet"), "larder": rows("{1}/data/trips")}}))
"#,
            a.display(),
            b.display()
        ),
        &[],
    );
    let both: serde_json::Value = serde_json::from_str(compare.trim()).unwrap();
    assert_eq!(both["feast"][0], both["larder"][0], "schemas differ");
    assert_eq!(both["feast"][1], both["larder"][1], "rows differ");
    assert!(
        both["larder"][1].to_string().contains("4242"),
        "the pushed rows are there"
    );

    // Feast materializes both sources into the same online rows.
    oracle.feast(&a, &["materialize", RANGE[0], RANGE[1]], &[]);
    oracle.feast(&b, &["materialize", RANGE[0], RANGE[1]], &[]);
    let feast = sqlite_rows(&a.join("data/online.db"));
    let ours = sqlite_rows(&b.join("data/online.db"));
    let table = "mat_driver_customer_trips";
    assert!(!feast[table].is_empty());
    assert_eq!(feast[table], ours[table], "table {table} differs");

    // Feast's single-file source (which already holds the rows Feast's push wrote): rewritten
    // in place with the same rows pushed through Larder, which are Feast's rows exactly (the
    // distinct rows stay the same, two more rows), no other file left.
    let rows = |path: &Path| -> serde_json::Value {
        let out = oracle.python(
            &format!(
                r#"
import json, pyarrow.parquet as pq
t = pq.read_table("{}")
cols = [f.name for f in t.schema if not f.name.startswith("__index_level_")]
rs = [json.dumps(r, sort_keys=True, default=str) for r in t.select(cols).to_pylist()]
print(json.dumps({{"n": len(rs), "distinct": sorted(set(rs)), "schema": [str(f.type) for f in t.schema if f.name in cols]}}))
"#,
                path.display()
            ),
            &[],
        );
        serde_json::from_str(out.trim()).unwrap()
    };
    let file = a.join("data/trips.parquet");
    let before = rows(&file);
    let server = crate::oracle_serving::larder_serve(&a);
    let (code, body) = push_offline(&server.url, trips);
    drop(server);
    assert_eq!(code, 200, "{body}");
    let after = rows(&file);
    assert_eq!(after["n"], before["n"].as_u64().unwrap() + 2);
    assert_eq!(after["distinct"], before["distinct"]);
    assert_eq!(after["schema"], before["schema"]);
    let stray: Vec<_> = std::fs::read_dir(a.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("larder") || n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// Push to the offline store of a source in S3 (moto): the new object lands under the source's
/// prefix, the existing object is untouched, `feast materialize` of the prefix reads it (the
/// Feast SDK then serves the pushed row), and Larder's materialize of the same prefix writes the
/// rows Feast wrote.
#[test]
fn push_to_offline_appends_an_object_in_s3() {
    let s3 = crate::support::S3::get();
    let oracle = Oracle::get();
    let env = s3.env();
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("push-{}", std::process::id());
    let repo = dir.path().join("repo");
    oracle.make_repo_with_env(
        &repo,
        "mat",
        "data/registry.db",
        &[
            "--for-serving",
            "--source-prefix",
            &format!("s3://{bucket}/data"),
        ],
        &env,
    );
    let defs = repo.join("features.py");
    let text = std::fs::read_to_string(&defs)
        .unwrap()
        .replace("/data/trips.parquet\"", "/data/trips\"");
    std::fs::write(&defs, text).unwrap();
    let list = format!(
        "import boto3,os,json\n\
         s3 = boto3.client('s3', endpoint_url=os.environ['FEAST_S3_ENDPOINT_URL'])\n\
         print(json.dumps(sorted(o['Key'] + ' ' + o['ETag'] for o in s3.list_objects_v2(Bucket='{bucket}', Prefix='data/trips/').get('Contents', []))))"
    );
    oracle.python(
        &format!(
            "import boto3,os,glob\n\
             s3 = boto3.client('s3', endpoint_url=os.environ['FEAST_S3_ENDPOINT_URL'])\n\
             s3.create_bucket(Bucket='{bucket}')\n\
             for f in glob.glob('{0}/data/*.parquet'):\n    \
                 name = os.path.basename(f)\n    \
                 s3.upload_file(f, '{bucket}', 'data/trips/part-0.parquet' if name == 'trips.parquet' else 'data/' + name)",
            repo.display()
        ),
        &env,
    );
    oracle.feast(&repo, &["apply", "--skip-source-validation"], &env);
    let before = oracle.python(&list, &env);

    let server = crate::oracle_serving::larder_serve_with_env(&repo, &env);
    let trips = r#"{"driver_id": [4242], "customer_id": ["cx"], "event_timestamp": ["2026-11-28T09:00:00+00:00"], "created": ["2026-11-28T09:00:01+00:00"], "trips": [3], "fare": [12.5]}"#;
    let (code, body) = push_offline(&server.url, trips);
    drop(server);
    assert_eq!(code, 200, "{body}");
    let after = oracle.python(&list, &env);
    let (before, after): (Vec<String>, Vec<String>) = (
        serde_json::from_str(before.trim()).unwrap(),
        serde_json::from_str(after.trim()).unwrap(),
    );
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(after.len(), 2, "one new object: {after:?}");
    assert!(
        after.contains(&before[0]),
        "the existing object is unchanged"
    );
    assert!(
        after.iter().any(|o| o.contains("larder-push-")),
        "{after:?}"
    );

    // Feast (dask + s3fs) materializes the prefix, the existing object and Larder's new one,
    // and its SDK reads the pushed row back.
    oracle.feast(&repo, &["materialize", RANGE[0], RANGE[1]], &env);
    let got = oracle.python(
        &format!(
            r#"
import os, sys, json
sys.path.insert(0, "{0}")
os.chdir("{0}")
from feast import FeatureStore
d = FeatureStore(repo_path="{0}").get_online_features(
    features=["driver_customer_trips:trips", "driver_customer_trips:fare"],
    entity_rows=[{{"driver_id": 4242, "customer_id": "cx"}}]).to_dict()
print(json.dumps([d["trips"], d["fare"]]))
"#,
            repo.display()
        ),
        &env,
    );
    assert_eq!(got.trim(), "[[3], [12.5]]", "Feast read the pushed object");
    // Larder, from the same prefix into the emptied store, writes the same rows.
    let online = repo.join("data/online.db");
    let by_feast = sqlite_rows(&online);
    oracle.python(
        &format!(
            "import sqlite3\n\
             c = sqlite3.connect('{}')\n\
             for (t,) in c.execute(\"select name from sqlite_master where type='table'\").fetchall():\n    c.execute(f'delete from \"{{t}}\"')\n\
             c.commit()",
            online.display()
        ),
        &[],
    );
    assert!(sqlite_rows(&online).values().all(Vec::is_empty));
    stdout_ok(
        larder(&repo, &["materialize", RANGE[0], RANGE[1]], &env),
        "larder materialize from s3",
    );
    assert_eq!(sqlite_rows(&online), by_feast);
}

/// `feature_server.offline_push_batching_*`: offline pushes answer 202 and are written as one
/// file per full batch, per elapsed interval, and on shutdown; no pushed row is lost.
#[test]
fn offline_push_batching_writes_full_batches_aged_batches_and_on_shutdown() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    oracle.make_repo(&repo, "mat", "data/registry.db", &["--for-serving"]);
    trips_in_a_directory(&repo);
    let yaml = repo.join("feature_store.yaml");
    let mut text = std::fs::read_to_string(&yaml).unwrap();
    text.push_str(
        "feature_server:\n  type: local\n  offline_push_batching_enabled: true\n  \
         offline_push_batching_batch_size: 3\n  offline_push_batching_batch_interval_seconds: 1\n",
    );
    std::fs::write(&yaml, text).unwrap();
    oracle.feast(&repo, &["apply"], &[]);

    let files = || std::fs::read_dir(repo.join("data/trips")).unwrap().count();
    let wait_for = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while files() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(files(), n);
    };
    let rows = |ids: &[i64]| {
        let n = ids.len();
        serde_json::json!({
            "driver_id": ids,
            "customer_id": vec!["cb"; n],
            "event_timestamp": vec!["2026-11-28T09:00:00+00:00"; n],
            "created": vec!["2026-11-28T09:00:01+00:00"; n],
            "trips": vec![1; n],
            "fare": vec![2.5; n],
        })
        .to_string()
    };
    let server = crate::oracle_serving::larder_serve(&repo);
    let push = |ids: &[i64]| {
        let (code, body) = push_offline(&server.url, &rows(ids));
        assert_eq!(code, 202, "{body}");
    };
    push(&[9001, 9002]);
    assert_eq!(files(), 1, "two rows stay buffered");
    push(&[9003, 9004]);
    wait_for(2); // four rows >= batch size 3: one file
    push(&[9005]);
    assert_eq!(files(), 2);
    wait_for(3); // the interval has passed
    push(&[9006]);
    drop(server); // SIGTERM: buffered rows are written before the process ends
    assert_eq!(files(), 4);
    let ids = oracle.python(
        &format!(
            "import pyarrow.parquet as pq; t = pq.read_table('{}/data/trips'); \
             print(sorted(i for i in t.column('driver_id').to_pylist() if i > 9000))",
            repo.display()
        ),
        &[],
    );
    assert_eq!(ids.trim(), "[9001, 9002, 9003, 9004, 9005, 9006]");
}

/// Where Feast 0.67's materialization is lossy, Larder keeps the values (the README's
/// deviations): an int64 column with a null (pandas turns it into float64, so 2**53 + 1 and
/// 2**62 + 7 change) and a null timestamp (which Feast writes as INT64_MIN seconds). The same
/// request to `feast serve` and `larder serve`, each over its own materialization.
#[test]
fn integers_with_nulls_and_null_timestamps_are_kept_exact() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("feast"), dir.path().join("larder"));
    oracle.script("lossy_case.py", &[a.to_str().unwrap()]);
    copy_dir(&a, &b);
    for repo in [&a, &b] {
        oracle.feast(repo, &["apply"], &[]);
    }
    let range = ["2026-11-29T00:00:00", "2026-12-01T00:00:00"];
    oracle.feast(&a, &["materialize", range[0], range[1]], &[]);
    stdout_ok(
        larder(&b, &["materialize", range[0], range[1]], &[]),
        "larder materialize",
    );
    let req = serde_json::json!({"features": ["lossy:big", "lossy:seen"],
                                 "entities": {"thing_id": [1, 2, 3]}});
    let feast = crate::oracle_serving::feast_serve(&oracle, &a);
    let served = crate::oracle_serving::larder_serve(&b);
    let answer = |url: &str| -> serde_json::Value {
        let (status, body) =
            crate::oracle_serving::post(&format!("{url}/get-online-features"), &req);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let (f, l) = (answer(&feast.url), answer(&served.url));
    // Feast orders a view's features as a Python set does: by name.
    let column = |doc: &serde_json::Value, name: &str| {
        let names = doc["metadata"]["feature_names"].as_array().unwrap();
        let at = names.iter().position(|n| n == name).unwrap();
        doc["results"][at]["values"].clone()
    };
    assert_eq!(
        column(&l, "big"),
        serde_json::json!([9007199254740993_i64, null, 4611686018427387911_i64]),
        "larder: {l}"
    );
    assert_eq!(
        column(&l, "seen"),
        serde_json::json!([1796040000, null, 1796040000]),
        "larder: {l}"
    );
    // Feast's answers, as observed with 0.67.0 (float64-rounded; INT64_MIN for the null).
    assert_eq!(
        column(&f, "big"),
        serde_json::json!([9007199254740992_i64, null, 4611686018427387904_i64]),
        "feast: {f}"
    );
    assert_eq!(
        column(&f, "seen"),
        serde_json::json!([1796040000, i64::MIN, 1796040000]),
        "feast: {f}"
    );
}
