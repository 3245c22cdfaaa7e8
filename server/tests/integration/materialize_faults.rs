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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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
