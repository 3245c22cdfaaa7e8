//! A small hand-made project for in-process tests of the services and adapters.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use larder_online::{
    layout::ViewLayout,
    memory::InMemoryOnlineStore,
    store::{OnlineStore, WriteRow},
};
use larder_protos::feast::{
    core::{
        Entity, EntitySpecV2, FeatureService, FeatureServiceSpec, FeatureSpecV2, FeatureView,
        FeatureViewMeta, FeatureViewProjection, FeatureViewSpec, OnDemandFeatureView,
        OnDemandFeatureViewSpec, Project, ProjectSpec, Registry,
    },
    types::{Value, value::Val, value_type::Enum as T},
};
use larder_registry::{
    cache::RegistryCache,
    clock::ManualClock,
    config::OnlineTtl,
    store::{InMemoryRegistryStore, RegistrySnapshot},
};
use larder_types::entity_key::{EntityValue, KeyVersion, serialize_entity_key};

use super::online::{OnlineConfig, OnlineService};

fn field(name: &str, t: T) -> FeatureSpecV2 {
    FeatureSpecV2 {
        name: name.into(),
        value_type: t as i32,
        ..Default::default()
    }
}

fn view(
    name: &str,
    features: Vec<FeatureSpecV2>,
    ttl_secs: i64,
    state: i32,
    disabled: bool,
) -> FeatureView {
    FeatureView {
        spec: Some(FeatureViewSpec {
            name: name.into(),
            project: "demo".into(),
            entities: vec!["driver".into()],
            entity_columns: vec![field("driver_id", T::Int64)],
            features,
            ttl: Some(prost_types::Duration {
                seconds: ttl_secs,
                nanos: 0,
            }),
            online: true,
            disabled,
            ..Default::default()
        }),
        meta: Some(FeatureViewMeta {
            state,
            ..Default::default()
        }),
    }
}

pub fn registry() -> Registry {
    Registry {
        projects: vec![Project {
            spec: Some(ProjectSpec {
                name: "demo".into(),
                ..Default::default()
            }),
            meta: None,
        }],
        entities: vec![Entity {
            spec: Some(EntitySpecV2 {
                name: "driver".into(),
                join_key: "driver_id".into(),
                project: "demo".into(),
                ..Default::default()
            }),
            meta: None,
        }],
        feature_views: vec![
            view(
                "driver_hourly_stats",
                vec![
                    field("conv_rate", T::Float),
                    field("avg_daily_trips", T::Int64),
                ],
                86_400,
                0,
                false,
            ),
            view(
                "other_stats",
                vec![field("conv_rate", T::Double)],
                0,
                4,
                false,
            ),
            view("disabled_view", vec![field("x", T::Int64)], 0, 0, true),
            view(
                "materializing_view",
                vec![field("x", T::Int64)],
                0,
                3,
                false,
            ),
        ],
        on_demand_feature_views: vec![OnDemandFeatureView {
            spec: Some(OnDemandFeatureViewSpec {
                name: "odfv".into(),
                project: "demo".into(),
                features: vec![field("y", T::Double)],
                ..Default::default()
            }),
            meta: None,
        }],
        feature_services: vec![FeatureService {
            spec: Some(FeatureServiceSpec {
                name: "svc".into(),
                project: "demo".into(),
                features: vec![FeatureViewProjection {
                    feature_view_name: "driver_hourly_stats".into(),
                    feature_view_name_alias: "alias".into(),
                    feature_columns: vec![field("avg_daily_trips", T::Int64)],
                    join_key_map: [("driver_id".to_owned(), "other_driver".to_owned())].into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            meta: None,
        }],
        ..Default::default()
    }
}

/// "Now" in the fixture: 2026-11-28T12:00:00Z.
pub fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
}

pub fn key(id: i64) -> Vec<u8> {
    serialize_entity_key(&[("driver_id", &EntityValue::Int64(id))], KeyVersion::V3)
}

/// The service over an in-memory store holding drivers 1001 (fresh) and 1002 (two days old).
pub async fn service(ttl: OnlineTtl, store: Option<Arc<dyn OnlineStore>>) -> Arc<OnlineService> {
    service_and_registry(ttl, store).await.0
}

/// [`service`], and the registry store it reads (to change the registry under it).
pub async fn service_and_registry(
    ttl: OnlineTtl,
    store: Option<Arc<dyn OnlineStore>>,
) -> (Arc<OnlineService>, Arc<InMemoryRegistryStore>) {
    let registry_store = Arc::new(InMemoryRegistryStore::new(RegistrySnapshot::from_proto(
        registry(),
    )));
    let clock = Arc::new(ManualClock::new(now()));
    let cache = Arc::new(
        RegistryCache::open(registry_store.clone(), 0, clock.clone())
            .await
            .unwrap(),
    );
    let store = match store {
        Some(s) => s,
        None => {
            let mem: Arc<dyn OnlineStore> = Arc::new(InMemoryOnlineStore::default());
            let layout = ViewLayout::new(
                "demo",
                "driver_hourly_stats",
                vec!["conv_rate".into(), "avg_daily_trips".into()],
            );
            let fresh = prost_types::Timestamp {
                seconds: now().timestamp() - 3600,
                nanos: 0,
            };
            let stale = prost_types::Timestamp {
                seconds: now().timestamp() - 2 * 86_400,
                nanos: 0,
            };
            let v = |val| Some(Value { val: Some(val) });
            mem.write(
                &layout,
                &[
                    WriteRow {
                        key: key(1001),
                        values: vec![v(Val::FloatVal(0.5)), v(Val::Int64Val(146))],
                        event_ts: fresh,
                        created_ts: None,
                    },
                    WriteRow {
                        key: key(1002),
                        values: vec![v(Val::FloatVal(0.25)), None],
                        event_ts: stale,
                        created_ts: None,
                    },
                ],
            )
            .await
            .unwrap();
            mem
        }
    };
    let service = Arc::new(OnlineService::new(
        cache,
        store,
        OnlineConfig {
            project: "demo".into(),
            key_version: KeyVersion::V3,
            online_ttl: ttl,
            serve_while_materializing: false,
            engines: Default::default(),
            feature_log: None,
            versioning: false,
        },
        clock,
    ));
    (service, registry_store)
}
