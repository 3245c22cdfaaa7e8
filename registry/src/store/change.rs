//! What a registry commit changes: a set of objects keyed by (kind, project, name), each
//! upserted as its serialized proto or deleted.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use prost::Message;
use prost_types::Timestamp;

use super::Revision;
use crate::error::RegistryError;

/// One kind of object the registry holds: a repeated field of `feast.core.Registry` in
/// file-style registries, a table in Feast's SQL registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// `feast.core.Project` (`projects` = 17); keyed by its own name.
    Project,
    /// `feast.core.Entity` (`entities` = 1).
    Entity,
    /// `feast.core.DataSource` (`data_sources` = 12).
    DataSource,
    /// `feast.core.FeatureView` (`feature_views` = 6).
    FeatureView,
    /// `feast.core.StreamFeatureView` (`stream_feature_views` = 14).
    StreamFeatureView,
    /// `feast.core.OnDemandFeatureView` (`on_demand_feature_views` = 8).
    OnDemandFeatureView,
    /// `feast.core.LabelView` (`label_views` = 19).
    LabelView,
    /// `feast.core.FeatureService` (`feature_services` = 7).
    FeatureService,
    /// `feast.core.SavedDataset` (`saved_datasets` = 11).
    SavedDataset,
    /// `feast.core.ValidationReference` (`validation_references` = 13).
    ValidationReference,
    /// `feast.core.Permission` (`permissions` = 16).
    Permission,
}

impl ObjectKind {
    /// Every kind, in the order Feast's `Registry` message numbers them.
    pub const ALL: [ObjectKind; 11] = [
        ObjectKind::Entity,
        ObjectKind::FeatureView,
        ObjectKind::FeatureService,
        ObjectKind::OnDemandFeatureView,
        ObjectKind::SavedDataset,
        ObjectKind::DataSource,
        ObjectKind::ValidationReference,
        ObjectKind::StreamFeatureView,
        ObjectKind::Permission,
        ObjectKind::Project,
        ObjectKind::LabelView,
    ];

    /// The field of `feast.core.Registry` holding objects of this kind.
    pub fn registry_field(self) -> u32 {
        match self {
            ObjectKind::Entity => 1,
            ObjectKind::FeatureView => 6,
            ObjectKind::FeatureService => 7,
            ObjectKind::OnDemandFeatureView => 8,
            ObjectKind::SavedDataset => 11,
            ObjectKind::DataSource => 12,
            ObjectKind::ValidationReference => 13,
            ObjectKind::StreamFeatureView => 14,
            ObjectKind::Permission => 16,
            ObjectKind::Project => 17,
            ObjectKind::LabelView => 19,
        }
    }

