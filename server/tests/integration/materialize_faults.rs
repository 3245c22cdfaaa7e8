//! Materialization faults: bad data and missing sources fail with an error naming the view and
//! the column or path, record no interval; a run killed midway and run again leaves the store
//! exactly as an uninterrupted run does.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::support::{Oracle, copy_dir, larder, stdout_ok};

/// A repo with one view `rows_fv` (10 Float32 features over `rows` drivers), applied by Feast.
/// `null_key_at` puts a null driver_id in that row.
fn repo(oracle: &Oracle, dir: &Path, rows: usize, null_key_at: Option<usize>) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("data")).unwrap();
    std::fs::write(
        repo.join("feature_store.yaml"),
        "project: faults\nregistry: data/registry.db\nprovider: local\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("features.py"),
        r#"
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
rows_fv = FeatureView(name="rows_fv", entities=[driver], ttl=timedelta(seconds=0),
    schema=[Field(name=f"f{i}", dtype=Float32) for i in range(10)],
    source=FileSource(path="data/rows.parquet", timestamp_field="event_timestamp"))
"#,
    )
    .unwrap();
    let null = null_key_at.map_or("None".to_owned(), |i| i.to_string());
    oracle.python(
        &format!(
            r#"
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
n, null = {rows}, {null}
rng = np.random.default_rng(3)
ids = pa.array([None if i == null else i + 1 for i in range(n)], type=pa.int64())
ts = np.datetime64("2026-11-28T08:00:00", "us") - rng.integers(0, 86_400_000_000, n).astype("timedelta64[us]")
cols = {{"driver_id": ids, "event_timestamp": pa.array(ts, type=pa.timestamp("us", tz="UTC"))}}
for i in range(10):
    cols[f"f{{i}}"] = pa.array(rng.random(n, dtype=np.float32))
pq.write_table(pa.table(cols), "{}/data/rows.parquet", row_group_size=16384)
"#,
            repo.display()
        ),
        &[],
    );
    oracle.feast(&repo, &["apply", "--skip-source-validation"], &[]);
    repo
}

const RANGE: [&str; 2] = ["2026-11-01T00:00:00", "2026-11-29T00:00:00"];

fn intervals(repo: &Path) -> serde_json::Value {
    let dump: serde_json::Value = serde_json::from_str(&stdout_ok(
        larder(repo, &["registry-dump"], &[]),
        "registry-dump",
    ))
    .unwrap();
    dump["featureViews"][0]["meta"]["materializationIntervals"].clone()
}

fn fails(repo: &Path, needles: &[&str]) {
    let out = larder(repo, &["materialize", RANGE[0], RANGE[1]], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    assert!(intervals(repo).is_null(), "no interval after a failure");
}

#[test]
fn null_join_keys_and_missing_sources_are_named() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let r = repo(&oracle, dir.path(), 100, Some(42));
    fails(&r, &["rows_fv", "driver_id", "null join key"]);
    std::fs::remove_file(r.join("data/rows.parquet")).unwrap();
    fails(&r, &["rows_fv", "rows.parquet"]);
}

/// Every row of the SQLite table, in key order.
fn dump_sqlite(db: &Path) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             print([r for r in c.execute('select entity_key, feature_name, value, event_ts from faults_rows_fv order by 1, 2')])",
        ])
        .arg(db)
        .output()
        .unwrap();
    stdout_ok(out, "reading the SQLite store")
}

#[test]
fn a_killed_run_then_a_rerun_converges() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let r = repo(&oracle, dir.path(), 150_000, None);
    let clean = dir.path().join("clean");
    copy_dir(&r, &clean);
    stdout_ok(
        larder(&clean, &["materialize", RANGE[0], RANGE[1]], &[]),
        "uninterrupted run",
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-c")
        .arg(&r)
        .args(["materialize", RANGE[0], RANGE[1]])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let _ = child.kill();
    let status = child.wait().unwrap();
    if !status.success() {
        assert!(intervals(&r).is_null(), "a killed run records no interval");
    }
    stdout_ok(
        larder(&r, &["materialize", RANGE[0], RANGE[1]], &[]),
        "rerun",
    );
    let (a, b) = (
        dump_sqlite(&clean.join("data/online.db")),
        dump_sqlite(&r.join("data/online.db")),
    );
    assert!(
        a.len() > 1_000_000,
        "the table holds the rows ({} bytes)",
        a.len()
    );
    assert!(a == b, "the rerun converged to a different store");
    assert_eq!(intervals(&r).as_array().map(Vec::len), Some(1));
}

