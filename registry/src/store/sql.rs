use std::{collections::BTreeMap, time::Duration};

use larder_protos::feast::core::{
    DataSource, Entity, FeatureService, FeatureView, FeatureViewVersionHistory,
    FeatureViewVersionRecord, Infra, LabelView, OnDemandFeatureView, Permission, Project,
    ProjectMetadata, Registry, SavedDataset, StreamFeatureView, ValidationReference,
};
use prost::Message;
use tokio_postgres::{Client, NoTls};

use super::{
    Change, ChangeSet, CommitOptions, Fetched, ObjectKey, ObjectKind, RegistrySnapshot,
    RegistryStore, Revision, StoredObjects, VersionKey, content_revision,
};
use crate::{
    config::SqlSchemaMode,
    error::RegistryError,
    writeback::{MetaEdit, ViewField, edit_view},
};

/// Feast 0.67.0's SQL registry schema on PostgreSQL, as its `SqlRegistry` creates it
/// (`schema_mode: auto`), read back with `pg_dump --schema-only`; every statement creates only
/// what is missing. What a commit creates under `schema_mode: auto` and the SQL fixtures
/// start from.
pub const FEAST_SQL_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS projects (project_id varchar(255) NOT NULL, project_name varchar(255) NOT NULL, last_updated_timestamp bigint NOT NULL, project_proto bytea NOT NULL, PRIMARY KEY (project_id));
CREATE TABLE IF NOT EXISTS entities (entity_name varchar(255) NOT NULL, project_id varchar(255) NOT NULL, last_updated_timestamp bigint NOT NULL, entity_proto bytea NOT NULL, PRIMARY KEY (entity_name, project_id));
CREATE TABLE IF NOT EXISTS data_sources (data_source_name varchar(255) NOT NULL, project_id varchar(255) NOT NULL, last_updated_timestamp bigint NOT NULL, data_source_proto bytea NOT NULL, PRIMARY KEY (data_source_name, project_id));
CREATE TABLE IF NOT EXISTS feature_views (feature_view_name varchar(255) NOT NULL, project_id varchar(255) NOT NULL, last_updated_timestamp bigint NOT NULL, materialized_intervals bytea, feature_view_proto bytea NOT NULL, user_metadata bytea, PRIMARY KEY (feature_view_name, project_id));
CREATE TABLE IF NOT EXISTS stream_feature_views (feature_view_name varchar(255) NOT NULL, project_id varchar(255) NOT NULL, last_updated_timestamp bigint NOT NULL, feature_view_proto bytea NOT NULL, user_metadata bytea, PRIMARY KEY (feature_view_name, project_id));
CREATE TABLE IF NOT EXISTS on_demand_feature_views (feature_view_name varchar(255) NOT NULL, project_id varchar(255) NOT NULL, last_updated_timestamp bigint NOT NULL, feature_view_proto bytea NOT NULL, user_metadata bytea, PRIMARY KEY (feature_view_name, project_id));
CREATE TABLE IF NOT EXISTS label_views (feature_view_name varchar(255) NOT NULL, project_id varchar(255) NOT NULL, last_updated_timestamp bigint NOT NULL, feature_view_proto bytea NOT NULL, user_metadata bytea, PRIMARY KEY (feature_view_name, project_id));
CREATE TABLE IF NOT EXISTS feature_services (feature_service_name varchar(255) NOT NULL, project_id varchar(255) NOT NULL, last_updated_timestamp bigint NOT NULL, feature_service_proto bytea NOT NULL, PRIMARY KEY (feature_service_name, project_id));
CREATE TABLE IF NOT EXISTS saved_datasets (saved_dataset_name varchar(255) NOT NULL, project_id varchar(255) NOT NULL, last_updated_timestamp bigint NOT NULL, saved_dataset_proto bytea NOT NULL, PRIMARY KEY (saved_dataset_name, project_id));
CREATE TABLE IF NOT EXISTS validation_references (validation_reference_name varchar(255) NOT NULL, project_id varchar(255) NOT NULL, last_updated_timestamp bigint NOT NULL, validation_reference_proto bytea NOT NULL, PRIMARY KEY (validation_reference_name, project_id));
CREATE TABLE IF NOT EXISTS managed_infra (infra_name varchar(255) NOT NULL, project_id varchar(255) NOT NULL, last_updated_timestamp bigint NOT NULL, infra_proto bytea NOT NULL, PRIMARY KEY (infra_name, project_id));
CREATE TABLE IF NOT EXISTS permissions (permission_name varchar(255) NOT NULL, project_id varchar(255) NOT NULL, last_updated_timestamp bigint NOT NULL, permission_proto bytea NOT NULL, PRIMARY KEY (permission_name, project_id));
CREATE TABLE IF NOT EXISTS feast_metadata (project_id varchar(255) NOT NULL, metadata_key varchar(50) NOT NULL, metadata_value text NOT NULL, last_updated_timestamp bigint NOT NULL, PRIMARY KEY (project_id, metadata_key));
CREATE TABLE IF NOT EXISTS feature_view_version_history (feature_view_name varchar(255) NOT NULL, project_id varchar(255) NOT NULL, version_number integer NOT NULL, feature_view_type varchar(50) NOT NULL, feature_view_proto bytea NOT NULL, created_timestamp bigint NOT NULL, description text, version_id varchar(36) NOT NULL, PRIMARY KEY (feature_view_name, project_id, version_number));
CREATE INDEX IF NOT EXISTS idx_projects_project_id ON projects (project_id);
CREATE INDEX IF NOT EXISTS idx_entities_project_id ON entities (project_id);
CREATE INDEX IF NOT EXISTS idx_data_sources_project_id ON data_sources (project_id);
CREATE INDEX IF NOT EXISTS idx_feature_views_project_id ON feature_views (project_id);
CREATE INDEX IF NOT EXISTS idx_stream_feature_views_project_id ON stream_feature_views (project_id);
CREATE INDEX IF NOT EXISTS idx_on_demand_feature_views_project_id ON on_demand_feature_views (project_id);
CREATE INDEX IF NOT EXISTS idx_label_views_project_id ON label_views (project_id);
CREATE INDEX IF NOT EXISTS idx_feature_services_project_id ON feature_services (project_id);
CREATE INDEX IF NOT EXISTS idx_saved_datasets_project_id ON saved_datasets (project_id);
CREATE INDEX IF NOT EXISTS idx_validation_references_project_id ON validation_references (project_id);
CREATE INDEX IF NOT EXISTS idx_managed_infra_project_id ON managed_infra (project_id);
CREATE INDEX IF NOT EXISTS idx_permissions_project_id ON permissions (project_id);
CREATE INDEX IF NOT EXISTS idx_feast_metadata_project_id ON feast_metadata (project_id);
CREATE INDEX IF NOT EXISTS idx_fv_version_history_project_id ON feature_view_version_history (project_id);
"#;

