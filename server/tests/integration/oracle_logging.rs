//! Served-feature logging against the real Feast SDK, on the repo `feast init` writes (its
//! `driver_activity_v1` service logs to a file destination): the files `larder serve` writes
//! have Feast's log schema and hold what was answered; `write_logged_features` through
//! `offline_store: remote` writes what Feast's file store writes.

use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use crate::historical::OfflineServer;
use crate::oracle_ondemand::template;
use crate::oracle_serving::{larder_serve, post};
use crate::support::{Oracle, larder, stdout_ok};

/// The log files (`<uuid>-<i>.parquet`) under `dir`, not the template's data.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let stem = name.strip_suffix(".parquet").unwrap_or("");
        if stem.len() > 33 && stem.as_bytes()[32] == b'-' {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn status_number(s: &str) -> i64 {
    match s {
        "INVALID" => 0,
        "PRESENT" => 1,
        "NULL_VALUE" => 2,
        "NOT_FOUND" => 3,
        "OUTSIDE_MAX_AGE" => 4,
        other => panic!("status {other}"),
    }
}

fn seconds(iso: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso)
        .unwrap_or_else(|e| panic!("{iso}: {e}"))
        .timestamp()
}

/// Checks the logged rows of one answered request against the answer.
fn check_logged(rows: &[&Json], req: &Json, body: &str) {
    let answer: Json = serde_json::from_str(body).unwrap();
    let names: Vec<&str> = answer["metadata"]["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let results = answer["results"].as_array().unwrap();
    let column = |short: &str| &results[names.iter().position(|n| *n == short).unwrap()];
    let id = &rows[0]["__request_id"];
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(&row["__request_id"], id, "one request id per request");
        for (k, v) in req["entities"].as_object().unwrap() {
            assert_eq!(row[k], v[i], "request column {k}, row {i}");
        }
        let logged = seconds(&row["__log_timestamp"].as_str().unwrap().replace(' ', "T"));
        assert_eq!(
            row["__log_date"].as_str().unwrap(),
            chrono::DateTime::from_timestamp(logged, 0)
                .unwrap()
                .date_naive()
                .to_string()
        );
        for (full, short) in [
            ("driver_hourly_stats__conv_rate", "conv_rate"),
            (
                "transformed_conv_rate__conv_rate_plus_val1",
                "conv_rate_plus_val1",
            ),
            (
                "transformed_conv_rate__conv_rate_plus_val2",
                "conv_rate_plus_val2",
            ),
        ] {
            let c = column(short);
            let (want, got) = (&c["values"][i], &row[full]);
            match (want.as_f64(), got.as_f64()) {
                (Some(w), Some(g)) => assert!(
                    (w - g).abs() <= 1e-6 * w.abs().max(1.0),
                    "{full}, row {i}: answered {w}, logged {g}"
                ),
                _ => assert_eq!(got, want, "{full}, row {i}"),
            }
            assert_eq!(
                row[format!("{full}__status")].as_i64().unwrap(),
                status_number(c["statuses"][i].as_str().unwrap()),
                "{full}, row {i}"
            );
            let ts = row[format!("{full}__timestamp")].as_str().unwrap();
            assert_eq!(
                seconds(&ts.replace(' ', "T")),
                seconds(c["event_timestamps"][i].as_str().unwrap()),
                "{full}, row {i}"
            );
        }
    }
}

