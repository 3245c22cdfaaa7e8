//! Logs and traces. Logs go to stderr as text or JSON lines. Traces are OpenTelemetry spans
//! exported over OTLP/gRPC, off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and `OTEL_TRACES_EXPORTER` is not `none`), the
//! service named by `OTEL_SERVICE_NAME` (default `larder`). Spans: one per request (HTTP or
//! gRPC, its parent taken from a W3C `traceparent` header or gRPC metadata), the lookup inside
//! it, each online-store round trip, each materialized view and written batch, and each
//! retrieval's join stages. With tracing off no span is ever enabled: the callsites stay
//! disabled, and lookups keep the HTTP/1.1 fast path (which bypasses the router; with tracing
//! on, lookups go through the router so their headers are read).

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};

use crate::cli::LogFormat;

static TRACING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported.
pub fn tracing_on() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// What must be flushed at exit.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("warning: exporting the last spans: {e}");
        }
    }
}

/// The OTLP endpoint traces go to, if tracing is on.
fn endpoint(env: &HashMap<String, String>) -> Option<String> {
    if env
        .get("OTEL_TRACES_EXPORTER")
        .is_some_and(|e| e.eq_ignore_ascii_case("none"))
    {
        return None;
    }
    env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .filter(|e| !e.is_empty())
        .cloned()
}

/// Installs the log writer (with `filter`) and, when configured, the trace exporter. Runs on
/// the tokio runtime (the exporter's batches are sent from it).
pub fn init(
    filter: tracing_subscriber::EnvFilter,
    format: LogFormat,
    env: &HashMap<String, String>,
) -> anyhow::Result<Telemetry> {
    type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;
    let logs: Boxed = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        // One object per line: timestamp, level, target, and the event's fields.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let logs = logs.with_filter(filter);
    let Some(endpoint) = endpoint(env) else {
        tracing_subscriber::registry().with(logs).init();
        return Ok(Telemetry { provider: None });
    };
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| anyhow::anyhow!("the OTLP exporter for {endpoint}: {e}"))?;
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let name = env
        .get("OTEL_SERVICE_NAME")
        .cloned()
        .unwrap_or_else(|| "larder".into());
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(name)
                .build(),
        )
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    // Larder's own spans, whatever the log level.
    let ours = tracing_subscriber::filter::Targets::new()
        .with_target("larder", tracing::Level::INFO)
        .with_target("larder_online", tracing::Level::INFO)
        .with_target("larder_offline", tracing::Level::INFO)
        .with_target("larder_registry", tracing::Level::INFO);
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("larder"))
        .with_filter(ours);
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .init();
    TRACING.store(true, Ordering::Relaxed);
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// Reads W3C trace context from HTTP headers (gRPC metadata is HTTP/2 headers).
struct Headers<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// `router` with [`request_span`] around every request when tracing is on; unchanged (no
/// layer at all) when it is off.
pub fn traced(router: axum::Router) -> axum::Router {
    if tracing_on() {
        router.layer(axum::middleware::from_fn(request_span))
    } else {
        router
    }
}

/// The middleware of every server's router: one span per request, a child of the caller's
/// span when a `traceparent` came.
async fn request_span(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let grpc = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let name = if grpc {
        req.uri().path().trim_start_matches('/').to_owned()
    } else {
        format!("{} {}", req.method(), req.uri().path())
    };
    let span = tracing::info_span!(
        "request",
        otel.name = %name,
        otel.kind = "server",
        rpc.system = if grpc { "grpc" } else { "" },
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())));
    let _ = span.set_parent(parent);
    let response = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}
