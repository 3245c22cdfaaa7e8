//! Feast's SQL registry on the local PostgreSQL (127.0.0.1:5432, user postgres, trust auth):
//! each test creates its own database with Feast's tables and drops it afterwards.

use std::sync::Arc;

use larder_protos::feast::core::FeatureViewState;
use larder_registry::{
    config::SqlSchemaMode,
    conformance::{self, Blob, FEAST_SQL_SCHEMA, Fixture},
    error::RegistryError,
    store::{ChangeSet, CommitOptions, ObjectKind, RegistryStore, SqlRegistryStore},
    writeback::{MetaEdit, ViewField},
};
use tokio_postgres::{Client, NoTls};

async fn connect(db: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={db}"),
        NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("the local PostgreSQL on 127.0.0.1:5432 (run scripts/test): {e}"));
    tokio::spawn(connection);
    client
}

struct Sql {
    db: String,
    url: String,
}

impl Fixture for Sql {
    fn handle(&self) -> Arc<dyn RegistryStore> {
        Arc::new(SqlRegistryStore::new(&self.url).unwrap())
    }

    fn blob(&self) -> Option<&dyn Blob> {
        None
    }
}

impl Sql {
    async fn new() -> Self {
        let db = format!("larder_conf_{}", uuid::Uuid::new_v4().simple());
        connect("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        connect(&db)
            .await
            .batch_execute(FEAST_SQL_SCHEMA)
            .await
            .unwrap();
        let url = format!("postgresql+psycopg://postgres@127.0.0.1:5432/{db}");
        Self { db, url }
    }
}

/// Drops the database, also when the test panicked (on a thread of its own: `drop` cannot
/// await, and may run inside the test's runtime).
impl Drop for Sql {
    fn drop(&mut self) {
        let db = self.db.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    connect("postgres")
                        .await
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        .await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.db);
        }
    }
}

async fn fixture() -> Box<dyn Fixture> {
    Box::new(Sql::new().await)
}

larder_registry::registry_store_suite!(fixture);

fn one(kind: ObjectKind, bytes: Vec<u8>) -> ChangeSet {
    let mut set = ChangeSet::new();
    set.upsert(kind, bytes).unwrap();
    set
}

