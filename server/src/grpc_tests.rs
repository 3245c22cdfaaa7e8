//! gRPC over a real socket, on the same listener that serves HTTP.

use larder_protos::feast::{
    serving::{
        FeatureList, FieldStatus, GetFeastServingInfoRequest, GetOnlineFeaturesRequest,
        get_online_features_request::Kind, serving_service_client::ServingServiceClient,
    },
    types::{RepeatedValue, Value, value::Val},
};
use larder_registry::config::OnlineTtl;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::service::fixture;

#[tokio::test]
async fn serving_service_and_health_over_grpc() {
    let online = fixture::service(OnlineTtl::Enforce, None).await;
    let app = crate::app::handlers(
        online,
        None,
        None,
        None,
        std::sync::Arc::new(crate::net::Open),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        crate::net::Acceptor::new(None, crate::net::Limits::default())
            .serve(listener, app, std::future::pending())
            .await
    });
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut client = ServingServiceClient::new(channel.clone());
    let info = client
        .get_feast_serving_info(GetFeastServingInfoRequest {})
        .await
        .unwrap();
    assert_eq!(info.into_inner().version, env!("CARGO_PKG_VERSION"));

    let int = |i| Value {
        val: Some(Val::Int64Val(i)),
    };
    let resp = client
        .get_online_features(GetOnlineFeaturesRequest {
            kind: Some(Kind::Features(FeatureList {
                val: vec!["driver_hourly_stats:avg_daily_trips".into()],
            })),
            entities: [(
                "driver_id".to_owned(),
                RepeatedValue {
                    val: vec![int(1001), int(7)],
                },
            )]
            .into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names = resp.metadata.unwrap().feature_names.unwrap().val;
    assert_eq!(names, ["driver_id", "avg_daily_trips"]);
    assert_eq!(resp.results[1].values, vec![int(146), Value::default()]);
    assert_eq!(
        resp.results[1].statuses,
        vec![FieldStatus::Present as i32, FieldStatus::NotFound as i32]
    );

    let err = client
        .get_online_features(GetOnlineFeaturesRequest {
            kind: Some(Kind::FeatureService("nope".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(
        err.message().contains("FeatureServiceNotFoundException"),
        "{}",
        err.message()
    );

    let mut health = HealthClient::new(channel);
    let status = health
        .check(HealthCheckRequest {
            service: "feast.serving.ServingService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    server.abort();
}