    /// The kind a field of `feast.core.Registry` holds, if it holds objects.
    pub fn from_registry_field(number: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.registry_field() == number)
    }

    /// The kind's name in messages (`"feature view"`).
    pub fn label(self) -> &'static str {
        match self {
            ObjectKind::Project => "project",
            ObjectKind::Entity => "entity",
            ObjectKind::DataSource => "data source",
            ObjectKind::FeatureView => "feature view",
            ObjectKind::StreamFeatureView => "stream feature view",
            ObjectKind::OnDemandFeatureView => "on demand feature view",
            ObjectKind::LabelView => "label view",
            ObjectKind::FeatureService => "feature service",
            ObjectKind::SavedDataset => "saved dataset",
            ObjectKind::ValidationReference => "validation reference",
            ObjectKind::Permission => "permission",
        }
    }

    /// The protobuf message an object of this kind is serialized as.
    pub fn message_name(self) -> &'static str {
        match self {
            ObjectKind::Project => "feast.core.Project",
            ObjectKind::Entity => "feast.core.Entity",
            ObjectKind::DataSource => "feast.core.DataSource",
            ObjectKind::FeatureView => "feast.core.FeatureView",
            ObjectKind::StreamFeatureView => "feast.core.StreamFeatureView",
            ObjectKind::OnDemandFeatureView => "feast.core.OnDemandFeatureView",
            ObjectKind::LabelView => "feast.core.LabelView",
            ObjectKind::FeatureService => "feast.core.FeatureService",
            ObjectKind::SavedDataset => "feast.core.SavedDataset",
            ObjectKind::ValidationReference => "feast.core.ValidationReference",
            ObjectKind::Permission => "feast.core.Permission",
        }
    }

    /// The key of a serialized object: its name and project as the registry's readers find
    /// them (`spec.name`/`spec.project`, fields 1 and 2 of the spec, except `EntitySpecV2`'s
    /// project, 9; `name`/`project` of data sources and validation references; a project's
    /// own name). Only those fields are decoded; empty names are
    /// returned as they are.
    pub fn key_of(self, bytes: &[u8]) -> Result<ObjectKey, prost::DecodeError> {
        let (project, name) = match self {
            ObjectKind::Project => {
                let name = SpecKey::decode(bytes)?.spec.unwrap_or_default().name;
                (name.clone(), name)
            }
            ObjectKind::DataSource => {
                let k = DataSourceKey::decode(bytes)?;
                (k.project, k.name)
            }
            ObjectKind::ValidationReference => {
                let k = ValidationReferenceKey::decode(bytes)?;
                (k.project, k.name)
            }
            ObjectKind::Entity => {
                let spec = EntityKey::decode(bytes)?.spec.unwrap_or_default();
                (spec.project, spec.name)
            }
            _ => {
                let spec = SpecKey::decode(bytes)?.spec.unwrap_or_default();
                (spec.project, spec.name)
            }
        };
        Ok(ObjectKey {
            kind: self,
            project,
            name,
        })
    }

    /// Whether `bytes` decode as this kind's message.
    fn check(self, bytes: &[u8]) -> Result<(), prost::DecodeError> {
        use larder_protos::feast::core as c;
        match self {
            ObjectKind::Project => c::Project::decode(bytes).map(drop),
            ObjectKind::Entity => c::Entity::decode(bytes).map(drop),
            ObjectKind::DataSource => c::DataSource::decode(bytes).map(drop),
            ObjectKind::FeatureView => c::FeatureView::decode(bytes).map(drop),
            ObjectKind::StreamFeatureView => c::StreamFeatureView::decode(bytes).map(drop),
            ObjectKind::OnDemandFeatureView => c::OnDemandFeatureView::decode(bytes).map(drop),
            ObjectKind::LabelView => c::LabelView::decode(bytes).map(drop),
            ObjectKind::FeatureService => c::FeatureService::decode(bytes).map(drop),
            ObjectKind::SavedDataset => c::SavedDataset::decode(bytes).map(drop),
            ObjectKind::ValidationReference => c::ValidationReference::decode(bytes).map(drop),
            ObjectKind::Permission => c::Permission::decode(bytes).map(drop),
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// `name` (1) and `project` (2) of a spec; every other field is skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct NameProject {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    project: String,
}

/// The spec (1) of an object whose name and project are `spec.name`/`spec.project`.
#[derive(Clone, PartialEq, prost::Message)]
struct SpecKey {
    #[prost(message, optional, tag = "1")]
    spec: Option<NameProject>,
}

/// `name` (1) and `project` (9) of an `EntitySpecV2` (whose field 2 is the value type).
#[derive(Clone, PartialEq, prost::Message)]
struct EntityNameProject {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "9")]
    project: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EntityKey {
    #[prost(message, optional, tag = "1")]
    spec: Option<EntityNameProject>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DataSourceKey {
    #[prost(string, tag = "20")]
    name: String,
    #[prost(string, tag = "21")]
    project: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ValidationReferenceKey {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "3")]
    project: String,
}

/// Which object: its kind, project and name. A project's key has its own name as project.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    kind: ObjectKind,
    project: String,
    name: String,
}

impl ObjectKey {
    /// A key with a non-empty project and name; for [`ObjectKind::Project`], `project` must be
    /// the name (see [`ObjectKey::project`]).
    pub fn new(
        kind: ObjectKind,
        project: impl Into<String>,
        name: impl Into<String>,
    ) -> Result<Self, RegistryError> {
        let key = Self {
            kind,
            project: project.into(),
            name: name.into(),
        };
        let invalid = |message: &str| RegistryError::InvalidObject {
            kind: kind.label(),
            message: format!("{message} (key {key})"),
        };
        if key.name.is_empty() {
            return Err(invalid("the name is empty"));
        }
        if key.project.is_empty() {
            return Err(invalid("the project is empty"));
        }
        if kind == ObjectKind::Project && key.project != key.name {
            return Err(invalid("a project's key names the project twice"));
        }
        Ok(key)
    }

