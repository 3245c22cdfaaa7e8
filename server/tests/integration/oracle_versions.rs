//! Versioned feature views against the real Feast SDK: the repo `feast init` writes, with
//! `registry.enable_online_feature_view_versioning`, a second version of its view applied by
//! the SDK, each version materialized (Feast's `materialize` into one copy, Larder's into
//! another): `larder serve` answers `@v<N>` references, unversioned ones, the version metadata
//! and the errors as `feast serve` does.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use crate::historical::OfflineServer;
use crate::oracle_ondemand::template;
use crate::oracle_serving::{feast_serve, larder_serve, post};
use crate::support::{Oracle, copy_dir, larder, stdout_ok};

fn answer(status: u16, body: &str) -> (u16, Json) {
    let doc: Json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    if status != 200 {
        // Feast's error body: a JSON string holding {module, class, message}.
        let inner: Json = doc
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(doc);
        return (
            status,
            json!({"class": inner["class"], "message": inner["message"]}),
        );
    }
    let names = doc["metadata"]["feature_names"].as_array().unwrap();
    let by_name: BTreeMap<String, Json> = names
        .iter()
        .zip(doc["results"].as_array().unwrap())
        .map(|(n, r)| (n.as_str().unwrap().to_owned(), r.clone()))
        .collect();
    (
        status,
        json!({"features": by_name, "views": doc["metadata"]["feature_view_metadata"]}),
    )
}

#[test]
fn version_pinned_references_are_served_as_feast_serves_them() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let base = template(&oracle, dir.path(), "versions");
    let yaml = base.join("feature_store.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap().replace(
        "registry: data/registry.db",
        "registry:\n    path: data/registry.db\n    enable_online_feature_view_versioning: true",
    );
    std::fs::write(&yaml, text).unwrap();
    let (feast_repo, larder_repo) = (dir.path().join("feast"), dir.path().join("larder"));
    copy_dir(&base, &feast_repo);
    copy_dir(&base, &larder_repo);
    let end = chrono::Utc::now().naive_utc();
    let range = [
        (end - chrono::Duration::days(60))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
        end.format("%Y-%m-%dT%H:%M:%S").to_string(),
    ];
    let range = [range[0].as_str(), range[1].as_str()];
    // Version 0 materialized, then version 1 applied and materialized (its own table).
    for step in 0..2 {
        if step == 1 {
            for repo in [&feast_repo, &larder_repo] {
                let v = oracle.script("version_view.py", &[repo.to_str().unwrap()]);
                assert_eq!(v.trim(), "1", "the active version after the SDK's apply");
            }
        }
        let mut args = vec!["materialize"];
        args.extend(range);
        oracle.feast(&feast_repo, &args, &[]);
        stdout_ok(larder(&larder_repo, &args, &[]), "larder materialize");
    }
    let tables = oracle.python(
        &format!(
            "import sqlite3; c = sqlite3.connect({:?}); print(sorted(r[0] for r in c.execute(\"select name from sqlite_master where type='table'\")))",
            larder_repo.join("data/online_store.db").to_string_lossy()
        ),
        &[],
    );
    assert!(
        tables.contains("'versions_driver_hourly_stats_v1'"),
        "{tables}"
    );

    let feast = feast_serve(&oracle, &feast_repo);
    let served = larder_serve(&larder_repo);
    let requests = [
        json!({"features": ["driver_hourly_stats@v1:conv_rate", "driver_hourly_stats:acc_rate"],
               "entities": {"driver_id": [1001, 1002, 7]}, "include_feature_view_version_metadata": true}),
        json!({"features": ["driver_hourly_stats@v0:avg_daily_trips", "driver_hourly_stats@V1:conv_rate"],
               "full_feature_names": true, "entities": {"driver_id": [1003, 1004]},
               "include_feature_view_version_metadata": true}),
        json!({"features": ["driver_hourly_stats@latest:conv_rate", "driver_hourly_stats@v0:conv_rate"],
               "full_feature_names": true, "entities": {"driver_id": [1005]}}),
        json!({"features": ["driver_hourly_stats@v0:conv_rate"],
               "entities": {"driver_id": [1001]}, "include_feature_view_version_metadata": true}),
        // A version that does not exist; a feature the pinned version lacks.
        json!({"features": ["driver_hourly_stats@v2:conv_rate"], "entities": {"driver_id": [1001]}}),
    ];
    for req in &requests {
        let url = "/get-online-features";
        let (fs, fbody) = post(&format!("{}{url}", feast.url), req);
        let (ls, lbody) = post(&format!("{}{url}", served.url), req);
        let (f, l) = (answer(fs, &fbody), answer(ls, &lbody));
        if fs == 200 {
            assert_eq!(l, f, "{req}\nfeast: {fbody}\nlarder: {lbody}");
        } else {
            // Feast answers 404 for the missing version (its class is what the SDK re-raises).
            assert_eq!(l.1, f.1, "{req}\nfeast: {fbody}\nlarder: {lbody}");
            assert_eq!(ls, 404, "{lbody}");
        }
    }
    // The pinned version 1 has no avg_daily_trips: Feast raises a KeyError (500), Larder 404.
    let req = json!({"features": ["driver_hourly_stats@v1:avg_daily_trips"], "entities": {"driver_id": [1001]}});
    let (ls, lbody) = post(&format!("{}/get-online-features", served.url), &req);
    assert_eq!(ls, 404, "{lbody}");
    assert!(
        lbody.contains("not found in projection driver_hourly_stats@v1"),
        "{lbody}"
    );

    drop(served);

    // Historical retrieval of pinned versions: through `larder serve-offline` as the SDK's
    // remote offline store, against Feast's file store on its own copy.
    let flight = OfflineServer::start(&larder_repo);
    let entity_path = dir.path().join("entity.parquet");
    let retrieve = |setup: &str, features: &str| -> Json {
        retrieve_both(
            &oracle,
            [&feast_repo, &larder_repo],
            flight.port,
            &entity_path,
            setup,
            features,
        )
    };
    let out = retrieve(
        "",
        r#"["driver_hourly_stats@v0:avg_daily_trips", "driver_hourly_stats@v1:conv_rate",
            "driver_hourly_stats:acc_rate"]"#,
    );
    assert!(
        out["larder"]["columns"]
            .to_string()
            .contains("driver_hourly_stats@v0__avg_daily_trips"),
        "{out}"
    );
    assert_same_rows(&out);

    // A feature service pinning version 0 (applied by the SDK, which resolves the pin into
    // the projection's version_tag): Feast's file store, the SDK through `serve-offline`, and
    // `larder get-historical-features --feature-service` give the same rows.
    let out = retrieve(
        r#"
from feast import FeatureService
for repo in REPOS:
    FeatureStore(repo_path=repo).apply([FeatureService(name="pinned", features=[
        "driver_hourly_stats@v0:avg_daily_trips", "driver_hourly_stats:conv_rate"])])
"#,
        r#"store.get_feature_service("pinned")"#,
    );
    let columns = out["larder"]["columns"].to_string();
    assert!(
        columns.contains("driver_hourly_stats@v0__avg_daily_trips")
            && columns.contains("\"driver_hourly_stats__conv_rate"),
        "{out}"
    );
    assert_same_rows(&out);
    // The CLI, on the same registry and entity file.
    let cli_out = dir.path().join("pinned.parquet");
    stdout_ok(
        larder(
            &larder_repo,
            &[
                "get-historical-features",
                "--entity-df",
                entity_path.to_str().unwrap(),
                "--feature-service",
                "pinned",
                "--full-feature-names",
                "-o",
                cli_out.to_str().unwrap(),
            ],
            &[],
        ),
        "larder get-historical-features --feature-service pinned",
    );
    let code = format!(
        r#"
import json
import pandas as pd
{ROWS}
print(json.dumps(rows(pd.read_parquet({cli_out:?}))))
"#,
        cli_out = cli_out.to_string_lossy(),
    );
    let cli: Json = serde_json::from_str(&oracle.python(&code, &[])).unwrap();
    assert_eq!(
        cli, out["larder"],
        "the CLI's answer against the Flight server's"
    );
}

