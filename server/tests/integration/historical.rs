//! `larder get-historical-features` against a reference written in DuckDB SQL from the
//! canonical point-in-time semantics (`oracle/historical_case.py`): randomized repos applied
//! with the Feast SDK, entity dataframes as Parquet and CSV, references, a feature service
//! with an alias and a `join_key_map`; and bad input named with exit 1 and no output file.

use std::path::Path;

use serde_json::Value as Json;

use crate::support::{Oracle, larder};

fn retrieve(repo: &Path, request: &Json, out: &Path) -> std::process::Output {
    let mut args: Vec<String> = vec![
        "get-historical-features".into(),
        "-o".into(),
        out.display().to_string(),
    ];
    match (request.get("entity"), request.get("entity_sql")) {
        (Some(e), _) => args.extend([
            "--entity-df".into(),
            repo.join(e.as_str().unwrap()).display().to_string(),
        ]),
        (None, Some(sql)) => args.extend(["--entity-sql".into(), sql.as_str().unwrap().into()]),
        (None, None) => args.extend([
            "--start-date".into(),
            request["start"].as_str().unwrap().into(),
            "--end-date".into(),
            request["end"].as_str().unwrap().into(),
        ]),
    }
    match request.get("feature_service") {
        Some(s) => args.extend(["--feature-service".into(), s.as_str().unwrap().into()]),
        None => {
            for f in request["features"].as_array().unwrap() {
                args.extend(["--features".into(), f.as_str().unwrap().into()]);
            }
        }
    }
    if request["full_feature_names"].as_bool().unwrap() {
        args.push("--full-feature-names".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    larder(repo, &args, &[])
}

#[test]
fn randomized_retrievals_equal_the_duckdb_reference() {
    let oracle = Oracle::get();
    for seed in ["1", "2", "3", "4"] {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        oracle.script(
            "historical_case.py",
            &["make", repo.to_str().unwrap(), "--seed", seed],
        );
        let requests: Vec<Json> =
            serde_json::from_str(&std::fs::read_to_string(repo.join("requests.json")).unwrap())
                .unwrap();
        for (i, request) in requests.iter().enumerate() {
            let got = repo.join(format!("got{i}.parquet"));
            let expected = repo.join(format!("expected{i}.parquet"));
            let out = retrieve(repo, request, &got);
            assert!(
                out.status.success(),
                "seed {seed} request {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Not a terminal: a log line as each view's source read starts and ends, and the
            // summary.
            let log = String::from_utf8_lossy(&out.stderr);
            for line in [
                ": reading keys and times (",
                "winning rows: ",
                "rows read in",
                "wrote ",
            ] {
                assert!(
                    log.contains(line),
                    "seed {seed} request {i}: no {line:?} in {log}"
                );
            }
            oracle.script(
                "historical_case.py",
                &[
                    "reference",
                    repo.to_str().unwrap(),
                    &i.to_string(),
                    expected.to_str().unwrap(),
                ],
            );
            oracle.script(
                "historical_case.py",
                &["compare", expected.to_str().unwrap(), got.to_str().unwrap()],
            );
        }
    }
}

#[test]
fn bad_retrievals_are_named_and_leave_no_output() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    oracle.script(
        "historical_case.py",
        &["make", repo.to_str().unwrap(), "--seed", "9"],
    );
    oracle.python(
        &format!(
            "import pandas as pd; d = pd.read_parquet({e:?}); \
             d.drop(columns=['event_timestamp']).to_parquet({n:?}); \
             d.assign(driver_id=d.driver_id.astype(str)).to_parquet({s:?})",
            e = repo.join("entity.parquet"),
            n = repo.join("no_ts.parquet"),
            s = repo.join("string_keys.parquet"),
        ),
        &[],
    );
    let entity = repo.join("entity.parquet");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--features".into(), "nope:conv_rate".into()],
            "Feature view nope does not exist",
        ),
        (
            vec!["--features".into(), "driver_stats:nope".into()],
            "Feature nope not found in projection driver_stats",
        ),
        (
            vec!["--feature-service".into(), "nope".into()],
            "Feature service nope does not exist",
        ),
        (
            vec!["--features".into(), "bad-ref".into()],
            "Invalid feature reference 'bad-ref'",
        ),
        (
            vec![
                "--features".into(),
                "driver_stats:trips".into(),
                "--entity-df".into(),
                repo.join("no_ts.parquet").display().to_string(),
            ],
            "no event_timestamp column",
        ),
        (
            vec![
                "--features".into(),
                "driver_stats:trips".into(),
                "--entity-df".into(),
                repo.join("string_keys.parquet").display().to_string(),
            ],
            "entity dataframe column driver_id has type Utf8",
        ),
        (
            vec![
                "--features".into(),
                "driver_stats:trips".into(),
                "--entity-df".into(),
                repo.join("missing.parquet").display().to_string(),
            ],
            "missing.parquet",
        ),
    ];
    let sql = |q: &str| -> Vec<String> {
        vec![
            "--features".into(),
            "driver_stats:trips".into(),
            "--entity-sql".into(),
            q.into(),
        ]
    };
    let cases = cases.into_iter().chain([
        (
            sql("SELECT driver_id, event_timestamp FROM nope"),
            "the entity SQL query reads table nope, which is no data source or feature view",
        ),
        (sql("CREATE TABLE t AS SELECT 1"), "the entity SQL query: "),
        (sql("SELEC driver_id"), "the entity SQL query: "),
        (
            sql("SELECT driver_id FROM driver_src"),
            "no event_timestamp column",
        ),
    ]);
    for (extra, wanted) in cases {
        let out_file = repo.join("out.parquet");
        let mut args: Vec<String> = vec!["get-historical-features".into()];
        if !extra
            .iter()
            .any(|a| a == "--entity-df" || a == "--entity-sql")
        {
            args.extend(["--entity-df".into(), entity.display().to_string()]);
        }
        args.extend(extra);
        args.extend(["-o".into(), out_file.display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = larder(repo, &args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(wanted),
            "{args:?}: wanted {wanted:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out_file.exists(), "{args:?} left an output file");
    }
    // A missing source file: named, and no output (nor a temporary file) left behind.
    std::fs::remove_file(repo.join("data/driver.parquet")).unwrap();
    let out_file = repo.join("out.parquet");
    let out = retrieve(
        repo,
        &serde_json::json!({"entity": "entity.parquet", "full_feature_names": false,
                            "features": ["driver_stats:trips"]}),
        &out_file,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("driver.parquet"), "{stderr}");
    let leftovers: Vec<_> = std::fs::read_dir(repo)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".larder-"))
        .collect();
    assert!(!out_file.exists() && leftovers.is_empty());
}

/// `larder serve-offline` as a child process, killed on drop.
pub struct OfflineServer {
    child: std::process::Child,
    pub port: u16,
}

impl OfflineServer {
    pub fn start(repo: &Path) -> Self {
        Self::start_with(repo, &[])
    }

    fn start_with(repo: &Path, args: &[&str]) -> Self {
        Self::start_with_env(repo, args, &[])
    }

    pub fn start_with_env(repo: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_command(repo, "serve-offline", args, env)
    }

    /// `larder COMMAND -p PORT ARGS` on a free port, once it listens (any of the servers).
    pub fn start_command(repo: &Path, command: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = crate::support::free_port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
            .arg("-c")
            .arg(repo)
            .args([command, "-p", &port.to_string()])
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("larder serve-offline starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "larder {command} exited"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "not listening after 20 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for OfflineServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Feast SDK with `offline_store: {type: remote}` pointed at `larder serve-offline` gets
/// the reference's answer from `get_historical_features(...).to_arrow()` (entity dataframes
/// with duplicates, misses and ties; several views; a feature service with aliases and a
/// `join_key_map`), `job.persist` writes the answer to a registered destination (refused
/// without `allow_overwrite` when it exists), and Feast's exception for an unknown view.
#[test]
fn the_feast_sdk_retrieves_through_the_flight_server() {
    let oracle = Oracle::get();
    {
        let seed = "5";
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        let r = repo.to_str().unwrap();
        oracle.script("historical_case.py", &["make", r, "--seed", seed]);
        let server = OfflineServer::start(repo);
        let port = server.port.to_string();
        // Every request of the case: entity tables, a feature service, entity-less, SQL.
        for i in 0..5 {
            let got = repo.join(format!("remote{i}.parquet"));
            let expected = repo.join(format!("expected{i}.parquet"));
            oracle.script(
                "historical_case.py",
                &["remote", r, &port, &i.to_string(), got.to_str().unwrap()],
            );
            oracle.script(
                "historical_case.py",
                &["reference", r, &i.to_string(), expected.to_str().unwrap()],
            );
            oracle.script(
                "historical_case.py",
                &["compare", expected.to_str().unwrap(), got.to_str().unwrap()],
            );
        }
        let persisted = oracle.script("historical_case.py", &["remote-persist", r, &port]);
        assert!(persisted.contains("overwrite refused"), "{persisted}");
        let raised = oracle.script("historical_case.py", &["remote-error", r, &port]);
        assert!(
            raised.starts_with("feast.errors.FeatureViewNotFoundException"),
            "{raised}"
        );
    }
}

/// `job.persist` to an `s3://` destination (moto) through the Flight server: the object reads
/// back equal to the job's answer, and a second persist is refused without `allow_overwrite`.
#[test]
fn persist_writes_an_s3_object() {
    let s3 = crate::support::S3::get();
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let r = repo.to_str().unwrap();
    oracle.script("historical_case.py", &["make", r, "--seed", "7"]);
    let bucket = format!("persist-{}", std::process::id());
    s3.create_bucket(&oracle, &bucket);
    let server = OfflineServer::start_with_env(repo, &[], &s3.env());
    let out = oracle.script_with_env(
        "historical_case.py",
        &["remote-persist", r, &server.port.to_string(), &bucket],
        &s3.env(),
    );
    assert!(out.contains("overwrite refused"), "{out}");
}

/// `feast materialize` through `larder serve-offline` (pull_latest_from_table_or_query) writes
/// the online values Feast's own file store gives, pull_all_from_table_or_query returns the
/// file store's rows, a source's columns and types are Feast's; `write_to_offline_store`
/// (offline_write_batch) then a retrieval sees the rows, in a directory and in a single-file source.
#[test]
fn feast_materializes_through_the_flight_server() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let r = repo.to_str().unwrap();
    oracle.script("historical_case.py", &["make", r, "--seed", "6"]);
    let server = OfflineServer::start(repo);
    let out = oracle.script(
        "historical_case.py",
        &["remote-pulls", r, &server.port.to_string()],
    );
    assert!(out.contains("pull_all"), "{out}");
    let out = oracle.script(
        "historical_case.py",
        &["remote-write", r, &server.port.to_string()],
    );
    assert!(out.contains("written rows retrieved"), "{out}");
}

/// `serve-offline -k KEY -c CERT` serves grpc+tls: the Feast SDK with `scheme: https` and the
/// certificate gets the reference's answer.
#[test]
fn the_flight_server_speaks_tls() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let r = repo.to_str().unwrap();
    oracle.script("historical_case.py", &["make", r, "--seed", "7"]);
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let server = OfflineServer::start_with(
        &repo,
        &["-k", key.to_str().unwrap(), "-c", cert.to_str().unwrap()],
    );
    let tls = format!("{}:{}", server.port, cert.display());
    let (got, expected) = (repo.join("tls0.parquet"), repo.join("expected0.parquet"));
    oracle.script(
        "historical_case.py",
        &["remote", r, &tls, "0", got.to_str().unwrap()],
    );
    oracle.script(
        "historical_case.py",
        &["reference", r, "0", expected.to_str().unwrap()],
    );
    oracle.script(
        "historical_case.py",
        &["compare", expected.to_str().unwrap(), got.to_str().unwrap()],
    );
}
