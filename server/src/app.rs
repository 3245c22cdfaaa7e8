//! The composition root of `larder serve`: the only place that names concrete stores.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use larder_online::{
    entity_key::KeyVersion,
    redis::{ConnectionString, RedisKind, RedisOnlineStore, RedisOptions},
    sqlite::SqliteOnlineStore,
    store::OnlineStore,
};
use larder_protos::feast::serving::serving_service_server::ServingServiceServer;
use larder_registry::{
    cache::RegistryCache,
    clock::SystemClock,
    config::{OnlineStoreConfig, RedisType, RepoConfig},
    store,
};

use crate::{
    grpc::ServingGrpc,
    http::{
        HttpState,
        h1::{self, Handlers},
        router,
    },
    service::online::{OnlineConfig, OnlineService},
};

/// `larder serve` options.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    /// Refresh the registry every this many seconds (Feast's `--registry_ttl_sec`).
    pub registry_ttl_sec: u64,
    /// `(key, certificate chain)` PEM files: serve over TLS (HTTP/1.1 and h2 by ALPN).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Serving threads; 0 = one per core.
    pub workers: usize,
}

/// Builds the online store a repo configures.
pub async fn online_store(config: &RepoConfig) -> anyhow::Result<Arc<dyn OnlineStore>> {
    Ok(match &config.online_store {
        None => anyhow::bail!(
            "online_store is null in {}: there is nothing to serve",
            config.config_path.display()
        ),
        Some(OnlineStoreConfig::Sqlite(s)) => {
            let pool = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
            Arc::new(SqliteOnlineStore::open(&s.path, pool)?)
        }
        Some(OnlineStoreConfig::Redis(r)) => {
            let kind = match r.redis_type {
                RedisType::Redis => RedisKind::Standalone,
                RedisType::RedisCluster => RedisKind::Cluster,
                RedisType::RedisSentinel => RedisKind::Sentinel,
            };
            let conn = ConnectionString::parse(&r.connection_string)?;
            let opts = RedisOptions {
                key_ttl_seconds: r.key_ttl_seconds,
                skip_dedup: r.skip_dedup,
                sentinel_master: r.sentinel_master.clone(),
            };
            Arc::new(RedisOnlineStore::connect(kind, &conn, opts).await?)
        }
        Some(OnlineStoreConfig::Remote(_)) => {
            anyhow::bail!(
                "online_store type remote points at another feature server; larder serves from redis or sqlite"
            )
        }
        Some(OnlineStoreConfig::Other { type_name, .. }) => {
            anyhow::bail!(
                "online_store type {type_name} is not supported by larder (redis and sqlite are)"
            )
        }
    })
}

fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    let builder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
        .ok()?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("feast_online_features_entity_count".into()),
            &[1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
        )
        .ok()?;
    match builder.install_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics disabled");
            None
        }
    }
}

/// The online service for a repo: registry cache (refreshed in the background) + online store.
pub async fn online_service(
    config: &RepoConfig,
    env: &HashMap<String, String>,
    registry_ttl_sec: u64,
) -> anyhow::Result<Arc<OnlineService>> {
    let registry_store = store::open(config, env).await?;
    let cache = Arc::new(
        RegistryCache::open(
            registry_store,
            config.registry.cache_ttl_seconds,
            Arc::new(SystemClock),
        )
        .await
        .context("loading the registry")?,
    );
    if registry_ttl_sec > 0 {
        // The task ends by itself when the cache is dropped.
        let _refresher = cache.spawn_refresher(Duration::from_secs(registry_ttl_sec));
    }
    let store = online_store(config).await?;
    let key_version = KeyVersion::from_config(config.entity_key_serialization_version)
        .context("entity_key_serialization_version must be 1, 2 or 3")?;
    Ok(Arc::new(OnlineService::new(
        cache,
        store,
        OnlineConfig {
            project: config.project.to_string(),
            key_version,
            online_ttl: config.larder.online_ttl,
            serve_while_materializing: config.registry.serve_features_while_materializing,
        },
        Arc::new(SystemClock),
    )))
}

