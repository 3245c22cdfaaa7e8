//! `larder serve` as an attacker or an unlucky client finds it: authentication it cannot
//! enforce is refused at start; partial heads, stalled bodies and idle connections are closed
//! after their timeouts; connections beyond the cap are refused while lookups go on; bodies
//! that declare 16 MB reserve nothing before their bytes arrive.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{copy_dir, free_port};

/// The bundled example repo with `extra` appended to its feature_store.yaml.
fn repo_with(dir: &Path, extra: &str) -> PathBuf {
    let repo = dir.join("repo");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/driver_demo"),
        &repo,
    );
    let yaml = repo.join("feature_store.yaml");
    let mut text = std::fs::read_to_string(&yaml).unwrap();
    text.push_str(extra);
    std::fs::write(&yaml, text).unwrap();
    repo
}

/// A running `larder serve` that is killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(repo: &Path) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-c")
        .arg(repo)
        .args(["serve", "-p", &port.to_string(), "-w", "2"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Server { child, addr }
}

const LOOKUP: &str =
    r#"{"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]}}"#;

fn lookup_request() -> String {
    format!(
        "POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{LOOKUP}",
        LOOKUP.len()
    )
}

/// Reads one `content-length` framed answer; its status line and body.
fn read_answer(conn: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return (head.lines().next().unwrap_or("").to_owned(), body);
            }
        }
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a whole answer: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Waits for the server to close `conn`: what it sent before, and how long it took.
fn until_closed(conn: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    conn.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    match conn.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("not closed within {limit:?}: {e} (got {out:?})"),
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn authentication_larder_cannot_enforce_is_refused_at_start() {
    for auth in [
        "auth:\n  type: oidc\n  client_id: larder\n  auth_discovery_url: http://127.0.0.1:9/.well-known/openid-configuration\n",
        "auth:\n  type: kubernetes\n",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo_with(dir.path(), auth);
        let out = Command::new(env!("CARGO_BIN_EXE_larder"))
            .arg("-c")
            .arg(&repo)
            .args(["serve", "-p", &free_port().to_string()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{auth}: {stderr}");
        assert!(
            stderr.contains("auth:") && stderr.contains("does not enforce authentication"),
            "{auth}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn partial_heads_stalled_bodies_and_idle_connections_are_closed_after_their_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with(
        dir.path(),
        "larder:\n  server:\n    header_timeout_seconds: 1\n    body_timeout_seconds: 1\n    idle_timeout_seconds: 2\n",
    );
    let s = serve(&repo);

    // A head that never completes: 408 after the header timeout, then closed.
    let mut partial = TcpStream::connect(&s.addr).unwrap();
    partial
        .write_all(b"POST /get-online-features HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (answer, took) = until_closed(&mut partial, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(took >= Duration::from_millis(800), "{took:?}");

    // A body that stops arriving: 408 after the body timeout.
    let mut stalled = TcpStream::connect(&s.addr).unwrap();
    stalled
        .write_all(
            b"POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"features\"",
        )
        .unwrap();
    let (answer, took) = until_closed(&mut stalled, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(took >= Duration::from_millis(800), "{took:?}");

    // Dribbling a head byte by byte does not extend its deadline.
    let mut dribble = TcpStream::connect(&s.addr).unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in b"POST /get-online-features HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .cycle()
    {
        if dribble.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    assert!(closed, "a dribbled head was still open after 10 s");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A new connection that sends nothing, and one kept alive after a request: closed without
    // an answer after the idle timeout.
    let mut silent = TcpStream::connect(&s.addr).unwrap();
    let (answer, took) = until_closed(&mut silent, Duration::from_secs(10));
    assert_eq!(answer, "");
    assert!(took >= Duration::from_millis(1800), "{took:?}");
    let mut kept = TcpStream::connect(&s.addr).unwrap();
    kept.write_all(lookup_request().as_bytes()).unwrap();
    let (status, _) = read_answer(&mut kept);
    assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
    let (answer, took) = until_closed(&mut kept, Duration::from_secs(10));
    assert_eq!(answer, "");
    assert!(took >= Duration::from_millis(1800), "{took:?}");

    // The server answers as before.
    let mut fresh = TcpStream::connect(&s.addr).unwrap();
    fresh.write_all(lookup_request().as_bytes()).unwrap();
    assert!(read_answer(&mut fresh).0.starts_with("HTTP/1.1 200 "));
}

#[test]
fn connections_beyond_the_cap_are_refused_while_lookups_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with(
        dir.path(),
        "larder:\n  server:\n    max_connections: 20\n    header_timeout_seconds: 60\n",
    );
    let s = serve(&repo);
    let mut client = TcpStream::connect(&s.addr).unwrap();
    client.write_all(lookup_request().as_bytes()).unwrap();
    let (status, expected) = read_answer(&mut client);
    assert!(status.starts_with("HTTP/1.1 200 "), "{status}");

    // Slow clients take the other 19 places (each answered once, so it is known to hold its
    // place) and hold them with partial heads.
    let mut slow: Vec<TcpStream> = (0..19)
        .map(|_| {
            let mut c = TcpStream::connect(&s.addr).unwrap();
            c.write_all(lookup_request().as_bytes()).unwrap();
            assert!(read_answer(&mut c).0.starts_with("HTTP/1.1 200 "));
            c.write_all(b"POST /get-online-features HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            c
        })
        .collect();
    // The flood beyond the cap: each refused with 503 and closed.
    for i in 0..50 {
        let mut c = TcpStream::connect(&s.addr).unwrap();
        let (answer, _) = until_closed(&mut c, Duration::from_secs(5));
        assert!(
            answer.starts_with("HTTP/1.1 503 ") && answer.contains("too many open connections"),
            "connection {i}: {answer:?}"
        );
        // The established client is answered all along.
        if i % 10 == 0 {
            client.write_all(lookup_request().as_bytes()).unwrap();
            let (status, body) = read_answer(&mut client);
            assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
            assert_eq!(body, expected);
        }
    }
    // Places freed are taken again (once the server has seen the slow clients go).
    slow.truncate(10);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = TcpStream::connect(&s.addr).unwrap();
        again.write_all(lookup_request().as_bytes()).unwrap();
        let (status, _) = read_answer(&mut again);
        if status.starts_with("HTTP/1.1 200 ") {
            break;
        }
        assert!(status.starts_with("HTTP/1.1 503 "), "{status}");
        assert!(Instant::now() < deadline, "no place was freed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn bodies_that_declare_16_mb_reserve_nothing_before_their_bytes_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with(dir.path(), "");
    let s = serve(&repo);
    let pid = s.child.id();
    // Warm up both serving threads.
    for _ in 0..20 {
        let mut c = TcpStream::connect(&s.addr).unwrap();
        c.write_all(lookup_request().as_bytes()).unwrap();
        read_answer(&mut c);
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(pid);

    // 200 connections each declare a 16 MB body and send 64 KiB of it.
    let chunk = vec![b' '; 64 * 1024];
    let held: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut c = TcpStream::connect(&s.addr).unwrap();
            c.write_all(
                b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16000000\r\n\r\n",
            )
            .unwrap();
            c.write_all(&chunk).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let holding = rss_kib(pid);
    // 200 x 64 KiB = 12.5 MiB of body bytes has arrived; what was declared (3.2 GB) is not
    // reserved. The buffers grow by doubling, so allow twice what arrived plus slack.
    let grew = holding.saturating_sub(idle);
    assert!(
        grew < 40 * 1024,
        "holding 200 bodies of 64 KiB each grew the server from {idle} KiB to {holding} KiB"
    );
    drop(held);
    // Serving threads give freed buffers back every 2 s.
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_kib(pid);
    assert!(
        after.saturating_sub(idle) < 8 * 1024,
        "after the connections closed: {idle} KiB idle, {after} KiB"
    );
    // And the server still answers.
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(lookup_request().as_bytes()).unwrap();
    assert!(read_answer(&mut c).0.starts_with("HTTP/1.1 200 "));
}
