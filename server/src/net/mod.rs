//! The network layer every Larder server runs on: listening sockets (one per serving thread,
//! `SO_REUSEPORT`), TLS, the accept loop with its connection cap, the protocol sniff (h2 by ALPN
//! or by the client's connection preface → hyper; anything else → Larder's own HTTP/1.1 loop,
//! [`h1`]), the limits and timeouts, and the [`Gate`] every request passes — the HTTP/1.1 fast
//! path, the router and h2/gRPC alike — so a cross-cutting concern (authentication, request
//! limits) has one place and cannot miss a path.
//!
//! A server is a set of [`Endpoint`]s, each a port with its own threads and [`Handlers`]:
//! `larder serve` runs one; the Flight and registry servers add theirs, not a copy of the loop.

#[cfg(test)]
mod gate_tests;
pub mod h1;
#[cfg(test)]
mod h1_tests;
pub mod tls;

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use larder_registry::config::ServerLimits;
use larder_types::error::ErrorCode;

/// The limits of one endpoint's connections (`larder.server` in `feature_store.yaml`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// From a request's first byte (or a TLS handshake's start) to its complete head; the
    /// connection is answered 408 and closed after it.
    pub header_timeout: Duration,
    /// From a complete head to the complete body; 408 and closed after it.
    pub body_timeout: Duration,
    /// How long a connection may wait for its first request, and a kept-alive HTTP/1.1
    /// connection for its next one.
    pub idle_timeout: Duration,
    /// How long writing one answer may take (a client that does not read).
    pub write_timeout: Duration,
    /// Open connections per endpoint (all its threads); beyond it a new connection is answered
    /// 503 and closed.
    pub max_connections: usize,
    /// h2: streams one connection may have open at once (advertised in SETTINGS and enforced).
    pub h2_max_concurrent_streams: u32,
    /// h2: the largest header list a request may carry (SETTINGS_MAX_HEADER_LIST_SIZE).
    pub h2_max_header_list_size: u32,
    /// h2: a PING after this long without frames; the connection closes when it is not answered
    /// within `h2_keep_alive_timeout`.
    pub h2_keep_alive_interval: Duration,
    pub h2_keep_alive_timeout: Duration,
}

impl Limits {
    pub fn from_config(c: &ServerLimits) -> Self {
        let secs = |s: f64| Duration::from_secs_f64(s);
        Self {
            header_timeout: secs(c.header_timeout_seconds),
            body_timeout: secs(c.body_timeout_seconds),
            idle_timeout: secs(c.idle_timeout_seconds),
            write_timeout: secs(c.write_timeout_seconds),
            max_connections: c.max_connections,
            h2_max_concurrent_streams: c.h2_max_concurrent_streams,
            h2_max_header_list_size: h1::MAX_HEAD_BYTES as u32,
            h2_keep_alive_interval: secs(c.h2_keep_alive_interval_seconds),
            h2_keep_alive_timeout: secs(c.h2_keep_alive_timeout_seconds),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from_config(&ServerLimits::default())
    }
}

/// A request as the [`Gate`] sees it: method, path and headers, from either protocol.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "read by gates; the only gate built yet (Open) lets everything through"
    )
)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The request target's path (and query).
    pub path: &'a str,
    headers: Headers<'a>,
}

enum Headers<'a> {
    H1(&'a [httparse::Header<'a>]),
    Http(&'a axum::http::HeaderMap),
}

impl<'a> RequestParts<'a> {
    pub fn h1(method: &'a str, path: &'a str, headers: &'a [httparse::Header<'a>]) -> Self {
        Self {
            method,
            path,
            headers: Headers::H1(headers),
        }
    }

    pub fn http(method: &'a str, path: &'a str, headers: &'a axum::http::HeaderMap) -> Self {
        Self {
            method,
            path,
            headers: Headers::Http(headers),
        }
    }

    /// The first value of header `name` (case-insensitive).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "for gates that read headers (authentication)")
    )]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        match &self.headers {
            Headers::H1(h) => h
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value),
            Headers::Http(h) => h.get(name).map(|v| v.as_bytes()),
        }
    }
}

/// Why a request was not let through.
#[derive(Debug, Clone, PartialEq)]
pub struct Denied {
    pub code: ErrorCode,
    pub message: String,
}