/// A frame as comparable JSON: sorted columns, rows ordered by entity, times as text.
const ROWS: &str = r#"
def rows(df):
    df = df.sort_values(["driver_id", "event_timestamp"]).reset_index(drop=True)
    df["event_timestamp"] = df["event_timestamp"].astype(str)
    return {"columns": sorted(df.columns), "rows": json.loads(df.to_json(orient="records"))}
"#;

/// Runs `setup` (Python, with `REPOS` the two repos), then `get_historical_features` of
/// `features` (a Python expression of `store`) with full feature names, on an entity frame
/// (also written to `entity_path`) through Feast's file store on the first repo and through
/// Larder's Flight server on `port` for the second: `{"feast": rows, "larder": rows}`.
fn retrieve_both(
    oracle: &Oracle,
    [feast_repo, larder_repo]: [&std::path::Path; 2],
    port: u16,
    entity_path: &std::path::Path,
    setup: &str,
    features: &str,
) -> Json {
    let code = format!(
        r#"
import json, sys, warnings
from datetime import datetime, timedelta, timezone
warnings.filterwarnings("ignore")
sys.path.insert(0, {oracle_dir:?})
import pandas as pd
from feast import FeatureStore
from remote_yaml import remote_yaml
{ROWS}
REPOS = ({feast_repo:?}, {larder_repo:?})
{setup}
now = datetime.now(timezone.utc).replace(microsecond=0)
entity = pd.DataFrame({{"driver_id": [1001, 1002, 1003, 7],
                        "event_timestamp": [now - timedelta(hours=h) for h in (1, 2, 30, 1)]}})
entity.to_parquet({entity_path:?})
out = {{}}
for name, store in [("feast", FeatureStore(repo_path=REPOS[0])),
                    ("larder", FeatureStore(repo_path=REPOS[1],
                        fs_yaml_file=remote_yaml(REPOS[1], offline_port={port})))]:
    df = store.get_historical_features(entity_df=entity, features={features},
                                       full_feature_names=True).to_df()
    out[name] = rows(df)
print(json.dumps(out))
"#,
        oracle_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../oracle")
            .to_string_lossy(),
        feast_repo = feast_repo.to_string_lossy(),
        larder_repo = larder_repo.to_string_lossy(),
        entity_path = entity_path.to_string_lossy(),
    );
    serde_json::from_str(&oracle.python(&code, &[])).unwrap()
}

/// Feast's file store drops entity rows without a match (§9.3); Larder keeps every row. The
/// columns and the rows Feast answers are equal.
fn assert_same_rows(out: &Json) {
    assert_eq!(out["larder"]["columns"], out["feast"]["columns"], "{out}");
    let larder_rows = out["larder"]["rows"].as_array().unwrap();
    assert_eq!(larder_rows.len(), 4, "{out}");
    let feast_rows = out["feast"]["rows"].as_array().unwrap();
    assert!(feast_rows.len() >= 2, "{out}");
    for f in feast_rows {
        let l = larder_rows
            .iter()
            .find(|l| {
                l["driver_id"] == f["driver_id"] && l["event_timestamp"] == f["event_timestamp"]
            })
            .unwrap_or_else(|| panic!("{f} not in larder's answer: {out}"));
        assert_eq!(l, f, "{out}");
    }
}
