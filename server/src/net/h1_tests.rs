//! The HTTP/1.1 loop over a real socket, through the [`Acceptor`] (what `larder serve` runs):
//! every answer is compared with the router's answer to the same request.

use std::sync::Arc;

use super::{Acceptor, Handlers, Limits, Open};
use crate::{
    http::LookupFastPath,
    service::{fixture, online::OnlineService},
};
use larder_online::{
    layout::ViewLayout,
    store::{OlderWrites, OnlineError, OnlineStore, Record, ViewRead, WriteOutcome, WriteRow},
};
use larder_registry::config::OnlineTtl;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{Notify, oneshot},
};

const LOOKUP: &str =
    r#"{"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001, 9]}}"#;

/// A server on a free port; dropping `stop` (or sending on it) begins its shutdown.
struct Server {
    addr: std::net::SocketAddr,
    online: Arc<OnlineService>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

async fn server_with(online: Arc<OnlineService>) -> Server {
    let handlers = crate::app::handlers(online.clone(), None, None, None, Arc::new(Open)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        Acceptor::new(None, Limits::default())
            .serve(listener, handlers, async move {
                let _ = stopped.await;
            })
            .await
    });
    Server {
        addr,
        online,
        stop: Some(stop),
        done,
    }
}

async fn server() -> Server {
    server_with(fixture::service(OnlineTtl::Enforce, None).await).await
}

impl Server {
    /// The router's own answer to a request: (status, body).
    async fn router_answer(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        crate::http::tests::call_with(self.online.clone(), method, path, body.as_bytes().to_vec())
            .await
    }
}

/// One response read off a connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (`content-length` framed; none for HEAD) from `conn`, keeping any bytes
/// after it in `buf`.
async fn read_answer(conn: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Answer {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(n) = resp.parse(buf).unwrap() {
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8(h.value.to_vec()).unwrap(),
                    )
                })
                .collect();
            let status = resp.code.unwrap();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let len = if head_request { 0 } else { len };
            if buf.len() >= n + len {
                let body = String::from_utf8(buf[n..n + len].to_vec()).unwrap();
                buf.drain(..n + len);
                return Answer {
                    status,
                    headers,
                    body,
                };
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let got = conn.read(&mut chunk).await.unwrap();
        assert!(got > 0, "connection closed before a whole answer: {buf:?}");
        buf.extend_from_slice(&chunk[..got]);
    }
}

/// True when the server closes `conn` (after whatever is left in `buf`).
async fn closed(conn: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            conn.read_to_end(&mut rest)
        )
        .await,
        Ok(Ok(0))
    )
}

