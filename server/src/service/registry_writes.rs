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
//! object that is not there is Feast's not-found error for its kind.
//!
//! Feature views of the four kinds follow `Registry.apply_feature_view` with its version
//! history (rules in [`super::registry_views`]): a new view is version 0 and gets a version
//! record; a re-apply whose schema is unchanged updates the stored view's metadata in place
//! (no new version); a schema change makes the next version (recording the old definition as
//! v0 first if it has no record), keeping the created time and materialization intervals; a
//! `version: vN` pins the view to a recorded version (refused if the definition was also
//! changed) or, when v`N` has no record, declares it. A name used by a view of another kind
//! is Feast's `ConflictingFeatureViewNames`. Deleting a view deletes its version records.
//! `UpdateInfra` sets the project's infra objects, as `feast apply` records the tables it made.
//! A refused write drops what the connection had staged, so the client's failed apply is not
//! committed in part later.
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
    store::{
        Change, ChangeSet, CommitOptions, ObjectKey, ObjectKind, RegistryStore, Revision,
        VersionKey,
    },
};
use prost::Message;
use prost_types::Timestamp;

use super::registry_reads::RegistryReads;
use super::registry_views::{
    ViewProto, check_view_name, conflicting_names, parse_view_version, pin_conflict,
};
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
    /// The version records of the base.
    versions: BTreeMap<VersionKey, Bytes>,
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

    /// The version record as the connection sees it.
    fn current_version(&self, key: &VersionKey) -> Option<Bytes> {
        match self.changes.version(key) {
            Some(Change::Upsert(b)) => Some(b.clone()),
            Some(Change::Delete) => None,
            None => self.versions.get(key).cloned(),
        }
    }

    /// The keys of the version records the connection sees that `keep` keeps, in order.
    fn version_keys(&self, keep: impl Fn(&VersionKey) -> bool) -> Vec<VersionKey> {
        let keys: std::collections::BTreeSet<&VersionKey> = self
            .versions
            .keys()
            .chain(self.changes.versions().map(|(k, _)| k))
            .filter(|k| keep(k) && self.current_version(k).is_some())
            .collect();
        keys.into_iter().cloned().collect()
    }

    /// The keys of the objects the connection sees that `keep` keeps, in order.
    fn object_keys(&self, keep: impl Fn(&ObjectKey) -> bool) -> Vec<ObjectKey> {
        let keys: std::collections::BTreeSet<&ObjectKey> = self
            .objects
            .keys()
            .chain(self.changes.iter().map(|(k, _)| k))
            .filter(|k| keep(k) && self.current(k).is_some())
            .collect();
        keys.into_iter().cloned().collect()
    }

    /// The keys of the version records of one view.
    fn view_versions(&self, project: &str, view: &str) -> Vec<VersionKey> {
        self.version_keys(|k| k.project_name() == project && k.view() == view)
    }

    /// Deletes an object the connection sees: a stored one is deleted; one only this
    /// connection staged is forgotten (which deletes it).
    fn unstage_or_delete(&mut self, key: ObjectKey) {
        if self.objects.contains_key(&key) {
            self.changes.delete(key);
        } else {
            self.changes.remove(&key);
        }
    }

    /// Deletes a version record the connection sees (as [`Self::unstage_or_delete`]); one it
    /// does not see is left alone.
    fn drop_version(&mut self, key: VersionKey) {
        if self.current_version(&key).is_none() {
            return;
        }
        if self.versions.contains_key(&key) {
            self.changes.delete_version(key);
        } else {
            self.changes.remove_version(&key);
        }
    }

    /// Whether a view of `kind` named `name` is in `project` (any project when `None`).
    fn has_view(&self, kind: ObjectKind, project: Option<&str>, name: &str) -> bool {
        !self
            .object_keys(|k| {
                k.kind() == kind
                    && k.name() == name
                    && project.is_none_or(|p| k.project_name() == p)
            })
            .is_empty()
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
    FeatureView(pb::FeatureView),
    StreamFeatureView(pb::StreamFeatureView),
    OnDemandFeatureView(pb::OnDemandFeatureView),
    LabelView(pb::LabelView),
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
    if kind == ObjectKind::Project {
        return ServiceError::feast(
            ErrorCode::NotFound,
            "ProjectNotFoundException",
            format!("Project {name} does not exist in registry"),
        );
    }
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

/// A version record of `view` holding `view_bytes`, created now.
fn version_record<T: ViewProto>(
    project: &str,
    name: &str,
    number: i32,
    view_bytes: Vec<u8>,
    now: Timestamp,
) -> Vec<u8> {
    pb::FeatureViewVersionRecord {
        feature_view_name: name.into(),
        project_id: project.into(),
        version_number: number,
        feature_view_type: T::TYPE.into(),
        feature_view_proto: view_bytes,
        created_timestamp: Some(now),
        description: String::new(),
        version_id: uuid::Uuid::new_v4().to_string(),
    }
    .encode_to_vec()
}

/// Stages a feature view of any kind under `project` by Feast's `apply_feature_view` rules
/// (see the module docs).
fn apply_view<T: ViewProto>(
    s: &mut Staged,
    mut view: T,
    project: &str,
    now: Timestamp,
) -> Result<(), ServiceError> {
    let name = view.name().to_owned();
    check_view_name(T::KIND, &name)?;
    view.set_project(project);
    if T::KIND != ObjectKind::LabelView && view.version().is_empty() {
        // Feast's `from_proto` reads "" as "latest", which `to_proto` then writes.
        view.set_version("latest");
    }
    let pin = parse_view_version(view.version())?;
    // Feast's `_check_conflicting_feature_view_names`: the name may not be another kind's
    // in the project (label views: in any project).
    for kind in [
        ObjectKind::FeatureView,
        ObjectKind::StreamFeatureView,
        ObjectKind::OnDemandFeatureView,
        ObjectKind::LabelView,
    ] {
        let scope = (kind != ObjectKind::LabelView).then_some(project);
        if kind != T::KIND && s.has_view(kind, scope, &name) {
            return Err(conflicting_names(&name, kind, T::KIND));
        }
    }
    {
        let (created, updated) = view.times();
        created.get_or_insert(now);
        *updated = Some(now);
    }
    let key = ObjectKey::new(T::KIND, project, &name)?;
    let decode = |what: &str, bytes: &[u8]| {
        T::decode(bytes).map_err(|e| ServiceError::internal(format!("{what}: {e}")))
    };
    if let Some(n) = pin {
        let vkey = VersionKey::new(project, &name, n)?;
        match s.current_version(&vkey) {
            Some(record) => {
                // Pin (or revert) to a recorded version: the definition must be the active
                // one but for its version.
                let record = pb::FeatureViewVersionRecord::decode(record)
                    .map_err(|e| ServiceError::internal(format!("{vkey}: {e}")))?;
                if record.feature_view_type != T::TYPE {
                    return Err(ServiceError::bad_request(format!(
                        "{vkey} is a {}, not a {}",
                        record.feature_view_type,
                        T::TYPE
                    )));
                }
                if let Some(active) = s.current(&key) {
                    let mut active = decode(&key.to_string(), &active)?;
                    let mut user = view.clone();
                    active.set_version("latest");
                    user.set_version("latest");
                    user.take_meta_from(&active);
                    if user != active {
                        return Err(pin_conflict(&name, n));
                    }
                }
                let mut restored = decode(&vkey.to_string(), &record.feature_view_proto)?;
                restored.set_project(project);
                restored.set_version(view.version());
                restored.set_current_version_number(n);
                *restored.times().1 = Some(now);
                view = restored;
            }
            None => {
                // A forward declaration: version N is this definition.
                view.set_current_version_number(n);
                s.changes.upsert_version(version_record::<T>(
                    project,
                    &name,
                    n,
                    view.encode_to_vec(),
                    now,
                ))?;
            }
        }
    }
    let mut replaced = None;
    if let Some(bytes) = s.current(&key) {
        let mut existing = decode(&key.to_string(), &bytes)?;
        if existing.schema_key() == view.schema_key() {
            existing.update_metadata(&view);
            *existing.times().1 = Some(now);
            s.changes.upsert(T::KIND, existing.encode_to_vec())?;
            return RegistryWrites::ensure_project(s, project, now);
        }
        *view.times().0 = *existing.times().0;
        if view.intervals().is_empty() {
            view.set_intervals(existing.intervals().to_vec());
        }
        replaced = Some(bytes);
    }
    if pin.is_none() {
        let next = match replaced {
            Some(old) => {
                let mut next = s
                    .view_versions(project, &name)
                    .last()
                    .map_or(0, |k| k.number() + 1);
                if next == 0 {
                    s.changes.upsert_version(version_record::<T>(
                        project,
                        &name,
                        0,
                        old.to_vec(),
                        now,
                    ))?;
                    next = 1;
                }
                next
            }
            None => 0,
        };
        view.set_current_version_number(next);
        s.changes.upsert_version(version_record::<T>(
            project,
            &name,
            next,
            view.encode_to_vec(),
            now,
        ))?;
    }
    s.changes.upsert(T::KIND, view.encode_to_vec())?;
    RegistryWrites::ensure_project(s, project, now)
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
        let (objects, versions, base) = match self.store.load_objects().await {
            Ok(o) => (o.objects, o.versions, o.revision),
            // A registry not written yet: the first commit creates it.
            Err(e) if e.is_missing_registry() => (BTreeMap::new(), BTreeMap::new(), None),
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
                versions,
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
                Apply::FeatureView(v) => return apply_view(s, v, &project, now),
                Apply::StreamFeatureView(v) => return apply_view(s, v, &project, now),
                Apply::OnDemandFeatureView(v) => return apply_view(s, v, &project, now),
                Apply::LabelView(v) => return apply_view(s, v, &project, now),
            };
            s.changes.upsert(kind, bytes)?;
            Self::ensure_project(s, &project, now)
        })?;
        self.commit_if(client, commit).await
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
        self.commit_if(client, commit && recorded).await
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
            s.unstage_or_delete(key);
            Ok(())
        })?;
        self.commit_if(client, commit).await
    }

    /// Stages (and with `commit`, commits) the deletion of a feature view of any kind, as
    /// Feast's `delete_feature_view` looks for it (feature views, on-demand, stream, then
    /// label views), with every version record of its name in the project.
    pub async fn delete_feature_view(
        &self,
        client: &Client,
        name: &str,
        project: &str,
        commit: bool,
    ) -> Result<(), ServiceError> {
        self.staging(client).await?;
        self.with_staged(client, |s| {
            let kinds = [
                ObjectKind::FeatureView,
                ObjectKind::OnDemandFeatureView,
                ObjectKind::StreamFeatureView,
                ObjectKind::LabelView,
            ];
            let key = kinds
                .into_iter()
                .filter_map(|kind| ObjectKey::new(kind, project, name).ok())
                .find(|key| s.current(key).is_some())
                .ok_or_else(|| super::view_not_found(name, project))?;
            s.unstage_or_delete(key);
            for vkey in s.view_versions(project, name) {
                s.drop_version(vkey);
            }
            Ok(())
        })?;
        self.commit_if(client, commit).await
    }

    /// Stages (and with `commit`, commits) the deletion of a project with everything in it:
    /// every object of every kind and the version records of its views (Feast's
    /// `delete_project`; Feast's SQL registry leaves the version records behind).
    pub async fn delete_project(
        &self,
        client: &Client,
        name: &str,
        commit: bool,
    ) -> Result<(), ServiceError> {
        self.staging(client).await?;
        self.with_staged(client, |s| {
            let key =
                ObjectKey::project(name).map_err(|_| missing(ObjectKind::Project, name, name))?;
            if s.current(&key).is_none() {
                return Err(missing(ObjectKind::Project, name, name));
            }
            for key in s.object_keys(|k| k.project_name() == name) {
                s.unstage_or_delete(key);
            }
            for vkey in s.version_keys(|k| k.project_name() == name) {
                s.drop_version(vkey);
            }
            Ok(())
        })?;
        self.commit_if(client, commit).await
    }

    /// Stages (and with `commit`, commits) a project's infra objects (Feast's `update_infra`),
    /// given as a serialized `feast.core.Infra`.
    pub async fn update_infra(
        &self,
        client: &Client,
        infra: &[u8],
        project: &str,
        commit: bool,
    ) -> Result<(), ServiceError> {
        if project.is_empty() {
            return Err(ServiceError::bad_request("the request names no project"));
        }
        self.staging(client).await?;
        let now = timestamp(self.clock.as_ref());
        self.with_staged(client, |s| {
            s.changes.set_infra(project, infra.to_vec())?;
            Self::ensure_project(s, project, now)
        })?;
        self.commit_if(client, commit).await
    }

    /// Commits the connection's staging when the request asks for it.
    async fn commit_if(&self, client: &Client, commit: bool) -> Result<(), ServiceError> {
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

    fn view(name: &str, features: &[&str], description: &str, version: &str) -> pb::FeatureView {
        pb::FeatureView {
            spec: Some(pb::FeatureViewSpec {
                name: name.into(),
                entities: vec!["driver".into()],
                features: features
                    .iter()
                    .map(|f| pb::FeatureSpecV2 {
                        name: (*f).into(),
                        value_type: 6,
                        ..Default::default()
                    })
                    .collect(),
                description: description.into(),
                version: version.into(),
                online: true,
                ..Default::default()
            }),
            meta: None,
        }
    }

    fn registry(store: &InMemoryRegistryStore) -> pb::Registry {
        pb::Registry::decode(store.bytes()).unwrap()
    }

    /// (version number, feature names) of each record of `name`, in order.
    fn records(store: &InMemoryRegistryStore, name: &str) -> Vec<(i32, Vec<String>)> {
        let mut out: Vec<(i32, Vec<String>)> = registry(store)
            .feature_view_version_history
            .unwrap_or_default()
            .records
            .into_iter()
            .filter(|r| r.feature_view_name == name)
            .map(|r| {
                assert_eq!(r.feature_view_type, "feature_view");
                assert_eq!(r.version_id.len(), 36);
                let v = pb::FeatureView::decode(r.feature_view_proto.as_slice()).unwrap();
                let f = v
                    .spec
                    .unwrap()
                    .features
                    .into_iter()
                    .map(|f| f.name)
                    .collect();
                (r.version_number, f)
            })
            .collect();
        out.sort();
        out
    }

    fn active(store: &InMemoryRegistryStore, name: &str) -> pb::FeatureView {
        registry(store)
            .feature_views
            .into_iter()
            .find(|v| v.spec.as_ref().unwrap().name == name)
            .expect("the view is stored")
    }

    /// Feast's version history: a new view is v0 with a record; a metadata-only re-apply
    /// updates in place (created time, intervals and version kept, no record); a schema change
    /// is v1, keeping created time and intervals; a pin to v0 restores v0's definition; a pin
    /// with a changed definition is refused; a pin to a version not recorded declares it; a
    /// delete removes the view and its records.
    #[tokio::test]
    async fn feature_views_keep_feasts_version_history() {
        let (w, store, clock) = writes().await;
        let (a, _a) = client();
        let fv = |f: &[&str], d: &str, v: &str| Apply::FeatureView(view("stats", f, d, v));
        w.apply(&a, fv(&["x"], "one", ""), "p", true).await.unwrap();
        let v = active(&store, "stats");
        assert_eq!(v.spec.as_ref().unwrap().project, "p");
        assert_eq!(v.spec.as_ref().unwrap().version, "latest");
        let meta = v.meta.clone().unwrap();
        assert_eq!(meta.current_version_number, 0);
        let created = meta.created_timestamp.unwrap();
        assert_eq!(records(&store, "stats"), [(0, vec!["x".to_owned()])]);

        // Materialized, then re-applied with a new description only.
        w.materialized(
            &a,
            "stats",
            "p",
            (
                Timestamp::default(),
                Timestamp {
                    seconds: 5,
                    nanos: 0,
                },
            ),
            true,
        )
        .await
        .unwrap();
        clock.advance(std::time::Duration::from_secs(60));
        w.apply(&a, fv(&["x"], "two", ""), "p", true).await.unwrap();
        let v = active(&store, "stats");
        let meta = v.meta.clone().unwrap();
        assert_eq!(v.spec.as_ref().unwrap().description, "two");
        assert_eq!(meta.created_timestamp, Some(created));
        assert_eq!(meta.last_updated_timestamp.unwrap().seconds, 1_700_000_060);
        assert_eq!(meta.materialization_intervals.len(), 1);
        assert_eq!(records(&store, "stats").len(), 1, "no new version");

        // A schema change: v1.
        w.apply(&a, fv(&["x", "y"], "two", ""), "p", true)
            .await
            .unwrap();
        let v = active(&store, "stats");
        let meta = v.meta.clone().unwrap();
        assert_eq!(meta.current_version_number, 1);
        assert_eq!(meta.created_timestamp, Some(created));
        assert_eq!(meta.materialization_intervals.len(), 1);
        let x = || "x".to_owned();
        assert_eq!(
            records(&store, "stats"),
            [(0, vec![x()]), (1, vec![x(), "y".to_owned()])]
        );

        // Pinned back to v0 with the active definition: v0's schema, pinned.
        w.apply(&a, fv(&["x", "y"], "two", "v0"), "p", true)
            .await
            .unwrap();
        let v = active(&store, "stats");
        assert_eq!(v.spec.as_ref().unwrap().features.len(), 1);
        assert_eq!(v.spec.as_ref().unwrap().version, "v0");
        assert_eq!(records(&store, "stats").len(), 2, "a pin records nothing");
        // A pin that also changes the definition is refused, and nothing is written.
        let before = store.bytes();
        let e = w
            .apply(&a, fv(&["x", "z"], "two", "v1"), "p", true)
            .await
            .unwrap_err();
        assert_eq!(e.feast_class, Some("FeatureViewPinConflict"), "{e:?}");
        w.abandon(&a);
        assert_eq!(store.bytes(), before);
        // A version not recorded yet is declared by the definition given.
        w.apply(&a, fv(&["x", "y", "z"], "two", "version5"), "p", true)
            .await
            .unwrap();
        assert_eq!(records(&store, "stats").last().unwrap().0, 5);
        assert_eq!(
            active(&store, "stats").meta.unwrap().current_version_number,
            5
        );
        let e = w
            .apply(&a, fv(&["x"], "two", "v-1"), "p", true)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);

        // Another kind of view may not take the name.
        let odfv = pb::OnDemandFeatureView {
            spec: Some(pb::OnDemandFeatureViewSpec {
                name: "stats".into(),
                ..Default::default()
            }),
            meta: None,
        };
        let e = w
            .apply(&a, Apply::OnDemandFeatureView(odfv), "p", true)
            .await
            .unwrap_err();
        assert_eq!(e.feast_class, Some("ConflictingFeatureViewNames"));
        assert!(e.message.contains("FeatureView"), "{e:?}");
        w.abandon(&a);

        // Deleted with its records; a second delete is Feast's not-found.
        w.apply(
            &a,
            Apply::FeatureView(view("other", &["x"], "", "")),
            "p",
            true,
        )
        .await
        .unwrap();
        w.delete_feature_view(&a, "stats", "p", true).await.unwrap();
        assert!(
            registry(&store)
                .feature_views
                .iter()
                .all(|v| v.spec.as_ref().unwrap().name != "stats")
        );
        assert!(records(&store, "stats").is_empty());
        assert_eq!(records(&store, "other").len(), 1);
        let e = w
            .delete_feature_view(&a, "stats", "p", true)
            .await
            .unwrap_err();
        assert_eq!(e.feast_class, Some("FeatureViewNotFoundException"));
    }

    /// `UpdateInfra` sets the project's infra, staged until the commit.
    #[tokio::test]
    async fn infra_is_staged_and_committed() {
        let (w, store, _) = writes().await;
        let (a, _a) = client();
        let infra = pb::Infra {
            infra_objects: vec![pb::InfraObject {
                infra_object_class_type: "feast.infra.online_stores.sqlite.SqliteTable".into(),
                infra_object: Some(pb::infra_object::InfraObject::SqliteTable(
                    pb::SqliteTable {
                        path: "data/online.db".into(),
                        name: "p_stats".into(),
                    },
                )),
            }],
        };
        w.update_infra(&a, &infra.encode_to_vec(), "p", false)
            .await
            .unwrap();
        assert_eq!(registry(&store).infra, None);
        w.commit(&a).await.unwrap();
        assert_eq!(registry(&store).infra, Some(infra));
        assert_eq!(registry(&store).projects.len(), 1);
        assert!(w.update_infra(&a, &[], "", true).await.is_err());
    }

    /// Deleting a project deletes every object in it and its views' version records, and
    /// nothing of another project; a missing project is Feast's `ProjectNotFoundException`.
    #[tokio::test]
    async fn a_project_is_deleted_with_everything_in_it() {
        let (w, store, _) = writes().await;
        let (a, _a) = client();
        for project in ["p", "q"] {
            w.apply(&a, entity("driver", ""), project, false)
                .await
                .unwrap();
            w.apply(
                &a,
                Apply::FeatureView(view("stats", &["x"], "", "")),
                project,
                false,
            )
            .await
            .unwrap();
        }
        w.commit(&a).await.unwrap();
        assert_eq!(records(&store, "stats").len(), 2);
        w.delete_project(&a, "p", true).await.unwrap();
        let r = registry(&store);
        let projects: Vec<&str> = r
            .projects
            .iter()
            .map(|p| p.spec.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(projects, ["q"]);
        assert!(
            r.entities
                .iter()
                .all(|e| e.spec.as_ref().unwrap().project == "q")
        );
        assert_eq!(r.feature_views.len(), 1);
        let history = r.feature_view_version_history.unwrap_or_default().records;
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].project_id, "q");
        let e = w.delete_project(&a, "p", true).await.unwrap_err();
        assert_eq!(e.feast_class, Some("ProjectNotFoundException"));
        assert_eq!(e.message, "Project p does not exist in registry");
    }
}
