//! `larder serve` must answer `get-online-features` like `feast serve` on stores Feast itself
//! materialized (SQLite, Redis standalone, Redis cluster), and the Feast SDK configured with
//! `online_store: {type: remote}` must get the same `to_dict()` from Larder as from the store.
//!
//! Documented deviations the comparison allows: a Redis entity that does not exist is
//! `NOT_FOUND` in Larder where Feast reports `PRESENT`/null/epoch; column order within one
//! view (Feast's is a Python set's) — columns are compared by name, join keys in order; values
//! given under an entity name are converted to the join key's type (Feast looks a string
//! `"1001"` up as a string there and finds nothing).
//! Larder runs with `larder: {online_ttl: ignore}` here (Feast Python's TTL behaviour).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use larder_online::testkit::Servers;
use serde_json::{Value as Json, json};

use crate::support::{Oracle, free_port};

/// A server process killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Drop for Server {
    /// SIGTERM first: `feast serve` is a gunicorn master that stops its forked workers only
    /// when asked; a SIGKILL would orphan them.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_healthy(url: &str, child: &mut Child, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("{url}/health"),
            ])
            .output()
            .expect("curl runs");
        if out.stdout == b"200" {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not become healthy at {url}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn feast_serve(oracle: &Oracle, repo: &Path) -> Server {
    let port = free_port();
    let mut child = Command::new(oracle.bin.join("feast"))
        .current_dir(repo)
        .args(["serve", "-h", "127.0.0.1", "-p", &port.to_string()])
        .env("PYTHONWARNINGS", "ignore")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("feast serve starts");
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url, &mut child, "feast serve", Duration::from_secs(60));
    Server { child, url }
}

pub fn larder_serve(repo: &Path) -> Server {
    larder_serve_with_env(repo, &[])
}

pub fn larder_serve_with_env(repo: &Path, env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args([
            "-c",
            repo.to_str().unwrap(),
            "serve",
            "-p",
            &port.to_string(),
        ])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("larder serve starts");
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url, &mut child, "larder serve", Duration::from_secs(20));
    Server { child, url }
}

/// POSTs JSON; returns (status, body).
pub fn post(url: &str, body: &Json) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(body.to_string().as_bytes())?;
            c.wait_with_output()
        })
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

/// A small deterministic generator (no dependency needed for test data).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn subset(&mut self, items: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = items
            .iter()
            .filter(|_| self.below(2) == 0)
            .map(|s| s.to_string())
            .collect();
        if out.is_empty() {
            out.push(self.pick(items).to_string());
        }
        out
    }
}

const DRIVER_FEATURES: &[&str] = &["conv_rate", "acc_rate", "avg_daily_trips", "rating"];
const ALL_TYPES: &[&str] = &[
    "int32_f",
    "int64_f",
    "float32_f",
    "float64_f",
    "bool_f",
    "str_f",
    "bytes_f",
    "ts_f",
    "int32_list",
    "int64_list",
    "float32_list",
    "float64_list",
    "bool_list",
    "str_list",
    "bytes_list",
    "ts_list",
    "str_set",
    "map_f",
    "json_f",
    "struct_f",
];

fn refs(view: &str, features: &[String]) -> Vec<String> {
    features.iter().map(|f| format!("{view}:{f}")).collect()
}