fn post(path: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn lookups_on_one_connection_match_the_router_pipelined_or_not() {
    let s = server().await;
    let expected = s
        .router_answer("POST", "/get-online-features", LOOKUP)
        .await;
    assert_eq!(expected.0, 200, "{}", expected.1);
    let mut conn = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = Vec::new();
    // One at a time, then three in one write, then one split across writes mid-head and
    // mid-body.
    conn.write_all(post("/get-online-features", LOOKUP, "").as_bytes())
        .await
        .unwrap();
    let a = read_answer(&mut conn, &mut buf, false).await;
    assert_eq!((a.status, a.body.clone()), expected);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert!(a.header("date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(a.header("connection"), None);
    let three = post("/get-online-features", LOOKUP, "").repeat(3);
    conn.write_all(three.as_bytes()).await.unwrap();
    for _ in 0..3 {
        let a = read_answer(&mut conn, &mut buf, false).await;
        assert_eq!((a.status, a.body), expected);
    }
    let split = post("/get-online-features", LOOKUP, "");
    for part in [
        &split[..10],
        &split[10..70],
        &split[70..split.len() - 5],
        &split[split.len() - 5..],
    ] {
        conn.write_all(part.as_bytes()).await.unwrap();
        conn.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let a = read_answer(&mut conn, &mut buf, false).await;
    assert_eq!((a.status, a.body), expected);
    assert!(buf.is_empty());
}

#[tokio::test]
async fn other_routes_and_errors_are_the_routers_answers() {
    let s = server().await;
    let mut conn = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = Vec::new();
    for (method, path, body) in [
        ("GET", "/health", ""),
        ("GET", "/openapi.json", ""),
        ("GET", "/nope", ""),
        ("GET", "/get-online-features", ""),
        ("POST", "/get-online-features?x=1", LOOKUP),
        ("POST", "/get-online-features", "{not json"),
        (
            "POST",
            "/get-online-features",
            r#"{"features": ["nope:x"], "entities": {"driver_id": [1]}}"#,
        ),
        ("POST", "/push", r#"{"push_source_name": "x", "df": {}}"#),
    ] {
        let expected = s.router_answer(method, path, body).await;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(req.as_bytes()).await.unwrap();
        let a = read_answer(&mut conn, &mut buf, false).await;
        assert_eq!((a.status, a.body), expected, "{method} {path}");
    }
    // HEAD: the GET answer's head, no body; the connection stays usable.
    conn.write_all(b"HEAD /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let a = read_answer(&mut conn, &mut buf, true).await;
    assert_eq!(a.status, 200);
    let full = s.router_answer("GET", "/openapi.json", "").await.1;
    assert_eq!(
        a.header("content-length"),
        Some(full.len().to_string().as_str())
    );
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut conn, &mut buf, false).await.status, 200);
}

#[tokio::test]
async fn chunked_bodies_and_expect_continue() {
    let s = server().await;
    let expected = s
        .router_answer("POST", "/get-online-features", LOOKUP)
        .await;
    let mut conn = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = Vec::new();
    let (a, b) = LOOKUP.split_at(20);
    let chunked = format!(
        "POST /get-online-features HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\nx-trailer: 1\r\n\r\n",
        a.len(),
        b.len()
    );
    conn.write_all(chunked.as_bytes()).await.unwrap();
    let answer = read_answer(&mut conn, &mut buf, false).await;
    assert_eq!((answer.status, answer.body), expected);

    // With `expect: 100-continue` the body is only sent after the interim answer.
    let head = format!(
        "POST /get-online-features HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        LOOKUP.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let interim = read_answer(&mut conn, &mut buf, true).await;
    assert_eq!(interim.status, 100);
    conn.write_all(LOOKUP.as_bytes()).await.unwrap();
    let answer = read_answer(&mut conn, &mut buf, false).await;
    assert_eq!((answer.status, answer.body), expected);
}

#[tokio::test]
async fn connections_close_when_asked_or_after_a_refusal() {
    let s = server().await;
    let expected = s
        .router_answer("POST", "/get-online-features", LOOKUP)
        .await;
    // HTTP/1.0 closes unless asked to keep the connection; HTTP/1.1 closes when asked.
    for (req, keeps) in [
        (
            post("/get-online-features", LOOKUP, "").replace("HTTP/1.1", "HTTP/1.0"),
            false,
        ),
        (
            post("/get-online-features", LOOKUP, "Connection: keep-alive\r\n")
                .replace("HTTP/1.1", "HTTP/1.0"),
            true,
        ),
        (
            post("/get-online-features", LOOKUP, "Connection: close\r\n"),
            false,
        ),
        (
            "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
            false,
        ),
    ] {
        let mut conn = TcpStream::connect(s.addr).await.unwrap();
        let mut buf = Vec::new();
        conn.write_all(req.as_bytes()).await.unwrap();
        let a = read_answer(&mut conn, &mut buf, false).await;
        if req.starts_with("POST") {
            assert_eq!((a.status, a.body.clone()), expected);
        }
        if keeps {
            assert_eq!(a.header("connection"), Some("keep-alive"));
            conn.write_all(req.as_bytes()).await.unwrap();
            assert_eq!(read_answer(&mut conn, &mut buf, false).await.status, 200);
        } else {
            assert_eq!(a.header("connection"), Some("close"), "{req}");
            assert!(closed(&mut conn).await, "{req}");
        }
    }
    // Refused before any handler: answered, then closed.
    let big = format!(
        "POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        super::h1::MAX_BODY_BYTES + 1
    );
    let huge_head = format!(
        "GET /health HTTP/1.1\r\nx-big: {}\r\n\r\n",
        "a".repeat(super::h1::MAX_HEAD_BYTES)
    );
    for (req, status) in [
        ("NOT HTTP\r\n\r\n".to_owned(), 400),
        (
            "POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
            400,
        ),
        (big, 413),
        (huge_head, 431),
    ] {
        let mut conn = TcpStream::connect(s.addr).await.unwrap();
        let mut buf = Vec::new();
        // The server may answer and close before it has read everything sent.
        let _ = conn.write_all(req.as_bytes()).await;
        let a = read_answer(&mut conn, &mut buf, false).await;
        assert_eq!(a.status, status, "{}", &req[..req.len().min(60)]);
        assert_eq!(a.header("connection"), Some("close"));
        assert!(closed(&mut conn).await);
    }
}

/// A store whose reads wait until released.
#[derive(Debug)]
struct Gated {
    inner: Arc<dyn OnlineStore>,
    entered: Notify,
    release: Notify,
}

#[async_trait::async_trait]
impl OnlineStore for Gated {
    fn describe(&self) -> String {
        "gated".into()
    }
    fn older_writes(&self) -> OlderWrites {
        self.inner.older_writes()
    }
    async fn read(&self, reads: &[ViewRead<'_>]) -> Result<Vec<Vec<Option<Record>>>, OnlineError> {
        self.entered.notify_one();
        self.release.notified().await;
        self.inner.read(reads).await
    }
    async fn write(
        &self,
        layout: &ViewLayout,
        rows: &[WriteRow],
    ) -> Result<WriteOutcome, OnlineError> {
        self.inner.write(layout, rows).await
    }
    async fn drop_view(&self, layout: &ViewLayout) -> Result<(), OnlineError> {
        self.inner.drop_view(layout).await
    }
    async fn check(&self) -> Result<(), OnlineError> {
        self.inner.check().await
    }
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_answers_requests_in_progress() {
    let plain = fixture::service(OnlineTtl::Enforce, None).await;
    let gated = Arc::new(Gated {
        inner: plain.store().clone(),
        entered: Notify::new(),
        release: Notify::new(),
    });
    let mut s = server_with(fixture::service(OnlineTtl::Enforce, Some(gated.clone())).await).await;
    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    let mut busy = TcpStream::connect(s.addr).await.unwrap();
    busy.write_all(post("/get-online-features", LOOKUP, "").as_bytes())
        .await
        .unwrap();
    gated.entered.notified().await;
    drop(s.stop.take());
    // The idle connection is closed at once; the lookup in progress is answered, then closed.
    assert!(closed(&mut idle).await);
    gated.release.notify_one();
    let mut buf = Vec::new();
    let a = read_answer(&mut busy, &mut buf, false).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("connection"), Some("close"));
    assert!(closed(&mut busy).await);
    tokio::time::timeout(std::time::Duration::from_secs(5), &mut s.done)
        .await
        .expect("the server stops once its connections are closed")
        .unwrap();
    assert!(TcpStream::connect(s.addr).await.is_err());
}

/// The whole application over the fixture service.
async fn fixture_handlers() -> Handlers<LookupFastPath> {
    let online = fixture::service(OnlineTtl::Enforce, None).await;
    crate::app::handlers(online, None, None, None, Arc::new(Open)).await
}

/// Valid requests, pipelined, then damaged at random (bytes flipped, inserted, dropped, cut
/// short) and sent in random pieces: the loop answers or closes, never panics or hangs, and
/// everything it writes is a sequence of whole HTTP/1.1 answers.
#[tokio::test]
async fn damaged_requests_are_answered_or_closed() {
    let handlers = fixture_handlers().await;
    let valid = [
        post("/get-online-features", LOOKUP, ""),
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        format!(
            "POST /get-online-features HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{LOOKUP}\r\n0\r\n\r\n",
            LOOKUP.len()
        ),
        post("/push", "{}", "Expect: 100-continue\r\n"),
    ];
    // xorshift64*: the same cases on every run.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: usize| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    };
    for case in 0..300 {
        let mut bytes: Vec<u8> = (0..1 + next(3))
            .flat_map(|_| valid[next(valid.len())].clone().into_bytes())
            .collect();
        for _ in 0..next(4) {
            let at = next(bytes.len());
            match next(4) {
                0 => bytes[at] = next(256) as u8,
                1 => bytes.insert(at, b"\r\n:0 \x00\xff"[next(7)]),
                2 => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at),
            }
        }
        let pieces = std::iter::from_fn(|| Some(1 + next(64)));
        let out = converse(&handlers, &Limits::default(), &bytes, pieces).await;
        whole_answers(&out, &format!("case {case}"));
    }
}

/// Sends `bytes` to the HTTP/1.1 loop in pieces of the sizes `pieces` gives, then closes the
/// sending side; what the loop answered. Fails when the loop hangs or panics.
async fn converse(
    handlers: &Handlers<LookupFastPath>,
    limits: &Limits,
    bytes: &[u8],
    mut pieces: impl Iterator<Item = usize>,
) -> Vec<u8> {
    let (mut client, mut server_side) = tokio::io::duplex(1 << 16);
    let (handlers, limits) = (handlers.clone(), limits.clone());
    let (_stop, mut stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        super::h1::serve(
            &mut server_side,
            bytes::BytesMut::new(),
            &handlers,
            &limits,
            &mut stopped,
        )
        .await
    });
    let mut sent = 0;
    while sent < bytes.len() {
        let n = pieces.next().unwrap_or(usize::MAX).min(bytes.len() - sent);
        if client.write_all(&bytes[sent..sent + n]).await.is_err() {
            break;
        }
        sent += n;
    }
    let _ = client.shutdown().await;
    let mut out = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.read_to_end(&mut out),
    )
    .await
    .expect("the connection ends")
    .unwrap();
    let served = tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("the loop ends");
    assert!(served.is_ok(), "the loop panicked");
    out
}

/// `out` is a sequence of whole HTTP/1.1 answers (each framed by its `content-length`).
fn whole_answers(out: &[u8], what: &str) {
    let mut rest = out;
    while !rest.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "{what}: not an answer: {other:?} {:?}",
                String::from_utf8_lossy(rest)
            ),
        };
        let len: usize = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map_or(0, |h| {
                std::str::from_utf8(h.value).unwrap().parse().unwrap()
            });
        assert!(rest.len() >= n + len, "{what}: a cut answer");
        rest = &rest[n + len..];
    }
}