    /// A key as stored, unchecked (stores list what they hold, empty names included).
    pub(crate) fn stored(kind: ObjectKind, project: String, name: String) -> Self {
        Self {
            kind,
            project,
            name,
        }
    }

    /// The key of project `name`.
    pub fn project(name: impl Into<String>) -> Result<Self, RegistryError> {
        let name = name.into();
        Self::new(ObjectKind::Project, name.clone(), name)
    }

    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    pub fn project_name(&self) -> &str {
        &self.project
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?} of project {:?}",
            self.kind, self.name, self.project
        )
    }
}

/// Which record of a feature view's version history: `feast.core.FeatureViewVersionRecord`s
/// in the `feature_view_version_history` field (18) of file-style registries, rows of the
/// table of that name in Feast's SQL registry; keyed by (project, view name, version number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionKey {
    project: String,
    view: String,
    number: i32,
}

/// The key fields of a `FeatureViewVersionRecord`; every other field is skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct RecordKey {
    #[prost(string, tag = "1")]
    feature_view_name: String,
    #[prost(string, tag = "2")]
    project_id: String,
    #[prost(int32, tag = "3")]
    version_number: i32,
}

impl VersionKey {
    /// A key with a non-empty project and view name and a version number ≥ 0.
    pub fn new(
        project: impl Into<String>,
        view: impl Into<String>,
        number: i32,
    ) -> Result<Self, RegistryError> {
        let key = Self {
            project: project.into(),
            view: view.into(),
            number,
        };
        let invalid = |message: &str| RegistryError::InvalidObject {
            kind: "feature view version record",
            message: format!("{message} (key {key})"),
        };
        if key.view.is_empty() {
            return Err(invalid("the feature view name is empty"));
        }
        if key.project.is_empty() {
            return Err(invalid("the project is empty"));
        }
        if key.number < 0 {
            return Err(invalid("the version number is negative"));
        }
        Ok(key)
    }

    /// The key of a serialized record (unchecked: stores list what they hold).
    pub(crate) fn of_record(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let k = RecordKey::decode(bytes)?;
        Ok(Self {
            project: k.project_id,
            view: k.feature_view_name,
            number: k.version_number,
        })
    }

    pub fn project_name(&self) -> &str {
        &self.project
    }

    pub fn view(&self) -> &str {
        &self.view
    }

    pub fn number(&self) -> i32 {
        self.number
    }
}

impl std::fmt::Display for VersionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "version v{} of feature view {:?} of project {:?}",
            self.number, self.view, self.project
        )
    }
}

/// What a change set does to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Store these bytes (the object's serialized proto) as the object, replacing it if it
    /// exists.
    Upsert(Bytes),
    /// Remove the object; it must exist.
    Delete,
}

/// The objects one commit writes or removes, at most one change per object; objects it does
/// not name are left byte for byte as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    changes: BTreeMap<ObjectKey, Change>,
    /// Version-history records written (a serialized `FeatureViewVersionRecord`) or removed.
    versions: BTreeMap<VersionKey, Change>,
    /// Infra objects set, by project (a serialized `feast.core.Infra`).
    infra: BTreeMap<String, Bytes>,
}

