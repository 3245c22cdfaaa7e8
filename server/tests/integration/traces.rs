//! OpenTelemetry traces against a real OTLP/gRPC receiver (the collector's trace service from
//! `opentelemetry-proto`, run in the test): `larder serve` with tracing on exports one trace per
//! lookup — HTTP with a `traceparent` header, gRPC with it in the metadata — whose request
//! span is the caller's child and holds the Redis round trip; a materialization exports its
//! views, batches and Redis writes.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    trace::v1::Span,
};

use crate::support::{copy_dir, free_port};

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// The receiver on a free loopback port, on a runtime of its own.
fn start_collector() -> (Collector, u16, tokio::runtime::Runtime) {
    let collector = Collector::default();
    let port = free_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let service = TraceServiceServer::new(collector.clone());
    runtime.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve(([127, 0, 0, 1], port).into())
            .await
            .unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the OTLP receiver did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (collector, port, runtime)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attr(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

#[test]
fn lookups_and_materialization_export_traces_with_their_redis_spans() {
    let (collector, otlp_port, _rt) = start_collector();
    let (_redis, redis_port) = larder_online::testkit::Servers::standalone();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/driver_demo"),
        &repo,
    );
    let mut yaml = std::fs::read_to_string(repo.join("feature_store.yaml")).unwrap();
    yaml.push_str(&format!(
        "online_store:\n  type: redis\n  connection_string: 127.0.0.1:{redis_port}\n\
         larder:\n  online_ttl: ignore\n"
    ));
    std::fs::write(repo.join("feature_store.yaml"), yaml).unwrap();
    let otel = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{otlp_port}"),
        ),
        ("OTEL_SERVICE_NAME", "larder-test".to_owned()),
    ];

    // A materialization: its views, batches and Redis writes.
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-c")
        .arg(&repo)
        .args([
            "materialize",
            "2026-11-25T00:00:00",
            "2026-11-29T00:00:00",
            "-v",
            "driver_hourly_stats",
        ])
        .envs(otel.clone())
        .output()
        .unwrap();
    crate::support::stdout_ok(out, "materialize");
    {
        let spans = collector.0.lock().unwrap();
        let by_name = |n: &str| spans.iter().filter(|s| s.name == n).collect::<Vec<_>>();
        let views = by_name("materialize.view");
        assert_eq!(
            views.len(),
            1,
            "{:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        assert_eq!(
            attr(views[0], "view").as_deref(),
            Some("driver_hourly_stats")
        );
        let batches = by_name("materialize.batch");
        assert!(!batches.is_empty());
        for b in &batches {
            assert_eq!(b.parent_span_id, views[0].span_id);
            let writes: Vec<_> = by_name("redis.write")
                .into_iter()
                .filter(|w| w.parent_span_id == b.span_id)
                .collect();
            assert_eq!(writes.len(), 1, "a batch's Redis write");
        }
    }
    collector.0.lock().unwrap().clear();

    // The server, and lookups carrying their callers' trace context.
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-c")
        .arg(&repo)
        .args(["serve", "-p", &port.to_string()])
        .envs(otel)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    crate::support::wait_listening(&mut child, port);
    let mut callers = BTreeMap::new();
    for i in 0..3u8 {
        let (trace, parent) = (hex(&[0x10 + i; 16]), hex(&[0x20 + i; 8]));
        let body = r#"{"features":["driver_hourly_stats:conv_rate"],"entities":{"driver_id":[1001,1002]}}"#;
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             traceparent: 00-{trace}-{parent}-01\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        callers.insert(trace, (parent, "POST /get-online-features"));
    }
    // gRPC, the context in the metadata.
    let (trace, parent) = (hex(&[0x30; 16]), hex(&[0x40; 8]));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use larder_protos::feast::{
            serving::{
                FeatureList, GetOnlineFeaturesRequest, get_online_features_request::Kind,
                serving_service_client::ServingServiceClient,
            },
            types::{RepeatedValue, Value, value::Val},
        };
        let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut request = tonic::Request::new(GetOnlineFeaturesRequest {
            kind: Some(Kind::Features(FeatureList {
                val: vec!["driver_hourly_stats:conv_rate".into()],
            })),
            entities: [(
                "driver_id".to_owned(),
                RepeatedValue {
                    val: vec![Value {
                        val: Some(Val::Int64Val(1001)),
                    }],
                },
            )]
            .into(),
            ..Default::default()
        });
        request.metadata_mut().insert(
            "traceparent",
            format!("00-{trace}-{parent}-01").parse().unwrap(),
        );
        ServingServiceClient::new(channel)
            .get_online_features(request)
            .await
            .unwrap();
    });
    callers.insert(
        trace,
        (parent, "feast.serving.ServingService/GetOnlineFeatures"),
    );
    // SIGTERM: the server drains and exports what it buffered.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());

    let spans = collector.0.lock().unwrap();
    for (trace, (parent, name)) in &callers {
        let in_trace: Vec<&Span> = spans
            .iter()
            .filter(|s| hex(&s.trace_id) == *trace)
            .collect();
        let requests: Vec<&&Span> = in_trace.iter().filter(|s| s.name == *name).collect();
        assert_eq!(
            requests.len(),
            1,
            "one request span in trace {trace}: {:?}",
            in_trace.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        let request = requests[0];
        assert_eq!(
            hex(&request.parent_span_id),
            *parent,
            "the caller's span is the parent"
        );
        assert_eq!(request.kind, 2, "a server span");
        let redis: Vec<&&Span> = in_trace
            .iter()
            .filter(|s| s.name == "redis.hmget" && s.parent_span_id == request.span_id)
            .collect();
        assert_eq!(redis.len(), 1, "the Redis round trip inside the request");
        assert!(redis[0].start_time_unix_nano >= request.start_time_unix_nano);
        assert!(redis[0].end_time_unix_nano <= request.end_time_unix_nano);
    }
    // Nothing but these traces (one per lookup).
    let traces: std::collections::BTreeSet<String> =
        spans.iter().map(|s| hex(&s.trace_id)).collect();
    assert_eq!(traces.len(), callers.len(), "{traces:?}");
}
