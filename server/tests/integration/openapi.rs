//! schemathesis against `larder serve`'s own `/openapi.json`: every operation is fuzzed from
//! its schema (positive and negative cases, every check), and the server answers as the
//! document says — no 5xx, no undocumented status, no schema-valid request refused for a
//! reason the document does not give. Needs the venv `scripts/test` installs
//! (`LARDER_SCHEMATHESIS`).

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{copy_dir, free_port};

#[test]
fn the_http_api_answers_as_its_openapi_document_says() {
    let schemathesis = std::env::var("LARDER_SCHEMATHESIS")
        .expect("LARDER_SCHEMATHESIS is not set: run the tests with scripts/test");
    let dir = tempfile::tempdir().unwrap();
    // A copy: the fuzzed pushes and materializations write to the repo.
    let repo = dir.path().join("repo");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/driver_demo"),
        &repo,
    );
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-c")
        .arg(&repo)
        .args(["serve", "-p", &port.to_string(), "-w", "1"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let out = Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{url}/openapi.json")])
        .args(["--checks", "all", "-n", "60", "--seed", "7", "--no-color"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(dir.path().join("junit.xml"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It tested every operation of the document (but the document's own, which schemathesis
    // reads rather than tests).
    let report = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../src/http/openapi.json")).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let name = format!("{} {path}", method.to_uppercase());
            if path != "/openapi.json" {
                assert!(
                    report.contains(&format!("testcase name=\"{name}\"")),
                    "{name} was not tested:\n{report}"
                );
            }
        }
    }
}
