//! The composition root of `larder serve` and the CLI's jobs: the only place that names
//! concrete stores. It builds the services, puts them behind the HTTP and gRPC adapters, and
//! hands those to the network layer ([`crate::net`]) as an endpoint.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use larder_online::{
    redis::{ConnectionString, RedisKind, RedisOnlineStore, RedisOptions},
    sqlite::SqliteOnlineStore,
    store::OnlineStore,
};
use larder_protos::feast::serving::serving_service_server::ServingServiceServer;
use larder_registry::{
    cache::RegistryCache,
    clock::SystemClock,
    config::{AuthConfig, OnlineStoreConfig, RedisType, RepoConfig},
    store,
};

use crate::{
    grpc::ServingGrpc,
    http::{HttpState, LookupFastPath, router},
    net::{self, Gate, Handlers},
    service::{
        feature_log::FeatureLogger,
        materialize::{MaterializeJobs, MaterializeService},
        online::{OnlineConfig, OnlineService},
        push::{OfflineBatcher, PushService},
    },
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

/// `larder serve-offline` options.
#[derive(Debug, Clone)]
pub struct ServeOfflineOptions {
    pub host: String,
    pub port: u16,
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Memory DataFusion's operators may use per retrieval.
    pub memory_limit: usize,
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
        Ok(handle) => {
            // Histograms keep their samples until upkeep folds them in; without this a server
            // that is never scraped would grow without bound.
            let h = handle.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    h.run_upkeep();
                }
            });
            Some(handle)
        }
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
    feature_log: Option<Arc<FeatureLogger>>,
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
    let key_version = crate::service::key_version(config)?;
    Ok(Arc::new(OnlineService::new(
        cache,
        store,
        OnlineConfig {
            project: config.project.to_string(),
            key_version,
            online_ttl: config.larder.online_ttl,
            serve_while_materializing: config.registry.serve_features_while_materializing,
            engines: crate::service::ondemand::Engines::from_config(config),
            feature_log,
            versioning: config.registry.enable_online_feature_view_versioning,
        },
        Arc::new(SystemClock),
    )))
}

/// The gate every request of a server passes. Authentication is not built yet, so a repo that
/// configures any is refused rather than served to anyone.
pub fn gate(config: &RepoConfig) -> anyhow::Result<Arc<dyn Gate>> {
    match &config.auth {
        AuthConfig::NoAuth => Ok(Arc::new(net::Open)),
        other => {
            let kind = match other {
                AuthConfig::Kubernetes { .. } => "kubernetes",
                _ => "oidc",
            };
            anyhow::bail!(
                "auth: {} sets `auth: {{type: {kind}}}`, but larder does not enforce \
                 authentication yet; it refuses to serve the repo to unauthenticated clients \
                 (set `auth: {{type: no_auth}}` to serve without authentication)",
                config.config_path.display()
            )
        }
    }
}

/// The online endpoint's routes: Feast's HTTP endpoints, gRPC ServingService and gRPC health.
pub async fn routes(
    online: Arc<OnlineService>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    jobs: Option<Arc<MaterializeJobs>>,
    push: Option<Arc<PushService>>,
) -> (axum::Router, HttpState) {
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
    // tonic's routes answer any unknown path with gRPC's UNIMPLEMENTED (HTTP 200): only
    // right for gRPC requests; an HTTP client asking for an unknown path gets 404.
    let router = crate::telemetry::traced(router(state.clone()).merge(grpc).fallback(unknown_path));
    (router, state)
}

/// The online endpoint's handlers: its routes, the lookup's HTTP/1.1 fast path, the gate.
pub async fn handlers(
    online: Arc<OnlineService>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    jobs: Option<Arc<MaterializeJobs>>,
    push: Option<Arc<PushService>>,
    gate: Arc<dyn Gate>,
) -> Handlers<LookupFastPath> {
    let (router, state) = routes(online, metrics, jobs, push).await;
    Handlers {
        router,
        fast: LookupFastPath(state),
        gate,
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
        crate::http::not_found()
    }
}