/// What every request passes before any handler sees it, on every path (the HTTP/1.1 fast
/// path, the router, h2 and gRPC). Authentication goes here when it is built.
pub trait Gate: Send + Sync + 'static {
    fn admit(&self, req: &RequestParts<'_>) -> Result<(), Denied>;
}

/// Lets every request through (`auth: {type: no_auth}`).
pub struct Open;

impl Gate for Open {
    fn admit(&self, _: &RequestParts<'_>) -> Result<(), Denied> {
        Ok(())
    }
}

/// A request answered without the router: status, content type, body.
pub struct FastAnswer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// Requests an endpoint answers straight from the bytes read, without building an HTTP
/// request for the router (the online lookup: a fifth of its instructions).
pub trait FastPath: Clone + Send + Sync + 'static {
    /// Whether `method path` is answered by [`FastPath::answer`].
    fn handles(&self, method: &str, path: &str) -> bool;
    fn answer(&self, body: &[u8]) -> impl Future<Output = FastAnswer> + Send;
}

/// An endpoint without a fast path: every request goes to the router (gRPC-only servers).
#[derive(Clone)]
pub struct RouterOnly;

impl FastPath for RouterOnly {
    fn handles(&self, _: &str, _: &str) -> bool {
        false
    }
    async fn answer(&self, _: &[u8]) -> FastAnswer {
        unreachable!("handles nothing")
    }
}

/// What a connection's requests are answered by.
#[derive(Clone)]
pub struct Handlers<F: FastPath> {
    /// Every route (including the fast path's, for h2 and for requests it leaves to it).
    pub router: axum::Router,
    pub fast: F,
    pub gate: Arc<dyn Gate>,
}

/// Which connection a request came on, in its extensions (h2 connections: gRPC): a number no
/// other connection of the process has, and a token dropped when the connection ends, for
/// services that keep state per client connection (the registry server's staged writes).
#[derive(Debug, Clone)]
pub struct ConnectionId {
    pub id: u64,
    pub alive: Arc<()>,
}

impl ConnectionId {
    pub fn next() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            alive: Arc::new(()),
        }
    }
}

/// The router behind the gate, for h2 connections (HTTP/1.1 passes the gate in [`h1`]).
#[derive(Clone)]
struct GatedRouter {
    router: axum::Router,
    gate: Arc<dyn Gate>,
    connection: ConnectionId,
}

impl tower::Service<axum::http::Request<hyper::body::Incoming>> for GatedRouter {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::Either<
        tower::util::Oneshot<axum::Router, axum::http::Request<axum::body::Body>>,
        std::future::Ready<Result<axum::response::Response, std::convert::Infallible>>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        use tower::ServiceExt;
        req.extensions_mut().insert(self.connection.clone());
        let admitted = self.gate.admit(&RequestParts::http(
            req.method().as_str(),
            req.uri().path_and_query().map_or("/", |p| p.as_str()),
            req.headers(),
        ));
        match admitted {
            Ok(()) => futures::future::Either::Left(
                self.router.clone().oneshot(req.map(axum::body::Body::new)),
            ),
            Err(denied) => futures::future::Either::Right(std::future::ready(Ok(denied_response(
                &denied,
                is_grpc(req.headers()),
            )))),
        }
    }
}

fn is_grpc(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// A denied request's answer: a gRPC status for gRPC requests, else the HTTP status with
/// Feast's error body (a JSON string).
pub fn denied_response(denied: &Denied, grpc: bool) -> axum::response::Response {
    if grpc {
        return tonic::Status::new(
            tonic::Code::from(denied.code.grpc_code()),
            denied.message.clone(),
        )
        .into_http();
    }
    axum::response::Response::builder()
        .status(denied.code.http_status())
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(
            serde_json::to_string(&denied.message).expect("a string serializes"),
        ))
        .expect("a valid response")
}

