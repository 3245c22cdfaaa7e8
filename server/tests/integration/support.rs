use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value as Json;

/// Runs the larder binary with `args` in `repo`, with extra environment variables.
pub fn larder(repo: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder"));
    cmd.arg("-c").arg(repo).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("larder runs")
}

pub fn stdout_ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The Feast SDK and the services `scripts/test` starts for the oracle tests.
pub struct Oracle {
    pub bin: PathBuf,
}

impl Oracle {
    /// Fails (never skips) when the environment is missing: run the tests with `scripts/test`.
    pub fn get() -> Self {
        let venv = std::env::var("LARDER_FEAST_VENV").expect(
            "LARDER_FEAST_VENV is not set: run the tests with scripts/test, which installs the Feast SDK",
        );
        let bin = PathBuf::from(venv).join("bin");
        assert!(bin.join("feast").exists(), "no feast in {}", bin.display());
        Self { bin }
    }

    fn run(&self, program: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(dir)
            .args(args)
            .env("PYTHONWARNINGS", "ignore");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"));
        stdout_ok(out, &format!("{program} {args:?} in {}", dir.display()))
    }

    /// Writes an oracle repo with `oracle/make_repo.py`.
    pub fn make_repo(&self, repo: &Path, project: &str, registry: &str, extra: &[&str]) {
        self.make_repo_with_env(repo, project, registry, extra, &[]);
    }

    /// [`Self::make_repo`] with extra environment (e.g. the S3 endpoint for source URLs).
    pub fn make_repo_with_env(
        &self,
        repo: &Path,
        project: &str,
        registry: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../oracle/make_repo.py");
        let mut args = vec![
            script.to_str().unwrap(),
            repo.to_str().unwrap(),
            "--project",
            project,
            "--registry",
            registry,
        ];
        args.extend_from_slice(extra);
        self.run("python", Path::new("."), &args, env);
    }

    pub fn feast(&self, repo: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
        self.run("feast", repo, args, env)
    }

    /// Runs one of the `oracle/` scripts with `args`.
    pub fn script(&self, script: &str, args: &[&str]) -> String {
        self.script_with_env(script, args, &[])
    }

    /// [`Oracle::script`] with environment variables set.
    pub fn script_with_env(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../oracle")
            .join(script);
        let mut all = vec![path.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run("python", Path::new("."), &all, env)
    }

    /// Runs a Python file with `args`.
    pub fn run_python_file(&self, file: &Path, args: &[&str]) -> String {
        let mut all = vec![file.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run("python", Path::new("."), &all, &[])
    }

    pub fn python(&self, code: &str, env: &[(&str, &str)]) -> String {
        self.run("python", Path::new("."), &["-c", code], env)
    }
}

/// Removes the two places where `feast registry-dump` is not deterministic (see
/// `larder_registry::dump`): request-source timestamps nested in on-demand views (Feast
/// prints the time of the dump) and the order of a stream view's features.
pub fn normalize_dump(mut doc: Json) -> Json {
    if let Some(Json::Array(odfvs)) = doc.get_mut("onDemandFeatureViews") {
        for v in odfvs {
            if let Some(Json::Object(sources)) = v.pointer_mut("/spec/sources") {
                for source in sources.values_mut() {
                    if let Some(Json::Object(rs)) = source.get_mut("requestDataSource") {
                        rs.remove("meta");
                    }
                }
            }
        }
    }
    if let Some(Json::Array(sfvs)) = doc.get_mut("streamFeatureViews") {
        for v in sfvs {
            if let Some(Json::Array(features)) = v.pointer_mut("/spec/features") {
                features.sort_by_key(|f| f["name"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    doc
}

/// Asserts two JSON documents are equal, printing the first differing paths.
pub fn assert_json_eq(feast: &Json, larder: &Json, what: &str) {
    let mut diffs = Vec::new();
    diff(feast, larder, String::new(), &mut diffs);
    assert!(
        diffs.is_empty(),
        "{what}: larder differs from feast at {} places:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn diff(a: &Json, b: &Json, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff(u, v, format!("{path}/{k}"), out),
                    (Some(u), None) => out.push(format!("{path}/{k}: only in feast: {u}")),
                    (None, Some(v)) => out.push(format!("{path}/{k}: only in larder: {v}")),
                    (None, None) => unreachable!(),
                }
            }
        }
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff(u, v, format!("{path}[{i}]"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: feast {a} != larder {b}")),
    }
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The S3 endpoint `scripts/test` starts (moto on loopback) and test credentials for it.
pub struct S3 {
    pub endpoint: String,
}

impl S3 {
    /// Fails (never skips) when the endpoint is missing: run the tests with `scripts/test`.
    pub fn get() -> Self {
        let endpoint = std::env::var("LARDER_S3_ENDPOINT")
            .expect("LARDER_S3_ENDPOINT is not set: run the tests with scripts/test");
        Self { endpoint }
    }

    pub fn env(&self) -> [(&str, &str); 4] {
        [
            ("FEAST_S3_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "larder"),
            ("AWS_SECRET_ACCESS_KEY", "larder-secret"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ]
    }

    pub fn create_bucket(&self, oracle: &Oracle, bucket: &str) {
        oracle.python(
            &format!(
                "import boto3,os; boto3.client('s3', endpoint_url=os.environ['FEAST_S3_ENDPOINT_URL']).create_bucket(Bucket='{bucket}')"
            ),
            &self.env(),
        );
    }
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Waits until `port` accepts (30 s at most), failing with the child's stderr if it exits.
pub fn wait_listening(child: &mut std::process::Child, port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).ok();
            }
            panic!("exited ({status}) before listening on {port}: {err}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not listening on {port} after 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