/// Feast's SQL registry (`registry_type: sql`) on PostgreSQL: one table per object kind, one
/// serialized object proto per row, keyed by (name, project_id = project name) (spec §2.4).
#[derive(Debug, Clone)]
pub struct SqlRegistryStore {
    /// The URL as configured (SQLAlchemy style), with the password masked, for messages.
    display_url: String,
    config: tokio_postgres::Config,
    schema_mode: SqlSchemaMode,
}

impl SqlRegistryStore {
    /// Accepts SQLAlchemy URLs as Feast does: `postgresql://`, `postgresql+psycopg://`,
    /// `postgresql+psycopg2://`, `postgres://`.
    pub fn new(url: &str) -> Result<Self, RegistryError> {
        let display_url = mask_password(url);
        let bad = |message: String| RegistryError::BadUrl {
            url: display_url.clone(),
            message,
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            bad("expected a database URL such as postgresql://user:pw@host/db".into())
        })?;
        let dialect = scheme.split('+').next().unwrap_or(scheme);
        if dialect != "postgresql" && dialect != "postgres" {
            return Err(RegistryError::Unsupported(format!(
                "sql registry dialect {dialect} (only PostgreSQL is supported)"
            )));
        }
        let mut config: tokio_postgres::Config = format!("postgresql://{rest}")
            .parse()
            .map_err(|e: tokio_postgres::Error| bad(e.to_string()))?;
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("larder");
        Ok(Self {
            display_url,
            config,
            schema_mode: SqlSchemaMode::Auto,
        })
    }

    /// What a commit does about missing tables: under [`SqlSchemaMode::Auto`] (the default, as
    /// in Feast) it creates Feast's schema first ([`FEAST_SQL_SCHEMA`], only what is missing);
    /// otherwise a change to a missing table fails.
    pub fn with_schema_mode(mut self, mode: SqlSchemaMode) -> Self {
        self.schema_mode = mode;
        self
    }

    fn sql_err(&self, source: tokio_postgres::Error) -> RegistryError {
        RegistryError::Sql {
            url: self.display_url.clone(),
            source,
        }
    }

    /// Rows `(project_id, name, proto bytes)` of one table; a table that does not exist yet
    /// (older Feast schemas lack e.g. `label_views`) reads as empty.
    async fn rows(
        &self,
        read: &Read<'_>,
        table: &'static str,
        name_col: &str,
        proto_col: &str,
    ) -> Result<Vec<(String, String, Vec<u8>)>, RegistryError> {
        if !read.tables.contains(table) {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT project_id, {name_col}, {proto_col} FROM {table}");
        match read.client.query(&sql, &[]).await {
            Ok(rows) => Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()),
            Err(e) => Err(self.sql_err(e)),
        }
    }

    /// Decodes every row of `table` into `M`, grouped by project.
    async fn objects<M: Message + Default>(
        &self,
        read: &Read<'_>,
        table: &'static str,
        name_col: &str,
        proto_col: &str,
        message: &'static str,
    ) -> Result<BTreeMap<String, Vec<M>>, RegistryError> {
        let mut out: BTreeMap<String, Vec<M>> = BTreeMap::new();
        for (project, name, bytes) in self.rows(read, table, name_col, proto_col).await? {
            let msg = M::decode(bytes.as_slice()).map_err(|source| RegistryError::CorruptRow {
                url: self.display_url.clone(),
                table,
                project: project.clone(),
                name,
                message,
                source,
            })?;
            out.entry(project).or_default().push(msg);
        }
        Ok(out)
    }
}

fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

macro_rules! set_project {
    ($items:expr, $project:expr, spec) => {
        for item in &mut $items {
            item.spec.get_or_insert_with(Default::default).project = $project.clone();
        }
    };
    ($items:expr, $project:expr, flat) => {
        for item in &mut $items {
            item.project = $project.clone();
        }
    };
}

#[async_trait::async_trait]
impl RegistryStore for SqlRegistryStore {
    fn location(&self) -> String {
        self.display_url.clone()
    }

    /// One read-only `REPEATABLE READ` transaction: the revision (every row's version, see
    /// [`SqlRegistryStore::revision`]) and, unless it is `seen`, every object — both of the
    /// same snapshot, so a concurrent `feast apply` is either wholly in or wholly out.
    async fn load_if_changed(&self, seen: Option<&Revision>) -> Result<Fetched, RegistryError> {
        let (client, conn_task) = self.connect().await?;
        let result = async {
            let read = self.begin_read(&client).await?;
            let revision = self.revision(&read).await?;
            let fetched = if seen == Some(&revision) {
                Fetched::Unchanged
            } else {
                Fetched::Changed {
                    snapshot: Box::new(self.read_all(&read).await?),
                    revision: Some(revision),
                }
            };
            self.end_read(read).await?;
            Ok(fetched)
        }
        .await;
        drop(client);
        let _ = conn_task.await;
        result
    }

    /// Every row of every object table, as stored, in one read-only `REPEATABLE READ`
    /// transaction with its revision.
    async fn load_objects(&self) -> Result<StoredObjects, RegistryError> {
        let (client, conn_task) = self.connect().await?;
        let result = async {
            let read = self.begin_read(&client).await?;
            let revision = self.revision(&read).await?;
            let mut objects = BTreeMap::new();
            for kind in ObjectKind::ALL {
                let (table, name_col, proto_col) = table_of(kind);
                for (project, name, bytes) in self.rows(&read, table, name_col, proto_col).await? {
                    objects.insert(ObjectKey::stored(kind, project, name), bytes.into());
                }
            }
            let versions = self
                .version_records(&read)
                .await?
                .into_iter()
                .map(|record| {
                    let bytes = record.encode_to_vec();
                    let key = VersionKey::of_record(&bytes).expect("a record just encoded decodes");
                    (key, bytes.into())
                })
                .collect();
            self.end_read(read).await?;
            Ok(StoredObjects {
                objects,
                versions,
                revision: Some(revision),
            })
        }
        .await;
        drop(client);
        let _ = conn_task.await;
        result
    }