/// The whole application: Feast's HTTP endpoints plus gRPC ServingService and gRPC health on
/// one router, and the lookup handler's state for the HTTP/1.1 fast path.
pub async fn app(
    online: Arc<OnlineService>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    jobs: Option<Arc<crate::service::materialize::MaterializeJobs>>,
    push: Option<Arc<crate::service::push::PushService>>,
) -> Handlers {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ServingServiceServer<ServingGrpc>>()
        .await;
    let grpc = tonic::service::Routes::new(ServingServiceServer::new(ServingGrpc {
        online: online.clone(),
    }))
    .add_service(health_service)
    .into_axum_router();
    let mut state = HttpState::new(online, metrics);
    if let Some(jobs) = jobs {
        state = state.with_materialize(jobs);
    }
    if let Some(push) = push {
        state = state.with_push(push);
    }
    Handlers {
        // tonic's routes answer any unknown path with gRPC's UNIMPLEMENTED (HTTP 200): only
        // right for gRPC requests; an HTTP client asking for an unknown path gets 404.
        router: router(state.clone()).merge(grpc).fallback(unknown_path),
        http: state,
    }
}

async fn unknown_path(req: axum::extract::Request) -> axum::response::Response {
    let grpc = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        tonic::Status::unimplemented(format!("no gRPC method {}", req.uri().path())).into_http()
    } else {
        axum::response::IntoResponse::into_response(axum::http::StatusCode::NOT_FOUND)
    }
}

pub async fn serve(
    config: RepoConfig,
    env: HashMap<String, String>,
    opts: ServeOptions,
) -> anyhow::Result<()> {
    // Installed before the serving index is built, which registers per-view counters.
    let metrics = install_metrics();
    if let Some(handle) = metrics.clone() {
        // Histograms keep their samples until upkeep folds them in; without this a server that
        // is never scraped would grow without bound.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let online = online_service(&config, &env, opts.registry_ttl_sec).await?;
    // Materialization jobs run on this (multi-threaded) runtime, never on a serving thread.
    let jobs = Arc::new(crate::service::materialize::MaterializeJobs::new(
        crate::service::materialize::MaterializeService {
            config: config.clone(),
            env: env.clone(),
            registry: store::open(&config, &env).await?,
            store: online.store().clone(),
            clock: Arc::new(SystemClock),
        },
    ));
    let batcher = config
        .offline_push_batching()?
        .map(crate::service::push::OfflineBatcher::start);
    let push = Arc::new(crate::service::push::PushService {
        config: config.clone(),
        env: env.clone(),
        registry: store::open(&config, &env).await?,
        store: online.store().clone(),
        batcher: batcher.clone(),
    });
    let addr: SocketAddr = tokio::net::lookup_host((opts.host.as_str(), opts.port))
        .await
        .with_context(|| format!("resolving {}", opts.host))?
        .next()
        .with_context(|| format!("{} resolves to no address", opts.host))?;
    let workers = match opts.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let listeners = bind_reuseport(addr, workers)?;
    let bound = listeners[0].local_addr()?;
    let tls = match &opts.tls {
        Some((key, cert)) => Some(tls_acceptor(key, cert)?),
        None => None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut threads = Vec::with_capacity(workers);
    let mut started = Vec::with_capacity(workers);
    for (i, listener) in listeners.into_iter().enumerate() {
        let (ready, is_ready) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        started.push(is_ready);
        let worker = Worker {
            config: config.clone(),
            online: online.clone(),
            metrics: metrics.clone(),
            jobs: jobs.clone(),
            push: push.clone(),
            tls: tls.clone(),
            stopped: stopped.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("larder-serve-{i}"))
                .spawn(move || worker.run(listener, ready))
                .context("starting a serving thread")?,
        );
    }
    let mut failure = None;
    for r in started {
        match r.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(anyhow::anyhow!("a serving thread ended while starting")),
        }
    }
    if failure.is_none() {
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!(
            "larder serving project {} on {scheme}://{bound} (HTTP/1.1 JSON and gRPC, {workers} serving threads)",
            config.project
        );
        shutdown().await;
    }
    let _ = stop.send(true);
    tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await
    .context("joining the serving threads")?;
    if let Some(b) = batcher {
        // Pushed rows still buffered are written before the process ends.
        b.flush().await;
    }
    failure.map_or(Ok(()), Err)
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

/// One serving thread: a single-threaded runtime with its own online-store connection and its
/// own listening socket, so a request is handled start to end on one core without waking
/// another thread (the Redis connection's task runs on the same thread as the request).
struct Worker {
    config: RepoConfig,
    online: Arc<OnlineService>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    jobs: Arc<crate::service::materialize::MaterializeJobs>,
    push: Arc<crate::service::push::PushService>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stopped: tokio::sync::watch::Receiver<bool>,
}

impl Worker {
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
            let Worker {
                config,
                online,
                metrics,
                jobs,
                push,
                tls,
                mut stopped,
            } = self;
            let setup = async {
                // Redis connections are driven by a task of the runtime that made them: one
                // per serving thread. SQLite's pool is shared.
                let online = match &config.online_store {
                    Some(OnlineStoreConfig::Redis(_)) => {
                        Arc::new(online.with_store(online_store(&config).await?))
                    }
                    _ => online,
                };
                let app = app(online, metrics, Some(jobs), Some(push)).await;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                anyhow::Ok((app, listener))
            };
            let (app, listener) = match setup.await {
                Ok(x) => {
                    let _ = ready.send(Ok(()));
                    x
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let stop = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            serve_connections(listener, tls, app, stop).await;
        });
    }
}

