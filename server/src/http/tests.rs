use std::sync::Arc;

use axum::{body::Body, http::Request};
use http_body_util::BodyExt;
use larder_online::{
    layout::ViewLayout,
    store::{OlderWrites, OnlineError, OnlineStore, Record, ViewRead, WriteOutcome, WriteRow},
};
use larder_registry::config::OnlineTtl;
use serde_json::{Value as Json, json};
use tower::ServiceExt;

use super::{HttpState, MAX_BODY_BYTES};
use crate::service::fixture;

async fn call(ttl: OnlineTtl, method: &str, path: &str, body: Vec<u8>) -> (u16, String) {
    let online = fixture::service(ttl, None).await;
    call_with(online, method, path, body).await
}

pub(crate) async fn call_with(
    online: Arc<crate::service::online::OnlineService>,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, String) {
    // The application's routes, as `larder serve` has them (gRPC and the 404 fallback too).
    let (app, _) = crate::app::routes(online, None, None, None).await;
    let resp = app
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn get_features(body: Json) -> (u16, String) {
    call(
        OnlineTtl::Enforce,
        "POST",
        "/get-online-features",
        body.to_string().into_bytes(),
    )
    .await
}

#[tokio::test]
async fn answers_column_oriented_with_ttl_enforced() {
    let (status, body) = get_features(json!({
        "features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"],
        "entities": {"driver_id": [1001, "1002", 9]}
    }))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        concat!(
            r#"{"results":[{"values":[1001,1002,9],"statuses":["PRESENT","PRESENT","PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z","1970-01-01T00:00:00Z","1970-01-01T00:00:00Z"]},"#,
            r#"{"values":[0.5,0.25,null],"statuses":["PRESENT","OUTSIDE_MAX_AGE","NOT_FOUND"],"event_timestamps":["2026-11-28T11:00:00Z","2026-11-26T12:00:00Z","1970-01-01T00:00:00Z"]},"#,
            r#"{"values":[146,null,null],"statuses":["PRESENT","NOT_FOUND","NOT_FOUND"],"event_timestamps":["2026-11-28T11:00:00Z","1970-01-01T00:00:00Z","1970-01-01T00:00:00Z"]}],"#,
            r#""metadata":{"feature_names":["driver_id","conv_rate","avg_daily_trips"]}}"#
        )
    );
}

#[tokio::test]
async fn ttl_ignore_restores_feast_python_behaviour() {
    let body =
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1002]}});
    let (status, body) = call(
        OnlineTtl::Ignore,
        "POST",
        "/get-online-features",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""statuses":["PRESENT"],"event_timestamps":["2026-11-26T12:00:00Z"]"#),
        "{body}"
    );
}

#[tokio::test]
async fn feature_service_with_alias_and_join_key_map() {
    let (status, body) = get_features(json!({
        "feature_service": "svc", "full_feature_names": true,
        "include_feature_view_version_metadata": true,
        "entities": {"other_driver": [1001], "ignored": ["x"]}
    }))
    .await;
    assert_eq!(status, 200, "{body}");
    let doc: Json = serde_json::from_str(&body).unwrap();
    assert_eq!(
        doc["metadata"]["feature_names"],
        json!(["other_driver", "alias__avg_daily_trips"])
    );
    assert_eq!(doc["results"][1]["values"], json!([146]));
    assert_eq!(
        doc["metadata"]["feature_view_metadata"],
        json!([{"name": "alias"}]),
        "the projection's alias, as Feast names it"
    );
}

#[tokio::test]
async fn version_pinned_references_need_online_versioning() {
    let (status, body) = get_features(json!({
        "features": ["driver_hourly_stats@v1:avg_daily_trips"],
        "entities": {"driver_id": [1001]}
    }))
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("online versioning is disabled"), "{body}");
}

