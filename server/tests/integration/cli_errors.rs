//! Bad input gives one clear error naming the file, key or URL — never a panic.

use std::path::Path;

use crate::support::{free_port, larder};

fn fails_with(repo: &Path, args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let out = larder(repo, args, env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected failure, got: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in: {stderr}");
    }
}

fn repo_with(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feature_store.yaml"), yaml).unwrap();
    dir
}

#[test]
fn missing_registry_file_is_named() {
    let dir = repo_with("project: p\nregistry: data/registry.db\n");
    fails_with(
        dir.path(),
        &["registry-dump"],
        &[],
        &["data/registry.db", "does not exist"],
    );
}

#[test]
fn corrupt_and_truncated_registries_are_reported() {
    let dir = repo_with("project: p\nregistry: registry.db\n");
    std::fs::write(dir.path().join("registry.db"), b"\x0a\xff\xff\xff\xff\x0f").unwrap();
    fails_with(
        dir.path(),
        &["registry-dump"],
        &[],
        &["registry.db", "not a valid feast.core.Registry"],
    );
}

#[test]
fn bad_yaml_and_unknown_keys_name_the_file_and_key() {
    let dir = repo_with("project: p\nregistry: [oops\n");
    fails_with(
        dir.path(),
        &["registry-dump"],
        &[],
        &["feature_store.yaml", "invalid yaml"],
    );
    let dir = repo_with("project: p\nregistry: r.db\nonline_store:\n  type: sqlite\n  pth: x.db\n");
    fails_with(
        dir.path(),
        &["entities", "list"],
        &[],
        &["feature_store.yaml", "pth"],
    );
    let dir = repo_with("project: my-project\nregistry: r.db\n");
    fails_with(
        dir.path(),
        &["registry-dump"],
        &[],
        &["my-project", "hyphen"],
    );
    let dir = tempfile::tempdir().unwrap();
    fails_with(dir.path(), &["registry-dump"], &[], &["feature_store.yaml"]);
}

#[test]
fn unreachable_s3_endpoint_is_named() {
    let dir = repo_with("project: p\nregistry: s3://bucket/registry.pb\n");
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    fails_with(
        dir.path(),
        &["registry-dump"],
        &[
            ("FEAST_S3_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "y"),
        ],
        &["s3://bucket/registry.pb"],
    );
}

#[test]
fn unreachable_sql_registry_is_named() {
    let port = free_port();
    let dir = repo_with(&format!(
        "project: p\nregistry:\n  registry_type: sql\n  path: postgresql://u:secret@127.0.0.1:{port}/db\n"
    ));
    let out = larder(dir.path(), &["registry-dump"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && !stderr.contains("secret"),
        "{stderr}"
    );
}