/// A TLS acceptor from PEM files, offering h2 (gRPC) and HTTP/1.1 by ALPN.
pub fn tls_acceptor(
    key: &std::path::Path,
    cert: &std::path::Path,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading TLS key {}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS key and certificate do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// How long open connections may take to finish after shutdown begins.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Accepts connections (TLS when `tls` is set) until `shutdown`: h2 (gRPC; chosen by ALPN, or
/// by the client's connection preface) is served by hyper, HTTP/1.1 by [`h1::serve`]. Then stops
/// accepting, closes idle connections and lets requests in progress finish (at most [`DRAIN`]).
pub async fn serve_connections(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handlers: Handlers,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::server::graceful::GracefulShutdown;
    // h2 connections close through hyper's graceful shutdown, HTTP/1.1 ones watch `stop`;
    // every connection task holds a clone of `alive`, so `all_closed` ends when the last does.
    let graceful = GracefulShutdown::new();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (alive, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            handlers: handlers.clone(),
            h2_watcher: graceful.watcher(),
            stop: stopping.clone(),
            _alive: alive.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let (io, alpn_h2): (Box<dyn Io>, bool) = match tls {
                None => (Box::new(tcp), false),
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(t) => {
                        let h2 = t.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                        (Box::new(t), h2)
                    }
                    Err(error) => {
                        tracing::debug!(%error, %peer, "TLS handshake failed");
                        return;
                    }
                },
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

/// One accepted connection's share of the server.
struct Connection {
    handlers: Handlers,
    h2_watcher: hyper_util::server::graceful::Watcher,
    stop: tokio::sync::watch::Receiver<bool>,
    /// Dropped when the connection ends (see `all_closed`).
    _alive: tokio::sync::mpsc::Sender<()>,
}

/// What an h2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl Connection {
    async fn serve(mut self, mut io: Box<dyn Io>, alpn_h2: bool) -> anyhow::Result<()> {
        use hyper_util::{
            rt::{TokioExecutor, TokioIo},
            service::TowerToHyperService,
        };
        use tower::ServiceExt;
        let mut buf = bytes::BytesMut::with_capacity(8 * 1024);
        let h2 = alpn_h2 || {
            // Read until the bytes part from the h2 preface, or hold all of it.
            loop {
                let n = buf.len().min(H2_PREFACE.len());
                if buf[..n] != H2_PREFACE[..n] {
                    break false;
                }
                if n == H2_PREFACE.len() {
                    break true;
                }
                match h1::read_unless_stopped(&mut io, &mut buf, &mut self.stop).await? {
                    Some(0) | None => return Ok(()),
                    Some(_) => {}
                }
            }
        };
        if h2 {
            let service = TowerToHyperService::new(self.handlers.router.map_request(
                |req: axum::http::Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
            ));
            let io = Prefixed {
                prefix: buf.freeze(),
                io,
            };
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(Unvectored(io)), service);
            self.h2_watcher.watch(conn).await?;
        } else {
            drop(self.h2_watcher);
            h1::serve(&mut io, buf, &self.handlers, &mut self.stop).await?;
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
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
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

/// `larder materialize` / `materialize-incremental`: one line per view and a summary.
pub async fn materialize(
    config: &RepoConfig,
    env: &HashMap<String, String>,
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: chrono::DateTime<chrono::Utc>,
    views: Vec<String>,
) -> anyhow::Result<()> {
    let service = crate::service::materialize::MaterializeService {
        config: config.clone(),
        env: env.clone(),
        registry: store::open(config, env).await?,
        store: online_store(config).await?,
        clock: Arc::new(SystemClock),
    };
    let req = crate::service::materialize::MaterializeRequest {
        start,
        end,
        views: (!views.is_empty()).then_some(views),
    };
    let started = std::time::Instant::now();
    let progress = CliProgress::new();
    let outcomes = service
        .materialize(&req, &progress)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let rows: usize = outcomes.iter().map(|o| o.rows).sum();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "materialized {} views into the {} online store: {rows} rows in {secs:.2}s ({:.0} rows/s)",
        outcomes.len(),
        service.store.describe(),
        rows as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// A progress bar per view on a terminal, one line per view otherwise.
struct CliProgress {
    bars: Option<indicatif::MultiProgress>,
    current: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl CliProgress {
    fn new() -> Self {
        use std::io::IsTerminal;
        Self {
            bars: std::io::stderr()
                .is_terminal()
                .then(indicatif::MultiProgress::new),
            current: std::sync::Mutex::new(None),
        }
    }
}

impl crate::service::materialize::Progress for CliProgress {
    fn view_started(
        &self,
        view: &str,
        _: chrono::DateTime<chrono::Utc>,
        _: chrono::DateTime<chrono::Utc>,
    ) {
        if let Some(bars) = &self.bars {
            let bar = bars.add(indicatif::ProgressBar::new_spinner());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {prefix}: {human_pos} rows ({per_sec}) {elapsed}",
                )
                .expect("a valid template"),
            );
            bar.set_prefix(view.to_owned());
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            *self.current.lock().expect("not poisoned") = Some(bar);
        }
    }

    fn rows(&self, _: &str, n: usize) {
        if let Some(bar) = self.current.lock().expect("not poisoned").as_ref() {
            bar.inc(n as u64);
        }
    }

    fn view_done(&self, o: &crate::service::materialize::ViewOutcome) {
        if let Some(bar) = self.current.lock().expect("not poisoned").take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "{}: {} rows from {} to {} ({} written, {} not newer than stored) in {:.2}s, {:.0} rows/s",
            o.view,
            o.rows,
            o.start.to_rfc3339(),
            o.end.to_rfc3339(),
            o.written,
            o.skipped_not_newer,
            o.seconds,
            o.rows as f64 / o.seconds.max(1e-9)
        );
    }
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