/// Randomized requests over every view kind, key kind and value type of the oracle repo.
fn requests(seed: u64, n: usize) -> Vec<Json> {
    let mut r = Rng(seed);
    let mut out = Vec::new();
    for i in 0..n {
        let rows = 1 + r.below(6) as usize;
        let drivers: Vec<Json> = (0..rows)
            .map(|_| {
                let id = 995 + r.below(16) as i64;
                if r.below(4) == 0 {
                    json!(id.to_string())
                } else {
                    json!(id)
                }
            })
            .collect();
        let customers: Vec<Json> = (0..rows)
            .map(|_| json!(format!("c{}", r.below(24))))
            .collect();
        let full = r.below(2) == 0;
        let req = match i % 7 {
            0 => json!({"features": refs("driver_hourly_stats", &r.subset(DRIVER_FEATURES)),
                        "entities": {"driver_id": drivers}, "full_feature_names": full}),
            1 => json!({"features": refs("all_types", &r.subset(ALL_TYPES)),
                        "entities": {"customer_id": customers}, "full_feature_names": full}),
            2 => json!({"features": ["driver_customer_trips:trips", "driver_customer_trips:fare"],
                        "entities": {"customer_id": customers, "driver_id": drivers}}),
            3 => {
                let origins: Vec<Json> = (0..rows).map(|_| json!(r.below(7))).collect();
                let dests: Vec<Json> = (0..rows).map(|_| json!(r.below(7))).collect();
                json!({"feature_service": "driver_activity_v2", "full_feature_names": true,
                       "entities": {"driver_id": drivers, "origin_id": origins, "destination_id": dests, "customer_id": customers}})
            }
            4 => {
                json!({"features": ["global_stats:total_drivers", "driver_hourly_stats:conv_rate", "location_stats:temperature"],
                        "entities": {"driver_id": drivers, "location_id": (0..rows).map(|_| json!(r.below(7).to_string())).collect::<Vec<_>>()}})
            }
            5 => json!({"features": ["driver_stream_view:conv_rate"], "full_feature_names": true,
                        "entities": {"driver_id": drivers, "unused_column": (0..rows).map(|_| json!(1)).collect::<Vec<_>>()}}),
            // Entity names in place of join keys. Feast does not convert values given this way
            // (a string "1001" is looked up as a string key and not found), so integers here.
            _ => {
                let ids: Vec<Json> = (0..rows).map(|_| json!(995 + r.below(16) as i64)).collect();
                json!({"features": ["driver_hourly_stats:conv_rate", "all_types:str_list", "driver_customer_trips:trips"],
                       "entities": {"driver": ids, "customer_id": customers}})
            }
        };
        out.push(req);
    }
    out
}

type Columns = BTreeMap<String, (Json, Json, Json)>;

/// Every column of a response by name.
fn columns(resp: &Json) -> Columns {
    let names = resp["metadata"]["feature_names"]
        .as_array()
        .expect("feature_names");
    let results = resp["results"].as_array().expect("results");
    assert_eq!(names.len(), results.len());
    names
        .iter()
        .zip(results)
        .map(|(n, c)| {
            let col = (
                c["values"].clone(),
                c["statuses"].clone(),
                c["event_timestamps"].clone(),
            );
            (n.as_str().unwrap().to_owned(), col)
        })
        .collect()
}

