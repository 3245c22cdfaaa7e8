//! `redis-server` processes on free loopback ports for tests, stopped when dropped.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Servers {
    children: Vec<Child>,
    _dir: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether a server answers on `port` (a password-protected one answers NOAUTH).
fn answers(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-p", &port.to_string(), "ping"])
        .output()
        .is_ok_and(|o| {
            let out = String::from_utf8_lossy(&o.stdout);
            out.contains("PONG") || out.contains("NOAUTH")
        })
}

fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if answers(port) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis on port {port} did not start");
}

/// One `redis-server` on `port` in `dir` (no persistence unless `extra` turns it on; later
/// options win), started and answering; the caller stops it. For tests that kill and restart
/// a server on the same port.
pub fn redis_server(dir: &std::path::Path, port: u16, extra: &[&str]) -> Child {
    let mut child = Command::new("redis-server")
        .args(Servers::base(port))
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs (scripts/test installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if answers(port) {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("redis on port {port} did not start");
}

impl Servers {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            dir: dir.path().to_owned(),
            _dir: dir,
            children: Vec::new(),
        }
    }

    fn spawn(&mut self, args: &[String]) {
        let child = Command::new("redis-server")
            .args(args)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test installs it)");
        self.children.push(child);
    }

    fn base(port: u16) -> Vec<String> {
        [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    pub fn standalone() -> (Self, u16) {
        let mut s = Self::new();
        let port = free_port();
        s.spawn(&Self::base(port));
        wait_ready(port);
        (s, port)
    }

    pub fn cluster() -> (Self, Vec<u16>) {
        let mut s = Self::new();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        for p in &ports {
            let mut args = Self::base(*p);
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{p}.conf"),
                    // The bus port is free too (by default it is port + 10000, which another
                    // process may hold, or which may not exist above 55535).
                    "--cluster-port",
                    &free_port().to_string(),
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            s.spawn(&args);
        }
        for p in &ports {
            wait_ready(*p);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for p in &ports {
            create.arg(format!("127.0.0.1:{p}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let info = Command::new("redis-cli")
                .args(["-p", &ports[0].to_string(), "cluster", "info"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < deadline, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        (s, ports)
    }

    /// One master and one sentinel watching it as `mymaster`; returns the sentinel's port.
    pub fn sentinel() -> (Self, u16) {
        let mut s = Self::new();
        let master = free_port();
        s.spawn(&Self::base(master));
        wait_ready(master);
        let sentinel = free_port();
        let conf = s.dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {master} 1\n\
                 sentinel down-after-milliseconds mymaster 5000\n"
            ),
        )
        .unwrap();
        s.spawn(&[conf.to_string_lossy().into_owned(), "--sentinel".to_owned()]);
        wait_ready(sentinel);
        (s, sentinel)
    }
}