/// A `redis-server` with an append-only file in `dir`, so a killed server comes back with what
/// it had acknowledged (a partially materialized view).
fn persistent_redis(dir: &Path, port: u16) -> std::process::Child {
    larder_online::testkit::redis_server(
        dir,
        port,
        &["--appendonly", "yes", "--appendfsync", "always"],
    )
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// "<keys> <sha256>" over every key with its fields and values, in sorted order.
fn redis_digest(oracle: &Oracle, port: u16) -> String {
    let script = r#"
import hashlib, sys, redis
r = redis.Redis(port=int(sys.argv[1]))
keys = sorted(r.scan_iter(count=5000))
h = hashlib.sha256()
for i in range(0, len(keys), 2000):
    p = r.pipeline(transaction=False)
    for k in keys[i:i + 2000]:
        p.hgetall(k)
    for k, fields in zip(keys[i:i + 2000], p.execute()):
        h.update(k)
        for f in sorted(fields):
            h.update(b"|" + f + b"=" + fields[f])
print(len(keys), h.hexdigest())
"#;
    stdout_ok(
        Command::new(oracle.bin.join("python"))
            .args(["-c", script, &port.to_string()])
            .output()
            .unwrap(),
        "redis digest",
    )
    .trim()
    .to_owned()
}

fn use_redis(repo: &Path, port: u16) {
    let yaml = repo.join("feature_store.yaml");
    let mut text = std::fs::read_to_string(&yaml).unwrap();
    text.push_str(&format!(
        "online_store:\n  type: redis\n  connection_string: 127.0.0.1:{port}\n"
    ));
    std::fs::write(yaml, text).unwrap();
}

/// Redis dies while a materialization writes to it: the run fails naming the view and how many
/// rows were written, records no interval; once Redis is back (with the part it had), a rerun
/// leaves exactly the keys, fields and bytes of an uninterrupted run.
#[test]
fn redis_going_away_mid_run_then_a_rerun_converges() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let r = repo(&oracle, dir.path(), 100_000, None);
    let clean = dir.path().join("clean");
    copy_dir(&r, &clean);
    let (_reference, clean_port) = larder_online::testkit::Servers::standalone();
    use_redis(&clean, clean_port);
    stdout_ok(
        larder(&clean, &["materialize", RANGE[0], RANGE[1]], &[]),
        "uninterrupted run",
    );

    let port = larder_online::testkit::free_port();
    let data = dir.path().join("redis");
    std::fs::create_dir(&data).unwrap();
    let mut redis = persistent_redis(&data, port);
    use_redis(&r, port);
    let run = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-c")
        .arg(&r)
        .args(["materialize", RANGE[0], RANGE[1]])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill Redis as soon as the first batch has landed.
    let mut landed = false;
    for _ in 0..3000 {
        let n: u64 = redis_cli(port, &["dbsize"]).trim().parse().unwrap_or(0);
        if n > 0 {
            landed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(landed, "no key was written");
    redis.kill().unwrap();
    redis.wait().unwrap();
    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the run must fail: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in [
        "rows_fv",
        "unavailable",
        "rows were written before the failure",
    ] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert!(intervals(&r).is_null(), "no interval after a failure");

    let mut redis = persistent_redis(&data, port);
    let partial: u64 = redis_cli(port, &["dbsize"]).trim().parse().unwrap();
    assert!(partial < 100_000, "Redis came back with part of the view");
    stdout_ok(
        larder(&r, &["materialize", RANGE[0], RANGE[1]], &[]),
        "rerun",
    );
    let (a, b) = (
        redis_digest(&oracle, clean_port),
        redis_digest(&oracle, port),
    );
    redis.kill().unwrap();
    redis.wait().unwrap();
    assert!(a.starts_with("100000 "), "{a}");
    assert_eq!(a, b, "the rerun converged to a different store");
    assert_eq!(intervals(&r).as_array().map(Vec::len), Some(1));
}