    /// One transaction: locks every registry table against writers, computes the revision as
    /// [`RegistryStore::load_if_changed`] does, compares it with `expected`, then inserts,
    /// updates (only rows whose bytes differ) and deletes rows, sets the changed projects'
    /// `last_updated_timestamp` in `feast_metadata`, and reads the new revision before
    /// committing.
    ///
    /// Why table locks rather than `SERIALIZABLE`: the revision covers every table, so the
    /// check must be serialized with any write to any of them, including Feast's own writers,
    /// which run plain `READ COMMITTED` transactions. `SHARE ROW EXCLUSIVE` conflicts with
    /// itself and with the `ROW EXCLUSIVE` lock every `INSERT`/`UPDATE`/`DELETE` takes, but not
    /// with readers: while a commit holds it, no one else can change the registry, so the
    /// revision it checked is the one it writes over, and a second commit from the same
    /// revision waits, then sees the first one's rows and is refused. Serializable snapshot
    /// isolation would only detect conflicts among serializable transactions (not Feast's),
    /// and would report them as retryable serialization failures at any statement, some
    /// false positives included. The tables are locked in one statement in a fixed order, so
    /// two commits cannot deadlock each other.
    async fn commit(
        &self,
        expected: Option<&Revision>,
        changes: &ChangeSet,
        options: &CommitOptions,
    ) -> Result<Revision, RegistryError> {
        let (client, conn_task) = self.connect().await?;
        let result = async {
            client
                .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                .await
                .map_err(|e| self.sql_err(e))?;
            let mut tables = self.existing_tables(&client).await?;
            if self.schema_mode == SqlSchemaMode::Auto && tables.len() < TABLES.len() {
                // Inside the transaction: a commit that fails later creates nothing.
                client
                    .batch_execute(FEAST_SQL_SCHEMA)
                    .await
                    .map_err(|e| self.sql_err(e))?;
                tables = self.existing_tables(&client).await?;
            }
            for (key, _) in changes.iter() {
                let (table, _, _) = table_of(key.kind());
                if !tables.contains(table) {
                    return Err(RegistryError::SqlTableMissing {
                        url: self.display_url.clone(),
                        table,
                        kind: key.kind().label(),
                    });
                }
            }
            let needed = changes
                .versions()
                .next()
                .map(|_| (VERSIONS, "feature view version record"))
                .into_iter()
                .chain(changes.infra().next().map(|_| (INFRA, "infra")));
            for (table, kind) in needed {
                if !tables.contains(table) {
                    return Err(RegistryError::SqlTableMissing {
                        url: self.display_url.clone(),
                        table,
                        kind,
                    });
                }
            }
            let locked: Vec<&str> = TABLES
                .iter()
                .copied()
                .filter(|t| tables.contains(*t))
                .collect();
            if !locked.is_empty() {
                client
                    .batch_execute(&format!(
                        "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
                        locked.join(", ")
                    ))
                    .await
                    .map_err(|e| self.sql_err(e))?;
            }
            let read = Read {
                client: &client,
                tables,
            };
            let still = match expected {
                Some(expected) => self.revision(&read).await? == *expected,
                None => !self.has_objects(&read).await?,
            };
            if !still {
                client
                    .batch_execute("ROLLBACK")
                    .await
                    .map_err(|e| self.sql_err(e))?;
                return Err(RegistryError::Conflict {
                    location: self.display_url.clone(),
                    expected: expected.cloned(),
                });
            }
            let now = options.last_updated().seconds;
            let mut changed_projects = std::collections::BTreeSet::new();
            for (key, change) in changes.iter() {
                if self.apply(&client, key, change, now).await? {
                    changed_projects.insert(key.project_name());
                }
            }
            for (key, change) in changes.versions() {
                if self.apply_version(&client, key, change).await? {
                    changed_projects.insert(key.project_name());
                }
            }
            for (project, bytes) in changes.infra() {
                if self.apply_infra(&client, project, bytes, now).await? {
                    changed_projects.insert(project);
                }
            }
            if read.tables.contains("feast_metadata") {
                for project in changed_projects {
                    self.set_last_updated(&client, project, now).await?;
                }
            }
            let revision = self.revision(&read).await?;
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| self.sql_err(e))?;
            Ok(revision)
        }
        .await;
        drop(client);
        let _ = conn_task.await;
        result
    }

    /// Edits the view's row in one transaction (`SELECT … FOR UPDATE`, then `UPDATE`), as
    /// Feast's SQL registry updates one object per row. The view's table (and `feast_metadata`)
    /// are locked first as [`RegistryStore::commit`] locks them, so a meta edit and a commit
    /// wait for each other instead of deadlocking on the row.
    async fn update_view_meta(
        &self,
        project: &str,
        which: ViewField,
        view: &str,
        edit: &MetaEdit,
    ) -> Result<(), RegistryError> {
        let table = match which {
            ViewField::FeatureView => "feature_views",
            ViewField::StreamFeatureView => "stream_feature_views",
        };
        let (mut client, conn_task) = self.connect().await?;
        let result = async {
            let has_metadata = self
                .existing_tables(&client)
                .await?
                .contains("feast_metadata");
            let tx = client.transaction().await.map_err(|e| self.sql_err(e))?;
            let locked = if has_metadata {
                format!("{table}, feast_metadata")
            } else {
                table.to_owned()
            };
            tx.batch_execute(&format!("LOCK TABLE {locked} IN SHARE ROW EXCLUSIVE MODE"))
                .await
                .map_err(|e| self.sql_err(e))?;
            let row = tx
                .query_opt(
                    &format!("SELECT feature_view_proto FROM {table} WHERE feature_view_name = $1 AND project_id = $2 FOR UPDATE"),
                    &[&view, &project],
                )
                .await
                .map_err(|e| self.sql_err(e))?
                .ok_or_else(|| RegistryError::ObjectMissing {
                    kind: "feature view",
                    name: view.to_owned(),
                    project: project.to_owned(),
                })?;
            let bytes: Vec<u8> = row.get(0);
            let edited = edit_view(&bytes, edit).map_err(|source| RegistryError::WriteBack {
                location: self.display_url.clone(),
                source,
            })?;
            let now = edit.last_updated.seconds;
            tx.execute(
                &format!("UPDATE {table} SET feature_view_proto = $1, last_updated_timestamp = $2 WHERE feature_view_name = $3 AND project_id = $4"),
                &[&edited, &now, &view, &project],
            )
            .await
            .map_err(|e| self.sql_err(e))?;
            // Feast keeps the project's last update time in feast_metadata. (A failed
            // statement would abort the transaction, so a missing table is not queried.)
            if has_metadata {
                tx.execute(
                    "UPDATE feast_metadata SET metadata_value = $1, last_updated_timestamp = $2 \
                     WHERE project_id = $3 AND metadata_key = 'last_updated_timestamp'",
                    &[&now.to_string(), &now, &project],
                )
                .await
                .map_err(|e| self.sql_err(e))?;
            }
            tx.commit().await.map_err(|e| self.sql_err(e))
        }
        .await;
        drop(client);
        let _ = conn_task.await;
        result
    }
}

