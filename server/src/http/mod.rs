//! The HTTP/JSON adapter: Feast's feature-server endpoints. Handlers decode the request, call
//! one service method and encode the answer; statuses come from [`crate::error::ErrorCode`].

pub mod render;

use std::{borrow::Cow, sync::Arc, time::Instant};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, State},
    http::{StatusCode, header},
    response::Response,
    routing::{get, post},
};
use serde::{Deserialize, de};

use crate::{
    error::{ErrorCode, ServiceError},
    service::{
        materialize::{JobAnswer, JobError, MaterializeJobs, MaterializeRequest},
        online::{FeatureSelection, OnlineRequest, OnlineService, Scalar},
        push::PushService,
    },
};

pub use crate::net::h1::MAX_BODY_BYTES;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub online: Arc<OnlineService>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub get_online_features_metrics: Arc<EndpointMetrics>,
    /// Materialization over HTTP, when the server was started with a writable registry.
    pub materialize: Option<Arc<MaterializeJobs>>,
    /// `/push` and `/write-to-online-store`.
    pub push: Option<Arc<PushService>>,
    pub feature_lists: Arc<FeatureLists>,
}

/// Feature lists already read, by their JSON text: clients send a handful of lists over and
/// over, and reading ten references costs several times more than finding the text.
#[derive(Default)]
pub struct FeatureLists(std::sync::Mutex<std::collections::HashMap<Box<str>, Arc<[String]>>>);

/// How many lists are remembered, and the longest text remembered.
const FEATURE_LISTS: usize = 256;
const FEATURE_LIST_TEXT: usize = 16 * 1024;

impl FeatureLists {
    /// The references a `features` JSON value holds; an error when it is not an array of
    /// strings.
    fn read(&self, text: &str) -> Result<Arc<[String]>, serde_json::Error> {
        if let Some(list) = self.0.lock().expect("not poisoned").get(text) {
            return Ok(list.clone());
        }
        let list: Arc<[String]> = serde_json::from_str::<Vec<String>>(text)?.into();
        let mut lists = self.0.lock().expect("not poisoned");
        if lists.len() < FEATURE_LISTS && text.len() <= FEATURE_LIST_TEXT {
            lists.insert(text.into(), list.clone());
        }
        Ok(list)
    }
}

impl HttpState {
    pub fn new(
        online: Arc<OnlineService>,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Self {
        Self {
            online,
            metrics,
            get_online_features_metrics: Arc::new(EndpointMetrics::new("/get-online-features")),
            materialize: None,
            push: None,
            feature_lists: Arc::default(),
        }
    }

    pub fn with_push(mut self, push: Arc<PushService>) -> Self {
        self.push = Some(push);
        self
    }

    pub fn with_materialize(mut self, jobs: Arc<MaterializeJobs>) -> Self {
        self.materialize = Some(jobs);
        self
    }
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/get-online-features", post(get_online_features))
        .route("/push", post(push))
        .route("/write-to-online-store", post(write_to_online_store))
        .route("/materialize", post(materialize))
        .route("/materialize-incremental", post(materialize_incremental))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A known path asked with another method: 405 with the body Feast's server (FastAPI) sends.
async fn method_not_allowed() -> Response {
    json_response(405, r#"{"detail":"Method Not Allowed"}"#.to_owned())
}

/// An unknown path: 404 with the body Feast's server (FastAPI) sends.
pub fn not_found() -> Response {
    json_response(404, r#"{"detail":"Not Found"}"#.to_owned())
}

fn json_response(status: u16, body: String) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a valid response")
}

fn error_response(e: &ServiceError) -> Response {
    json_response(e.code.http_status(), e.feast_body())
}

/// Feast's (pydantic's) validation error shape, answered with 422.
fn validation_error(msg: &str) -> Response {
    json_response(ErrorCode::Unprocessable.http_status(), validation_body(msg))
}

fn validation_body(msg: &str) -> String {
    serde_json::json!({
        "detail": [{"type": "value_error", "loc": ["body"], "msg": msg, "input": null}]
    })
    .to_string()
}

/// Request metrics of one endpoint, registered once (the hot path only increments).
pub struct EndpointMetrics {
    endpoint: &'static str,
    ok: metrics::Counter,
    latency: metrics::Histogram,
}

impl EndpointMetrics {
    pub fn new(endpoint: &'static str) -> Self {
        Self {
            endpoint,
            ok: metrics::counter!("feast_feature_server_request_total", "endpoint" => endpoint, "status" => "200"),
            latency: metrics::histogram!("feast_feature_server_request_latency_seconds", "endpoint" => endpoint),
        }
    }

    fn record(&self, status: u16, started: Instant) {
        if status == 200 {
            self.ok.increment(1);
        } else {
            metrics::counter!("feast_feature_server_request_total", "endpoint" => self.endpoint, "status" => status.to_string())
                .increment(1);
        }
        self.latency.record(started.elapsed().as_secs_f64());
    }
}

#[derive(Deserialize)]
struct GetOnlineFeaturesBody<'a> {
    #[serde(default, borrow)]
    features: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    feature_service: Option<Text<'a>>,
    #[serde(borrow)]
    entities: OrderedEntities<'a>,
    #[serde(default)]
    full_feature_names: bool,
    #[serde(default)]
    include_feature_view_version_metadata: bool,
}

/// A JSON string, borrowed from the body unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> de::Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// `entities` keeps the request's column order (the answer echoes join keys in that order).
struct OrderedEntities<'a>(Vec<(Cow<'a, str>, Vec<Scalar>)>);