/// The address to bind for `host:port`, and the TLS acceptor for a `(key, certificate)` pair.
async fn listen_on(
    host: &str,
    port: u16,
    tls: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> anyhow::Result<(SocketAddr, Option<tokio_rustls::TlsAcceptor>)> {
    let addr = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to no address"))?;
    let tls = match tls {
        Some((key, cert)) => Some(net::tls::acceptor(key, cert)?),
        None => None,
    };
    Ok((addr, tls))
}

/// `larder serve`: the online endpoint (HTTP/1.1 JSON and gRPC on one port) until Ctrl-C or
/// SIGTERM; then the requests in progress are answered and buffered offline pushes written.
pub async fn serve(
    config: RepoConfig,
    env: HashMap<String, String>,
    opts: ServeOptions,
) -> anyhow::Result<()> {
    let gate = gate(&config)?;
    // Installed before the serving index is built, which registers per-view counters.
    let metrics = install_metrics();
    let feature_log = config
        .feature_logging()?
        .map(|settings| FeatureLogger::start(settings, config.clone(), env.clone()));
    let online = online_service(&config, &env, opts.registry_ttl_sec, feature_log.clone()).await?;
    // Materialization jobs run on this (multi-threaded) runtime, never on a serving thread.
    let jobs = Arc::new(MaterializeJobs::new(MaterializeService {
        config: config.clone(),
        env: env.clone(),
        registry: store::open(&config, &env).await?,
        store: online.store().clone(),
        clock: Arc::new(SystemClock),
    }));
    let batcher = config.offline_push_batching()?.map(OfflineBatcher::start);
    let push = Arc::new(PushService {
        config: config.clone(),
        env: env.clone(),
        registry: store::open(&config, &env).await?,
        store: online.store().clone(),
        batcher: batcher.clone(),
        engines: crate::service::ondemand::Engines::from_config(&config),
    });
    let (addr, tls) = listen_on(&opts.host, opts.port, opts.tls.as_ref()).await?;
    let threads = match opts.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let per_thread = {
        let config = config.clone();
        move || -> net::BoxFuture<anyhow::Result<Handlers<LookupFastPath>>> {
            let (config, online, metrics, jobs, push, gate) = (
                config.clone(),
                online.clone(),
                metrics.clone(),
                jobs.clone(),
                push.clone(),
                gate.clone(),
            );
            Box::pin(async move {
                // Redis connections are driven by a task of the runtime that made them: one per
                // serving thread. SQLite's pool is shared.
                let online = match &config.online_store {
                    Some(OnlineStoreConfig::Redis(_)) => {
                        Arc::new(online.with_store(online_store(&config).await?))
                    }
                    _ => online,
                };
                Ok(handlers(online, metrics, Some(jobs), Some(push), gate).await)
            })
        }
    };
    let endpoint = net::Endpoint {
        name: "online features",
        addr,
        threads,
        tls,
        limits: net::Limits::from_config(&config.larder.server),
        handlers: Arc::new(per_thread),
        release_memory: Some(crate::release_free_memory),
    };
    // Listening for the stop signals before the port opens: a SIGTERM as soon as the port
    // answers drains the server rather than killing it.
    let stop = net::shutdown_signal();
    let running = endpoint.start().await?;
    let scheme = if running.tls { "https" } else { "http" };
    eprintln!(
        "larder serving {} for project {} on {scheme}://{} (HTTP/1.1 JSON and gRPC, {} serving threads)",
        running.name, config.project, running.addr, running.threads
    );
    stop.await;
    running.stop().await;
    if let Some(l) = feature_log {
        // Served features still buffered are logged before the process ends.
        l.flush().await;
    }
    if let Some(b) = batcher {
        // Pushed rows still buffered are written before the process ends.
        b.flush().await;
    }
    Ok(())
}

/// `larder serve-offline`: Feast's Arrow Flight offline server (gRPC, plain or TLS) until
/// Ctrl-C or SIGTERM.
pub async fn serve_offline(
    config: RepoConfig,
    env: HashMap<String, String>,
    opts: ServeOfflineOptions,
) -> anyhow::Result<()> {
    use arrow_flight::flight_service_server::FlightServiceServer;
    let gate = gate(&config)?;
    let server = Arc::new(crate::service::offline_server::OfflineServer {
        historical: crate::service::historical::HistoricalService {
            config: config.clone(),
            env: env.clone(),
            registry: store::open(&config, &env).await?,
            memory_limit: opts.memory_limit,
            engines: crate::service::ondemand::Engines::from_config(&config),
            progress: None,
        },
    });
    let (addr, tls) = listen_on(&opts.host, opts.port, opts.tls.as_ref()).await?;
    let runtime = tokio::runtime::Handle::current();
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    drop(listener);
    let scheme = if tls.is_some() {
        "grpc+tls"
    } else {
        "grpc+tcp"
    };
    let location = format!("{scheme}://{}:{}", opts.host, bound.port());
    let routes = {
        let location = location.clone();
        move || -> net::BoxFuture<anyhow::Result<tonic::service::Routes>> {
            let (server, runtime, location) = (server.clone(), runtime.clone(), location.clone());
            Box::pin(async move {
                let flight = crate::flight::OfflineFlight::new(server, runtime, location);
                let service = FlightServiceServer::new(flight)
                    .max_decoding_message_size(crate::flight::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(crate::flight::MAX_MESSAGE_BYTES);
                Ok(tonic::service::Routes::new(service))
            })
        }
    };
    let endpoint = grpc_endpoint(
        GrpcNames {
            display: "offline features (Arrow Flight)",
            metrics: "offline",
        },
        bound,
        tls,
        &config,
        gate,
        routes,
        Some(crate::release_free_memory),
    );
    // Listening for the stop signals before the port opens: a SIGTERM as soon as the port
    // answers drains the server rather than killing it.
    let stop = net::shutdown_signal();
    let running = endpoint.start().await?;
    eprintln!(
        "larder serving {} for project {} on {location}",
        running.name, config.project
    );
    stop.await;
    running.stop().await;
    Ok(())
}

/// `larder serve-registry` options.
#[derive(Debug, Clone)]
pub struct ServeRegistryOptions {
    pub host: String,
    pub port: u16,
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The REST API's port, when it is served.
    pub rest_port: Option<u16>,
}

/// `larder serve-registry`: Feast's registry server (`feast.registry.RegistryServer`, reads)
/// and gRPC health, until Ctrl-C or SIGTERM.
pub async fn serve_registry(
    config: RepoConfig,
    env: HashMap<String, String>,
    opts: ServeRegistryOptions,
) -> anyhow::Result<()> {
    use larder_protos::feast::registry::registry_server_server::RegistryServerServer;
    let gate = gate(&config)?;
    let cache = Arc::new(
        RegistryCache::open_allowing_missing(
            store::open(&config, &env).await?,
            config.registry.cache_ttl_seconds,
            Arc::new(SystemClock),
        )
        .await
        .context("loading the registry")?,
    );
    let reads = Arc::new(crate::service::registry_reads::RegistryReads { cache });
    let writes = Arc::new(crate::service::registry_writes::RegistryWrites::new(
        store::open(&config, &env).await?,
        reads.clone(),
        Arc::new(SystemClock),
    ));
    let (addr, tls) = listen_on(&opts.host, opts.port, opts.tls.as_ref()).await?;
    let rest = match opts.rest_port {
        Some(port) => {
            let (addr, tls) = listen_on(&opts.host, port, opts.tls.as_ref()).await?;
            let (reads, gate) = (reads.clone(), gate.clone());
            let handlers =
                move || -> net::BoxFuture<anyhow::Result<net::Handlers<net::RouterOnly>>> {
                    let (reads, gate) = (reads.clone(), gate.clone());
                    Box::pin(async move {
                        Ok(net::Handlers {
                            router: crate::registry_rest::router(reads),
                            fast: net::RouterOnly,
                            gate,
                        })
                    })
                };
            Some(net::Endpoint {
                name: "the registry (REST)",
                addr,
                threads: 1,
                tls,
                limits: net::Limits::from_config(&config.larder.server),
                handlers: Arc::new(handlers),
                release_memory: None,
            })
        }
        None => None,
    };
    let routes = move || -> net::BoxFuture<anyhow::Result<tonic::service::Routes>> {
        let reads = reads.clone();
        let writes = writes.clone();
        Box::pin(async move {
            let (reporter, health) = tonic_health::server::health_reporter();
            reporter
                .set_serving::<RegistryServerServer<crate::registry_grpc::RegistryGrpc>>()
                .await;
            let service =
                RegistryServerServer::new(crate::registry_grpc::RegistryGrpc { reads, writes })
                    .max_decoding_message_size(crate::flight::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(crate::flight::MAX_MESSAGE_BYTES);
            Ok(tonic::service::Routes::new(service).add_service(health))
        })
    };
    let endpoint = grpc_endpoint(
        GrpcNames {
            display: "the registry (gRPC)",
            metrics: "registry",
        },
        addr,
        tls,
        &config,
        gate,
        routes,
        None,
    );
    // Listening for the stop signals before the port opens: a SIGTERM as soon as the port
    // answers drains the server rather than killing it.
    let stop = net::shutdown_signal();
    let running = endpoint.start().await?;
    let scheme = if running.tls { "grpcs" } else { "grpc" };
    eprintln!(
        "larder serving {} for project {} on {scheme}://{}",
        running.name, config.project, running.addr
    );
    let rest = match rest {
        Some(endpoint) => {
            let running = endpoint.start().await?;
            let scheme = if running.tls { "https" } else { "http" };
            eprintln!(
                "larder serving {} for project {} on {scheme}://{}/api/v1",
                running.name, config.project, running.addr
            );
            Some(running)
        }
        None => None,
    };
    stop.await;
    running.stop().await;
    if let Some(rest) = rest {
        rest.stop().await;
    }
    Ok(())
}

/// A one-thread endpoint serving gRPC routes (made on the serving thread by `routes`), with
/// unknown paths answered as HTTP 404 and every request through `gate`.
/// A gRPC server's names: in messages, and as the `server` label of its metrics.
struct GrpcNames {
    display: &'static str,
    metrics: &'static str,
}

fn grpc_endpoint(
    names: GrpcNames,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    config: &RepoConfig,
    gate: Arc<dyn Gate>,
    routes: impl Fn() -> net::BoxFuture<anyhow::Result<tonic::service::Routes>> + Send + Sync + 'static,
    release_memory: Option<fn()>,
) -> net::Endpoint<net::RouterOnly> {
    let (name, server) = (names.display, names.metrics);
    let routes = Arc::new(routes);
    // Per-RPC metrics, and `GET /metrics` beside the gRPC routes.
    let metrics = install_metrics();
    let per_thread = move || -> net::BoxFuture<anyhow::Result<Handlers<net::RouterOnly>>> {
        let (routes, gate, metrics) = (routes.clone(), gate.clone(), metrics.clone());
        Box::pin(async move {
            let scrape = move || {
                let metrics = metrics.clone();
                async move { crate::http::metrics_response(metrics.as_ref()) }
            };
            let router = crate::telemetry::traced(
                routes()
                    .await?
                    .into_axum_router()
                    .route("/metrics", axum::routing::get(scrape))
                    .fallback(unknown_path)
                    .layer(axum::middleware::from_fn(
                        move |req: axum::extract::Request, next: axum::middleware::Next| {
                            crate::grpc_metrics::measure(server, req, next)
                        },
                    )),
            );
            Ok(Handlers {
                router,
                fast: net::RouterOnly,
                gate,
            })
        })
    };
    net::Endpoint {
        name,
        addr,
        threads: 1,
        tls,
        limits: net::Limits::from_config(&config.larder.server),
        handlers: Arc::new(per_thread),
        release_memory,
    }
}