impl SqlRegistryStore {
    async fn connect(&self) -> Result<(Client, tokio::task::JoinHandle<()>), RegistryError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| self.sql_err(e))?;
        let task = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "sql registry connection ended");
            }
        });
        Ok((client, task))
    }
}

/// One registry read: the connection (inside the read's transaction) and which tables exist.
struct Read<'a> {
    client: &'a Client,
    tables: std::collections::BTreeSet<String>,
}

impl SqlRegistryStore {
    /// Begins a registry read: one read-only `REPEATABLE READ` transaction, so everything read
    /// in it (the revision and the objects) is of one snapshot.
    async fn begin_read<'a>(&self, client: &'a Client) -> Result<Read<'a>, RegistryError> {
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| self.sql_err(e))?;
        Ok(Read {
            tables: self.existing_tables(client).await?,
            client,
        })
    }

    async fn end_read(&self, read: Read<'_>) -> Result<(), RegistryError> {
        read.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| self.sql_err(e))
    }
}

/// The table of a kind of object, its name column and its proto column (spec §2.4). A
/// project's row also has `project_id` = its name.
fn table_of(kind: ObjectKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        ObjectKind::Project => ("projects", "project_name", "project_proto"),
        ObjectKind::Entity => ("entities", "entity_name", "entity_proto"),
        ObjectKind::DataSource => ("data_sources", "data_source_name", "data_source_proto"),
        ObjectKind::FeatureView => ("feature_views", "feature_view_name", "feature_view_proto"),
        ObjectKind::StreamFeatureView => (
            "stream_feature_views",
            "feature_view_name",
            "feature_view_proto",
        ),
        ObjectKind::OnDemandFeatureView => (
            "on_demand_feature_views",
            "feature_view_name",
            "feature_view_proto",
        ),
        ObjectKind::LabelView => ("label_views", "feature_view_name", "feature_view_proto"),
        ObjectKind::FeatureService => (
            "feature_services",
            "feature_service_name",
            "feature_service_proto",
        ),
        ObjectKind::SavedDataset => (
            "saved_datasets",
            "saved_dataset_name",
            "saved_dataset_proto",
        ),
        ObjectKind::ValidationReference => (
            "validation_references",
            "validation_reference_name",
            "validation_reference_proto",
        ),
        ObjectKind::Permission => ("permissions", "permission_name", "permission_proto"),
    }
}

/// Feast's table of feature-view version records: one row per (view, project, version number),
/// the record's fields as columns (`created_timestamp` in epoch seconds).
const VERSIONS: &str = "feature_view_version_history";
/// Feast's table of infra objects: one row per project, named [`INFRA_NAME`].
const INFRA: &str = "managed_infra";
const INFRA_NAME: &str = "infra_obj";

/// The tables a registry read covers.
const TABLES: [&str; 14] = [
    "projects",
    "entities",
    "feature_views",
    "data_sources",
    "on_demand_feature_views",
    "stream_feature_views",
    "feature_services",
    "saved_datasets",
    "validation_references",
    "permissions",
    "label_views",
    "managed_infra",
    "feast_metadata",
    VERSIONS,
];

impl SqlRegistryStore {
    /// Every row version of the registry's tables: PostgreSQL gives each inserted or updated
    /// row a new `xmin` (its writing transaction) and `ctid` (its place), and a deleted row
    /// leaves the list, so any change to any object changes this — unlike Feast's
    /// `last_updated_timestamp` metadata, whose one-second resolution can hide a second change.
    /// Costs one small query per table instead of fetching and decoding every object.
    async fn revision(&self, read: &Read<'_>) -> Result<Revision, RegistryError> {
        let mut versions = String::new();
        for table in TABLES {
            if !read.tables.contains(table) {
                // As an empty table reads: creating the table (`schema_mode: auto`) is no
                // change of the registry.
                versions.push_str(&format!("{table}:0:;"));
                continue;
            }
            let sql = format!(
                "SELECT count(*)::text, coalesce(string_agg(xmin::text || '@' || ctid::text, ',' \
                 ORDER BY ctid), '') FROM {table}"
            );
            let row = read
                .client
                .query_one(&sql, &[])
                .await
                .map_err(|e| self.sql_err(e))?;
            let (count, rows): (String, String) = (row.get(0), row.get(1));
            versions.push_str(&format!("{table}:{count}:{rows};"));
        }
        Ok(content_revision(versions.as_bytes()))
    }

