//! The writes of Feast's registry server (`Apply*`, `Delete*`, `Commit`; spec §8.3): what a
//! Feast client with `registry_type: remote` sends when it applies objects. Feast's client
//! sends each object with `commit=false` and then `Commit`, so changes are staged per client
//! connection, on top of the registry as it was when the connection's first change came, and
//! committed through the store's revision-checked commit: if another writer committed in
//! between, the commit fails with a conflict (Feast's `FeastError`, gRPC FAILED_PRECONDITION)
//! and nothing of it is written — two appliers never overwrite each other silently. A
//! connection that closes with changes staged and not committed leaves the registry as it was.
//!
//! Each kind follows Feast's `Registry.apply_*` rules: the object is stored under the
//! request's project; an object that exists keeps its `created_timestamp` and gets the
//! commit's time as `last_updated_timestamp` (a new one gets it as both, unless it brings a
//! created time); a data source equal to the stored one (apart from that metadata) is left
//! as it is, and a data source gets Feast's `data_source_class_type` for its type; a project
//! named by a change that the registry lacks is created, as Feast creates it.
//! `ApplyMaterialization` records an interval in the view's meta, every other byte kept. Deleting an
//! object that is not there is Feast's not-found error for its kind. Feature views are not
//! written yet (their version history has no store support): `ApplyFeatureView` and
//! `DeleteFeatureView` answer UNIMPLEMENTED and drop what the connection had staged, so the
//! client's failed apply is not committed in part later.
//!
//! A client is a connection: gRPC clients in one process that share a connection to the
//! server (Python gRPC's channels to one address do) share one staging, as every client of
//! Feast's own registry server shares one.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, Weak},
};

use bytes::Bytes;
use larder_protos::feast::core as pb;
use larder_registry::{
    clock::Clock,
    error::RegistryError,
    store::{Change, ChangeSet, CommitOptions, ObjectKey, ObjectKind, RegistryStore, Revision},
};
use prost::Message;
use prost_types::Timestamp;

use super::registry_reads::RegistryReads;
use crate::error::{ErrorCode, ServiceError};

/// Who sends a change: one client connection (changes are staged per connection). `alive`
/// is dropped when the connection closes.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: u64,
    pub alive: Weak<()>,
}

/// One connection's staged changes over the registry as read when the first one came.
struct Staged {
    alive: Weak<()>,
    base: Option<Revision>,
    objects: BTreeMap<ObjectKey, Bytes>,
    changes: ChangeSet,
}

impl Staged {
    /// The object as the connection sees it: its staged change over the base.
    fn current(&self, key: &ObjectKey) -> Option<Bytes> {
        match self.changes.get(key) {
            Some(Change::Upsert(b)) => Some(b.clone()),
            Some(Change::Delete) => None,
            None => self.objects.get(key).cloned(),
        }
    }
}

/// An object to apply, as the request carries it.
pub enum Apply {
    Entity(pb::Entity),
    DataSource(pb::DataSource),
    FeatureService(pb::FeatureService),
    SavedDataset(pb::SavedDataset),
    ValidationReference(pb::ValidationReference),
    Permission(pb::Permission),
    /// A project (its own name is the project).
    Project(pb::Project),
}

pub struct RegistryWrites {
    pub store: Arc<dyn RegistryStore>,
    /// Refreshed after each commit, so this server's reads see its writes at once.
    pub reads: Arc<RegistryReads>,
    pub clock: Arc<dyn Clock>,
    staged: Mutex<HashMap<u64, Staged>>,
}

fn timestamp(clock: &dyn Clock) -> Timestamp {
    let now = clock.now();
    Timestamp {
        seconds: now.timestamp(),
        nanos: now.timestamp_subsec_nanos() as i32,
    }
}

/// Feast's not-found error for deleting an object of `kind` that is not there.
fn missing(kind: ObjectKind, name: &str, project: &str) -> ServiceError {
    let class = match kind {
        ObjectKind::Entity => "EntityNotFoundException",
        ObjectKind::DataSource => "DataSourceNotFoundException",
        ObjectKind::FeatureService => "FeatureServiceNotFoundException",
        ObjectKind::SavedDataset => "SavedDatasetNotFound",
        ObjectKind::ValidationReference => "ValidationReferenceNotFound",
        ObjectKind::Permission => "PermissionNotFoundException",
        ObjectKind::Project => "ProjectNotFoundException",
        _ => "FeatureViewNotFoundException",
    };
    ServiceError::feast(
        ErrorCode::NotFound,
        class,
        format!(
            "{} {name} does not exist in project {project}",
            kind.label()
        ),
    )
}

