//! Larder's auto-pipelining Redis connection against real `redis-server` processes: concurrent
//! requests share writes but get their own replies, AUTH/SELECT, a restarted server, and the
//! connection's response timeout; and against fake servers: malformed replies, and the
//! bounded request queue.

use std::{
    collections::VecDeque,
    process::{Child, Command},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use larder_online::{
    resp::{IN_FLIGHT_REQUESTS, Pipe, PipeConfig, QUEUED_REQUESTS},
    testkit::{free_port, redis_server},
};
use redis::{AsyncCommands, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start(port: u16, extra: &[&str]) -> Server {
    Server(redis_server(&std::env::temp_dir(), port, extra))
}

fn config(port: u16) -> PipeConfig {
    PipeConfig {
        host: "127.0.0.1".into(),
        port,
        db: 0,
        username: None,
        password: None,
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(5),
    }
}

fn stat(port: u16, name: &str) -> u64 {
    cli(port, &["info", "stats"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in INFO stats"))
}

/// 300 requests issued together go out in a few writes, and each gets exactly its own replies.
#[tokio::test]
async fn concurrent_requests_share_writes_and_keep_their_replies() {
    let port = free_port();
    let _s = start(port, &[]);
    let pipe = Pipe::connect(config(port)).await.unwrap();
    let reads_before = stat(port, "total_reads_processed");
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let mut p = pipe.clone();
            tokio::spawn(async move {
                let ((), got): ((), Vec<u8>) = redis::pipe()
                    .set(format!("k{i}"), format!("v{i}"))
                    .get(format!("k{i}"))
                    .query_async(&mut p)
                    .await
                    .unwrap();
                assert_eq!(got, format!("v{i}").into_bytes());
                let one: i64 = p.incr(format!("n{i}"), i).await.unwrap();
                assert_eq!(one, i);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let reads = stat(port, "total_reads_processed") - reads_before;
    assert!(
        reads < 100,
        "600 pipelines took {reads} reads by the server: they were not merged"
    );
    // A server error is the reply of its own command, not the connection's end.
    let mut p = pipe.clone();
    let err = redis::cmd("HGET")
        .arg("k1")
        .arg("f")
        .query_async::<Value>(&mut p)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    let v: String = p.get("k7").await.unwrap();
    assert_eq!(v, "v7");
}

#[tokio::test]
async fn auth_and_select_happen_before_the_first_request() {
    let port = free_port();
    let _s = start(port, &["--requirepass", "s3cret"]);
    let mut good = config(port);
    good.password = Some("s3cret".into());
    good.db = 3;
    let mut p = Pipe::connect(good).await.unwrap();
    let _: () = p.set("x", "in db 3").await.unwrap();
    assert!(cli(port, &["-a", "s3cret", "-n", "3", "get", "x"]).contains("in db 3"));
    let mut bad = config(port);
    bad.password = Some("wrong".into());
    let err = Pipe::connect(bad)
        .await
        .err()
        .expect("a wrong password fails");
    assert_eq!(err.kind(), redis::ErrorKind::AuthenticationFailed, "{err}");
}

/// A restarted server: the request in flight fails, the next one reconnects.
#[tokio::test]
async fn a_restarted_server_is_reconnected() {
    let port = free_port();
    let s = start(port, &[]);
    let mut p = Pipe::connect(config(port)).await.unwrap();
    let _: () = p.set("a", "1").await.unwrap();
    drop(s);
    assert!(p.get::<_, String>("a").await.is_err(), "no server");
    let _s = start(port, &[]);
    // Many requests find the connection gone at once: one reconnects, all are answered.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let mut p = p.clone();
            tokio::spawn(async move {
                let _: () = p.set(format!("r{i}"), i).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(cli(port, &["info", "clients"]).contains("connected_clients:2")); // us + redis-cli
    let _: () = p.set("a", "2").await.unwrap();
    let v: String = p.get("a").await.unwrap();
    assert_eq!(v, "2");
}

/// A server that stops answering: requests fail after the response timeout, not never.
#[tokio::test]
async fn a_silent_server_times_out() {
    let port = free_port();
    let _s = start(port, &["--enable-debug-command", "yes"]);
    let mut c = config(port);
    c.response_timeout = Duration::from_millis(300);
    let mut p = Pipe::connect(c).await.unwrap();
    let sleeper = std::thread::spawn(move || cli(port, &["debug", "sleep", "1.5"]));
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let err = p.get::<_, Option<String>>("a").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("did not answer"), "{err}");
    sleeper.join().unwrap();
    let v: Option<String> = p.get("a").await.unwrap();
    assert_eq!(v, None);
}

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// A fake Redis on a loopback port that answers the PINGs it reads, in order across its
/// connections, with `script`'s replies, then with `+PONG`; counts the connections made.
async fn fake_redis(script: Vec<Vec<u8>>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let script = script.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while buf.starts_with(PING) {
                        buf.drain(..PING.len());
                        let next = script.lock().unwrap().pop_front();
                        let reply = next.unwrap_or_else(|| b"+PONG\r\n".to_vec());
                        if sock.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, connections)
}

/// A malformed reply fails its request with the reason (not a hang, not a panic of the
/// connection's task), and the next request on the same handle reconnects and is answered.
#[tokio::test]
async fn a_malformed_reply_fails_the_request_and_the_next_one_reconnects() {
    let deep = b"*1\r\n".repeat(100_000);
    let cases: Vec<(&[u8], &str)> = vec![
        (b"\r\n", "unknown redis reply type"),
        (b"?\r\n", "unknown redis reply type"),
        (b"+OK\rX", "CR not followed by LF"),
        (b"$3\r\nabcXY", "not followed by CRLF"),
        (b"$x\r\n", "invalid length"),
        (b"$-2\r\n", "negative length"),
        (b"*99999999999999999999\r\n", "beyond redis's limits"),
        (b"$536870913\r\n", "beyond redis's limits"),
        (b"*2000000000\r\n", "beyond redis's limits"),
        (&deep, "nested deeper than 16 levels"),
    ];
    let script = cases
        .iter()
        .flat_map(|(bad, _)| [bad.to_vec(), b"+PONG\r\n".to_vec()])
        .collect();
    let (port, connections) = fake_redis(script).await;
    let mut c = config(port);
    // Longer than the test's own limit: an error here is the reader's, not the timeout's.
    c.response_timeout = Duration::from_secs(30);
    let mut pipe = Pipe::connect(c).await.unwrap();
    let limit = Duration::from_secs(5);
    for (i, (bad, reason)) in cases.iter().enumerate() {
        let what = String::from_utf8_lossy(&bad[..bad.len().min(24)]).into_owned();
        // Both read paths: decoded values, and raw replies (the store's lookups).
        let err = if i % 2 == 0 {
            tokio::time::timeout(limit, redis::cmd("PING").query_async::<String>(&mut pipe))
                .await
                .unwrap_or_else(|_| panic!("{what:?} hung"))
                .unwrap_err()
        } else {
            tokio::time::timeout(limit, pipe.request_raw(PING.to_vec(), 1))
                .await
                .unwrap_or_else(|_| panic!("{what:?} hung"))
                .err()
                .expect("a malformed reply is an error")
        };
        assert!(err.to_string().contains(reason), "{what:?}: {err}");
        assert!(
            err.is_io_error(),
            "{what:?}: the connection is dropped: {err}"
        );
        let pong = tokio::time::timeout(limit, redis::cmd("PING").query_async::<String>(&mut pipe))
            .await
            .unwrap_or_else(|_| panic!("after {what:?}, the next request hung"))
            .unwrap_or_else(|e| panic!("after {what:?}, the next request failed: {e}"));
        assert_eq!(pong, "PONG");
    }
    assert_eq!(connections.load(Ordering::SeqCst), cases.len() + 1);
}

/// Requests beyond what the connection holds wait (backpressure): at most
/// `IN_FLIGHT_REQUESTS` are written to a server that does not answer, and once it does,
/// every request is answered.
#[tokio::test]
async fn a_full_queue_makes_requests_wait_not_pile_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let (r, wake) = (received.clone(), release.clone());
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let (mut buf, mut chunk, mut pending) = (Vec::new(), vec![0u8; 64 * 1024], 0);
        let mut answering = false;
        loop {
            tokio::select! {
                read = sock.read(&mut chunk) => {
                    let n = match read {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while buf.starts_with(PING) {
                        buf.drain(..PING.len());
                        pending += 1;
                        r.fetch_add(1, Ordering::SeqCst);
                    }
                }
                () = wake.notified(), if !answering => answering = true,
            }
            if answering && pending > 0 {
                let pongs = b"+PONG\r\n".repeat(pending);
                pending = 0;
                if sock.write_all(&pongs).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut c = config(port);
    c.response_timeout = Duration::from_secs(60);
    let pipe = Pipe::connect(c).await.unwrap();
    let requests = QUEUED_REQUESTS + IN_FLIGHT_REQUESTS + 100;
    let tasks: Vec<_> = (0..requests)
        .map(|_| {
            let mut p = pipe.clone();
            tokio::spawn(async move { redis::cmd("PING").query_async::<String>(&mut p).await })
        })
        .collect();
    // Until the server has read all that will be written: some requests arrived and no more
    // came for 300 ms (a loaded machine may take longer than that for the first ones).
    let mut seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = received.load(Ordering::SeqCst);
        if (now == seen && now > 0) || std::time::Instant::now() > deadline {
            break;
        }
        seen = now;
    }
    assert_eq!(
        seen, IN_FLIGHT_REQUESTS,
        "requests written before any answer"
    );
    assert!(tasks.iter().all(|t| !t.is_finished()));
    release.notify_one();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "PONG");
    }
    assert_eq!(received.load(Ordering::SeqCst), requests);
}