thread_local! {
    /// Set when this thread freed a large buffer since its last housekeeping tick.
    static LARGE_FREED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Buffers at least this large are reported freed, so the thread gives memory back.
pub(crate) const LARGE_BUFFER: usize = 64 * 1024;

/// Notes that this thread freed a buffer of `capacity` bytes.
pub(crate) fn freed(capacity: usize) {
    if capacity >= LARGE_BUFFER {
        LARGE_FREED.with(|f| f.set(true));
    }
}

/// How often a serving thread that freed large buffers gives free memory back.
const HOUSEKEEPING: Duration = Duration::from_secs(2);

/// One port of a server.
pub struct Endpoint<F: FastPath> {
    /// What it serves, for messages ("online features").
    pub name: &'static str,
    pub addr: SocketAddr,
    /// Serving threads, each with its own single-threaded runtime and listening socket.
    pub threads: usize,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub limits: Limits,
    /// Builds one thread's handlers, on that thread's runtime (so per-thread connections, such
    /// as Redis's, are driven by the thread that uses them).
    pub handlers: Arc<dyn Fn() -> BoxFuture<anyhow::Result<Handlers<F>>> + Send + Sync>,
    /// Gives the allocator's free memory back to the system; called on a serving thread that
    /// freed large buffers (request bodies), at most every [`HOUSEKEEPING`].
    pub release_memory: Option<fn()>,
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A started endpoint.
pub struct Running {
    pub name: &'static str,
    /// The address bound (the port picked, for port 0).
    pub addr: SocketAddr,
    pub tls: bool,
    pub threads: usize,
    stop: tokio::sync::watch::Sender<bool>,
    joined: Vec<std::thread::JoinHandle<()>>,
}

impl<F: FastPath> Endpoint<F> {
    /// Binds the port and starts the threads; returns once every thread has built its handlers
    /// and listens (or with the first thread's failure).
    pub async fn start(self) -> anyhow::Result<Running> {
        let listeners = bind_reuseport(self.addr, self.threads.max(1))?;
        let addr = listeners[0].local_addr()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let open = Arc::new(AtomicUsize::new(0));
        let mut joined = Vec::with_capacity(listeners.len());
        let mut started = Vec::with_capacity(listeners.len());
        for (i, listener) in listeners.into_iter().enumerate() {
            let (ready, is_ready) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
            started.push(is_ready);
            let thread = Thread {
                handlers: self.handlers.clone(),
                release_memory: self.release_memory,
                tls: self.tls.clone(),
                limits: self.limits.clone(),
                open: open.clone(),
                stopped: stopped.clone(),
            };
            joined.push(
                std::thread::Builder::new()
                    .name(format!("larder-{}-{i}", self.name.replace(' ', "-")))
                    .spawn(move || thread.run(listener, ready))
                    .context("starting a serving thread")?,
            );
        }
        let running = Running {
            name: self.name,
            addr,
            tls: self.tls.is_some(),
            threads: joined.len(),
            stop,
            joined,
        };
        for r in started {
            let failed = match r.await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(_) => anyhow::anyhow!("a serving thread ended while starting"),
            };
            running.stop().await;
            return Err(failed.context(format!("starting the {} endpoint", self.name)));
        }
        Ok(running)
    }
}

impl Running {
    /// Stops accepting, closes idle connections, lets requests in progress finish (at most
    /// [`DRAIN`]) and joins the threads.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let joined = self.joined;
        let _ = tokio::task::spawn_blocking(move || {
            for t in joined {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// One serving thread of an endpoint.
struct Thread<F: FastPath> {
    handlers: Arc<dyn Fn() -> BoxFuture<anyhow::Result<Handlers<F>>> + Send + Sync>,
    release_memory: Option<fn()>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    open: Arc<AtomicUsize>,
    stopped: tokio::sync::watch::Receiver<bool>,
}

impl<F: FastPath> Thread<F> {
    fn run(
        self,
        listener: std::net::TcpListener,
        ready: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready.send(Err(anyhow::anyhow!("starting a serving runtime: {e}")));
                return;
            }
        };
        runtime.block_on(async move {
            let Thread {
                handlers,
                release_memory,
                tls,
                limits,
                open,
                mut stopped,
            } = self;
            let setup = async {
                let handlers = handlers().await?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                anyhow::Ok((handlers, listener))
            };
            let (handlers, listener) = match setup.await {
                Ok(x) => {
                    let _ = ready.send(Ok(()));
                    x
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            if let Some(release) = release_memory {
                // Runs on this thread (a current-thread runtime): sees this thread's frees.
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(HOUSEKEEPING);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        if LARGE_FREED.with(|f| f.replace(false)) {
                            release();
                        }
                    }
                });
            }
            let stop = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let acceptor = Acceptor {
                tls,
                limits: Arc::new(limits),
                open,
            };
            acceptor.serve(listener, handlers, stop).await;
        });
    }
}

/// `n` listening sockets on one address (`SO_REUSEPORT`: the kernel spreads new connections
/// over them); port 0 becomes one free port shared by all.
fn bind_reuseport(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    // SO_REUSEPORT would let a second server (another larder, say) share a port that is already
    // taken; a plain bind first makes a taken port an error, as without SO_REUSEPORT.
    if addr.port() != 0 {
        drop(
            std::net::TcpListener::bind(addr)
                .with_context(|| format!("binding {addr} (is another server using the port?)"))?,
        );
    }
    let mut addr = addr;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .context("creating a socket")?;
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        socket.set_reuseport(true)?;
        socket
            .bind(addr)
            .with_context(|| format!("binding {addr}"))?;
        let listener = socket
            .listen(1024)
            .with_context(|| format!("listening on {addr}"))?;
        addr = listener.local_addr()?;
        out.push(listener.into_std()?);
        if !cfg!(unix) {
            break;
        }
    }
    Ok(out)
}

/// How long open connections may take to finish after shutdown begins.
pub const DRAIN: Duration = Duration::from_secs(30);

/// What a connection beyond the cap is answered before it is closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 43\r\nretry-after: 1\r\nconnection: close\r\n\r\n\"too many open connections, try again later\"";

/// Accepts the connections of one listener.
pub struct Acceptor {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub limits: Arc<Limits>,
    /// Open connections of the endpoint, across its threads.
    pub open: Arc<AtomicUsize>,
}

/// Counts a connection as open until dropped.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Acceptor {
    /// A plain acceptor with these limits and its own count (tests, single-listener servers).
    #[cfg(test)]
    pub fn new(tls: Option<tokio_rustls::TlsAcceptor>, limits: Limits) -> Self {
        Self {
            tls,
            limits: Arc::new(limits),
            open: Arc::default(),
        }
    }

    /// Accepts connections until `shutdown`: h2 (chosen by ALPN, or by the client's connection
    /// preface) is served by hyper, HTTP/1.1 by [`h1::serve`]. Then stops accepting, closes
    /// idle connections and lets requests in progress finish (at most [`DRAIN`]).
    pub async fn serve<F: FastPath>(
        &self,
        listener: tokio::net::TcpListener,
        handlers: Handlers<F>,
        shutdown: impl Future<Output = ()>,
    ) {
        use hyper_util::server::graceful::GracefulShutdown;
        // h2 connections close through hyper's graceful shutdown, HTTP/1.1 ones watch `stop`;
        // every connection task holds a clone of `alive`, so `all_closed` ends when the last does.
        let graceful = GracefulShutdown::new();
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let (alive, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
        let refused = metrics::counter!("larder_connections_refused_total");
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(error) => {
                        // Out of file descriptors, say: wait instead of spinning on the error.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            if self.open.fetch_add(1, Ordering::Relaxed) >= self.limits.max_connections {
                self.open.fetch_sub(1, Ordering::Relaxed);
                refused.increment(1);
                tracing::debug!(%peer, "connection refused: too many open connections");
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut tcp = tcp;
                    // Answered, then what the client sent is read (so closing does not reset
                    // the connection before the answer is read) — all within a second.
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        tcp.write_all(TOO_MANY).await?;
                        tcp.shutdown().await?;
                        let mut sink = [0u8; 512];
                        while tcp.read(&mut sink).await? > 0 {}
                        std::io::Result::Ok(())
                    })
                    .await;
                });
                continue;
            }
            let connection = Connection {
                handlers: handlers.clone(),
                limits: self.limits.clone(),
                h2_watcher: graceful.watcher(),
                stop: stopping.clone(),
                _alive: alive.clone(),
                _open: OpenConnection(self.open.clone()),
            };
            let tls = self.tls.clone();
            let header_timeout = self.limits.header_timeout;
            tokio::spawn(async move {
                let (io, alpn_h2): (Box<dyn Io>, bool) = match tls {
                    None => (Box::new(tcp), false),
                    Some(acceptor) => {
                        match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
                            Ok(Ok(t)) => {
                                let h2 = t.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                                (Box::new(t), h2)
                            }
                            Ok(Err(error)) => {
                                tracing::debug!(%error, %peer, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        }
                    }
                };
                if let Err(error) = connection.serve(io, alpn_h2).await {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
            });
        }
        drop(listener);
        let _ = stop.send(true);
        drop(alive);
        let drained = async {
            graceful.shutdown().await;
            let _ = all_closed.recv().await;
        };
        if tokio::time::timeout(DRAIN, drained).await.is_err() {
            tracing::warn!("connections still open {DRAIN:?} after shutdown began; closing them");
        }
    }
}

