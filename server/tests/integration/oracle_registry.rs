//! `larder registry-dump` must print what `feast registry-dump` prints, for registries in a
//! local file, in S3 (moto on loopback) and in Feast's SQL registry (the local PostgreSQL).

use std::{path::Path, process::Command};

use serde_json::Value as Json;

use crate::support::{Oracle, assert_json_eq, larder, normalize_dump, stdout_ok};

/// Two projects sharing one registry, applied by Feast; then both dumps compared per project.
fn two_projects_in_one_registry(registry: &str, env: &[(&str, &str)], what: &str) {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repos = [
        (
            dir.path().join("alpha"),
            "alpha",
            vec!["--seed", "1", "--labels"],
        ),
        (
            dir.path().join("beta"),
            "beta",
            vec!["--seed", "2", "--ttl-days", "0"],
        ),
    ];
    for (repo, project, extra) in &repos {
        oracle.make_repo(repo, project, registry, extra);
        oracle.feast(repo, &["apply"], env);
    }
    for (repo, project, _) in &repos {
        let feast: Json =
            serde_json::from_str(&oracle.feast(repo, &["registry-dump"], env)).unwrap();
        assert_eq!(feast["project"], *project);
        assert!(
            feast["featureViews"]
                .as_array()
                .is_some_and(|v| v.len() >= 4)
        );
        let larder_out = stdout_ok(
            larder(repo, &["registry-dump"], env),
            "larder registry-dump",
        );
        let larder: Json = serde_json::from_str(&larder_out).unwrap();
        assert_json_eq(
            &normalize_dump(feast),
            &normalize_dump(larder),
            &format!("{what}, project {project}"),
        );
    }
}

#[test]
fn registry_dump_matches_feast_for_a_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("shared-registry.db");
    two_projects_in_one_registry(registry.to_str().unwrap(), &[], "local file registry");
}

#[test]
fn registry_dump_output_is_byte_identical_for_a_simple_repo() {
    // Without the nondeterministic spots (no on-demand request sources, no stream views)
    // the whole output matches byte for byte, formatting included.
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("r");
    oracle.make_repo(&repo, "plain", "data/registry.db", &[]);
    let features = repo.join("features.py");
    let defs = std::fs::read_to_string(&features).unwrap();
    let cut = defs.find("input_request = RequestSource(").unwrap();
    let end = defs.find("reader = Permission(").unwrap();
    let defs = format!("{}{}", &defs[..cut], &defs[end..]);
    std::fs::write(&features, defs).unwrap();
    oracle.feast(&repo, &["apply"], &[]);
    let feast = oracle.feast(&repo, &["registry-dump"], &[]);
    let ours = stdout_ok(
        larder(&repo, &["registry-dump"], &[]),
        "larder registry-dump",
    );
    assert_eq!(ours, feast);
}

#[test]
fn registry_dump_matches_feast_for_an_s3_registry() {
    let s3 = crate::support::S3::get();
    let oracle = Oracle::get();
    let bucket = format!("oracle-{}", std::process::id());
    let env = s3.env();
    s3.create_bucket(&oracle, &bucket);
    two_projects_in_one_registry(
        &format!("s3://{bucket}/feast/registry.pb"),
        &env,
        "s3 registry",
    );
}

