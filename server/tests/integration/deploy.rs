//! The deploy files (`deploy/`) checked as far as this machine allows: the systemd units with
//! `systemd-analyze verify` and each unit's `ExecStart` line run against the example repo
//! (servers answer, then drain on SIGTERM within `TimeoutStopSec`); the cloud-init user-data
//! with `cloud-init schema` and the installer into a scratch root; every Kustomize overlay
//! rendered with `kubectl kustomize` and checked (images, ports, probes, references), and its
//! containers' arguments run against the example repo; the compose file's references; the
//! runtime image's root filesystem run with `chroot` (no container runtime can run here).

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value as Json;

use crate::support::{copy_dir, free_port};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_larder")
}

/// A copy of the example repo, materialized (so the online store has rows to serve).
fn example_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/driver_demo"),
        &repo,
    );
    let _ = std::fs::remove_file(repo.join("data/online.db"));
    let mut yaml = std::fs::read_to_string(repo.join("feature_store.yaml")).unwrap();
    // The bundled rows are days old and the views' ttl is a day (as scripts/demo serves them).
    yaml.push_str("larder:\n  online_ttl: ignore\n");
    std::fs::write(repo.join("feature_store.yaml"), yaml).unwrap();
    let out = Command::new(bin())
        .arg("-c")
        .arg(&repo)
        .args(["materialize", "2026-11-25T00:00:00", "2026-11-29T00:00:00"])
        .output()
        .unwrap();
    crate::support::stdout_ok(out, "materialize");
    repo
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `KEY=VALUE` lines (comments and blank lines skipped).
fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `${VAR}` replaced from `env` (systemd's substitution in `ExecStart`), then split on spaces.
fn expand(line: &str, env: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = line.to_owned();
    for (k, v) in env {
        out = out.replace(&format!("${{{k}}}"), v);
    }
    assert!(!out.contains("${"), "unexpanded variable in {out}");
    out.split_whitespace().map(str::to_owned).collect()
}

/// The status line of `GET path` on a loopback port.
fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf
}

