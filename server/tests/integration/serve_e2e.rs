//! `larder serve` as a process: TLS with h2 by ALPN, and clear start-up failures.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{copy_dir, free_port};

/// The bundled example repo (registry written by Feast), copied so the test owns its files.
fn example_repo(dir: &Path) -> std::path::PathBuf {
    let repo = dir.join("repo");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/driver_demo"),
        &repo,
    );
    repo
}

#[test]
fn serves_https_and_h2_with_a_key_and_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let repo = example_repo(dir.path());
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl makes a certificate");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-c")
        .arg(&repo)
        .args(["serve", "-p", &port.to_string(), "-k"])
        .arg(&key)
        .arg("-c")
        .arg(&cert)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://localhost:{port}");
    let curl = |args: &[&str]| {
        Command::new("curl")
            .args([
                "-s",
                "--cacert",
                cert.to_str().unwrap(),
                "--resolve",
                &format!("localhost:{port}:127.0.0.1"),
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{url}/health"),
        ]);
        if out.stdout == b"200" {
            break;
        }
        assert!(Instant::now() < deadline, "no healthy TLS server");
        std::thread::sleep(Duration::from_millis(200));
    }
    let body = r#"{"features":["driver_hourly_stats:conv_rate"],"entities":{"driver_id":[1001]}}"#;
    let out = curl(&[
        "-w",
        "\n%{http_code} %{http_version}",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &format!("{url}/get-online-features"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("200 1.1") || text.ends_with("200 2"),
        "{text}"
    );
    assert!(
        text.contains(r#""feature_names":["driver_id","conv_rate"]"#),
        "{text}"
    );
    let out = curl(&[
        "--http2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        &format!("{url}/health"),
    ]);
    assert_eq!(
        out.stdout, b"2",
        "h2 is negotiated by ALPN (what gRPC clients use)"
    );
    let plain = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{port}/health"),
        ])
        .output()
        .unwrap();
    assert_ne!(
        plain.stdout, b"200",
        "plain HTTP is not served on a TLS port"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn serve_fails_clearly_on_bad_setups() {
    let dir = tempfile::tempdir().unwrap();
    let repo = example_repo(dir.path());
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_larder"))
            .arg("-c")
            .arg(&repo)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(&[
        "serve",
        "-p",
        "0",
        "-k",
        "/nonexistent/key.pem",
        "-c",
        "/nonexistent/cert.pem",
    ]);
    assert!(
        e.contains("/nonexistent/cert.pem") && !e.contains("panicked"),
        "{e}"
    );
    std::fs::write(
        repo.join("feature_store.yaml"),
        "project: driver_demo\nregistry: data/registry.db\nonline_store:\n  type: redis\n  connection_string: 127.0.0.1:1\n",
    )
    .unwrap();
    let e = run(&["serve", "-p", "0"]);
    assert!(e.contains("127.0.0.1:1") && !e.contains("panicked"), "{e}");
    std::fs::remove_file(repo.join("data/registry.db")).unwrap();
    let e = run(&["serve", "-p", "0"]);
    assert!(e.contains("registry.db") && !e.contains("panicked"), "{e}");
}

/// The serving threads share their port through SO_REUSEPORT; a second server on a port that is
/// in use must still fail rather than silently take half of its connections.
#[test]
fn a_second_server_on_a_taken_port_fails() {
    let dir = tempfile::tempdir().unwrap();
    let repo = example_repo(dir.path());
    let first = crate::oracle_serving::larder_serve(&repo);
    let port = first.url.rsplit(':').next().unwrap().to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-c")
        .arg(&repo)
        .args(["serve", "-p", &port])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    drop(first);
}

#[test]
fn materialize_over_http_then_serve() {
    let dir = tempfile::tempdir().unwrap();
    let repo = example_repo(dir.path());
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-c")
        .arg(&repo)
        .args(["serve", "-p", &port.to_string(), "-r", "1"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let post = |path: &str, body: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-w",
                "\n%{http_code}",
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
                &format!("{url}{path}"),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.to_owned(), body.to_owned())
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while post("/health", "").0 == "000" {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let read =
        r#"{"features":["driver_hourly_stats:avg_daily_trips"],"entities":{"driver_id":[1001]}}"#;
    let (code, body) = post("/get-online-features", read);
    assert_eq!(code, "200");
    assert!(
        body.contains("NOT_FOUND"),
        "nothing materialized yet: {body}"
    );

    let (code, body) = post(
        "/materialize",
        r#"{"start_ts":"2026-11-29T00:00:00","end_ts":"2026-11-25T00:00:00"}"#,
    );
    assert_eq!(code, "400", "{body}");
    let (code, body) = post(
        "/materialize",
        r#"{"start_ts":"2026-11-25T00:00:00","end_ts":"2026-11-29T00:00:00","feature_views":["driver_hourly_stats"]}"#,
    );
    assert_eq!((code.as_str(), body.as_str()), ("200", "null"));
    let (_, body) = post("/get-online-features", read);
    assert!(!body.contains("NOT_FOUND"), "materialized: {body}");

    let (code, body) = post(
        "/materialize-incremental?async=true",
        r#"{"end_ts":"2026-11-30T00:00:00","feature_views":["location_stats"]}"#,
    );
    assert_eq!(code, "202", "{body}");
    assert!(
        body.contains(r#""feature_views":["location_stats"]"#),
        "{body}"
    );
    let (code, body) = post(
        "/materialize",
        r#"{"start_ts":"2026-11-25T00:00:00","end_ts":"2026-11-29T00:00:00","feature_views":["nope"]}"#,
    );
    assert_eq!(code, "404", "{body}");
    let _ = child.kill();
    let _ = child.wait();
}