    /// Which of [`TABLES`] exist (in the connection's schema search path): a missing table
    /// reads as empty, and is not queried — an error would abort the read's transaction.
    async fn existing_tables(
        &self,
        client: &Client,
    ) -> Result<std::collections::BTreeSet<String>, RegistryError> {
        let names: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
        let rows = client
            .query(
                "SELECT c.relname::text FROM pg_catalog.pg_class c \
                 WHERE c.relname = ANY($1) AND pg_catalog.pg_table_is_visible(c.oid) \
                 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                &[&names],
            )
            .await
            .map_err(|e| self.sql_err(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Whether any object table has a row (`managed_infra` and `feast_metadata` do not count).
    async fn has_objects(&self, read: &Read<'_>) -> Result<bool, RegistryError> {
        for kind in ObjectKind::ALL {
            let (table, _, _) = table_of(kind);
            if !read.tables.contains(table) {
                continue;
            }
            let row = read
                .client
                .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
                .await
                .map_err(|e| self.sql_err(e))?;
            if row.get::<_, bool>(0) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes one change inside a commit's transaction; whether a row changed. An upsert of
    /// the bytes a row already holds leaves the row alone; deleting a missing row fails.
    async fn apply(
        &self,
        client: &Client,
        key: &ObjectKey,
        change: &Change,
        now: i64,
    ) -> Result<bool, RegistryError> {
        let (table, name_col, proto_col) = table_of(key.kind());
        let (name, project) = (key.name(), key.project_name());
        let where_key = format!("{name_col} = $1 AND project_id = $2");
        match change {
            Change::Upsert(bytes) => {
                let bytes: &[u8] = bytes;
                let stored = client
                    .query_opt(
                        &format!("SELECT {proto_col} FROM {table} WHERE {where_key}"),
                        &[&name, &project],
                    )
                    .await
                    .map_err(|e| self.sql_err(e))?;
                let sql = match stored {
                    Some(row) if row.get::<_, &[u8]>(0) == bytes => return Ok(false),
                    Some(_) => format!(
                        "UPDATE {table} SET {proto_col} = $3, last_updated_timestamp = $4 \
                         WHERE {where_key}"
                    ),
                    None => format!(
                        "INSERT INTO {table} ({name_col}, project_id, {proto_col}, \
                         last_updated_timestamp) VALUES ($1, $2, $3, $4)"
                    ),
                };
                client
                    .execute(&sql, &[&name, &project, &bytes, &now])
                    .await
                    .map_err(|e| self.sql_err(e))?;
                Ok(true)
            }
            Change::Delete => {
                let deleted = client
                    .execute(
                        &format!("DELETE FROM {table} WHERE {where_key}"),
                        &[&name, &project],
                    )
                    .await
                    .map_err(|e| self.sql_err(e))?;
                if deleted == 0 {
                    return Err(RegistryError::ObjectMissing {
                        kind: key.kind().label(),
                        name: name.to_owned(),
                        project: project.to_owned(),
                    });
                }
                Ok(true)
            }
        }
    }

    /// Writes one version-record change inside a commit's transaction; whether a row changed.
    /// The record's fields go to their columns; `created_timestamp` keeps whole seconds, as
    /// Feast's column does.
    async fn apply_version(
        &self,
        client: &Client,
        key: &VersionKey,
        change: &Change,
    ) -> Result<bool, RegistryError> {
        let (view, project, number) = (key.view(), key.project_name(), key.number());
        match change {
            Change::Upsert(bytes) => {
                let r = FeatureViewVersionRecord::decode(bytes.as_ref()).map_err(|e| {
                    RegistryError::InvalidObject {
                        kind: "feature view version record",
                        message: e.to_string(),
                    }
                })?;
                let created = r.created_timestamp.map_or(0, |t| t.seconds);
                let changed = client
                    .execute(
                        &format!(
                            "INSERT INTO {VERSIONS} (feature_view_name, project_id, version_number, \
                             feature_view_type, feature_view_proto, created_timestamp, description, \
                             version_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                             ON CONFLICT (feature_view_name, project_id, version_number) DO UPDATE \
                             SET feature_view_type = EXCLUDED.feature_view_type, \
                             feature_view_proto = EXCLUDED.feature_view_proto, \
                             created_timestamp = EXCLUDED.created_timestamp, \
                             description = EXCLUDED.description, version_id = EXCLUDED.version_id \
                             WHERE ({VERSIONS}.feature_view_type, {VERSIONS}.feature_view_proto, \
                             {VERSIONS}.created_timestamp, {VERSIONS}.description, \
                             {VERSIONS}.version_id) IS DISTINCT FROM (EXCLUDED.feature_view_type, \
                             EXCLUDED.feature_view_proto, EXCLUDED.created_timestamp, \
                             EXCLUDED.description, EXCLUDED.version_id)"
                        ),
                        &[
                            &view,
                            &project,
                            &number,
                            &r.feature_view_type,
                            &r.feature_view_proto,
                            &created,
                            &r.description,
                            &r.version_id,
                        ],
                    )
                    .await
                    .map_err(|e| self.sql_err(e))?;
                Ok(changed > 0)
            }
            Change::Delete => {
                let deleted = client
                    .execute(
                        &format!(
                            "DELETE FROM {VERSIONS} WHERE feature_view_name = $1 AND \
                             project_id = $2 AND version_number = $3"
                        ),
                        &[&view, &project, &number],
                    )
                    .await
                    .map_err(|e| self.sql_err(e))?;
                if deleted == 0 {
                    return Err(RegistryError::ObjectMissing {
                        kind: "feature view version",
                        name: format!("{view}@v{number}"),
                        project: project.to_owned(),
                    });
                }
                Ok(true)
            }
        }
    }

    /// Sets a project's infra row (Feast's `update_infra`); whether it changed.
    async fn apply_infra(
        &self,
        client: &Client,
        project: &str,
        bytes: &[u8],
        now: i64,
    ) -> Result<bool, RegistryError> {
        let changed = client
            .execute(
                &format!(
                    "INSERT INTO {INFRA} (infra_name, project_id, last_updated_timestamp, \
                     infra_proto) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (infra_name, project_id) DO UPDATE \
                     SET infra_proto = EXCLUDED.infra_proto, \
                     last_updated_timestamp = EXCLUDED.last_updated_timestamp \
                     WHERE {INFRA}.infra_proto IS DISTINCT FROM EXCLUDED.infra_proto"
                ),
                &[&INFRA_NAME, &project, &now, &bytes],
            )
            .await
            .map_err(|e| self.sql_err(e))?;
        Ok(changed > 0)
    }

    /// Every row of the version table, as records.
    async fn version_records(
        &self,
        read: &Read<'_>,
    ) -> Result<Vec<FeatureViewVersionRecord>, RegistryError> {
        if !read.tables.contains(VERSIONS) {
            return Ok(Vec::new());
        }
        let rows = read
            .client
            .query(
                &format!(
                    "SELECT feature_view_name, project_id, version_number, feature_view_type, \
                     feature_view_proto, created_timestamp, coalesce(description, ''), version_id \
                     FROM {VERSIONS} ORDER BY project_id, feature_view_name, version_number"
                ),
                &[],
            )
            .await
            .map_err(|e| self.sql_err(e))?;
        Ok(rows
            .iter()
            .map(|r| FeatureViewVersionRecord {
                feature_view_name: r.get(0),
                project_id: r.get(1),
                version_number: r.get(2),
                feature_view_type: r.get(3),
                feature_view_proto: r.get(4),
                created_timestamp: Some(prost_types::Timestamp {
                    seconds: r.get(5),
                    nanos: 0,
                }),
                description: r.get(6),
                version_id: r.get(7),
            })
            .collect())
    }

    /// Sets a project's `last_updated_timestamp` metadata row (epoch seconds, as text and as
    /// the row's own timestamp), inserting it if the project has none yet, as Feast does.
    async fn set_last_updated(
        &self,
        client: &Client,
        project: &str,
        now: i64,
    ) -> Result<(), RegistryError> {
        let value = now.to_string();
        let updated = client
            .execute(
                "UPDATE feast_metadata SET metadata_value = $1, last_updated_timestamp = $2 \
                 WHERE project_id = $3 AND metadata_key = 'last_updated_timestamp'",
                &[&value, &now, &project],
            )
            .await
            .map_err(|e| self.sql_err(e))?;
        if updated == 0 {
            client
                .execute(
                    "INSERT INTO feast_metadata (project_id, metadata_key, metadata_value, \
                     last_updated_timestamp) VALUES ($1, 'last_updated_timestamp', $2, $3)",
                    &[&project, &value, &now],
                )
                .await
                .map_err(|e| self.sql_err(e))?;
        }
        Ok(())
    }

    async fn read_all(&self, read: &Read<'_>) -> Result<RegistrySnapshot, RegistryError> {
        let projects: BTreeMap<String, Vec<Project>> = self
            .objects(
                read,
                "projects",
                "project_name",
                "project_proto",
                "feast.core.Project",
            )
            .await?;
        let mut entities: BTreeMap<String, Vec<Entity>> = self
            .objects(
                read,
                "entities",
                "entity_name",
                "entity_proto",
                "feast.core.Entity",
            )
            .await?;
        let mut feature_views: BTreeMap<String, Vec<FeatureView>> = self
            .objects(
                read,
                "feature_views",
                "feature_view_name",
                "feature_view_proto",
                "feast.core.FeatureView",
            )
            .await?;
        let mut data_sources: BTreeMap<String, Vec<DataSource>> = self
            .objects(
                read,
                "data_sources",
                "data_source_name",
                "data_source_proto",
                "feast.core.DataSource",
            )
            .await?;
        let mut odfvs: BTreeMap<String, Vec<OnDemandFeatureView>> = self
            .objects(
                read,
                "on_demand_feature_views",
                "feature_view_name",
                "feature_view_proto",
                "feast.core.OnDemandFeatureView",
            )
            .await?;
        let mut sfvs: BTreeMap<String, Vec<StreamFeatureView>> = self
            .objects(
                read,
                "stream_feature_views",
                "feature_view_name",
                "feature_view_proto",
                "feast.core.StreamFeatureView",
            )
            .await?;
        let mut services: BTreeMap<String, Vec<FeatureService>> = self
            .objects(
                read,
                "feature_services",
                "feature_service_name",
                "feature_service_proto",
                "feast.core.FeatureService",
            )
            .await?;
        let mut saved: BTreeMap<String, Vec<SavedDataset>> = self
            .objects(
                read,
                "saved_datasets",
                "saved_dataset_name",
                "saved_dataset_proto",
                "feast.core.SavedDataset",
            )
            .await?;
        let mut validation: BTreeMap<String, Vec<ValidationReference>> = self
            .objects(
                read,
                "validation_references",
                "validation_reference_name",
                "validation_reference_proto",
                "feast.core.ValidationReference",
            )
            .await?;
        let mut permissions: BTreeMap<String, Vec<Permission>> = self
            .objects(
                read,
                "permissions",
                "permission_name",
                "permission_proto",
                "feast.core.Permission",
            )
            .await?;
        let mut label_views: BTreeMap<String, Vec<LabelView>> = self
            .objects(
                read,
                "label_views",
                "feature_view_name",
                "feature_view_proto",
                "feast.core.LabelView",
            )
            .await?;
        let mut infra: BTreeMap<String, Vec<Infra>> = self
            .objects(
                read,
                "managed_infra",
                "infra_name",
                "infra_proto",
                "feast.core.Infra",
            )
            .await?;
        let uuids = if read.tables.contains("feast_metadata") {
            read.client
                .query(
                    "SELECT project_id, metadata_value FROM feast_metadata WHERE metadata_key = 'project_uuid'",
                    &[],
                )
                .await
                .map_err(|e| self.sql_err(e))?
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect::<BTreeMap<_, _>>()
        } else {
            BTreeMap::new()
        };

        let records = self.version_records(read).await?;
        let mut r = Registry {
            registry_schema_version: "1".to_owned(),
            feature_view_version_history: (!records.is_empty())
                .then_some(FeatureViewVersionHistory { records }),
            ..Default::default()
        };
        let mut project_infra = BTreeMap::new();
        for (project_id, mut project_protos) in projects {
            for p in &mut project_protos {
                if let Some(ts) = p.meta.as_ref().and_then(|m| m.last_updated_timestamp)
                    && r.last_updated
                        .is_none_or(|cur| (cur.seconds, cur.nanos) < (ts.seconds, ts.nanos))
                {
                    r.last_updated = Some(ts);
                }
            }
            r.projects.extend(project_protos);
            let mut e = entities.remove(&project_id).unwrap_or_default();
            set_project!(e, project_id, spec);
            r.entities.extend(e);
            let mut fv = feature_views.remove(&project_id).unwrap_or_default();
            set_project!(fv, project_id, spec);
            r.feature_views.extend(fv);
            let mut ds = data_sources.remove(&project_id).unwrap_or_default();
            set_project!(ds, project_id, flat);
            r.data_sources.extend(ds);
            let mut o = odfvs.remove(&project_id).unwrap_or_default();
            set_project!(o, project_id, spec);
            r.on_demand_feature_views.extend(o);
            let mut s = sfvs.remove(&project_id).unwrap_or_default();
            set_project!(s, project_id, spec);
            r.stream_feature_views.extend(s);
            let mut fs = services.remove(&project_id).unwrap_or_default();
            set_project!(fs, project_id, spec);
            r.feature_services.extend(fs);
            let mut sd = saved.remove(&project_id).unwrap_or_default();
            set_project!(sd, project_id, spec);
            r.saved_datasets.extend(sd);
            let mut v = validation.remove(&project_id).unwrap_or_default();
            set_project!(v, project_id, flat);
            r.validation_references.extend(v);
            let mut pm = permissions.remove(&project_id).unwrap_or_default();
            set_project!(pm, project_id, spec);
            r.permissions.extend(pm);
            let mut lv = label_views.remove(&project_id).unwrap_or_default();
            set_project!(lv, project_id, spec);
            r.label_views.extend(lv);
            if let Some(uuid) = uuids.get(&project_id) {
                r.project_metadata.push(ProjectMetadata {
                    project: project_id.clone(),
                    project_uuid: uuid.clone(),
                });
            }
            let project_inf = infra
                .remove(&project_id)
                .and_then(|mut v| v.pop())
                .unwrap_or_default();
            r.infra = Some(project_inf.clone());
            project_infra.insert(project_id, project_inf);
        }
        Ok(RegistrySnapshot {
            proto: r,
            project_infra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_urls_are_accepted_and_passwords_masked() {
        let s =
            SqlRegistryStore::new("postgresql+psycopg://feast:s3cret@127.0.0.1:5432/reg").unwrap();
        assert_eq!(
            s.location(),
            "postgresql+psycopg://feast:***@127.0.0.1:5432/reg"
        );
        assert!(SqlRegistryStore::new("postgres://u@h/db").is_ok());
        let e = SqlRegistryStore::new("mysql+pymysql://u:p@h/db").unwrap_err();
        assert!(e.to_string().contains("mysql"), "{e}");
        let e = SqlRegistryStore::new("not a url").unwrap_err();
        assert!(e.to_string().contains("not a url"), "{e}");
    }
}