/// Starts `argv` (program first) with `env`, waits until `port` accepts, checks it (`/health`
/// for the online server), then sends SIGTERM and requires a clean exit within `stop`.
fn serve_then_drain(argv: &[String], env: &BTreeMap<String, String>, port: u16, http: bool) {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::support::wait_listening(&mut child, port);
    if http {
        let answer = http_get(port, "/health");
        assert!(answer.starts_with("HTTP/1.1 200"), "{argv:?}: {answer}");
    }
    run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{argv:?} after SIGTERM: {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{argv:?} did not stop within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn units() -> Vec<PathBuf> {
    let mut units: Vec<PathBuf> = std::fs::read_dir(deploy().join("vm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "service" || e == "timer")
        })
        .collect();
    units.sort();
    assert_eq!(units.len(), 5, "{units:?}");
    units
}

#[test]
fn systemd_units_verify_and_their_exec_start_lines_run() {
    let dir = tempfile::tempdir().unwrap();
    // systemd-analyze checks that the command exists: point the units at the built binary.
    let copies: Vec<PathBuf> = units()
        .iter()
        .map(|u| {
            let text = std::fs::read_to_string(u)
                .unwrap()
                .replace("/usr/local/bin/larder", bin());
            let to = dir.path().join(u.file_name().unwrap());
            std::fs::write(&to, text).unwrap();
            to
        })
        .collect();
    run(Command::new("systemd-analyze").arg("verify").args(&copies));
    for u in &copies {
        let text = std::fs::read_to_string(u).unwrap();
        if u.extension().unwrap() == "timer" {
            assert!(text.contains("OnCalendar="), "{text}");
            continue;
        }
        for wanted in [
            "User=larder",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "StateDirectory=larder",
            "CacheDirectory=larder",
            "EnvironmentFile=-/etc/larder/larder.env",
        ] {
            assert!(text.contains(wanted), "{}: no {wanted}", u.display());
        }
        if text.contains("Type=exec") {
            assert!(text.contains("TimeoutStopSec=") && text.contains("Restart=on-failure"));
        }
    }

    // Each ExecStart line, its variables from the shipped environment file with the repo, host
    // and ports pointed at a copy of the example repo on loopback.
    let repo = example_repo(dir.path());
    let mut env = env_file(&std::fs::read_to_string(deploy().join("vm/larder.env")).unwrap());
    let ports = [
        ("LARDER_ONLINE_PORT", free_port()),
        ("LARDER_OFFLINE_PORT", free_port()),
        ("LARDER_REGISTRY_PORT", free_port()),
    ];
    env.insert("LARDER_REPO".into(), repo.display().to_string());
    env.insert("LARDER_HOST".into(), "127.0.0.1".into());
    for (k, p) in ports {
        env.insert(k.into(), p.to_string());
    }
    for u in copies
        .iter()
        .filter(|u| u.extension().unwrap() == "service")
    {
        let text = std::fs::read_to_string(u).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        let argv = expand(line, &env);
        let name = u.file_name().unwrap().to_string_lossy().into_owned();
        match name.as_str() {
            "larder-materialize.service" => {
                run(Command::new(&argv[0]).args(&argv[1..]).envs(&env));
            }
            "larder-serve.service" => serve_then_drain(&argv, &env, ports[0].1, true),
            "larder-serve-offline.service" => serve_then_drain(&argv, &env, ports[1].1, false),
            "larder-serve-registry.service" => serve_then_drain(&argv, &env, ports[2].1, false),
            other => panic!("a unit this test does not know: {other}"),
        }
    }
}

#[test]
fn cloud_init_user_data_is_valid_and_the_installer_lays_out_a_root() {
    let user_data = deploy().join("vm/cloud-init/user-data.yaml");
    run(Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(&user_data));
    // The settings it writes are the environment file's, plus the project.
    let doc: Json = serde_norway::from_str(&std::fs::read_to_string(&user_data).unwrap()).unwrap();
    let files = doc["write_files"].as_array().unwrap();
    let content = |path: &str| {
        files.iter().find(|f| f["path"] == path).unwrap()["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let written: BTreeSet<String> = env_file(&content("/etc/larder/larder.env"))
        .into_keys()
        .collect();
    let mut shipped: BTreeSet<String> =
        env_file(&std::fs::read_to_string(deploy().join("vm/larder.env")).unwrap())
            .into_keys()
            .collect();
    shipped.insert("LARDER_PROJECT".into());
    assert_eq!(written, shipped);
    // Its feature_store.yaml, with those variables set, is a repo configuration Larder reads.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("feature_store.yaml"),
        content("/var/lib/larder/repo/feature_store.yaml"),
    )
    .unwrap();
    let env = env_file(&content("/etc/larder/larder.env"));
    let resolved = run(Command::new(bin())
        .arg("-c")
        .arg(dir.path())
        .arg("configuration")
        .envs(&env));
    assert!(
        resolved.contains("redis.example.internal:6379") && resolved.contains("driver_demo"),
        "{resolved}"
    );

    // install.sh from an unpacked release, into a scratch root.
    let release = dir.path().join("release");
    std::fs::create_dir_all(release.join("bin")).unwrap();
    std::fs::copy(bin(), release.join("bin/larder")).unwrap();
    copy_dir(&deploy().join("vm"), &release.join("deploy/vm"));
    let root = dir.path().join("root");
    run(Command::new("sh")
        .arg(release.join("deploy/vm/install.sh"))
        .env("ROOT", &root));
    for f in [
        "usr/local/bin/larder",
        "etc/larder/larder.env",
        "etc/systemd/system/larder-serve.service",
        "etc/systemd/system/larder-serve-offline.service",
        "etc/systemd/system/larder-serve-registry.service",
        "etc/systemd/system/larder-materialize.service",
        "etc/systemd/system/larder-materialize.timer",
        "var/lib/larder/repo",
    ] {
        assert!(root.join(f).exists(), "install.sh did not install {f}");
    }
    let version = run(Command::new(root.join("usr/local/bin/larder")).arg("version"));
    assert!(version.starts_with("Larder "), "{version}");
}

/// The documents `kubectl kustomize DIR` renders.
fn kustomize(dir: &Path) -> Vec<Json> {
    use serde::Deserialize;
    let out = run(Command::new("kubectl").arg("kustomize").arg(dir));
    serde_norway::Deserializer::from_str(&out)
        .map(|d| Json::deserialize(d).unwrap())
        .collect()
}

fn pod_spec(doc: &Json) -> Option<&Json> {
    match doc["kind"].as_str()? {
        "Deployment" => Some(&doc["spec"]["template"]["spec"]),
        "CronJob" => Some(&doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        _ => None,
    }
}

fn strs(v: &Json) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kustomize_overlays_render_and_hold_together() {
    let dir = tempfile::tempdir().unwrap();
    let repo = example_repo(dir.path());
    let overlays: Vec<PathBuf> = std::fs::read_dir(deploy().join("kubernetes/overlays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(overlays.len() >= 2, "{overlays:?}");
    let mut ran_args = false;
    for overlay in &overlays {
        let docs = kustomize(overlay);
        let what = overlay.display();
        let named = |kind: &str| -> BTreeSet<String> {
            docs.iter()
                .filter(|d| d["kind"] == kind)
                .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let (config_maps, secrets, deployments) =
            (named("ConfigMap"), named("Secret"), named("Deployment"));
        assert_eq!(
            deployments,
            ["larder-offline", "larder-online", "larder-registry"]
                .map(String::from)
                .into()
        );
        assert_eq!(named("CronJob"), ["larder-materialize".to_owned()].into());
        // Every namespaced object in the overlay's namespace.
        let namespaces: BTreeSet<&str> = docs
            .iter()
            .filter(|d| d["kind"] != "Namespace")
            .map(|d| d["metadata"]["namespace"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(namespaces.len(), 1, "{what}: {namespaces:?}");
        assert!(
            !namespaces.contains(""),
            "{what}: an object without a namespace"
        );

        for doc in &docs {
            let name = doc["metadata"]["name"].as_str().unwrap();
            let Some(pod) = pod_spec(doc) else { continue };
            assert_eq!(
                pod["securityContext"]["runAsNonRoot"], true,
                "{what} {name}"
            );
            // A ConfigMap or Secret a pod reads (by these paths of a volume or an envFrom
            // entry) is in the render.
            let refers = |items: &Json, config_map: [&str; 2], secret: [&str; 2]| {
                for i in items.as_array().into_iter().flatten() {
                    if let Some(c) = i[config_map[0]][config_map[1]].as_str() {
                        assert!(config_maps.contains(c), "{what} {name}: no ConfigMap {c}");
                    }
                    if let Some(s) = i[secret[0]][secret[1]].as_str() {
                        assert!(secrets.contains(s), "{what} {name}: no Secret {s}");
                    }
                }
            };
            refers(
                &pod["volumes"],
                ["configMap", "name"],
                ["secret", "secretName"],
            );
            for c in pod["containers"].as_array().unwrap() {
                let image = c["image"].as_str().unwrap();
                let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
                assert!(
                    !tag.is_empty() && tag != "latest",
                    "{what} {name}: image {image}"
                );
                refers(
                    &c["envFrom"],
                    ["configMapRef", "name"],
                    ["secretRef", "name"],
                );
                assert_eq!(
                    c["securityContext"]["allowPrivilegeEscalation"], false,
                    "{what} {name}"
                );
                assert!(c["resources"]["requests"].is_object(), "{what} {name}");
                let args = strs(&c["args"]);
                assert_eq!(&args[..2], ["-c", "/repo"], "{what} {name}");
                let ports: BTreeMap<String, u64> = c["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        (
                            p["name"].as_str().unwrap().to_owned(),
                            p["containerPort"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                if doc["kind"] == "Deployment" {
                    // The probes: HTTP /health on the online server, gRPC health on the others,
                    // on the port the server is told to bind.
                    let port_arg: u64 = args[args.iter().position(|a| a == "-p").unwrap() + 1]
                        .parse()
                        .unwrap();
                    assert_eq!(ports.values().copied().collect::<Vec<_>>(), [port_arg]);
                    for probe in ["readinessProbe", "livenessProbe"] {
                        let p = &c[probe];
                        if name == "larder-online" {
                            assert_eq!(p["httpGet"]["path"], "/health", "{what} {name}");
                            let port = p["httpGet"]["port"].as_str().unwrap();
                            assert!(ports.contains_key(port), "{what} {name}: {port}");
                        } else {
                            assert_eq!(p["grpc"]["port"], port_arg, "{what} {name} {probe}");
                        }
                    }
                }
                // The arguments, run against the example repo on loopback (once).
                if !ran_args {
                    run_container_args(&args, &repo);
                }
            }
        }
        ran_args = true;
        // Services: Feast's ports, onto a Deployment's named port.
        for svc in docs.iter().filter(|d| d["kind"] == "Service") {
            let selector = &svc["spec"]["selector"];
            let target = docs
                .iter()
                .filter(|d| d["kind"] == "Deployment")
                .find(|d| {
                    let labels = &d["spec"]["template"]["metadata"]["labels"];
                    selector
                        .as_object()
                        .unwrap()
                        .iter()
                        .all(|(k, v)| labels[k] == *v)
                })
                .unwrap_or_else(|| panic!("{what}: no Deployment for {svc}"));
            let container = &target["spec"]["template"]["spec"]["containers"][0];
            for p in svc["spec"]["ports"].as_array().unwrap() {
                assert!([6566, 8815, 6570].contains(&p["port"].as_u64().unwrap()));
                let named = container["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|cp| cp["name"] == p["targetPort"]);
                assert!(named, "{what}: {p} names no container port");
            }
        }
        for hpa in docs
            .iter()
            .filter(|d| d["kind"] == "HorizontalPodAutoscaler")
        {
            let t = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
            assert!(deployments.contains(t), "{what}: HPA onto {t}");
        }
        assert_eq!(named("PodDisruptionBudget").len(), 1, "{what}");
    }
}

/// A container's arguments with `/repo` → the example repo, loopback, and a free port.
fn run_container_args(args: &[String], repo: &Path) {
    let mut argv: Vec<String> = vec![bin().to_owned()];
    let port = free_port();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let arg = match a.as_str() {
            "/repo" => repo.display().to_string(),
            "0.0.0.0" => "127.0.0.1".into(),
            "-p" => {
                it.next();
                argv.push("-p".into());
                port.to_string()
            }
            _ => a.clone(),
        };
        argv.push(arg);
    }
    let env = BTreeMap::new();
    match args[2].as_str() {
        "materialize-incremental" => {
            run(Command::new(&argv[0]).args(&argv[1..]));
        }
        "serve" => serve_then_drain(&argv, &env, port, true),
        "serve-offline" | "serve-registry" => serve_then_drain(&argv, &env, port, false),
        other => panic!("a command this test does not know: {other}"),
    }
}

#[test]
fn the_compose_file_holds_together() {
    let text = std::fs::read_to_string(deploy().join("compose/compose.yaml")).unwrap();
    let mut value: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    value.apply_merge().unwrap();
    let doc: Json = serde_json::to_value(&value).unwrap();
    let services = doc["services"].as_object().unwrap();
    for wanted in [
        "redis",
        "minio",
        "minio-init",
        "larder",
        "larder-offline",
        "larder-registry",
        "larder-materialize",
    ] {
        assert!(services.contains_key(wanted), "no service {wanted}");
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = example_repo(dir.path());
    let mut ran = BTreeSet::new();
    for (name, s) in services {
        for dep in s["depends_on"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            assert!(services.contains_key(dep), "{name} depends on {dep}");
        }
        if !name.starts_with("larder") {
            continue;
        }
        assert!(s["image"].as_str().unwrap().contains(":0."), "{name}");
        assert_eq!(s["user"], "65532:65532", "{name}");
        let mount = strs(&s["volumes"]);
        assert_eq!(mount, ["./repo:/repo:ro"], "{name}");
        let command = strs(&s["command"]);
        if ran.insert(command[2].clone()) {
            run_container_args(&command, &repo);
        }
    }
    // The mounted repo's configuration is one Larder reads.
    let resolved = run(Command::new(bin())
        .arg("-c")
        .arg(deploy().join("compose/repo"))
        .arg("configuration"));
    assert!(resolved.contains("redis:6379"), "{resolved}");
}

#[test]
fn the_runtime_image_root_runs_larder_alone() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    run(Command::new("sh")
        .arg(deploy().join("image/build-rootfs.sh"))
        .arg(bin())
        .arg(&rootfs));
    let containerfile = std::fs::read_to_string(deploy().join("image/Containerfile")).unwrap();
    assert!(containerfile.contains("FROM scratch") && containerfile.contains("USER 65532"));
    assert!(rootfs.join("usr/local/bin/larder").exists());
    // Nothing but the binary, its loader and libraries, certificates and the user's entries.
    let mut files = Vec::new();
    let mut stack = vec![rootfs.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p.strip_prefix(&rootfs).unwrap().display().to_string());
            }
        }
    }
    for f in &files {
        assert!(
            f == "usr/local/bin/larder"
                || f.starts_with("lib")
                || f.starts_with("usr/lib")
                || f.starts_with("etc/"),
            "unexpected file in the image: {f}"
        );
    }
    // Run in that root alone (chroot needs root, as CI has): the version, then a lookup
    // from outside against the example repo copied into /repo.
    let version = run(Command::new("chroot")
        .arg(&rootfs)
        .args(["/usr/local/bin/larder", "version"]));
    assert!(version.starts_with("Larder "), "{version}");
    let repo = example_repo(dir.path());
    copy_dir(&repo, &rootfs.join("repo"));
    let port = free_port();
    // The repo as a volume would be: the image's user owns it.
    run(Command::new("chown")
        .args(["-R", "65532:65532"])
        .arg(rootfs.join("repo")));
    let mut child = Command::new("chroot")
        .arg("--userspec=65532:65532")
        .arg(&rootfs)
        .args([
            "/usr/local/bin/larder",
            "-c",
            "/repo",
            "serve",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    crate::support::wait_listening(&mut child, port);
    let body = r#"{"features":["driver_hourly_stats:conv_rate"],"entities":{"driver_id":[1001]}}"#;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"PRESENT\""), "{answer}");
}

/// `--log-format json` (or `LARDER_LOG_FORMAT=json`): every log line is one JSON object with
/// the time, level, target and the event's fields.
#[test]
fn json_log_lines_are_one_object_each() {
    let dir = tempfile::tempdir().unwrap();
    let repo = example_repo(dir.path());
    // A materialization through the server logs its views at info.
    let port = free_port();
    let mut child = Command::new(bin())
        .arg("-c")
        .arg(&repo)
        .args(["--log-format", "json", "--log-level", "info", "serve", "-p"])
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::support::wait_listening(&mut child, port);
    let body = r#"{"start_ts":"2026-11-25T00:00:00","end_ts":"2026-11-29T00:00:00","feature_views":["driver_hourly_stats"]}"#;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /materialize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Json> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "materialized" && l["view"] == "driver_hourly_stats"),
        "no JSON line for the materialization in {stderr}"
    );
    for l in &lines {
        for key in ["timestamp", "level", "target"] {
            assert!(l.get(key).is_some(), "{l}: no {key}");
        }
    }
    // The same through the environment, and text lines by default.
    let out = Command::new(bin())
        .arg("-c")
        .arg(&repo)
        .args(["--log-level", "debug", "registry-dump"])
        .env("LARDER_LOG_FORMAT", "json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .filter(|l| !l.is_empty())
            .all(|l| l.starts_with('{')),
        "{stderr}"
    );
}

/// The value of one Prometheus sample line (`name{labels} value`).
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels))
        .and_then(|v| v.trim().parse().ok())
}

/// `GET /metrics` on the gRPC servers' own port: per-RPC counts by status code and durations,
/// the code taken from the response's end (OK, and Feast's errors).
#[test]
fn the_grpc_servers_answer_metrics_per_rpc() {
    let oracle = crate::support::Oracle::get();
    let dir = tempfile::tempdir().unwrap();
    let repo = example_repo(dir.path());
    for (command, server) in [("serve-offline", "offline"), ("serve-registry", "registry")] {
        let s = crate::historical::OfflineServer::start_command(&repo, command, &[], &[]);
        let code = match server {
            "offline" => format!(
                "import pyarrow.flight as fl\n\
                 c = fl.connect('grpc+tcp://127.0.0.1:{p}')\n\
                 list(c.list_actions()); list(c.list_actions())\n\
                 try:\n    c.do_action(fl.Action('nope', b''))\nexcept Exception: pass\n",
                p = s.port
            ),
            _ => format!(
                "import grpc\n\
                 from feast.protos.feast.registry import RegistryServer_pb2 as m, RegistryServer_pb2_grpc as g\n\
                 stub = g.RegistryServerStub(grpc.insecure_channel('127.0.0.1:{p}'))\n\
                 stub.ListEntities(m.ListEntitiesRequest(project='driver_demo')); stub.ListEntities(m.ListEntitiesRequest(project='driver_demo'))\n\
                 try:\n    stub.GetEntity(m.GetEntityRequest(name='nope', project='driver_demo'))\nexcept grpc.RpcError: pass\n",
                p = s.port
            ),
        };
        oracle.python(&code, &[]);
        let answer = http_get(s.port, "/metrics");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let (ok_method, err_method, err_code) = match server {
            "offline" => ("ListActions", "DoAction", "UNIMPLEMENTED"),
            _ => ("ListEntities", "GetEntity", "NOT_FOUND"),
        };
        let ok = sample(
            &answer,
            &format!(
                "larder_grpc_requests_total{{server=\"{server}\",method=\"{ok_method}\",code=\"OK\"}}"
            ),
        );
        assert_eq!(ok, Some(2.0), "{answer}");
        let err = sample(
            &answer,
            &format!(
                "larder_grpc_requests_total{{server=\"{server}\",method=\"{err_method}\",code=\"{err_code}\"}}"
            ),
        );
        assert_eq!(err, Some(1.0), "{answer}");
        assert!(
            answer.contains(&format!(
                "larder_grpc_request_duration_seconds_count{{server=\"{server}\",method=\"{ok_method}\"}} 2"
            )),
            "{answer}"
        );
    }
}