#[tokio::test]
async fn entity_names_map_to_join_keys() {
    let (status, body) =
        get_features(json!({"features": ["driver_hourly_stats:avg_daily_trips"], "entities": {"driver": [1001]}})).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""feature_names":["driver_id","avg_daily_trips"]"#),
        "{body}"
    );
}

async fn expect_error(body: Json, status: u16, needles: &[&str]) {
    let (got, text) = get_features(body.clone()).await;
    assert_eq!(got, status, "{body} -> {text}");
    for n in needles {
        assert!(text.contains(n), "{body} -> {text} lacks {n}");
    }
}

#[tokio::test]
async fn bad_requests_get_honest_statuses_and_feast_bodies() {
    expect_error(
        json!({"features": ["nope:x"], "entities": {"driver_id": [1]}}),
        404,
        &[
            r#"\"class\": \"FeatureViewNotFoundException\""#,
            "Feature view nope does not exist in project demo",
        ],
    )
    .await;
    expect_error(
        json!({"feature_service": "nope", "entities": {"driver_id": [1]}}),
        404,
        &["FeatureServiceNotFoundException"],
    )
    .await;
    expect_error(
        json!({"features": ["driver_hourly_stats:nope"], "entities": {"driver_id": [1]}}),
        404,
        &["Feature nope not found"],
    )
    .await;
    expect_error(
        json!({"features": ["conv_rate"], "entities": {"driver_id": [1]}}),
        400,
        &["Invalid feature reference 'conv_rate'"],
    )
    .await;
    expect_error(
        json!({"features": [], "entities": {"driver_id": [1]}}),
        400,
        &["No features specified"],
    )
    .await;
    expect_error(
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1, 2], "other": [1]}}),
        400,
        &["All entity rows must have the same columns."],
    )
    .await;
    expect_error(
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": ["abc"]}}),
        400,
        &["entity column driver_id, row 0", "not an integer"],
    )
    .await;
    expect_error(
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [null]}}),
        400,
        &["null"],
    )
    .await;
    expect_error(
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"customer_id": ["x"]}}),
        400,
        &["Missing join key values for keys: [\\\"driver_id\\\"]"],
    )
    .await;
    expect_error(
        json!({"features": ["driver_hourly_stats:conv_rate", "other_stats:conv_rate"], "entities": {"driver_id": [1]}}),
        400,
        &["FeatureNameCollisionError", "Duplicate features named conv_rate"],
    )
    .await;
    expect_error(
        json!({"features": ["odfv:y"], "entities": {"driver_id": [1]}}),
        501,
        &["odfv"],
    )
    .await;
    expect_error(
        json!({"features": ["disabled_view:x"], "entities": {"driver_id": [1]}}),
        409,
        &["disabled"],
    )
    .await;
    expect_error(
        json!({"features": ["materializing_view:x"], "entities": {"driver_id": [1]}}),
        409,
        &["MATERIALIZING"],
    )
    .await;
    expect_error(
        json!({"features": ["driver_hourly_stats@v2:conv_rate"], "entities": {"driver_id": [1]}}),
        400,
        &["enable_online_feature_view_versioning"],
    )
    .await;
    expect_error(
        json!({"features": ["driver_hourly_stats:conv_rate"]}),
        422,
        &["detail", "entities"],
    )
    .await;
    expect_error(
        json!({"features": "driver_hourly_stats:conv_rate", "entities": {}}),
        422,
        &["detail"],
    )
    .await;
    expect_error(
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": 5}}),
        422,
        &["detail"],
    )
    .await;
}

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    let (status, body) = call(
        OnlineTtl::Enforce,
        "POST",
        "/get-online-features",
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    let (status, _) = call(OnlineTtl::Enforce, "POST", "/get-online-features", big).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn health_and_openapi() {
    let (status, _) = call(OnlineTtl::Enforce, "GET", "/health", Vec::new()).await;
    assert_eq!(status, 200);
    let (status, body) = call(OnlineTtl::Enforce, "GET", "/openapi.json", Vec::new()).await;
    assert_eq!(status, 200);
    let doc: Json = serde_json::from_str(&body).unwrap();
    assert!(doc["paths"]["/get-online-features"].is_object());
}

/// A store whose backend is down.
#[derive(Debug)]
struct DownStore;

#[async_trait::async_trait]
impl OnlineStore for DownStore {
    fn describe(&self) -> String {
        "down".into()
    }
    fn older_writes(&self) -> OlderWrites {
        OlderWrites::Skip
    }
    async fn read(&self, _: &[ViewRead<'_>]) -> Result<Vec<Vec<Option<Record>>>, OnlineError> {
        Err(OnlineError::Unavailable {
            store: "down".into(),
            message: "connection refused".into(),
        })
    }
    async fn write(&self, _: &ViewLayout, _: &[WriteRow]) -> Result<WriteOutcome, OnlineError> {
        Err(OnlineError::Unavailable {
            store: "down".into(),
            message: "connection refused".into(),
        })
    }
    async fn drop_view(&self, _: &ViewLayout) -> Result<(), OnlineError> {
        Ok(())
    }
    async fn check(&self) -> Result<(), OnlineError> {
        Err(OnlineError::Unavailable {
            store: "down".into(),
            message: "connection refused".into(),
        })
    }
}

#[tokio::test]
async fn unreachable_store_is_503() {
    let online = fixture::service(OnlineTtl::Enforce, Some(Arc::new(DownStore))).await;
    let (status, _) = call_with(online.clone(), "GET", "/health", Vec::new()).await;
    assert_eq!(status, 503);
    let body =
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1]}});
    let (status, text) = call_with(
        online,
        "POST",
        "/get-online-features",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("connection refused"), "{text}");
}