/// The row version (writing transaction and place) of entity "driver".
async fn version(db: &Client) -> String {
    db.query_one(
        "SELECT xmin::text || '@' || ctid::text FROM entities WHERE entity_name = 'driver'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn rows_whose_bytes_are_unchanged_are_not_rewritten() {
    let sql = Sql::new().await;
    let store = sql.handle();
    let mut set = one(ObjectKind::Project, conformance::project("conf"));
    set.upsert(
        ObjectKind::Entity,
        conformance::entity("conf", "driver", ""),
    )
    .unwrap();
    let r1 = store
        .commit(None, &set, &CommitOptions::default())
        .await
        .unwrap();
    let db = connect(&sql.db).await;
    let before = version(&db).await;
    // The same bytes again: no row is written, so the revision stays.
    let r2 = store
        .commit(
            Some(&r1),
            &one(
                ObjectKind::Entity,
                conformance::entity("conf", "driver", ""),
            ),
            &CommitOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(version(&db).await, before);
    assert_eq!(r2, r1);
    // Different bytes: the row is updated.
    store
        .commit(
            Some(&r2),
            &one(
                ObjectKind::Entity,
                conformance::entity("conf", "driver", "changed"),
            ),
            &CommitOptions::default(),
        )
        .await
        .unwrap();
    assert_ne!(version(&db).await, before);
}

#[tokio::test]
async fn commits_set_the_rows_and_the_projects_last_update() {
    let sql = Sql::new().await;
    let store = sql.handle();
    let mut set = one(ObjectKind::Project, conformance::project("conf"));
    set.upsert(
        ObjectKind::Entity,
        conformance::entity("conf", "driver", ""),
    )
    .unwrap();
    let options = CommitOptions {
        last_updated: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        }),
    };
    store.commit(None, &set, &options).await.unwrap();
    let db = connect(&sql.db).await;
    let row = db
        .query_one(
            "SELECT project_id, last_updated_timestamp FROM entities WHERE entity_name = 'driver'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "conf");
    assert_eq!(row.get::<_, i64>(1), 1_700_000_000);
    let row = db
        .query_one("SELECT project_name, project_id FROM projects", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("conf".into(), "conf".into())
    );
    let row = db
        .query_one(
            "SELECT metadata_value, last_updated_timestamp FROM feast_metadata \
             WHERE project_id = 'conf' AND metadata_key = 'last_updated_timestamp'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "1700000000");
    assert_eq!(row.get::<_, i64>(1), 1_700_000_000);
}

/// `schema_mode: verify` (or `skip`): no DDL, a change to a missing table is refused.
#[tokio::test]
async fn a_kind_whose_table_is_missing_is_refused_without_schema_mode_auto() {
    let sql = Sql::new().await;
    connect(&sql.db)
        .await
        .batch_execute("DROP TABLE label_views")
        .await
        .unwrap();
    let store: Arc<dyn RegistryStore> = Arc::new(
        SqlRegistryStore::new(&sql.url)
            .unwrap()
            .with_schema_mode(SqlSchemaMode::Verify),
    );
    let (_, revision) = store.load_revised().await.unwrap();
    let label_view = conformance::one_of_every_kind("conf")
        .into_iter()
        .find(|(k, _)| *k == ObjectKind::LabelView)
        .unwrap()
        .1;
    let mut set = one(ObjectKind::Project, conformance::project("conf"));
    set.upsert(ObjectKind::LabelView, label_view).unwrap();
    match store
        .commit(revision.as_ref(), &set, &CommitOptions::default())
        .await
    {
        Err(RegistryError::SqlTableMissing { table, kind, .. }) => {
            assert_eq!((table, kind), ("label_views", "label view"))
        }
        other => panic!("{other:?}"),
    }
    assert!(store.load_objects().await.unwrap().objects.is_empty());
    store
        .commit(
            revision.as_ref(),
            &one(ObjectKind::Project, conformance::project("conf")),
            &CommitOptions::default(),
        )
        .await
        .expect("other kinds still commit");
}

/// `schema_mode: auto` (the default): a commit creates Feast's missing tables, here on a
/// database with none at all, and its objects land.
#[tokio::test]
async fn schema_mode_auto_creates_the_missing_tables() {
    let sql = Sql::new().await;
    let all_tables = "projects, entities, data_sources, feature_views, stream_feature_views, \
        on_demand_feature_views, label_views, feature_services, saved_datasets, \
        validation_references, managed_infra, permissions, feast_metadata, \
        feature_view_version_history";
    connect(&sql.db)
        .await
        .batch_execute(&format!("DROP TABLE {all_tables}"))
        .await
        .unwrap();
    let store = sql.handle();
    let (_, revision) = store.load_revised().await.unwrap();
    let all = conformance::one_of_every_kind("conf");
    let mut set = ChangeSet::new();
    for (kind, bytes) in &all {
        set.upsert(*kind, bytes.clone()).unwrap();
    }
    store
        .commit(revision.as_ref(), &set, &CommitOptions::default())
        .await
        .expect("the commit creates the schema");
    assert_eq!(store.load_objects().await.unwrap().objects.len(), all.len());
    let count: i64 = connect(&sql.db)
        .await
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 14, "Feast's 14 tables");
}

/// Without `feast_metadata` (older schemas) a meta edit still lands: a failed statement would
/// abort the transaction, and PostgreSQL answers `COMMIT` of an aborted transaction with a
/// silent rollback.
#[tokio::test]
async fn a_meta_edit_without_feast_metadata_still_lands() {
    let sql = Sql::new().await;
    connect(&sql.db)
        .await
        .batch_execute("DROP TABLE feast_metadata")
        .await
        .unwrap();
    let store = sql.handle();
    let mut set = one(ObjectKind::Project, conformance::project("conf"));
    set.upsert(
        ObjectKind::FeatureView,
        conformance::feature_view("conf", "stats"),
    )
    .unwrap();
    store
        .commit(None, &set, &CommitOptions::default())
        .await
        .unwrap();
    let edit = MetaEdit {
        state: FeatureViewState::AvailableOnline,
        last_updated: prost_types::Timestamp {
            seconds: 10,
            nanos: 0,
        },
        append_interval: Some((
            prost_types::Timestamp::default(),
            prost_types::Timestamp {
                seconds: 5,
                nanos: 0,
            },
        )),
    };
    store
        .update_view_meta("conf", ViewField::FeatureView, "stats", &edit)
        .await
        .unwrap();
    let snapshot = store.load().await.unwrap();
    let meta = snapshot.proto.feature_views[0].meta.as_ref().unwrap();
    assert_eq!(meta.materialization_intervals.len(), 1);
}
