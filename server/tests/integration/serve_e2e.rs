//! `larder serve` as a process: TLS with h2 by ALPN, clear start-up failures, draining on SIGTERM.

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

/// `larder serve` of `repo` on a free port with `args`, its log discarded; the child and URL.
fn serve_quietly(repo: &Path, args: &[&str]) -> (std::process::Child, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-c")
        .arg(repo)
        .args(["serve", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
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
    let (mut child, url) = serve_quietly(&repo, &["-r", "1"]);
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

/// SIGTERM stops accepting and lets a request in progress finish: a lookup held up by a
/// sleeping Redis is still answered, a new connection is refused, and the server then exits.
#[test]
fn a_request_in_flight_is_answered_after_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let repo = example_repo(dir.path());
    let redis_port = free_port();
    let mut redis = larder_online::testkit::redis_server(
        dir.path(),
        redis_port,
        &["--enable-debug-command", "yes"],
    );
    let yaml = repo.join("feature_store.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        format!(
            "{text}online_store:\n  type: redis\n  connection_string: 127.0.0.1:{redis_port}\n"
        ),
    )
    .unwrap();
    let (mut server, url) = serve_quietly(&repo, &["-w", "1"]);
    let curl = |args: &[&str]| {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let code = |child: std::process::Child| {
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while code(curl(&[&format!("{url}/health")])) != "200" {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let sleeping = Command::new("redis-cli")
        .args(["-p", &redis_port.to_string(), "DEBUG", "SLEEP", "1.5"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let lookup = curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"features":["driver_hourly_stats:avg_daily_trips"],"entities":{"driver_id":[1001]}}"#,
        &format!("{url}/get-online-features"),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        code(curl(&[&format!("{url}/health")])),
        "000",
        "a new connection after SIGTERM is refused"
    );
    assert_eq!(code(lookup), "200", "the request in flight is answered");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "server still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let _ = code(sleeping);
    let _ = redis.kill();
    let _ = redis.wait();
}
