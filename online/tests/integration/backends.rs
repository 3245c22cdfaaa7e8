use larder_online::{
    conformance,
    memory::InMemoryOnlineStore,
    redis::{ConnectionString, RedisKind, RedisOnlineStore, RedisOptions},
    sqlite::SqliteOnlineStore,
    store::{OlderWrites, OnlineStore},
};

use larder_online::testkit::{Servers, free_port};

#[tokio::test]
async fn in_memory_conforms() {
    conformance::run_all(&InMemoryOnlineStore::new(OlderWrites::Skip), "mem").await;
    conformance::run_all(&InMemoryOnlineStore::new(OlderWrites::Overwrite), "mem2").await;
}

#[tokio::test]
async fn sqlite_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteOnlineStore::open(&dir.path().join("data/online.db"), 2).unwrap();
    conformance::run_all(&store, "sqlite").await;
}

async fn redis(kind: RedisKind, conn: &str) -> RedisOnlineStore {
    RedisOnlineStore::connect(
        kind,
        &ConnectionString::parse(conn).unwrap(),
        RedisOptions {
            sentinel_master: "mymaster".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn redis_standalone_conforms() {
    let (_servers, port) = Servers::standalone();
    let store = redis(RedisKind::Standalone, &format!("127.0.0.1:{port},db=1")).await;
    conformance::run_all(&store, "standalone").await;
}

#[tokio::test]
async fn redis_cluster_conforms() {
    let (_servers, ports) = Servers::cluster();
    let conn = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let store = redis(RedisKind::Cluster, &conn).await;
    conformance::run_all(&store, "cluster").await;
}

#[tokio::test]
async fn redis_sentinel_conforms() {
    let (_servers, sentinel) = Servers::sentinel();
    let store = redis(RedisKind::Sentinel, &format!("127.0.0.1:{sentinel}")).await;
    conformance::run_all(&store, "sentinel").await;
}

#[tokio::test]
async fn redis_key_ttl_expires_the_whole_hash() {
    let (_servers, port) = Servers::standalone();
    let store = RedisOnlineStore::connect(
        RedisKind::Standalone,
        &ConnectionString::parse(&format!("127.0.0.1:{port}")).unwrap(),
        RedisOptions {
            key_ttl_seconds: Some(3600),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let l = larder_online::layout::ViewLayout::new("ttl", "v", vec!["f".into()]);
    let key = larder_types::entity_key::serialize_entity_key(
        &[("id", &larder_types::entity_key::EntityValue::Int64(1))],
        larder_types::entity_key::KeyVersion::V3,
    );
    let row = larder_online::store::WriteRow {
        key: key.clone(),
        values: vec![Some(Default::default())],
        event_ts: prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        },
        created_ts: None,
    };
    store.write(&l, &[row]).await.unwrap();
    let mut redis_key = key;
    redis_key.extend_from_slice(b"ttl");
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(redis_key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn unreachable_redis_is_a_clear_error() {
    let port = free_port();
    let err = RedisOnlineStore::connect(
        RedisKind::Standalone,
        &ConnectionString::parse(&format!("127.0.0.1:{port}")).unwrap(),
        RedisOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

/// `id`'s Redis key in project `proj`, and the entity key it is made of.
fn proj_key(id: i64) -> (Vec<u8>, Vec<u8>) {
    use larder_types::entity_key::{EntityValue, KeyVersion, serialize_entity_key};
    let key = serialize_entity_key(&[("id", &EntityValue::Int64(id))], KeyVersion::V3);
    let mut redis_key = key.clone();
    redis_key.extend_from_slice(b"proj");
    (redis_key, key)
}

/// Entity 1 of project `proj` holds a string (written by another program): reading or writing
/// it fails with Redis's own reason, as a request problem (`Backend`: the server answered, a
/// retry fails the same way), not as `Unavailable`; the store stays usable.
async fn another_type_is_a_backend_error(store: &RedisOnlineStore) {
    use larder_online::{
        layout::ViewLayout,
        store::{OnlineError, ViewRead, WriteRow},
    };
    let layout = ViewLayout::new("proj", "v", vec!["f".into()]);
    let keys = [proj_key(1).1];
    let read = ViewRead {
        layout: &layout,
        features: &[0],
        keys: &keys,
    };
    let err = store.read(&[read]).await.unwrap_err();
    assert!(
        matches!(&err, OnlineError::Backend { message, .. } if message.contains("WRONGTYPE")),
        "{err:?}"
    );
    let row = WriteRow {
        key: proj_key(1).1,
        values: vec![Some(Default::default())],
        event_ts: prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        },
        created_ts: None,
    };
    let err = store.write(&layout, &[row]).await.unwrap_err();
    assert!(
        matches!(&err, OnlineError::Backend { message, .. } if message.contains("WRONGTYPE")),
        "{err:?}"
    );
    let keys = [proj_key(2).1];
    let read = ViewRead {
        layout: &layout,
        features: &[0],
        keys: &keys,
    };
    assert_eq!(store.read(&[read]).await.unwrap(), vec![vec![None]]);
    store.check().await.unwrap();
}

/// A key holding something other than a hash (written by another program) fails the read with
/// Redis's own reason; the store stays usable.
#[tokio::test]
async fn a_key_of_another_type_is_a_clear_read_error() {
    let (_servers, port) = Servers::standalone();
    let store = redis(RedisKind::Standalone, &format!("127.0.0.1:{port}")).await;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SET")
        .arg(proj_key(1).0)
        .arg("not a hash")
        .query_async(&mut c)
        .await
        .unwrap();
    another_type_is_a_backend_error(&store).await;
}

/// The same on a cluster, whose reads take redis-rs's path, not the raw one.
#[tokio::test]
async fn a_key_of_another_type_is_a_clear_read_error_on_a_cluster() {
    let (_servers, ports) = Servers::cluster();
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect();
    let store = redis(
        RedisKind::Cluster,
        &ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(","),
    )
    .await;
    let client = redis::cluster::ClusterClient::new(urls).unwrap();
    let mut c = client.get_async_connection().await.unwrap();
    let () = redis::cmd("SET")
        .arg(proj_key(1).0)
        .arg("not a hash")
        .query_async(&mut c)
        .await
        .unwrap();
    another_type_is_a_backend_error(&store).await;
}