#[tokio::test]
async fn a_repeated_selection_follows_the_registry() {
    let (online, registry) = fixture::service_and_registry(OnlineTtl::Enforce, None).await;
    let lookup = |full: bool| {
        let body = json!({"features": ["driver_hourly_stats:conv_rate"],
                          "entities": {"driver_id": [1001]}, "full_feature_names": full});
        call_with(
            online.clone(),
            "POST",
            "/get-online-features",
            body.to_string().into_bytes(),
        )
    };
    let names = |body: &str| {
        let doc: Json = serde_json::from_str(body).unwrap();
        doc["metadata"]["feature_names"].clone()
    };
    for _ in 0..2 {
        let (status, body) = lookup(false).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(names(&body), json!(["driver_id", "conv_rate"]));
        // The same references with full names are another selection.
        let (_, body) = lookup(true).await;
        assert_eq!(
            names(&body),
            json!(["driver_id", "driver_hourly_stats__conv_rate"])
        );
    }
    // The view loses the feature: the remembered selection goes with the old registry.
    let mut changed = fixture::registry();
    for v in &mut changed.feature_views {
        if let Some(spec) = v.spec.as_mut().filter(|s| s.name == "driver_hourly_stats") {
            spec.features.retain(|f| f.name != "conv_rate");
        }
    }
    registry.set(larder_registry::store::RegistrySnapshot::from_proto(
        changed,
    ));
    online.registry().refresh().await.unwrap();
    let (status, body) = lookup(false).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("conv_rate"), "{body}");
}