/// Periodic refreshes of an S3 registry are conditional GETs: the real endpoint answers
/// "not modified" for the ETag already read, and a rewritten object is read again.
#[tokio::test]
async fn an_s3_registry_refresh_sends_the_etag_it_has() {
    use larder_registry::store::{Fetched, ObjectRegistryStore, ObjectStoreExt, RegistryStore};
    use prost::Message;
    let s3 = crate::support::S3::get();
    let oracle = Oracle::get();
    let bucket = format!("etag-{}", std::process::id());
    s3.create_bucket(&oracle, &bucket);
    let env = s3
        .env()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let store = ObjectRegistryStore::s3(&format!("s3://{bucket}/registry.pb"), &env).unwrap();
    let registry = |project: &str| {
        larder_protos::feast::core::Registry {
            registry_schema_version: project.into(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let (object, path) = store.object();
    object.put(&path, registry("1").into()).await.unwrap();
    let Fetched::Changed {
        snapshot,
        revision: Some(revision),
    } = store.load_if_changed(None).await.unwrap()
    else {
        panic!("a first read returns the registry and its ETag");
    };
    assert_eq!(snapshot.proto.registry_schema_version, "1");
    assert!(
        matches!(
            store.load_if_changed(Some(&revision)).await.unwrap(),
            Fetched::Unchanged
        ),
        "the endpoint did not answer 304 to If-None-Match"
    );
    object.put(&path, registry("2").into()).await.unwrap();
    match store.load_if_changed(Some(&revision)).await.unwrap() {
        Fetched::Changed { snapshot, .. } => {
            assert_eq!(snapshot.proto.registry_schema_version, "2")
        }
        Fetched::Unchanged => panic!("a rewritten registry was taken for unchanged"),
    }
}

/// Refreshes of a SQL registry compare row versions: nothing changed → no objects read; a
/// row rewritten with the same values or a deleted row → read again.
#[tokio::test]
async fn a_sql_registry_refresh_compares_row_versions() {
    use larder_registry::store::{Fetched, RegistryStore, SqlRegistryStore};
    let oracle = Oracle::get();
    let db = format!("larder_rev_{}", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {db}"));
    psql(&format!("CREATE DATABASE {db}"));
    let url = format!("postgresql+psycopg2://postgres@127.0.0.1:5432/{db}");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    oracle.make_repo(
        &repo,
        "rev",
        &format!("{{registry_type: sql, path: '{url}'}}"),
        &[],
    );
    oracle.feast(&repo, &["apply"], &[]);
    let store = SqlRegistryStore::new(&url).unwrap();
    let Fetched::Changed {
        snapshot,
        revision: Some(first),
    } = store.load_if_changed(None).await.unwrap()
    else {
        panic!("a first read returns the registry and a revision");
    };
    let entities = snapshot.proto.entities.len();
    assert!(entities > 1, "{entities}");
    assert!(matches!(
        store.load_if_changed(Some(&first)).await.unwrap(),
        Fetched::Unchanged
    ));
    psql_in(
        &db,
        "UPDATE feature_views SET last_updated_timestamp = last_updated_timestamp",
    );
    let Fetched::Changed {
        snapshot: again,
        revision: Some(second),
    } = store.load_if_changed(Some(&first)).await.unwrap()
    else {
        panic!("a rewritten row was taken for unchanged");
    };
    assert_ne!(first, second);
    assert_eq!(again.proto, snapshot.proto, "same values, same registry");
    psql_in(
        &db,
        "DELETE FROM entities WHERE entity_name = (SELECT min(entity_name) FROM entities)",
    );
    match store.load_if_changed(Some(&second)).await.unwrap() {
        Fetched::Changed { snapshot, .. } => {
            assert_eq!(snapshot.proto.entities.len(), entities - 1)
        }
        Fetched::Unchanged => panic!("a deleted row was taken for unchanged"),
    }
    psql(&format!("DROP DATABASE IF EXISTS {db}"));
}

pub fn psql(sql: &str) {
    psql_in("postgres", sql)
}

/// Runs `sql` in database `db` of the local PostgreSQL.
pub fn psql_in(db: &str, sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn registry_dump_matches_feast_for_a_sql_registry() {
    let db = format!("larder_oracle_{}", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {db}"));
    psql(&format!("CREATE DATABASE {db}"));
    let registry = format!(
        "{{registry_type: sql, path: 'postgresql+psycopg2://postgres@127.0.0.1:5432/{db}', cache_ttl_seconds: 60}}"
    );
    two_projects_in_one_registry(&registry, &[], "sql registry");
    psql(&format!("DROP DATABASE IF EXISTS {db}"));
}

#[test]
fn list_commands_read_the_oracle_repo() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("r");
    oracle.make_repo(&repo, "lists", "data/registry.db", &[]);
    oracle.feast(&repo, &["apply"], &[]);
    let run = |args: &[&str]| stdout_ok(larder(&repo, args, &[]), &args.join(" "));
    let entities = run(&["entities", "list"]);
    assert!(entities.starts_with("NAME"), "{entities}");
    for name in ["driver", "customer", "location"] {
        assert!(entities.contains(name), "{entities}");
    }
    assert!(!entities.contains("__dummy"), "{entities}");
    let fvs = run(&["feature-views", "list"]);
    for name in [
        "driver_hourly_stats",
        "all_types",
        "transformed_conv_rate",
        "global_stats",
    ] {
        assert!(fvs.contains(name), "{fvs}");
    }
    let odfvs = run(&["on-demand-feature-views", "list"]);
    assert!(
        odfvs.contains("trips_doubled") && !odfvs.contains("all_types"),
        "{odfvs}"
    );
    let services = run(&["feature-services", "list"]);
    assert!(
        services.contains("driver_activity_v1")
            && services.contains("driver_hourly_stats:conv_rate"),
        "{services}"
    );
    let sources = run(&["data-sources", "list"]);
    assert!(
        sources.contains("trip_push") && sources.contains("PushSource"),
        "{sources}"
    );
    let projects = run(&["projects", "list"]);
    assert!(projects.contains("lists"), "{projects}");
    let tagged = run(&["feature-views", "list", "--tags", "team:driver_performance"]);
    assert!(
        tagged.contains("driver_hourly_stats") && !tagged.contains("all_types"),
        "{tagged}"
    );
    let config = run(&["configuration"]);
    assert!(config.contains("project: lists"), "{config}");
    let _ = Path::new(".");
}

/// A client repo in `dir/client`: `repo`'s feature_store.yaml with the registry `remote` at
/// `127.0.0.1:port` and the repo's own online store.
fn remote_registry_client(repo: &Path, dir: &Path, port: u16) -> std::path::PathBuf {
    let client = dir.join("client");
    std::fs::create_dir_all(&client).unwrap();
    let yaml = std::fs::read_to_string(repo.join("feature_store.yaml"))
        .unwrap()
        .replace(
            "registry: data/registry.db",
            &format!("registry:\n    registry_type: remote\n    path: 127.0.0.1:{port}"),
        )
        .replace(
            "path: data/online_store.db",
            &format!("path: {}", repo.join("data/online_store.db").display()),
        );
    std::fs::write(client.join("feature_store.yaml"), yaml).unwrap();
    client
}

/// The Feast SDK and CLI with `registry: {registry_type: remote}` pointed at `larder
/// serve-registry` (on `feast init`'s repo): `feast registry-dump` prints what it prints on the
/// repo itself, `feast feature-views list` lists the views, `get_online_features` (by features
/// and by a feature service) answers as on the repo itself, missing objects raise Feast's own
/// exceptions, and a feature view applies.
#[test]
fn the_feast_sdk_reads_the_registry_through_serve_registry() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::oracle_ondemand::template(&oracle, dir.path(), "remote_registry");
    let now = chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    stdout_ok(
        larder(&repo, &["materialize-incremental", &now], &[]),
        "larder materialize-incremental",
    );
    let server = crate::historical::OfflineServer::start_command(&repo, "serve-registry", &[], &[]);
    let client = remote_registry_client(&repo, dir.path(), server.port);

    let dump = |repo: &Path| -> Json {
        normalize_dump(serde_json::from_str(&oracle.feast(repo, &["registry-dump"], &[])).unwrap())
    };
    assert_json_eq(
        &dump(&repo),
        &dump(&client),
        "registry-dump through serve-registry",
    );
    let listed = oracle.feast(&client, &["feature-views", "list"], &[]);
    assert!(
        listed.contains("driver_hourly_stats ") && listed.contains("transformed_conv_rate "),
        "{listed}"
    );

    let code = r#"
import json, sys, warnings
warnings.filterwarnings("ignore")
from feast import FeatureStore
out = {}
for name in ["local", "remote"]:
    s = FeatureStore(repo_path=sys.argv[1] if name == "local" else sys.argv[2])
    rows = [{"driver_id": 1001, "val_to_add": 1, "val_to_add_2": 2}, {"driver_id": 1002, "val_to_add": 3, "val_to_add_2": 4}]
    out[name] = {
        "features": s.get_online_features(features=["driver_hourly_stats:conv_rate", "transformed_conv_rate:conv_rate_plus_val1"], entity_rows=rows).to_dict(),
        "service": s.get_online_features(features=s.get_feature_service("driver_activity_v1"), entity_rows=rows).to_dict(),
    }
    errors = []
    for f in [lambda: s.get_feature_view("nope"), lambda: s.get_entity("nope"),
              lambda: s.get_feature_service("nope"), lambda: s.get_data_source("nope")]:
        try:
            f()
        except Exception as e:
            errors.append(type(e).__name__)
    out[name]["errors"] = errors
s = FeatureStore(repo_path=sys.argv[2])
try:
    s.apply([s.get_feature_view("driver_hourly_stats")])
    out["write"] = "applied"
except Exception as e:
    out["write"] = f"{type(e).__name__}: {e}"
print(json.dumps(out, default=str))
"#;
    let script = dir.path().join("remote_reads.py");
    std::fs::write(&script, code).unwrap();
    let out: Json = serde_json::from_str(
        &oracle.run_python_file(&script, &[repo.to_str().unwrap(), client.to_str().unwrap()]),
    )
    .unwrap();
    assert_eq!(out["remote"], out["local"], "{out}");
    assert_eq!(
        out["remote"]["errors"],
        serde_json::json!([
            "FeatureViewNotFoundException",
            "EntityNotFoundException",
            "FeatureServiceNotFoundException",
            "DataSourceObjectNotFoundException"
        ])
    );
    assert_eq!(out["write"], "applied", "{out}");
}

/// Writes through `larder serve-registry` from the Feast SDK with a remote registry: `apply`
/// of an entity and a data source lands in the repo's file registry as Feast's registry would
/// write it (project set, created kept on a re-apply, last update moved), objects not applied
/// stay byte for byte, deletes remove and a second delete is Feast's not-found exception; two
/// clients staging at once: the first commit wins, the second is refused with nothing
/// written, and its re-apply lands; a feature view pinned with a changed definition is refused
/// and its whole apply with it (nothing of it is committed later); a materialization's
/// interval is recorded in the view.
#[test]
fn the_feast_sdk_applies_through_serve_registry() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::oracle_ondemand::template(&oracle, dir.path(), "remote_writes");
    let before = std::fs::read(repo.join("data/registry.db")).unwrap();
    let server = crate::historical::OfflineServer::start_command(&repo, "serve-registry", &[], &[]);
    let client = remote_registry_client(&repo, dir.path(), server.port);
    let code = r#"
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from feast import Entity, FeatureStore, FileSource
from feast.errors import FeastError
repo, client = sys.argv[1], sys.argv[2]
local = lambda: FeatureStore(repo_path=repo)
remote = FeatureStore(repo_path=client)
project = remote.project
out = {}
src = FileSource(name="rider_source", path="data/riders.parquet", timestamp_field="event_timestamp")
remote.apply([Entity(name="rider", join_keys=["rider_id"], description="first"), src])
e = local().get_entity("rider")
d = local().registry.get_data_source("rider_source", project)
out["first"] = {"description": e.description, "remote": remote.get_entity("rider").description,
                "source_path": d.path, "created": str(e.created_timestamp)}
time.sleep(1.1)
remote.apply([Entity(name="rider", join_keys=["rider_id"], description="second")])
e2 = local().get_entity("rider")
out["second"] = {"description": e2.description, "created_kept": e2.created_timestamp == e.created_timestamp,
                 "updated_later": e2.last_updated_timestamp > e.last_updated_timestamp}
remote.registry.delete_entity("rider", project, commit=True)
out["deleted"] = [x.name for x in local().list_entities()]
try:
    remote.registry.delete_entity("rider", project, commit=True)
except Exception as err:
    out["delete_again"] = type(err).__name__
# Two appliers in two processes (one process's gRPC channels to one address share a
# connection, and so a staging): each stages an entity, then A commits, then B.
import subprocess
applier = """
import sys, warnings
warnings.filterwarnings("ignore")
from feast import Entity, FeatureStore
from feast.errors import FeastError
s = FeatureStore(repo_path=sys.argv[1])
s.registry.apply_entity(Entity(name=sys.argv[2], join_keys=[sys.argv[2] + "_id"]), s.project, commit=False)
print("staged", flush=True)
sys.stdin.readline()
try:
    s.registry.commit()
    print("committed", flush=True)
except FeastError as err:
    print(f"{type(err).__name__}: {err}", flush=True)
"""
procs = [subprocess.Popen([sys.executable, "-c", applier, client, n], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) for n in ["from_a", "from_b"]]
for p in procs:
    assert p.stdout.readline().strip() == "staged"
results = []
for p in procs:
    p.stdin.write("go\n"); p.stdin.flush()
    results.append(p.stdout.readline().strip())
    p.wait()
out["first_commit"], out["second_commit"] = results
out["after_conflict"] = sorted(x.name for x in local().list_entities())
# A refused feature view (pinned to v0 with its definition also changed) fails its whole
# apply: what was staged before it is dropped, not committed by this connection's next commit.
view_src = FileSource(name="view_source", path="data/v.parquet", timestamp_field="event_timestamp")
pinned = remote.get_feature_view("driver_hourly_stats")
pinned.version = "v0"
pinned.description = "changed while pinned"
try:
    remote.apply([Entity(name="with_view", join_keys=["w_id"]), view_src, pinned])
    out["view"] = "applied"
except FeastError as err:
    out["view"] = f"{type(err).__name__}: {err}"
b = FeatureStore(repo_path=client)
b.registry.apply_entity(Entity(name="from_b", join_keys=["b_id"]), project, commit=True)
out["sources"] = sorted(x.name for x in local().list_data_sources())
# What `feast materialize` records through the registry.
from datetime import datetime, timezone
fv = remote.get_feature_view("driver_hourly_stats")
n = len(local().get_feature_view("driver_hourly_stats").materialization_intervals)
start, end = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc)
remote.registry.apply_materialization(fv, project, start, end, commit=True)
iv = local().get_feature_view("driver_hourly_stats").materialization_intervals
out["materialized"] = {"added": len(iv) - n, "last": [str(iv[-1][0]), str(iv[-1][1])]}
out["after_retry"] = sorted(x.name for x in local().list_entities())
print(json.dumps(out, default=str))
"#;
    let script = dir.path().join("remote_writes.py");
    std::fs::write(&script, code).unwrap();
    let out: Json = serde_json::from_str(
        &oracle.run_python_file(&script, &[repo.to_str().unwrap(), client.to_str().unwrap()]),
    )
    .unwrap();
    assert_eq!(out["first"]["description"], "first", "{out}");
    assert_eq!(out["first"]["remote"], "first", "{out}");
    assert_eq!(out["first"]["source_path"], "data/riders.parquet", "{out}");
    assert_eq!(out["second"]["description"], "second", "{out}");
    assert_eq!(out["second"]["created_kept"], true, "{out}");
    assert_eq!(out["second"]["updated_later"], true, "{out}");
    assert_eq!(out["deleted"], serde_json::json!(["driver"]), "{out}");
    assert_eq!(out["delete_again"], "EntityNotFoundException", "{out}");
    assert_eq!(out["first_commit"], "committed", "{out}");
    let second = out["second_commit"].as_str().unwrap();
    assert!(
        second.starts_with("FeastError") && second.contains("another writer committed first"),
        "{out}"
    );
    assert_eq!(
        out["after_conflict"],
        serde_json::json!(["driver", "from_a"]),
        "{out}"
    );
    assert_eq!(
        out["after_retry"],
        serde_json::json!(["driver", "from_a", "from_b"]),
        "{out}"
    );
    let view = out["view"].as_str().unwrap();
    assert!(view.starts_with("FeatureViewPinConflict"), "{out}");
    let sources: Vec<&str> = out["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"rider_source") && !sources.contains(&"view_source"),
        "{out}"
    );

    assert_eq!(
        out["materialized"],
        serde_json::json!({"added": 1, "last": ["2026-01-01 00:00:00+00:00", "2026-01-02 00:00:00+00:00"]}),
        "{out}"
    );
    // Every object the writes did not name is stored as it was, byte for byte.
    let after = std::fs::read(repo.join("data/registry.db")).unwrap();
    let objects = |bytes: &[u8]| -> Vec<(String, Vec<u8>)> {
        larder_registry::writeback::registry_objects(bytes)
            .unwrap()
            .into_iter()
            .map(|(k, b)| (k.to_string(), b.to_vec()))
            .collect()
    };
    let after_objects = objects(&after);
    for (key, bytes) in objects(&before) {
        if (key.contains("entity") && !key.contains("driver"))
            || key.starts_with("feature view \"driver_hourly_stats\"")
        {
            continue;
        }
        assert!(
            after_objects.iter().any(|(k, b)| *k == key && *b == bytes),
            "{key} changed"
        );
    }
}

/// `feast apply` and `feast plan` of `feast init`'s repo through `larder serve-registry`
/// (the SDK's registry `remote`, Larder's store an empty file registry) write what Feast's own
/// `feast apply` writes to its local registry: every object, the feature views' version
/// history and the infra (timestamps, ids and paths normalized); the plan after it has nothing
/// to do; and the same edit applied on both sides (a metadata change of one view, a schema
/// change of another) leaves both registries equal again, v1 recorded for the schema change.
#[test]
fn feast_apply_through_serve_registry_writes_what_feast_writes() {
    apply_through_serve_registry(None, &[]);
}

/// As [`feast_apply_through_serve_registry_writes_what_feast_writes`], with Larder's store a
/// registry object in S3 (moto) not written yet.
#[test]
fn feast_apply_through_serve_registry_into_an_s3_registry() {
    let s3 = crate::support::S3::get();
    let oracle = Oracle::get();
    let bucket = format!("apply-{}", std::process::id());
    s3.create_bucket(&oracle, &bucket);
    apply_through_serve_registry(
        Some(&format!("registry: s3://{bucket}/feast/registry.pb")),
        &s3.env(),
    );
}

/// As [`feast_apply_through_serve_registry_writes_what_feast_writes`], with Larder's store
/// Feast's SQL registry on an empty PostgreSQL database (its tables created by the first
/// commit, `schema_mode: auto`), read back through the server's `Proto`.
#[test]
fn feast_apply_through_serve_registry_into_a_sql_registry() {
    let db = format!("larder_apply_{}", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {db}"));
    psql(&format!("CREATE DATABASE {db}"));
    apply_through_serve_registry(
        Some(&format!(
            "registry:\n    registry_type: sql\n    path: postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
        )),
        &[],
    );
    psql(&format!("DROP DATABASE IF EXISTS {db}"));
}

/// `served_registry`: the `registry:` section of Larder's side (`None`: a file registry);
/// `env`: the server's environment (an S3 endpoint).
fn apply_through_serve_registry(served_registry: Option<&str>, env: &[(&str, &str)]) {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::oracle_ondemand::template(&oracle, dir.path(), "apply_feast");
    // Larder's side: the same feature_store.yaml over a registry not written yet.
    let served = dir.path().join("served");
    std::fs::create_dir_all(served.join("data")).unwrap();
    let yaml = std::fs::read_to_string(repo.join("feature_store.yaml")).unwrap();
    let yaml = match served_registry {
        Some(section) => yaml.replace("registry: data/registry.db", section),
        None => yaml,
    };
    std::fs::write(served.join("feature_store.yaml"), yaml).unwrap();
    let server =
        crate::historical::OfflineServer::start_command(&served, "serve-registry", &[], env);
    // The client: the repo's definitions and data, its registry remote.
    let client = dir.path().join("client");
    std::fs::create_dir_all(client.join("data")).unwrap();
    for entry in std::fs::read_dir(&repo).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "py") {
            std::fs::copy(&path, client.join(path.file_name().unwrap())).unwrap();
        }
    }
    for data in ["driver_stats.parquet", "driver_quality_labels.parquet"] {
        std::fs::copy(repo.join("data").join(data), client.join("data").join(data)).unwrap();
    }
    let yaml = std::fs::read_to_string(repo.join("feature_store.yaml"))
        .unwrap()
        .replace(
            "registry: data/registry.db",
            &format!(
                "registry:\n    registry_type: remote\n    path: 127.0.0.1:{}",
                server.port
            ),
        );
    std::fs::write(client.join("feature_store.yaml"), yaml).unwrap();

    // Larder's registry as stored (a file) or as the server reads it back (SQL).
    let served_bytes = served.join("data/registry.db");
    let export = dir.path().join("served_registry.db");
    let proto_script = dir.path().join("export.py");
    std::fs::write(
        &proto_script,
        "import sys, warnings\nwarnings.filterwarnings('ignore')\nfrom feast import FeatureStore\n\
         s = FeatureStore(repo_path=sys.argv[1])\n\
         open(sys.argv[2], 'wb').write(s.registry.proto().SerializeToString())\n",
    )
    .unwrap();
    let stored = || {
        if served_registry.is_some() {
            oracle.run_python_file(
                &proto_script,
                &[client.to_str().unwrap(), export.to_str().unwrap()],
            );
            export.clone()
        } else {
            served_bytes.clone()
        }
    };
    let compare = |what: &str, flags: &[&str]| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../oracle/registry_compare.py");
        let (a, b) = (repo.join("data/registry.db"), stored());
        let mut args = vec![a.to_str().unwrap(), b.to_str().unwrap()];
        args.extend_from_slice(flags);
        let out: Json = serde_json::from_str(&oracle.run_python_file(&script, &args)).unwrap();
        assert_json_eq(&out["a"], &out["b"], what);
        out
    };
    let applied = oracle.feast(&client, &["apply"], &[]);
    assert!(applied.contains("driver_hourly_stats"), "{applied}");
    let out = compare("the registry after feast apply through serve-registry", &[]);
    let records = out["b"]["featureViewVersionHistory"]["records"]
        .as_array()
        .unwrap();
    assert!(records.len() >= 4, "a v0 record per view: {records:?}");
    let infra = out["b"]["infra"]["infraObjects"].as_array().unwrap();
    assert!(!infra.is_empty(), "the online tables are recorded: {out}");

    let plan = oracle.feast(&client, &["plan"], &[]);
    assert!(
        plan.contains("No changes to registry") && plan.contains("No changes to infrastructure"),
        "{plan}"
    );
    let listed = oracle.feast(&client, &["feature-views", "list"], &[]);
    assert!(listed.contains("driver_hourly_stats_fresh "), "{listed}");

    // One edit on both sides: a description (metadata) and a new field (schema).
    for side in [&repo, &client] {
        let path = side.join("feature_definitions.py");
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text
            .replacen(
                "Field(name=\"conv_rate\", dtype=Float32),",
                "Field(name=\"conv_rate\", dtype=Float32),\n        Field(name=\"new_rate\", dtype=Float32),",
                1,
            )
            .replacen(
                "tags={\"team\": \"driver_performance\"},",
                "tags={\"team\": \"driver_performance\"},\n    description=\"edited\",",
                2,
            );
        assert_ne!(text, edited);
        std::fs::write(&path, edited).unwrap();
        oracle.feast(side, &["apply"], &[]);
    }
    // Feast's in-place metadata update drops the class type of the view's sources; Larder
    // keeps what the client sent (README: deviations).
    let out = compare(
        "the registry after an edit applied on both sides",
        &["--ignore-view-source-class"],
    );
    let classes = Command::new(oracle.bin.join("python"))
        .arg("-c")
        .arg(
            "import sys\nfrom feast.protos.feast.core.Registry_pb2 import Registry\n\
             r = Registry(); r.ParseFromString(open(sys.argv[1], 'rb').read())\n\
             print(all(v.spec.batch_source.data_source_class_type for v in r.feature_views))",
        )
        .arg(stored())
        .output()
        .unwrap();
    assert_eq!(stdout_ok(classes, "class types").trim(), "True");
    let versions: Vec<(String, i64)> = out["b"]["featureViewVersionHistory"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["featureViewName"].as_str().unwrap().to_owned(),
                r["versionNumber"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert!(
        versions.contains(&("driver_hourly_stats".to_owned(), 1)),
        "{versions:?}"
    );

    // The SDK deletes the project through the server: nothing of it is left.
    let script = dir.path().join("delete_project.py");
    std::fs::write(
        &script,
        "import sys, warnings\nwarnings.filterwarnings('ignore')\nfrom feast import FeatureStore\n\
         from feast.errors import ProjectNotFoundException\n\
         s = FeatureStore(repo_path=sys.argv[1])\n\
         s.registry.delete_project(s.project, commit=True)\n\
         p = s.registry.proto()\n\
         print(len(p.projects), len(p.feature_views), len(p.entities),\n\
               len(p.feature_view_version_history.records))\n\
         try:\n    s.registry.delete_project(s.project, commit=True)\n\
         except ProjectNotFoundException as e:\n    print(type(e).__name__)\n",
    )
    .unwrap();
    let out = oracle.run_python_file(&script, &[client.to_str().unwrap()]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "0", "0", "ProjectNotFoundException"],
        "{out}"
    );
}

/// `GetRegistryLineage`, `GetObjectRelationships`, `ListFeatures` and `GetFeature` of `larder
/// serve-registry` on `feast init`'s repo answer what Feast's own registry servicer answers
/// on it (filters, pagination and sorting included), and a missing feature is Feast's
/// `FeastObjectNotFoundException`.
#[test]
fn lineage_and_features_match_feasts_registry_server() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::oracle_ondemand::template(&oracle, dir.path(), "derived");
    let server = crate::historical::OfflineServer::start_command(&repo, "serve-registry", &[], &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../oracle/registry_derived.py");
    let out: Json = serde_json::from_str(
        &oracle.run_python_file(&script, &[repo.to_str().unwrap(), &server.port.to_string()]),
    )
    .unwrap();
    let answers = out.as_array().unwrap();
    assert_eq!(answers.len(), 15);
    // An on-demand view's sources come in Feast's protobuf-map order, in Larder's by name:
    // unsorted, unpaged lineage lists are compared as sets.
    let unordered = |mut doc: Json| {
        for key in ["relationships", "indirectRelationships"] {
            if let Some(Json::Array(list)) = doc.get_mut(key) {
                list.sort_by_key(|r| r.to_string());
            }
        }
        doc
    };
    for a in answers {
        let what = a["request"].as_str().unwrap();
        let (feast, larder) = if what.contains("Lineage") || what.contains("Relationships") {
            if what.contains("sorting") {
                (a["feast"].clone(), a["larder"].clone())
            } else {
                (
                    unordered(a["feast"].clone()),
                    unordered(a["larder"].clone()),
                )
            }
        } else {
            (a["feast"].clone(), a["larder"].clone())
        };
        assert_json_eq(&feast, &larder, what);
    }
    let lineage = &answers[0]["larder"];
    assert!(
        lineage["relationships"].as_array().unwrap().len() > 10,
        "{lineage}"
    );
    assert!(
        !lineage["indirectRelationships"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, child: &mut std::process::Child, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "{what} exited");
        assert!(std::time::Instant::now() < deadline, "{what} not listening");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The REST API of `larder serve-registry --rest-api` answers what Feast's own REST registry
/// server (`feast serve_registry --rest-api`) answers on `feast init`'s repo, route by route:
/// projects, entities (with the data sources they feed), data sources, feature views of every
/// kind, label views, feature services, features (paged and sorted), saved datasets,
/// permissions, lineage, `include_relationships`, the `/all` routes, and the status and error
/// type of a missing object and of a missing `project` (Feast's rendered `featureDefinition`
/// code snippets aside).
#[test]
fn the_rest_api_answers_what_feasts_rest_registry_server_answers() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::oracle_ondemand::template(&oracle, dir.path(), "rest");
    let feast_port = crate::support::free_port();
    let mut feast = Child(
        Command::new(oracle.bin.join("feast"))
            .current_dir(&repo)
            .args(["serve_registry", "--rest-api", "--no-grpc", "--rest-port"])
            .arg(feast_port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rest_port = crate::support::free_port();
    let rest = rest_port.to_string();
    let larder = crate::historical::OfflineServer::start_command(
        &repo,
        "serve-registry",
        &["--rest-api", "--rest-port", &rest],
        &[],
    );
    wait_for_port(rest_port, &mut feast.0, "larder's REST API");
    wait_for_port(feast_port, &mut feast.0, "feast serve_registry --rest-api");
    let _ = larder.port;
    let paths = [
        "projects",
        "projects/rest",
        "entities?project=rest",
        "entities/driver?project=rest",
        "entities/all",
        "data_sources?project=rest",
        "data_sources/driver_hourly_stats_source?project=rest",
        "data_sources/vals_to_add?project=rest&include_relationships=true",
        "feature_views?project=rest",
        "feature_views?project=rest&tags=team:driver_performance",
        "feature_views/driver_hourly_stats?project=rest&include_relationships=true",
        "feature_views/transformed_conv_rate?project=rest",
        "feature_views/all?limit=3&page=2",
        "label_views?project=rest",
        "feature_services?project=rest&include_relationships=true",
        "feature_services/driver_activity_v1?project=rest",
        "features?project=rest",
        "features?project=rest&page=2&limit=3&sort_by=name&sort_order=desc",
        "features/driver_hourly_stats/conv_rate?project=rest",
        "features/all",
        "saved_datasets?project=rest",
        "permissions?project=rest",
        "lineage/registry?project=rest",
        "lineage/objects/entity/driver?project=rest&include_indirect=true",
        "lineage/objects/featureService/driver_activity_v1?project=rest",
        "entities/nope?project=rest",
        "feature_views/nope?project=rest",
        "entities",
        "lineage/objects/labelView/x?project=rest",
    ];
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../oracle/registry_rest.py");
    let mut args = vec![feast_port.to_string(), rest.clone()];
    args.extend(paths.iter().map(|p| p.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out: Json = serde_json::from_str(&oracle.run_python_file(&script, &args)).unwrap();
    // Feast renders Python snippets of the definitions; an on-demand view's sources come in
    // Feast's protobuf-map order, in Larder's by name (lineage lists compared as sets).
    fn normalized(mut doc: Json, path: &str) -> Json {
        fn strip(v: &mut Json) {
            match v {
                Json::Object(m) => {
                    m.remove("featureDefinition");
                    // Feast stamps a request source read inside an on-demand view with the
                    // time of the read (as registry-dump shows).
                    if let Some(Json::Object(rs)) = m.get_mut("requestDataSource") {
                        rs.remove("meta");
                    }
                    // Feast re-pickles a UDF it read (from its source text); Larder answers
                    // the stored pickle.
                    if let Some(Json::Object(udf)) = m.get_mut("userDefinedFunction") {
                        udf.remove("body");
                    }
                    m.values_mut().for_each(strip);
                }
                Json::Array(a) => a.iter_mut().for_each(strip),
                _ => {}
            }
        }
        strip(&mut doc);
        if doc["status"] != 200 {
            return serde_json::json!({"status": doc["status"], "error_type": doc["body"]["error_type"]});
        }
        let body = &mut doc["body"];
        if !path.contains("sort_by") {
            fn sort_relations(v: &mut Json) {
                match v {
                    Json::Object(m) => {
                        for (k, x) in m.iter_mut() {
                            if k.to_lowercase().contains("relationships") {
                                match x {
                                    Json::Array(a) => a.sort_by_key(|r| r.to_string()),
                                    // By object name.
                                    Json::Object(by_name) => {
                                        for a in by_name.values_mut() {
                                            if let Json::Array(a) = a {
                                                a.sort_by_key(|r| r.to_string());
                                            }
                                        }
                                    }
                                    _ => {}
                                }
                            }
                            sort_relations(x);
                        }
                    }
                    Json::Array(a) => a.iter_mut().for_each(sort_relations),
                    _ => {}
                }
            }
            sort_relations(body);
        }
        doc
    }
    let answers = out.as_array().unwrap();
    assert_eq!(answers.len(), paths.len());
    for a in answers {
        let path = a["path"].as_str().unwrap();
        assert_json_eq(
            &normalized(a["feast"].clone(), path),
            &normalized(a["larder"].clone(), path),
            path,
        );
    }
    assert_eq!(
        answers[2]["larder"]["body"]["entities"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// `larder export-definitions` of `repo`'s registry into `target/definitions.yaml`.
fn export_definitions(repo: &Path, target: &Path) -> std::path::PathBuf {
    let defs = target.join("definitions.yaml");
    stdout_ok(
        larder(
            repo,
            &["export-definitions", "-o", defs.to_str().unwrap()],
            &[],
        ),
        "larder export-definitions",
    );
    defs
}

/// A registry-dump without what two applies of one repo differ in: times, ids, project
/// uuids, and the directory of the online store's file.
fn without_times(v: &mut Json) {
    match v {
        Json::Object(m) => {
            for k in [
                "createdTimestamp",
                "lastUpdatedTimestamp",
                "versionId",
                "projectMetadata",
            ] {
                m.remove(k);
            }
            // The online store is each repo's own file.
            if let Some(Json::String(p)) = m.get_mut("path")
                && p.ends_with(".db")
            {
                *p = Path::new(p.as_str())
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
            }
            m.values_mut().for_each(without_times);
        }
        Json::Array(a) => a.iter_mut().for_each(without_times),
        _ => {}
    }
}

/// YAML definitions: `larder export-definitions` of the registry Feast's `feast apply` wrote
/// for `feast init`'s repo, applied with `larder apply` into a repo with no registry, gives
/// the registry Feast wrote (`registry-dump`, times and ids aside) — which the Feast CLI reads
/// —, and a second plan has nothing to do; an edit of the YAML plans and applies as `feast
/// plan` would print it (updated, deleted), and a file naming an unknown field is refused with
/// its file, line and field.
#[test]
fn exported_definitions_apply_back_to_the_registry_feast_wrote() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::oracle_ondemand::template(&oracle, dir.path(), "yaml_defs");
    let yaml_repo = dir.path().join("yaml_repo");
    std::fs::create_dir_all(yaml_repo.join("data")).unwrap();
    std::fs::copy(
        repo.join("feature_store.yaml"),
        yaml_repo.join("feature_store.yaml"),
    )
    .unwrap();
    let defs = export_definitions(&repo, &yaml_repo);
    let plan = stdout_ok(larder(&yaml_repo, &["plan"], &[]), "larder plan");
    assert!(
        plan.contains("Created entity driver")
            && plan.contains("Created feature view driver_hourly_stats\n")
            && plan.contains("Created sqlite table yaml_defs_driver_hourly_stats\n"),
        "{plan}"
    );
    assert!(
        !yaml_repo.join("data/registry.db").exists(),
        "plan writes nothing"
    );
    stdout_ok(larder(&yaml_repo, &["apply"], &[]), "larder apply");

    let dump = |repo: &Path| -> Json {
        let mut d = normalize_dump(
            serde_json::from_str(&oracle.feast(repo, &["registry-dump"], &[])).unwrap(),
        );
        without_times(&mut d);
        d
    };
    assert_json_eq(
        &dump(&repo),
        &dump(&yaml_repo),
        "feast registry-dump after larder apply of the exported definitions",
    );
    let listed = oracle.feast(&yaml_repo, &["feature-views", "list"], &[]);
    assert!(listed.contains("driver_hourly_stats_fresh "), "{listed}");
    let again = stdout_ok(larder(&yaml_repo, &["plan"], &[]), "larder plan");
    assert_eq!(
        again,
        "No changes to registry\nNo changes to infrastructure\n"
    );
    // The tables exist: the SDK reads the applied views before any materialization.
    let read = oracle.python(
        &format!(
            "import warnings; warnings.filterwarnings('ignore')\nfrom feast import FeatureStore\n\
             s = FeatureStore(repo_path={:?})\n\
             print(s.get_online_features(features=['driver_hourly_stats:conv_rate'], \
             entity_rows=[{{'driver_id': 1001}}]).to_dict())",
            yaml_repo.to_str().unwrap()
        ),
        &[],
    );
    assert!(read.contains("'conv_rate': [None]"), "{read}");

    // An edit: a description, and a feature service removed.
    let text = std::fs::read_to_string(&defs).unwrap();
    let edited = text.replacen(
        "join_key: driver_id",
        "join_key: driver_id\n  description: edited",
        1,
    );
    let start = edited
        .find("- name: driver_activity_v3")
        .expect("the service is exported");
    let end = edited[start + 1..]
        .find("\n- name: ")
        .map_or(edited.len(), |i| start + 1 + i + 1);
    let edited = format!("{}{}", &edited[..start], &edited[end..]);
    std::fs::write(&defs, &edited).unwrap();
    let plan = stdout_ok(larder(&yaml_repo, &["plan"], &[]), "larder plan");
    assert_eq!(
        plan,
        "Updated entity driver\nDeleted feature service driver_activity_v3\nNo changes to infrastructure\n",
        "{edited}"
    );
    stdout_ok(larder(&yaml_repo, &["apply"], &[]), "larder apply");
    let services = oracle.feast(&yaml_repo, &["feature-services", "list"], &[]);
    assert!(
        services.contains("driver_activity_v1") && !services.contains("driver_activity_v3"),
        "{services}"
    );

    // Teardown: the project's tables and objects are gone; a plan would create them again.
    let down = stdout_ok(larder(&yaml_repo, &["teardown"], &[]), "larder teardown");
    assert!(down.contains("Deleted project yaml_defs"), "{down}");
    let tables = oracle.python(
        &format!(
            "import sqlite3; c = sqlite3.connect({:?}); \
             print(sorted(r[0] for r in c.execute(\"select name from sqlite_master where type='table'\")))",
            yaml_repo.join("data/online_store.db").to_str().unwrap()
        ),
        &[],
    );
    assert_eq!(tables.trim(), "[]", "{tables}");
    let plan = stdout_ok(larder(&yaml_repo, &["plan"], &[]), "larder plan");
    assert!(
        plan.contains("Created entity driver") && plan.contains("Created sqlite table"),
        "{plan}"
    );

    std::fs::write(
        yaml_repo.join("extra.yaml"),
        "entities:\n- name: rider\n  joinkey: rider_id\n",
    )
    .unwrap();
    let out = larder(&yaml_repo, &["plan"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("extra.yaml:2") && err.contains("rider") && err.contains("joinkey"),
        "{err}"
    );
}

/// `larder init`: a new repo defined in YAML that `larder apply`, `larder
/// materialize-incremental now` and the Feast SDK work with at once (the SDK reads today's
/// values of the example data); a second `init` of the same name is refused.
#[test]
fn larder_init_writes_a_repo_that_applies_materializes_and_serves() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let init = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-c")
        .arg(dir.path())
        .args(["init", "starter"])
        .output()
        .unwrap();
    stdout_ok(init, "larder init");
    let repo = dir.path().join("starter/feature_repo");
    let plan = stdout_ok(larder(&repo, &["plan"], &[]), "larder plan");
    assert!(
        plan.contains("Created feature view driver_hourly_stats\n")
            && plan.contains("Created feature service driver_activity\n"),
        "{plan}"
    );
    stdout_ok(larder(&repo, &["apply"], &[]), "larder apply");
    stdout_ok(
        larder(&repo, &["materialize-incremental", "now"], &[]),
        "larder materialize-incremental",
    );
    let listed = oracle.feast(&repo, &["feature-views", "list"], &[]);
    assert!(listed.contains("driver_hourly_stats "), "{listed}");
    let read = oracle.python(
        &format!(
            "import warnings; warnings.filterwarnings('ignore')\nfrom feast import FeatureStore\n\
             s = FeatureStore(repo_path={:?})\n\
             d = s.get_online_features(features=s.get_feature_service('driver_activity'), \
             entity_rows=[{{'driver_id': 1001}}, {{'driver_id': 1005}}]).to_dict()\n\
             print(all(v is not None for k in ('conv_rate', 'avg_daily_trips') for v in d[k]))",
            repo.to_str().unwrap()
        ),
        &[],
    );
    assert_eq!(read.trim(), "True", "{read}");
    let again = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-c")
        .arg(dir.path())
        .args(["init", "starter"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
}

/// The YAML shorthand (`join_keys`, `dtype`, `ttl: 1d`, `schema` with entity columns, a
/// source by name — a push source too —, feature services by view and features) gives the
/// objects `feast apply` stores for the same definitions in Python.
#[test]
fn yaml_shorthand_gives_what_feast_apply_stores_for_the_python_definitions() {
    let oracle = Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let yaml_head = "project: shorthand\nregistry: data/registry.db\nprovider: local\n\
        online_store:\n    type: sqlite\n    path: data/online_store.db\n\
        entity_key_serialization_version: 3\n";
    let (py, yaml) = (dir.path().join("py"), dir.path().join("yaml"));
    for repo in [&py, &yaml] {
        std::fs::create_dir_all(repo.join("data")).unwrap();
        std::fs::write(repo.join("feature_store.yaml"), yaml_head).unwrap();
    }
    oracle.python(
        &format!(
            "import pandas as pd\n\
             df = pd.DataFrame({{'driver_id': [1, 2], 'conv_rate': [0.5, 0.7], 'trips': [1, 2], \
             'zones': [['a'], ['b']], 'event_timestamp': pd.to_datetime(['2026-01-01', '2026-01-02'], utc=True)}})\n\
             df['created'] = df['event_timestamp']\n\
             df.to_parquet({:?})\n",
            py.join("data/stats.parquet").to_str().unwrap()
        ),
        &[],
    );
    std::fs::write(
        py.join("definitions.py"),
        r#"from datetime import timedelta
from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Float32, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64, description="A driver")
src = FileSource(name="stats_source", path="data/stats.parquet", timestamp_field="event_timestamp",
                 created_timestamp_column="created")
push = PushSource(name="stats_push", batch_source=src)
stats = FeatureView(name="stats", entities=[driver], ttl=timedelta(days=1),
                    schema=[Field(name="driver_id", dtype=Int64), Field(name="conv_rate", dtype=Float32),
                            Field(name="trips", dtype=Int64, description="Trips"),
                            Field(name="zones", dtype=Array(String))],
                    source=src, tags={"team": "a"})
fresh = FeatureView(name="fresh", entities=[driver], ttl=timedelta(hours=2),
                    schema=[Field(name="conv_rate", dtype=Float32)], source=push, online=False)
svc = FeatureService(name="svc", features=[stats, fresh[["conv_rate"]]])
"#,
    )
    .unwrap();
    oracle.feast(&py, &["apply"], &[]);
    std::fs::write(
        yaml.join("definitions.yaml"),
        "entities:
- name: driver
  join_keys: [driver_id]
  value_type: Int64
  description: A driver
data_sources:
- name: stats_source
  type: file
  path: data/stats.parquet
  timestamp_field: event_timestamp
  created_timestamp_column: created
- name: stats_push
  type: push
  batch_source: stats_source
feature_views:
- name: stats
  entities: [driver]
  ttl: 1d
  schema:
  - {name: driver_id, dtype: Int64}
  - {name: conv_rate, dtype: Float32}
  - {name: trips, dtype: Int64, description: Trips}
  - {name: zones, dtype: Array(String)}
  source: stats_source
  tags: {team: a}
- name: fresh
  entities: [driver]
  ttl: 2h
  schema: [{name: conv_rate, dtype: Float32}]
  source: stats_push
  online: false
feature_services:
- name: svc
  features: [stats, {view: fresh, features: [conv_rate]}]
",
    )
    .unwrap();
    stdout_ok(larder(&yaml, &["apply"], &[]), "larder apply");
    let export = |repo: &Path| -> Json {
        let text = stdout_ok(
            larder(repo, &["export-definitions"], &[]),
            "export-definitions",
        );
        let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let mut j = serde_json::to_value(doc).unwrap();
        // Feast adds the dummy entity every registry has; the YAML repo gets it too.
        if let Some(Json::Array(e)) = j.get_mut("entities") {
            e.retain(|e| e["name"] != "__dummy");
        }
        // Sources embedded in other objects carry Feast's read times.
        fn no_meta(v: &mut Json) {
            match v {
                Json::Object(m) => {
                    m.remove("meta");
                    m.values_mut().for_each(no_meta);
                }
                Json::Array(a) => a.iter_mut().for_each(no_meta),
                _ => {}
            }
        }
        no_meta(&mut j);
        j
    };
    assert_json_eq(
        &export(&py),
        &export(&yaml),
        "objects of the shorthand YAML",
    );
}

/// `larder apply` of the exported definitions of `feast init`'s repo into Feast's SQL registry
/// (an empty PostgreSQL database) and into an S3 registry object not written yet (moto):
/// `feast registry-dump` of each equals the one Feast wrote locally.
#[test]
fn exported_definitions_apply_into_sql_and_s3_registries() {
    let oracle = Oracle::get();
    let s3 = crate::support::S3::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::oracle_ondemand::template(&oracle, dir.path(), "yaml_stores");
    let db = format!("larder_yaml_{}", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {db}"));
    psql(&format!("CREATE DATABASE {db}"));
    let bucket = format!("yaml-{}", std::process::id());
    s3.create_bucket(&oracle, &bucket);
    let env = s3.env();
    let dump = |repo: &Path| -> Json {
        let mut d = normalize_dump(
            serde_json::from_str(&oracle.feast(repo, &["registry-dump"], &env)).unwrap(),
        );
        without_times(&mut d);
        d
    };
    let want = dump(&repo);
    for (name, registry) in [
        (
            "sql",
            format!(
                "registry:\n    registry_type: sql\n    path: postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
            ),
        ),
        ("s3", format!("registry: s3://{bucket}/feast/registry.pb")),
    ] {
        let target = dir.path().join(name);
        std::fs::create_dir_all(target.join("data")).unwrap();
        let yaml = std::fs::read_to_string(repo.join("feature_store.yaml"))
            .unwrap()
            .replace("registry: data/registry.db", &registry);
        std::fs::write(target.join("feature_store.yaml"), yaml).unwrap();
        export_definitions(&repo, &target);
        stdout_ok(larder(&target, &["apply"], &env), "larder apply");
        assert_json_eq(
            &want,
            &dump(&target),
            &format!("{name} registry after larder apply"),
        );
        let again = stdout_ok(larder(&target, &["plan"], &env), "larder plan");
        assert_eq!(
            again, "No changes to registry\nNo changes to infrastructure\n",
            "{name}"
        );
    }
    psql(&format!("DROP DATABASE IF EXISTS {db}"));
}