/// Fuzz target (`cargo bolero test -p larder-server --bin larder
/// net::h1_tests::fuzz_connections` for a coverage-guided run; `cargo test` runs it on random
/// inputs for a second): any bytes sent on a connection are answered with whole HTTP/1.1
/// answers or the connection is closed — the loop never panics or hangs.
#[test]
fn fuzz_connections() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handlers = rt.block_on(fixture_handlers());
    let limits = Limits {
        header_timeout: std::time::Duration::from_millis(200),
        body_timeout: std::time::Duration::from_millis(200),
        ..Limits::default()
    };
    // A panic fails the target; nothing is observed after one.
    let (rt, handlers) = (
        std::panic::AssertUnwindSafe(rt),
        std::panic::AssertUnwindSafe(handlers),
    );
    bolero::check!().for_each(|bytes: &[u8]| {
        rt.block_on(async {
            let out = converse(&handlers, &limits, bytes, std::iter::repeat(usize::MAX)).await;
            whole_answers(&out, "fuzzed input");
        })
    });
}

#[tokio::test]
async fn unknown_paths_are_404_and_unknown_grpc_methods_unimplemented() {
    use tower::ServiceExt;
    let handlers = fixture_handlers().await;
    let ask = |content_type: &'static str| {
        let router = handlers.router.clone();
        async move {
            router
                .oneshot(
                    axum::http::Request::builder()
                        .method("POST")
                        .uri("/other.Service/Method")
                        .header("content-type", content_type)
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap()
        }
    };
    let plain = ask("application/json").await;
    assert_eq!(plain.status(), 404);
    let grpc = ask("application/grpc").await;
    assert_eq!(grpc.status(), 200);
    assert_eq!(
        grpc.headers().get("grpc-status").map(|v| v.as_bytes()),
        Some(b"12".as_slice())
    );
}