#[test]
fn feature_lists_are_read_once_per_text() {
    let lists = super::FeatureLists::default();
    let text = r#"["v:a", "v:b"]"#;
    let first = lists.read(text).unwrap();
    assert_eq!(&first[..], ["v:a", "v:b"]);
    assert!(Arc::ptr_eq(&first, &lists.read(text).unwrap()));
    // Other texts are other lists; escapes are read; what is not a list of strings fails.
    assert_eq!(&lists.read(r#"["v:\u0061"]"#).unwrap()[..], ["v:a"]);
    assert!(lists.read(r#""v:a""#).is_err());
    assert!(lists.read("[1]").is_err());
    // A text too long to remember is still read.
    let long = format!(r#"["{}"]"#, "x".repeat(super::FEATURE_LIST_TEXT));
    let a = lists.read(&long).unwrap();
    assert!(!Arc::ptr_eq(&a, &lists.read(&long).unwrap()));
}

/// Fuzz target (`cargo bolero test -p larder-server --bin larder
/// http::tests::fuzz_lookup_bodies` for a coverage-guided run; `cargo test` runs it on random
/// inputs for a second): any body is answered with a status and a JSON document, never a
/// panic, and never a server error (a 5xx other than 501) — a request cannot break the server.
#[test]
fn fuzz_lookup_bodies() {
    let answer = lookup_answerer();
    bolero::check!().for_each(|bytes: &[u8]| answer(bytes));
}

/// Answers lookup bodies with the fixture service, on a runtime of its own, and checks the
/// answer: a status and a JSON document, never a server error (a 5xx other than 501).
fn lookup_answerer() -> impl Fn(&[u8]) + std::panic::RefUnwindSafe {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let state = HttpState::new(
        rt.block_on(fixture::service(OnlineTtl::Enforce, None)),
        None,
    );
    // A panic fails the target; nothing is observed after one.
    let (rt, state) = (
        std::panic::AssertUnwindSafe(rt),
        std::panic::AssertUnwindSafe(state),
    );
    move |body: &[u8]| {
        let (status, json) = rt.block_on(super::online_features(&state, body));
        assert!(
            status < 500 || status == 501,
            "{} -> {status} {json}",
            String::from_utf8_lossy(body)
        );
        assert!(
            serde_json::from_str::<Json>(&json).is_ok(),
            "not JSON: {json}"
        );
    }
}

/// Fuzz target: structured lookups — references and entity columns drawn from the fixture's
/// names and from anywhere, values of every JSON kind — are answered 200 or a client error.
#[test]
fn fuzz_lookup_requests() {
    let answer = lookup_answerer();
    const REFS: &[&str] = &[
        "driver_hourly_stats:conv_rate",
        "driver_hourly_stats:avg_daily_trips",
        "other_stats:conv_rate",
        "disabled_view:x",
        "materializing_view:x",
        "odfv:y",
        "driver_hourly_stats@v2:conv_rate",
        "nope:x",
        "::",
    ];
    const COLUMNS: &[&str] = &["driver_id", "driver", "other_driver", "x"];
    bolero::check!()
        .with_type::<(
            Vec<(u8, String)>,
            Option<String>,
            Vec<(u8, Vec<(u8, i64, String)>)>,
            bool,
        )>()
        .for_each(|(refs, service, columns, full)| {
            let pick = |i: u8, list: &[&str], other: &str| -> String {
                list.get(i as usize)
                    .map_or_else(|| other.to_owned(), |s| (*s).to_owned())
            };
            let mut body = serde_json::Map::new();
            body.insert(
                "features".into(),
                refs.iter()
                    .map(|(i, s)| Json::String(pick(*i, REFS, s)))
                    .collect(),
            );
            if let Some(s) = service {
                body.insert("feature_service".into(), Json::String(s.clone()));
            }
            let mut entities = serde_json::Map::new();
            for (i, values) in columns {
                let values: Vec<Json> = values
                    .iter()
                    .map(|(kind, n, s)| match kind % 6 {
                        0 => json!(n),
                        1 => json!(*n as f64 / 3.0),
                        2 => json!(s),
                        3 => Json::Null,
                        4 => json!([n]),
                        _ => json!(n.to_string()),
                    })
                    .collect();
                entities.insert(pick(*i, COLUMNS, "col"), Json::Array(values));
            }
            body.insert("entities".into(), Json::Object(entities));
            body.insert("full_feature_names".into(), json!(full));
            answer(Json::Object(body).to_string().as_bytes());
        });
}