fn compare(feast: &str, larder: &str, redis: bool, what: &str) {
    let f: Json =
        serde_json::from_str(feast).unwrap_or_else(|e| panic!("{what}: feast body {feast}: {e}"));
    let l: Json = serde_json::from_str(larder)
        .unwrap_or_else(|e| panic!("{what}: larder body {larder}: {e}"));
    let (fc, lc) = (columns(&f), columns(&l));
    assert_eq!(
        fc.keys().collect::<Vec<_>>(),
        lc.keys().collect::<Vec<_>>(),
        "{what}: column names differ\nfeast:  {feast}\nlarder: {larder}"
    );
    // Join-key columns come first, in request order, in both.
    const KEYS: &[&str] = &[
        "driver_id",
        "customer_id",
        "origin_id",
        "destination_id",
        "location_id",
    ];
    let prefix = |doc: &Json| -> Vec<String> {
        doc["metadata"]["feature_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .take_while(|n| KEYS.contains(&n.as_str()))
            .collect()
    };
    assert_eq!(
        prefix(&f),
        prefix(&l),
        "{what}: join-key columns differ\nfeast:  {feast}\nlarder: {larder}"
    );
    for (name, (fv, fs, ft)) in &fc {
        let (lv, ls, lt) = &lc[name];
        let rows = fv.as_array().unwrap().len();
        for i in 0..rows {
            let (a, b) = ((&fv[i], &fs[i], &ft[i]), (&lv[i], &ls[i], &lt[i]));
            if a == b {
                continue;
            }
            let redis_missing = redis
                && a == (
                    &Json::Null,
                    &json!("PRESENT"),
                    &json!("1970-01-01T00:00:00Z"),
                )
                && b == (
                    &Json::Null,
                    &json!("NOT_FOUND"),
                    &json!("1970-01-01T00:00:00Z"),
                );
            assert!(
                redis_missing,
                "{what}: column {name} row {i}: feast {a:?} larder {b:?}\nfeast:  {feast}\nlarder: {larder}"
            );
        }
    }
}

/// Writes, applies and materializes an oracle repo whose online store is `online`.
fn materialized_repo(oracle: &Oracle, dir: &Path, online: Option<&str>) -> PathBuf {
    let repo = dir.join("repo");
    let mut extra = vec!["--for-serving"];
    if let Some(o) = online {
        extra.extend(["--online", o]);
    }
    oracle.make_repo(&repo, "serving", "data/registry.db", &extra);
    let yaml = repo.join("feature_store.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, format!("{text}larder:\n  online_ttl: ignore\n")).unwrap();
    oracle.feast(&repo, &["apply"], &[]);
    oracle.feast(
        &repo,
        &["materialize", "2026-11-25T00:00:00", "2026-11-29T00:00:00"],
        &[],
    );
    repo
}

fn oracle_run(online: Option<&str>, redis: bool, seed: u64, what: &str) {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = materialized_repo(&oracle, dir.path(), online);
    let feast = feast_serve(&oracle, &repo);
    let larder = larder_serve(&repo);
    let reqs = requests(seed, 42);
    for (i, req) in reqs.iter().enumerate() {
        let (fs, fb) = post(&format!("{}/get-online-features", feast.url), req);
        let (ls, lb) = post(&format!("{}/get-online-features", larder.url), req);
        assert_eq!(
            fs, 200,
            "{what} request {i} {req}: feast answered {fs} {fb}"
        );
        assert_eq!(
            ls, 200,
            "{what} request {i} {req}: larder answered {ls} {lb}"
        );
        compare(&fb, &lb, redis, &format!("{what} request {i} {req}"));
    }
}

#[test]
fn serving_matches_feast_on_sqlite() {
    oracle_run(None, false, 7, "sqlite");
}

#[test]
fn serving_matches_feast_on_redis() {
    let (_servers, port) = Servers::standalone();
    oracle_run(
        Some(&format!(
            "{{type: redis, connection_string: '127.0.0.1:{port}'}}"
        )),
        true,
        11,
        "redis",
    );
}

#[test]
fn serving_matches_feast_on_redis_cluster() {
    let (_servers, ports) = Servers::cluster();
    let nodes = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    oracle_run(
        Some(&format!(
            "{{type: redis, redis_type: redis_cluster, connection_string: '{nodes}'}}"
        )),
        true,
        13,
        "redis cluster",
    );
}

#[test]
fn feast_sdk_remote_online_store_reads_larder() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = materialized_repo(&oracle, dir.path(), None);
    let larder = larder_serve(&repo);
    let cases = json!([
        {"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"],
         "entity_rows": [{"driver_id": 1001}, {"driver_id": 1003}, {"driver_id": 4242}]},
        {"features": ["driver_customer_trips:trips", "driver_customer_trips:fare"], "full_feature_names": true,
         "entity_rows": [{"driver_id": 1000, "customer_id": "c0"}, {"driver_id": 1001, "customer_id": "c1"}]},
        {"feature_service": "driver_activity_v2",
         "entity_rows": [{"driver_id": 1002, "origin_id": 1, "destination_id": 3, "customer_id": "c5"}], "full_feature_names": true},
        {"features": ["all_types:int64_f", "all_types:float32_list", "all_types:str_list", "all_types:bool_f"],
         "entity_rows": [{"customer_id": "c3"}, {"customer_id": "zz"}]}
    ]);
    let cases_file = dir.path().join("cases.json");
    std::fs::write(&cases_file, cases.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../oracle/remote_check.py");
    let out = Command::new(oracle.bin.join("python"))
        .args([
            script.to_str().unwrap(),
            repo.to_str().unwrap(),
            &larder.url,
            cases_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "remote_check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let both: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(both["local"].as_array().unwrap().len(), 4);
    assert!(
        both["local"][0]["conv_rate"][0].is_number(),
        "{}",
        both["local"]
    );
    assert_eq!(
        both["local"], both["remote"],
        "the SDK's to_dict() via larder differs from the store's"
    );
}