/// An object with Feast's created and last-updated times, stored under a project.
trait Stamped: Message + Default + Clone {
    const KIND: ObjectKind;
    fn name(&self) -> &str;
    fn set_project(&mut self, project: &str);
    /// Its `(created, last_updated)` slots.
    fn times(&mut self) -> (&mut Option<Timestamp>, &mut Option<Timestamp>);
}

macro_rules! stamped_spec {
    ($($t:ty => $kind:ident;)*) => {$(
        impl Stamped for $t {
            const KIND: ObjectKind = ObjectKind::$kind;
            fn name(&self) -> &str {
                self.spec.as_ref().map_or("", |s| s.name.as_str())
            }
            fn set_project(&mut self, project: &str) {
                self.spec.get_or_insert_with(Default::default).project = project.into();
            }
            fn times(&mut self) -> (&mut Option<Timestamp>, &mut Option<Timestamp>) {
                let m = self.meta.get_or_insert_with(Default::default);
                (&mut m.created_timestamp, &mut m.last_updated_timestamp)
            }
        }
    )*};
}

stamped_spec! {
    pb::Entity => Entity;
    pb::FeatureService => FeatureService;
    pb::SavedDataset => SavedDataset;
    pb::Permission => Permission;
}

impl Stamped for pb::DataSource {
    const KIND: ObjectKind = ObjectKind::DataSource;
    fn name(&self) -> &str {
        &self.name
    }
    fn set_project(&mut self, project: &str) {
        self.project = project.into();
    }
    fn times(&mut self) -> (&mut Option<Timestamp>, &mut Option<Timestamp>) {
        let m = self.meta.get_or_insert_with(Default::default);
        (&mut m.created_timestamp, &mut m.last_updated_timestamp)
    }
}

impl Stamped for pb::Project {
    const KIND: ObjectKind = ObjectKind::Project;
    fn name(&self) -> &str {
        self.spec.as_ref().map_or("", |s| s.name.as_str())
    }
    /// A project is its own project.
    fn set_project(&mut self, _: &str) {}
    fn times(&mut self) -> (&mut Option<Timestamp>, &mut Option<Timestamp>) {
        let m = self.meta.get_or_insert_with(Default::default);
        (&mut m.created_timestamp, &mut m.last_updated_timestamp)
    }
}

/// The object with its times cleared (what "unchanged" compares).
fn without_times<T: Stamped>(mut o: T) -> T {
    let (c, u) = o.times();
    (*c, *u) = (None, None);
    o
}

/// An applied object as Feast's registry stores it: under `project`, keeping the stored
/// object's created time (else the one given, else now), last updated now.
fn stamp<T: Stamped>(
    mut o: T,
    project: &str,
    s: &Staged,
    now: Timestamp,
) -> Result<(ObjectKind, Vec<u8>), ServiceError> {
    o.set_project(project);
    let key = ObjectKey::new(T::KIND, project, o.name())?;
    let stored = s
        .current(&key)
        .and_then(|b| T::decode(b).ok())
        .and_then(|mut old| *old.times().0);
    let (created, updated) = o.times();
    *created = Some(stored.or(*created).unwrap_or(now));
    *updated = Some(now);
    Ok((T::KIND, o.encode_to_vec()))
}