impl<'de: 'a, 'a> Deserialize<'de> for OrderedEntities<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> de::Visitor<'de> for V<'a> {
            type Value = OrderedEntities<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of column name to array of values")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<Text<'a>, Vec<JsonScalar>>()? {
                    out.push((k.0, v.into_iter().map(|s| s.0).collect()));
                }
                Ok(OrderedEntities(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A request value read straight into a [`Scalar`]: numbers that fit an i64 are integers,
/// other numbers floats; arrays and objects are kept as their JSON text.
struct JsonScalar(Scalar);

impl<'de> Deserialize<'de> for JsonScalar {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = JsonScalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JsonScalar(Scalar::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JsonScalar(Scalar::Null))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
                Ok(JsonScalar(Scalar::Bool(b)))
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> Result<Self::Value, E> {
                Ok(JsonScalar(Scalar::Int(i)))
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> Result<Self::Value, E> {
                Ok(JsonScalar(match i64::try_from(u) {
                    Ok(i) => Scalar::Int(i),
                    Err(_) => Scalar::Float(u as f64),
                }))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
                Ok(JsonScalar(Scalar::Float(f)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(JsonScalar(Scalar::Str(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(JsonScalar(Scalar::Str(s)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                let v = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(JsonScalar(Scalar::Other(v.to_string())))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(JsonScalar(Scalar::Other(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

async fn get_online_features(State(state): State<HttpState>, body: Bytes) -> Response {
    let (status, json) = online_features(&state, &body).await;
    json_response(status, json)
}

/// `POST /get-online-features` answered by the HTTP/1.1 loop straight from the bytes read
/// ([`crate::net::FastPath`]).
#[derive(Clone)]
pub struct LookupFastPath(pub HttpState);

impl crate::net::FastPath for LookupFastPath {
    fn handles(&self, method: &str, path: &str) -> bool {
        // With tracing on, lookups take the router, whose middleware reads `traceparent`.
        method == "POST" && path == "/get-online-features" && !crate::telemetry::tracing_on()
    }

    async fn answer(&self, body: &[u8]) -> crate::net::FastAnswer {
        let (status, body) = online_features(&self.0, body).await;
        crate::net::FastAnswer {
            status,
            content_type: "application/json",
            body,
        }
    }
}

/// A `get-online-features` body's answer: the status and its JSON. The router's handler and
/// the HTTP/1.1 fast path ([`LookupFastPath`]) both answer through this.
pub async fn online_features(state: &HttpState, body: &[u8]) -> (u16, String) {
    let started = Instant::now();
    let unprocessable = |e: serde_json::Error| {
        state.get_online_features_metrics.record(422, started);
        (
            ErrorCode::Unprocessable.http_status(),
            validation_body(&e.to_string()),
        )
    };
    if let Err(e) = object_body(body) {
        return unprocessable(e);
    }
    let parsed: GetOnlineFeaturesBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return unprocessable(e),
    };
    let refs: Arc<[String]>;
    let selection = match (parsed.feature_service, parsed.features) {
        (Some(s), features) => {
            // Feast checks `features` even when a service is named.
            if let Some(text) = features
                && let Err(e) = state.feature_lists.read(text.get())
            {
                return unprocessable(e);
            }
            FeatureSelection::Service(s.0)
        }
        (None, None) => FeatureSelection::Refs(Vec::new()),
        (None, Some(text)) => {
            refs = match state.feature_lists.read(text.get()) {
                Ok(r) => r,
                Err(e) => return unprocessable(e),
            };
            FeatureSelection::Refs(refs.iter().map(|r| Cow::Borrowed(r.as_str())).collect())
        }
    };
    let req = OnlineRequest {
        selection,
        entities: parsed.entities.0,
        full_feature_names: parsed.full_feature_names,
        include_view_metadata: parsed.include_feature_view_version_metadata,
    };
    let answer = match state.online.get_online_features(&req).await {
        Ok(r) => (200, render::online_response(&r)),
        Err(e) => (e.code.http_status(), e.feast_body()),
    };
    state.get_online_features_metrics.record(answer.0, started);
    answer
}

/// Request bodies are JSON objects: serde's derived structs also read an array of the fields'
/// values in order, which Feast (pydantic) refuses — so does this, before parsing.
fn object_body(body: &[u8]) -> Result<(), serde_json::Error> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(<serde_json::Error as de::Error>::custom(
            "Input should be a valid dictionary or object to extract fields from",
        )),
    }
}

/// Parses a request body that must be a JSON object.
fn parse_object<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, serde_json::Error> {
    object_body(body)?;
    serde_json::from_slice(body)
}

/// A column-oriented `df`, in request order.
struct Columns(Vec<(String, Vec<serde_json::Value>)>);

impl<'de> Deserialize<'de> for Columns {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Columns;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of column name to array of values")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry::<String, Vec<serde_json::Value>>()? {
                    out.push(entry);
                }
                Ok(Columns(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct PushBody {
    push_source_name: String,
    df: Columns,
    #[serde(default = "online")]
    to: String,
}

fn online() -> String {
    "online".to_owned()
}

#[derive(Deserialize)]
struct WriteBody {
    feature_view_name: String,
    df: Columns,
    #[serde(default = "yes")]
    transform_on_write: bool,
}

fn yes() -> bool {
    true
}

async fn push(State(state): State<HttpState>, body: Bytes) -> Response {
    let Some(service) = state.push.clone() else {
        return error_response(&ServiceError::new(
            ErrorCode::NotImplemented,
            "push is not enabled on this server",
        ));
    };
    let parsed: PushBody = match parse_object(&body) {
        Ok(b) => b,
        Err(e) => return validation_error(&e.to_string()),
    };
    match service
        .push(&parsed.push_source_name, &parsed.df.0, &parsed.to)
        .await
    {
        Ok(pushed) => Response::builder()
            .status(match pushed {
                crate::service::push::Pushed::Written(_) => 200,
                crate::service::push::Pushed::Queued => 202,
            })
            .body(Body::empty())
            .expect("a valid response"),
        Err(e) => error_response(&e),
    }
}

async fn write_to_online_store(State(state): State<HttpState>, body: Bytes) -> Response {
    let Some(service) = state.push.clone() else {
        return error_response(&ServiceError::new(
            ErrorCode::NotImplemented,
            "writes are not enabled on this server",
        ));
    };
    let parsed: WriteBody = match parse_object(&body) {
        Ok(b) => b,
        Err(e) => return validation_error(&e.to_string()),
    };
    match service
        .write_to_online_store(
            &parsed.feature_view_name,
            &parsed.df.0,
            parsed.transform_on_write,
        )
        .await
    {
        Ok(_) => json_response(200, "null".into()),
        Err(e) => error_response(&e),
    }
}

#[derive(Deserialize)]
struct MaterializeBody {
    #[serde(default)]
    start_ts: Option<String>,
    #[serde(default)]
    end_ts: Option<String>,
    #[serde(default)]
    feature_views: Option<Vec<String>>,
    #[serde(default)]
    disable_event_timestamp: bool,
}

#[derive(Deserialize, Default)]
struct JobQuery {
    #[serde(default, rename = "async")]
    run_async: bool,
    #[serde(default)]
    force: bool,
}

fn parse_query(uri: &axum::http::Uri) -> JobQuery {
    let mut q = JobQuery::default();
    for pair in uri.query().unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        let yes = v.eq_ignore_ascii_case("true") || v == "1";
        match k {
            "async" => q.run_async = yes,
            "force" => q.force = yes,
            _ => {}
        }
    }
    q
}

async fn run_job(
    state: HttpState,
    uri: axum::http::Uri,
    body: Bytes,
    incremental: bool,
) -> Response {
    let Some(jobs) = state.materialize.clone() else {
        return error_response(&ServiceError::new(
            ErrorCode::NotImplemented,
            "materialization is not enabled on this server",
        ));
    };
    let parsed: MaterializeBody = match parse_object(&body) {
        Ok(b) => b,
        Err(e) => return validation_error(&e.to_string()),
    };
    let ts =
        |name: &str, v: &Option<String>| -> Result<chrono::DateTime<chrono::Utc>, ServiceError> {
            let v = v.as_deref().ok_or_else(|| {
                ServiceError::new(ErrorCode::Unprocessable, format!("{name} is required"))
            })?;
            larder_types::value::parse_timestamp(v)
                .map_err(|m| ServiceError::bad_request(format!("{name}: {m}")))
        };
    let req = if incremental {
        match ts("end_ts", &parsed.end_ts) {
            Ok(end) => MaterializeRequest {
                start: None,
                end,
                views: parsed.feature_views,
            },
            Err(e) => return error_response(&e),
        }
    } else if parsed.disable_event_timestamp {
        MaterializeRequest {
            start: Some(chrono::DateTime::UNIX_EPOCH),
            end: chrono::Utc::now(),
            views: parsed.feature_views,
        }
    } else {
        match (
            ts("start_ts", &parsed.start_ts),
            ts("end_ts", &parsed.end_ts),
        ) {
            (Ok(start), Ok(end)) if start >= end => {
                return error_response(&ServiceError::bad_request(format!(
                    "start_ts ({start}) must be before end_ts ({end})"
                )));
            }
            (Ok(start), Ok(end)) => MaterializeRequest {
                start: Some(start),
                end,
                views: parsed.feature_views,
            },
            (Err(e), _) | (_, Err(e)) => return error_response(&e),
        }
    };
    let q = parse_query(&uri);
    match jobs.start(req, q.run_async, q.force).await {
        Ok(JobAnswer::Done) => json_response(200, "null".into()),
        Ok(JobAnswer::Accepted(views)) => {
            json_response(202, serde_json::json!({"status": "accepted", "feature_views": views}).to_string())
        }
        Err(JobError::Conflict(views)) => json_response(
            409,
            serde_json::json!({"error": format!("feature views are being materialized already: {}", views.join(", ")), "feature_views": views})
                .to_string(),
        ),
        Err(JobError::Failed(e)) => error_response(&e),
    }
}

async fn materialize(
    State(state): State<HttpState>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    run_job(state, uri, body, false).await
}

async fn materialize_incremental(
    State(state): State<HttpState>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    run_job(state, uri, body, true).await
}

/// 200 when the registry's last refresh worked and the online store answers; else 503.
async fn health(State(state): State<HttpState>) -> Response {
    let registry_error = state.online.registry().last_error();
    let store = state.online.store().check().await;
    let status = match (&registry_error, &store) {
        (None, Ok(())) => StatusCode::OK,
        _ => {
            if let Some((at, e)) = &registry_error {
                tracing::warn!(error = %e, since = %at, "health: registry refresh failing");
            }
            if let Err(e) = &store {
                tracing::warn!(error = %e, "health: online store unreachable");
            }
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    Response::builder()
        .status(status)
        .body(Body::empty())
        .expect("a valid response")
}

async fn metrics_text(State(state): State<HttpState>) -> Response {
    metrics_response(state.metrics.as_ref())
}

/// `GET /metrics`: the Prometheus text of every metric recorded (404 when the recorder could
/// not be installed). Every server answers it.
pub fn metrics_response(
    metrics: Option<&metrics_exporter_prometheus::PrometheusHandle>,
) -> Response {
    match metrics {
        Some(h) => Response::builder()
            .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(Body::from(h.render()))
            .expect("a valid response"),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::empty())
            .expect("a valid response"),
    }
}

async fn openapi() -> Response {
    json_response(200, include_str!("openapi.json").to_owned())
}

#[cfg(test)]
pub(crate) mod tests;