impl ChangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Upserts one object, given as its serialized proto (e.g. `feast.core.Entity` bytes, which
    /// may carry fields this version of Larder does not know; they are stored as given). The
    /// key is read from the bytes, which must decode as `kind`'s message and name a project
    /// and a name. Replaces an earlier change of the same object in this set.
    pub fn upsert(
        &mut self,
        kind: ObjectKind,
        bytes: impl Into<Bytes>,
    ) -> Result<ObjectKey, RegistryError> {
        let bytes = bytes.into();
        let invalid = |e: prost::DecodeError| RegistryError::InvalidObject {
            kind: kind.label(),
            message: format!("not a valid {}: {e}", kind.message_name()),
        };
        kind.check(&bytes).map_err(invalid)?;
        let key = kind.key_of(&bytes).map_err(invalid)?;
        let key = ObjectKey::new(kind, key.project, key.name)?;
        self.changes.insert(key.clone(), Change::Upsert(bytes));
        Ok(key)
    }

    /// Deletes one object. Replaces an earlier change of the same object in this set.
    pub fn delete(&mut self, key: ObjectKey) {
        self.changes.insert(key, Change::Delete);
    }

    /// Forgets the change of one object, if the set has one.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Change> {
        self.changes.remove(key)
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&Change> {
        self.changes.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &Change)> {
        self.changes.iter()
    }

    /// How many objects the set changes (version records and infra not counted).
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether the set changes nothing: no object, no version record, no infra.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.versions.is_empty() && self.infra.is_empty()
    }

    /// The projects of what the set changes (objects, version records, infra).
    pub fn projects(&self) -> BTreeSet<&str> {
        self.changes
            .keys()
            .map(|k| k.project.as_str())
            .chain(self.versions.keys().map(|k| k.project.as_str()))
            .chain(self.infra.keys().map(String::as_str))
            .collect()
    }

    /// Upserts one version record, given as a serialized `feast.core.FeatureViewVersionRecord`
    /// (stored as given); its key is read from the bytes. Replaces an earlier change of the
    /// same record in this set.
    pub fn upsert_version(&mut self, bytes: impl Into<Bytes>) -> Result<VersionKey, RegistryError> {
        use larder_protos::feast::core::FeatureViewVersionRecord;
        let bytes = bytes.into();
        let invalid = |e: prost::DecodeError| RegistryError::InvalidObject {
            kind: "feature view version record",
            message: format!("not a valid feast.core.FeatureViewVersionRecord: {e}"),
        };
        FeatureViewVersionRecord::decode(bytes.as_ref()).map_err(invalid)?;
        let key = VersionKey::of_record(&bytes).map_err(invalid)?;
        let key = VersionKey::new(key.project, key.view, key.number)?;
        self.versions.insert(key.clone(), Change::Upsert(bytes));
        Ok(key)
    }

    /// Deletes one version record; it must exist.
    pub fn delete_version(&mut self, key: VersionKey) {
        self.versions.insert(key, Change::Delete);
    }

    /// Forgets the change of one version record, if the set has one.
    pub fn remove_version(&mut self, key: &VersionKey) -> Option<Change> {
        self.versions.remove(key)
    }

    pub fn version(&self, key: &VersionKey) -> Option<&Change> {
        self.versions.get(key)
    }

    pub fn versions(&self) -> impl Iterator<Item = (&VersionKey, &Change)> {
        self.versions.iter()
    }

    /// Sets the infra of `project`, given as a serialized `feast.core.Infra` (Feast's
    /// `update_infra`). File-style registries hold one infra for every project, so there the
    /// last project's set wins; the SQL registry keeps one per project.
    pub fn set_infra(
        &mut self,
        project: &str,
        bytes: impl Into<Bytes>,
    ) -> Result<(), RegistryError> {
        let bytes = bytes.into();
        larder_protos::feast::core::Infra::decode(bytes.as_ref()).map_err(|e| {
            RegistryError::InvalidObject {
                kind: "infra",
                message: format!("not a valid feast.core.Infra: {e}"),
            }
        })?;
        if project.is_empty() {
            return Err(RegistryError::InvalidObject {
                kind: "infra",
                message: "the project is empty".into(),
            });
        }
        self.infra.insert(project.to_owned(), bytes);
        Ok(())
    }

    /// The infra set, by project.
    pub fn infra(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.infra.iter().map(|(p, b)| (p.as_str(), b))
    }
}

/// Options of [`super::RegistryStore::commit`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitOptions {
    /// The commit's time: the registry's `last_updated` in file-style registries, the rows'
    /// `last_updated_timestamp` and the projects' `feast_metadata` in the SQL registry.
    /// `None`: the system clock's now.
    pub last_updated: Option<Timestamp>,
}