impl RegistryWrites {
    pub fn new(
        store: Arc<dyn RegistryStore>,
        reads: Arc<RegistryReads>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            reads,
            clock,
            staged: Mutex::new(HashMap::new()),
        }
    }

    /// The connection's staging, read from the store when it has none (connections that have
    /// closed are forgotten first).
    async fn staging(&self, client: &Client) -> Result<(), ServiceError> {
        {
            let mut staged = self.staged.lock().expect("not poisoned");
            // Closed connections are forgotten; so is a staging with nothing in it (read
            // again: an empty staging must not pin an old revision).
            staged.retain(|_, s| s.alive.strong_count() > 0 && !s.changes.is_empty());
            if staged.contains_key(&client.id) {
                return Ok(());
            }
        }
        let (objects, base) = match self.store.load_objects().await {
            Ok(o) => (o.objects, o.revision),
            // A registry not written yet: the first commit creates it.
            Err(RegistryError::FileNotFound { .. } | RegistryError::ObjectNotFound { .. }) => {
                (BTreeMap::new(), None)
            }
            Err(e) => return Err(e.into()),
        };
        // Another request of the connection may have made its staging meanwhile: that one
        // (and whatever it holds) stays.
        self.staged
            .lock()
            .expect("not poisoned")
            .entry(client.id)
            .or_insert(Staged {
                alive: client.alive.clone(),
                base,
                objects,
                changes: ChangeSet::new(),
            });
        Ok(())
    }

    fn with_staged<T>(
        &self,
        client: &Client,
        f: impl FnOnce(&mut Staged) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let mut staged = self.staged.lock().expect("not poisoned");
        let s = staged.get_mut(&client.id).ok_or_else(|| {
            ServiceError::new(ErrorCode::Internal, "the connection's staging vanished")
        })?;
        f(s)
    }

    /// Stages (and with `commit`, commits) one object under `project`.
    pub async fn apply(
        &self,
        client: &Client,
        object: Apply,
        project: &str,
        commit: bool,
    ) -> Result<(), ServiceError> {
        self.staging(client).await?;
        let now = timestamp(self.clock.as_ref());
        self.with_staged(client, |s| {
            let project = match &object {
                Apply::Project(p) => p.spec.as_ref().map_or("", |s| s.name.as_str()).to_owned(),
                _ => project.to_owned(),
            };
            if project.is_empty() {
                return Err(ServiceError::bad_request("the request names no project"));
            }
            let (kind, bytes) = match object {
                Apply::Entity(e) => stamp(e, &project, s, now)?,
                Apply::DataSource(mut d) => {
                    d.project = project.clone();
                    if d.data_source_class_type.is_empty()
                        && let Some(c) = pb::data_source::SourceType::try_from(d.r#type)
                            .ok()
                            .and_then(larder_registry::model::feast_source_class)
                    {
                        d.data_source_class_type = c.into();
                    }
                    let key = ObjectKey::new(ObjectKind::DataSource, &project, &d.name)?;
                    let old = s.current(&key).and_then(|b| pb::DataSource::decode(b).ok());
                    if old.is_some_and(|o| without_times(o) == without_times(d.clone())) {
                        // Unchanged: left as stored (Feast returns without a change).
                        return Ok(());
                    }
                    stamp(d, &project, s, now)?
                }
                Apply::FeatureService(f) => stamp(f, &project, s, now)?,
                Apply::SavedDataset(d) => stamp(d, &project, s, now)?,
                Apply::ValidationReference(mut v) => {
                    v.project = project.clone();
                    (ObjectKind::ValidationReference, v.encode_to_vec())
                }
                Apply::Permission(p) => stamp(p, &project, s, now)?,
                Apply::Project(p) => stamp(p, &project, s, now)?,
            };
            s.changes.upsert(kind, bytes)?;
            Self::ensure_project(s, &project, now)
        })?;
        if commit {
            self.commit(client).await
        } else {
            Ok(())
        }
    }

    /// The project of a change, created as Feast creates it when the registry lacks it.
    fn ensure_project(s: &mut Staged, project: &str, now: Timestamp) -> Result<(), ServiceError> {
        let key = ObjectKey::project(project)?;
        if s.current(&key).is_none() {
            let p = pb::Project {
                spec: Some(pb::ProjectSpec {
                    name: project.into(),
                    ..Default::default()
                }),
                meta: Some(pb::ProjectMeta {
                    created_timestamp: Some(now),
                    last_updated_timestamp: Some(now),
                }),
            };
            s.changes.upsert(ObjectKind::Project, p.encode_to_vec())?;
        }
        Ok(())
    }

    /// A materialization of `view` over `[start, end]` recorded as Feast's
    /// `apply_materialization` records it: the interval appended to the view's
    /// `materialization_intervals`, its state AVAILABLE_ONLINE, its last update now — every
    /// other byte of it kept. A view (or stream view) that is not there: nothing to record, as
    /// in Feast.
    pub async fn materialized(
        &self,
        client: &Client,
        view: &str,
        project: &str,
        interval: (Timestamp, Timestamp),
        commit: bool,
    ) -> Result<(), ServiceError> {
        use larder_registry::writeback::{MetaEdit, edit_view};
        self.staging(client).await?;
        let now = timestamp(self.clock.as_ref());
        let edit = MetaEdit {
            state: pb::FeatureViewState::AvailableOnline,
            last_updated: now,
            append_interval: Some(interval),
        };
        let recorded = self.with_staged(client, |s| {
            for kind in [ObjectKind::FeatureView, ObjectKind::StreamFeatureView] {
                let key = ObjectKey::new(kind, project, view)?;
                if let Some(bytes) = s.current(&key) {
                    let edited = edit_view(&bytes, &edit).map_err(|e| {
                        ServiceError::new(ErrorCode::Internal, format!("{key}: {e}"))
                    })?;
                    s.changes.upsert(kind, edited)?;
                    Self::ensure_project(s, project, now)?;
                    return Ok(true);
                }
            }
            Ok(false)
        })?;
        if commit && recorded {
            self.commit(client).await
        } else {
            Ok(())
        }
    }

    /// Stages (and with `commit`, commits) the deletion of one object.
    pub async fn delete(
        &self,
        client: &Client,
        kind: ObjectKind,
        name: &str,
        project: &str,
        commit: bool,
    ) -> Result<(), ServiceError> {
        self.staging(client).await?;
        self.with_staged(client, |s| {
            let key = match kind {
                ObjectKind::Project => ObjectKey::project(name),
                _ => ObjectKey::new(kind, project, name),
            }
            .map_err(|_| missing(kind, name, project))?;
            if s.current(&key).is_none() {
                return Err(missing(kind, name, project));
            }
            if s.objects.contains_key(&key) {
                s.changes.delete(key);
            } else {
                // Staged by this connection only: forgetting the upsert deletes it.
                s.changes.remove(&key);
            }
            Ok(())
        })?;
        if commit {
            self.commit(client).await
        } else {
            Ok(())
        }
    }

    /// Drops what the connection has staged: a write of it was refused, so the client's
    /// apply failed as a whole and must not be committed in part by a later `Commit`.
    pub fn abandon(&self, client: &Client) {
        self.staged.lock().expect("not poisoned").remove(&client.id);
    }

    /// Commits the connection's staged changes (nothing staged: nothing to do). On a conflict
    /// the staged changes are dropped: the client re-applies over the registry as it now is.
    pub async fn commit(&self, client: &Client) -> Result<(), ServiceError> {
        let staged = self.staged.lock().expect("not poisoned").remove(&client.id);
        let Some(s) = staged else { return Ok(()) };
        if s.changes.is_empty() {
            return Ok(());
        }
        let options = CommitOptions {
            last_updated: Some(timestamp(self.clock.as_ref())),
        };
        match self
            .store
            .commit(s.base.as_ref(), &s.changes, &options)
            .await
        {
            Ok(_) => {}
            Err(e @ RegistryError::Conflict { .. }) => {
                return Err(ServiceError::feast(
                    ErrorCode::Conflict,
                    "FeastError",
                    format!(
                        "the registry changed while these changes were staged (another \
                         writer committed first); nothing was written, apply again: {e}"
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        // Committed: a failed refresh only delays this server's reads of it (the cache
        // refreshes on its own), so it is not the client's error.
        if let Err(e) = self.reads.refresh().await {
            tracing::warn!(error = %e, "the registry cache did not refresh after a commit");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_registry::{cache::RegistryCache, clock::ManualClock, store::InMemoryRegistryStore};

    fn entity(name: &str, description: &str) -> Apply {
        Apply::Entity(pb::Entity {
            spec: Some(pb::EntitySpecV2 {
                name: name.into(),
                join_key: format!("{name}_id"),
                description: description.into(),
                ..Default::default()
            }),
            meta: None,
        })
    }

    fn client() -> (Client, Arc<()>) {
        let alive = Arc::new(());
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (
            Client {
                id,
                alive: Arc::downgrade(&alive),
            },
            alive,
        )
    }

    async fn writes() -> (RegistryWrites, Arc<InMemoryRegistryStore>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(
            chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        ));
        let store = Arc::new(InMemoryRegistryStore::default());
        let cache = RegistryCache::open(store.clone(), 60, clock.clone())
            .await
            .unwrap();
        let reads = Arc::new(RegistryReads {
            cache: Arc::new(cache),
        });
        (
            RegistryWrites::new(store.clone(), reads, clock.clone()),
            store,
            clock,
        )
    }

    fn entities(store: &InMemoryRegistryStore) -> Vec<pb::Entity> {
        pb::Registry::decode(store.bytes()).unwrap().entities
    }

    /// Staged until committed; stored under the project with the commit's time, the project
    /// created; a re-apply keeps the created time; a delete of what is not there is Feast's
    /// not-found; of two connections staging at once the second commit is refused and writes
    /// nothing; a staging with nothing in it does not pin an old revision.
    #[tokio::test]
    async fn staged_per_connection_and_committed_once() {
        let (w, store, clock) = writes().await;
        let (a, _a) = client();
        w.apply(&a, entity("driver", "one"), "p", false)
            .await
            .unwrap();
        assert!(entities(&store).is_empty());
        w.commit(&a).await.unwrap();
        let e = &entities(&store)[0];
        assert_eq!(e.spec.as_ref().unwrap().project, "p");
        let created = e.meta.unwrap().created_timestamp.unwrap();
        assert_eq!(created.seconds, 1_700_000_000);
        let r = pb::Registry::decode(store.bytes()).unwrap();
        assert_eq!(r.projects[0].spec.as_ref().unwrap().name, "p");

        clock.advance(std::time::Duration::from_secs(60));
        w.apply(&a, entity("driver", "two"), "p", true)
            .await
            .unwrap();
        let e = &entities(&store)[0];
        assert_eq!(e.spec.as_ref().unwrap().description, "two");
        let meta = e.meta.unwrap();
        assert_eq!(meta.created_timestamp, Some(created));
        assert_eq!(meta.last_updated_timestamp.unwrap().seconds, 1_700_000_060);

        let err = w
            .delete(&a, ObjectKind::Entity, "rider", "p", true)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
        assert_eq!(err.feast_class, Some("EntityNotFoundException"));

        let (b, _b) = client();
        let (c, _c) = client();
        w.apply(&b, entity("from_b", ""), "p", false).await.unwrap();
        w.apply(&c, entity("from_c", ""), "p", false).await.unwrap();
        w.commit(&b).await.unwrap();
        let err = w.commit(&c).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
        let names: Vec<String> = entities(&store)
            .into_iter()
            .map(|e| e.spec.unwrap().name)
            .collect();
        assert_eq!(names, ["driver", "from_b"]);
        // The refused connection applies again over the registry as it now is.
        w.apply(&c, entity("from_c", ""), "p", true).await.unwrap();
        assert_eq!(entities(&store).len(), 3);
        // `a`'s failed delete left an empty staging: its next commit is not refused.
        w.delete(&a, ObjectKind::Entity, "from_c", "p", true)
            .await
            .unwrap();
        assert_eq!(entities(&store).len(), 2);
    }

    /// A data source applied unchanged is left as stored; a closed connection's staging is
    /// dropped, never committed; a refused write's staging is abandoned.
    #[tokio::test]
    async fn unchanged_sources_closed_and_abandoned_stagings() {
        let (w, store, clock) = writes().await;
        let source = || {
            Apply::DataSource(pb::DataSource {
                name: "src".into(),
                r#type: pb::data_source::SourceType::BatchFile as i32,
                timestamp_field: "ts".into(),
                ..Default::default()
            })
        };
        let (a, _a) = client();
        w.apply(&a, source(), "p", true).await.unwrap();
        let before = store.bytes();
        let stored = pb::Registry::decode(before.clone()).unwrap().data_sources;
        assert_eq!(
            stored[0].data_source_class_type,
            "feast.infra.offline_stores.file_source.FileSource"
        );
        clock.advance(std::time::Duration::from_secs(60));
        w.apply(&a, source(), "p", true).await.unwrap();
        assert_eq!(
            store.bytes(),
            before,
            "an unchanged source is not rewritten"
        );

        let (b, alive) = client();
        w.apply(&b, entity("gone", ""), "p", false).await.unwrap();
        drop(alive);
        // Another connection's write prunes the closed one; b's change is never committed.
        w.apply(&a, entity("kept", ""), "p", true).await.unwrap();
        w.commit(&b).await.unwrap();
        let names: Vec<String> = entities(&store)
            .into_iter()
            .map(|e| e.spec.unwrap().name)
            .collect();
        assert_eq!(names, ["kept"]);

        w.apply(&a, entity("half", ""), "p", false).await.unwrap();
        w.abandon(&a);
        w.commit(&a).await.unwrap();
        assert_eq!(entities(&store).len(), 1);
    }
}