/// One accepted connection's share of the server.
struct Connection<F: FastPath> {
    handlers: Handlers<F>,
    limits: Arc<Limits>,
    h2_watcher: hyper_util::server::graceful::Watcher,
    stop: tokio::sync::watch::Receiver<bool>,
    /// Dropped when the connection ends (see `all_closed`).
    _alive: tokio::sync::mpsc::Sender<()>,
    _open: OpenConnection,
}

/// What an h2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl<F: FastPath> Connection<F> {
    async fn serve(mut self, mut io: Box<dyn Io>, alpn_h2: bool) -> anyhow::Result<()> {
        use hyper_util::{
            rt::{TokioExecutor, TokioIo, TokioTimer},
            service::TowerToHyperService,
        };
        let mut buf = bytes::BytesMut::with_capacity(8 * 1024);
        let h2 = alpn_h2 || {
            // Read until the bytes part from the h2 preface, or hold all of it: a connection
            // that has sent nothing waits as an idle one does; once its first bytes are in,
            // the rest of the preface or head is due within the header timeout.
            let mut deadline = tokio::time::Instant::now() + self.limits.idle_timeout;
            let mut timer = h1::Timer::new(deadline);
            let mut started = false;
            loop {
                let n = buf.len().min(H2_PREFACE.len());
                if buf[..n] != H2_PREFACE[..n] {
                    // `PRI * HTTP/2.0` with anything else after it is a damaged h2 preface:
                    // h2 refuses it (RFC 9113 §3.4) rather than HTTP/1.1 answering it.
                    break buf.starts_with(b"PRI * HTTP/2.0");
                }
                if n == H2_PREFACE.len() {
                    break true;
                }
                match h1::read_until(&mut io, &mut buf, deadline, &mut timer, &mut self.stop)
                    .await?
                {
                    h1::Read::Data(_) if !started => {
                        started = true;
                        deadline = tokio::time::Instant::now() + self.limits.header_timeout;
                    }
                    h1::Read::Data(_) => {}
                    h1::Read::Closed | h1::Read::Stopped | h1::Read::TimedOut => return Ok(()),
                }
            }
        };
        if h2 {
            let service = TowerToHyperService::new(GatedRouter {
                router: self.handlers.router.clone(),
                gate: self.handlers.gate.clone(),
                connection: ConnectionId::next(),
            });
            let io = Prefixed {
                prefix: buf.freeze(),
                io,
            };
            let l = &self.limits;
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .max_concurrent_streams(l.h2_max_concurrent_streams)
                .max_header_list_size(l.h2_max_header_list_size)
                .keep_alive_interval(Some(l.h2_keep_alive_interval))
                .keep_alive_timeout(l.h2_keep_alive_timeout);
            let conn = builder.serve_connection(TokioIo::new(Unvectored(io)), service);
            self.h2_watcher.watch(conn).await?;
        } else {
            drop(self.h2_watcher);
            h1::serve(&mut io, buf, &self.handlers, &self.limits, &mut self.stop).await?;
        }
        Ok(())
    }
}

/// A connection whose first bytes were already read: they are read again first.
struct Prefixed {
    prefix: bytes::Bytes,
    io: Box<dyn Io>,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix.split_to(n));
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A client connection, plain or TLS.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A connection that tells hyper it has no vectored writes. h2 then copies DATA payloads of up
/// to 1 KiB into its write buffer instead of chaining them (it chains those over 256 bytes when
/// writes are vectored, and must flush a chained payload before queuing the next frame), so a
/// gRPC answer's HEADERS, DATA and trailers frames leave in one write instead of two — 20–25%
/// more single-entity gRPC lookups per second here.
struct Unvectored<T>(T);

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Unvectored<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Unvectored<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The signal that stops a server: Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled, so a signal that comes between the call and the
/// wait is not lost (nor does it kill the process by the signal's default action).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let (int, term) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(int) => {},
                _ = wait(term) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
