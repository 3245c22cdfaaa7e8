//! The gate sees every request: the HTTP/1.1 fast path, the router behind HTTP/1.1, and h2
//! (gRPC) — a gate that refuses requests without a pass refuses them on every path.

use std::sync::Arc;

use larder_protos::feast::serving::{
    FeatureList, GetOnlineFeaturesRequest, get_online_features_request::Kind,
    serving_service_client::ServingServiceClient,
};
use larder_registry::config::OnlineTtl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Acceptor, Denied, Gate, Limits, RequestParts};
use crate::{error::ErrorCode, service::fixture};

/// Lets through requests carrying `x-pass: yes`; records what it saw.
#[derive(Default)]
struct Pass(std::sync::Mutex<Vec<String>>);

impl Gate for Pass {
    fn admit(&self, req: &RequestParts<'_>) -> Result<(), Denied> {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", req.method, req.path));
        match req.header("x-pass") {
            Some(b"yes") => Ok(()),
            _ => Err(Denied {
                code: ErrorCode::Unauthenticated,
                message: "no pass".into(),
            }),
        }
    }
}

async fn http(addr: std::net::SocketAddr, req: String) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        conn.read_to_string(&mut out),
    )
    .await
    .unwrap()
    .unwrap();
    out
}

#[tokio::test]
async fn every_path_passes_the_gate() {
    let gate = Arc::new(Pass::default());
    let online = fixture::service(OnlineTtl::Enforce, None).await;
    let handlers = crate::app::handlers(online, None, None, None, gate.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        Acceptor::new(None, Limits::default())
            .serve(listener, handlers, std::future::pending())
            .await
    });

    let lookup =
        r#"{"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]}}"#;
    let post = |extra: &str| {
        format!(
            "POST /get-online-features HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{lookup}",
            lookup.len()
        )
    };
    // The HTTP/1.1 fast path.
    let refused = http(addr, post("")).await;
    assert!(refused.starts_with("HTTP/1.1 401 "), "{refused}");
    assert!(refused.ends_with("\"no pass\""), "{refused}");
    let passed = http(addr, post("X-Pass: yes\r\n")).await;
    assert!(passed.starts_with("HTTP/1.1 200 "), "{passed}");
    // The router behind HTTP/1.1.
    let refused = http(
        addr,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 401 "), "{refused}");

    // gRPC over h2.
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServingServiceClient::new(channel);
    let request = || {
        tonic::Request::new(GetOnlineFeaturesRequest {
            kind: Some(Kind::Features(FeatureList {
                val: vec!["driver_hourly_stats:conv_rate".into()],
            })),
            ..Default::default()
        })
    };
    let err = client.get_online_features(request()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert_eq!(err.message(), "no pass");
    let mut with_pass = request();
    with_pass
        .metadata_mut()
        .insert("x-pass", "yes".parse().unwrap());
    // Past the gate: the service answers (no entities: a request error, not the gate's).
    let err = client.get_online_features(with_pass).await.unwrap_err();
    assert_ne!(err.code(), tonic::Code::Unauthenticated, "{err:?}");

    let seen = gate.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "POST /get-online-features",
            "POST /get-online-features",
            "GET /health",
            "POST /feast.serving.ServingService/GetOnlineFeatures",
            "POST /feast.serving.ServingService/GetOnlineFeatures",
        ]
    );
}