impl CommitOptions {
    pub(crate) fn last_updated(&self) -> Timestamp {
        self.last_updated
            .unwrap_or_else(|| Timestamp::from(std::time::SystemTime::now()))
    }
}

/// Every object of the registry as stored, from [`super::RegistryStore::load_objects`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredObjects {
    /// Each object's stored bytes, as written (unknown fields included).
    pub objects: BTreeMap<ObjectKey, Bytes>,
    /// Every version-history record (a serialized `FeatureViewVersionRecord`).
    pub versions: BTreeMap<VersionKey, Bytes>,
    /// The revision of the read, when the store tells one.
    pub revision: Option<Revision>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::core::{
        DataSource, Entity, EntitySpecV2, Project, ProjectSpec, ValidationReference,
    };

    #[test]
    fn keys_come_from_the_bytes() {
        let mut set = ChangeSet::new();
        let entity = Entity {
            spec: Some(EntitySpecV2 {
                name: "driver".into(),
                project: "p".into(),
                ..Default::default()
            }),
            meta: None,
        };
        let key = set
            .upsert(ObjectKind::Entity, entity.encode_to_vec())
            .unwrap();
        assert_eq!(
            key,
            ObjectKey::new(ObjectKind::Entity, "p", "driver").unwrap()
        );
        let ds = DataSource {
            name: "src".into(),
            project: "p".into(),
            ..Default::default()
        };
        let key = set
            .upsert(ObjectKind::DataSource, ds.encode_to_vec())
            .unwrap();
        assert_eq!((key.project_name(), key.name()), ("p", "src"));
        let vr = ValidationReference {
            name: "v".into(),
            project: "q".into(),
            ..Default::default()
        };
        let key = set
            .upsert(ObjectKind::ValidationReference, vr.encode_to_vec())
            .unwrap();
        assert_eq!((key.project_name(), key.name()), ("q", "v"));
        let project = Project {
            spec: Some(ProjectSpec {
                name: "p".into(),
                description: "not a project name".into(),
                ..Default::default()
            }),
            meta: None,
        };
        let key = set
            .upsert(ObjectKind::Project, project.encode_to_vec())
            .unwrap();
        assert_eq!(key, ObjectKey::project("p").unwrap());
        assert_eq!(set.len(), 4);
        assert_eq!(set.projects().into_iter().collect::<Vec<_>>(), ["p", "q"]);
    }

    #[test]
    fn bad_objects_are_refused() {
        let mut set = ChangeSet::new();
        let e = set
            .upsert(ObjectKind::Entity, vec![0x0a, 0x05, 1])
            .unwrap_err();
        assert!(
            matches!(e, RegistryError::InvalidObject { kind: "entity", .. }),
            "{e}"
        );
        let nameless = Entity {
            spec: Some(EntitySpecV2 {
                project: "p".into(),
                ..Default::default()
            }),
            meta: None,
        };
        let e = set
            .upsert(ObjectKind::Entity, nameless.encode_to_vec())
            .unwrap_err();
        assert!(e.to_string().contains("name is empty"), "{e}");
        assert!(ObjectKey::new(ObjectKind::Project, "a", "b").is_err());
        assert!(ObjectKey::new(ObjectKind::Entity, "", "b").is_err());
        assert!(set.is_empty());
    }

    #[test]
    fn a_later_change_of_one_object_replaces_the_earlier() {
        let mut set = ChangeSet::new();
        let key = set
            .upsert(
                ObjectKind::Project,
                Project {
                    spec: Some(ProjectSpec {
                        name: "p".into(),
                        ..Default::default()
                    }),
                    meta: None,
                }
                .encode_to_vec(),
            )
            .unwrap();
        set.delete(key.clone());
        assert_eq!(set.get(&key), Some(&Change::Delete));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn kinds_and_fields_agree() {
        for kind in ObjectKind::ALL {
            assert_eq!(
                ObjectKind::from_registry_field(kind.registry_field()),
                Some(kind)
            );
        }
        assert_eq!(ObjectKind::from_registry_field(2), None, "feature tables");
        assert_eq!(ObjectKind::from_registry_field(4), None);
    }
}