#[test]
fn served_features_are_logged_in_feasts_log_schema() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = template(&oracle, dir.path(), "logged");
    let yaml = repo.join("feature_store.yaml");
    let mut text = std::fs::read_to_string(&yaml).unwrap();
    text.push_str(
        "feature_server:\n  feature_logging:\n    enabled: true\n    flush_interval_secs: 1\n",
    );
    std::fs::write(&yaml, text).unwrap();
    let now = chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    stdout_ok(
        larder(&repo, &["materialize-incremental", &now], &[]),
        "larder materialize-incremental",
    );
    let data = repo.join("data");
    assert!(log_files(&data).is_empty());

    let server = larder_serve(&repo);
    let url = format!("{}/get-online-features", server.url);
    let first = json!({"feature_service": "driver_activity_v1",
        "entities": {"driver_id": [1001, 1002, 7], "val_to_add": [1, 2, 3], "val_to_add_2": [10, 20, 30]}});
    let (status, first_body) = post(&url, &first);
    assert_eq!(status, 200, "{first_body}");
    // Written within the flush interval, while the server runs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while log_files(&data).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no log file within 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let second = json!({"feature_service": "driver_activity_v1",
        "entities": {"driver_id": [1003], "val_to_add": [5], "val_to_add_2": [-1]}});
    let (status, second_body) = post(&url, &second);
    assert_eq!(status, 200, "{second_body}");
    // Neither a feature list nor a service without a logging_config is logged.
    let (status, _) = post(
        &url,
        &json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]}}),
    );
    assert_eq!(status, 200);
    let (status, _) = post(
        &url,
        &json!({"feature_service": "driver_activity_v3",
            "entities": {"driver_id": [1001], "val_to_add": [1], "val_to_add_2": [2]}}),
    );
    assert_eq!(status, 200);
    // Stopping the server (SIGTERM) writes what is buffered.
    drop(server);

    let files = log_files(&data);
    let mut args = vec![repo.to_str().unwrap(), "read", "driver_activity_v1"];
    let names: Vec<String> = files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    args.extend(names.iter().map(String::as_str));
    let out: Json = serde_json::from_str(&oracle.script("feature_logs.py", &args)).unwrap();
    assert_eq!(
        out["files_schema"], out["stored_schema"],
        "the log files' schema is Feast's log schema, as pyarrow stores it"
    );
    assert!(
        out["schema"].to_string().contains("timestamp[s, tz=UTC]"),
        "{}",
        out["schema"]
    );
    assert_eq!(
        out["schema"][0],
        json!(["driver_id", "int64"]),
        "{}",
        out["schema"]
    );
    let rows: Vec<&Json> = out["rows"].as_array().unwrap().iter().collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let (a, b): (Vec<&Json>, Vec<&Json>) = rows
        .iter()
        .partition(|r| r["__request_id"] == rows[0]["__request_id"]);
    let (one, three) = if a.len() == 3 { (b, a) } else { (a, b) };
    check_logged(&three, &first, &first_body);
    check_logged(&one, &second, &second_body);
    assert_ne!(one[0]["__request_id"], three[0]["__request_id"]);
}

#[test]
fn write_logged_features_through_the_sdk_writes_what_feast_writes() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = template(&oracle, dir.path(), "logwrites");
    oracle.script("feature_logs.py", &[repo.to_str().unwrap(), "apply"]);
    let flight = OfflineServer::start(&repo);
    let port = flight.port.to_string();
    for service in ["driver_activity_v1", "driver_logged_by_date"] {
        let out: Json = serde_json::from_str(&oracle.script(
            "feature_logs.py",
            &[repo.to_str().unwrap(), "write", service, &port],
        ))
        .unwrap();
        assert_eq!(out["feast"]["rows"].as_array().unwrap().len(), 5, "{out}");
        assert_eq!(out["larder"], out["feast"], "{service}");
        if service == "driver_logged_by_date" {
            assert_eq!(
                out["larder"]["dirs"],
                json!(["2026-11-30", "2026-12-01"]),
                "{out}"
            );
        }
    }
    // A service without a logging_config, an unknown service: Flight errors naming them.
    let code = format!(
        r#"
import json, pyarrow as pa, pyarrow.flight as fl
c = fl.connect("grpc+tcp://127.0.0.1:{port}")
for name in ["driver_activity_v3", "nope"]:
    cmd = json.dumps({{"command_id": "x", "api": "write_logged_features", "feature_service_name": name}})
    t = pa.table({{"x": [1]}})
    try:
        w, _ = c.do_put(fl.FlightDescriptor.for_command(cmd), t.schema)
        w.write_table(t)
        w.close()
        print("written")
    except Exception as e:
        print(type(e).__name__, e)
"#
    );
    let out = oracle.python(&code, &[]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("driver_activity_v3 has no logging_config"),
        "{out}"
    );
    assert!(
        lines[1].contains("FeatureServiceNotFoundException"),
        "{out}"
    );
}
