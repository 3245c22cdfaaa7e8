//! Registry stores: where the serialized Feast registry lives.
//!
//! Contract of [`RegistryStore::load`]: it returns the whole registry (every project) as it is
//! stored now, or an error naming the location; it never returns a partially read registry.
//! Stores hold no cache of their own — [`crate::cache::RegistryCache`] does that.
//! Writers commit a [`ChangeSet`] against the [`Revision`] they read
//! ([`RegistryStore::commit`]); the contract is written on the trait and checked for every store
//! by the conformance suite (`crate::conformance`, feature `testkit`).

mod change;
mod file;
mod memory;
mod s3;
mod sql;

use std::{collections::BTreeMap, collections::HashMap, sync::Arc};

use larder_protos::feast::core::{Infra, Registry};

pub use change::{
    Change, ChangeSet, CommitOptions, ObjectKey, ObjectKind, StoredObjects, VersionKey,
};
pub use file::FileRegistryStore;
pub use memory::InMemoryRegistryStore;
pub use object_store::{ObjectStore, ObjectStoreExt};
pub use s3::{ObjectRegistryStore, s3_bucket};
pub use sql::{FEAST_SQL_SCHEMA, SqlRegistryStore};

use crate::{
    config::{RegistryLocation, RepoConfig},
    error::RegistryError,
    writeback::{MetaEdit, ViewField, WriteBackError},
};

/// One read of the registry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistrySnapshot {
    /// Every project's objects, as in Feast's `registry.db`.
    pub proto: Registry,
    /// Per-project infra objects (the SQL registry keeps one `managed_infra` row per project);
    /// empty for file-style registries, whose single `proto.infra` covers all projects.
    pub project_infra: BTreeMap<String, Infra>,
}

impl RegistrySnapshot {
    pub fn from_proto(proto: Registry) -> Self {
        Self {
            proto,
            project_infra: BTreeMap::new(),
        }
    }

    /// The infra objects Feast's `get_infra(project)` returns.
    pub fn infra(&self, project: &str) -> Infra {
        if self.project_infra.is_empty() {
            self.proto.infra.clone().unwrap_or_default()
        } else {
            self.project_infra.get(project).cloned().unwrap_or_default()
        }
    }
}

/// Identifies the stored bytes of one registry read (an object's ETag, a digest of a file's
/// bytes): equal revisions from one store mean the same registry, so it need not be decoded
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision(String);

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The result of [`RegistryStore::load_if_changed`].
#[derive(Debug)]
pub enum Fetched {
    /// The stored registry is still the one of the revision given.
    Unchanged,
    /// The registry as stored now, and its revision when the store can tell one.
    Changed {
        snapshot: Box<RegistrySnapshot>,
        revision: Option<Revision>,
    },
}

/// A place the registry is read from and committed to.
///
/// # Contract (checked for every store by the conformance suite)
///
/// - **Fresh store.** Reading a store nothing was committed to yet fails the way the store
///   says a registry is missing ([`FileRegistryStore`]: [`RegistryError::FileNotFound`];
///   [`ObjectRegistryStore`]: [`RegistryError::ObjectNotFound`]), or returns an empty registry
///   ([`SqlRegistryStore`] with Feast's tables and no rows, [`InMemoryRegistryStore::default`]).
/// - **Revisions.** Every read that tells a revision, and every commit, names the stored state:
///   `load_if_changed(Some(r))` answers [`Fetched::Unchanged`] while the store is still at `r`
///   and `Changed` after any commit; the revision [`RegistryStore::commit`] returns is the one
///   a read right after it tells.
/// - **Optimistic commits.** [`RegistryStore::commit`] applies a whole [`ChangeSet`] or
///   nothing, and only if the store is still at the revision the writer read: `expected =
///   None` means "no registry, or one with no objects". Otherwise it fails with
///   [`RegistryError::Conflict`] and changes nothing; the caller re-reads and retries. Of two
///   commits from the same revision at most one succeeds.
/// - **Bytes kept.** An upserted object is stored as exactly the bytes given (fields unknown to
///   Larder included) and read back so by [`RegistryStore::load_objects`]; objects a change set
///   does not name stay byte for byte as they were, and so do the registry's own fields unknown
///   to Larder (file-style stores). A delete removes exactly the named object; deleting an
///   object that is not there is [`RegistryError::ObjectMissing`] and changes nothing.
/// - **Metadata.** File-style stores set the registry's `version_id` (a new UUID4) and
///   `last_updated` on every commit, as Feast's commit does; the SQL store sets the rows'
///   `last_updated_timestamp` and the changed projects' `last_updated_timestamp` in
///   `feast_metadata`. The SQL registry lists objects by project: an object whose project has
///   no `projects` row is stored but, as in Feast, not part of [`RegistryStore::load`].
/// - **Materialization.** [`RegistryStore::update_view_meta`] appends the interval, sets the
///   state and last update of one view, and keeps every other byte.
#[async_trait::async_trait]
pub trait RegistryStore: Send + Sync + std::fmt::Debug {
    /// Where the registry lives, for messages and logs (credentials removed).
    fn location(&self) -> String;

    /// Reads the registry unless it is still the one of revision `seen` — what periodic
    /// refreshes call, so that an unchanged registry is not decoded again. Stores that cannot
    /// tell revisions answer `Changed` with no revision, every time.
    async fn load_if_changed(&self, seen: Option<&Revision>) -> Result<Fetched, RegistryError>;

    /// Reads the whole registry, and its revision when the store tells one.
    async fn load_revised(&self) -> Result<(RegistrySnapshot, Option<Revision>), RegistryError> {
        match self.load_if_changed(None).await? {
            Fetched::Changed { snapshot, revision } => Ok((*snapshot, revision)),
            Fetched::Unchanged => Err(RegistryError::Unsupported(format!(
                "the registry store at {} answered \"unchanged\" to a read that named no revision",
                self.location()
            ))),
        }
    }

    /// Reads the whole registry.
    async fn load(&self) -> Result<RegistrySnapshot, RegistryError> {
        Ok(self.load_revised().await?.0)
    }

    /// Every object as stored (its serialized proto, unknown fields included) with the
    /// revision of the read — what a writer reads before building a [`ChangeSet`] when it must
    /// not lose fields it does not know. A missing registry fails as [`RegistryStore::load`]
    /// does.
    async fn load_objects(&self) -> Result<StoredObjects, RegistryError>;

    /// Applies `changes` atomically if the store is still at revision `expected` (`None`: the
    /// writer saw no registry or one with no objects) and returns the new revision; otherwise
    /// fails with [`RegistryError::Conflict`] and changes nothing. See the trait's contract.
    async fn commit(
        &self,
        expected: Option<&Revision>,
        changes: &ChangeSet,
        options: &CommitOptions,
    ) -> Result<Revision, RegistryError>;

    /// Changes one view's meta (state, last update, a new materialization interval) and
    /// commits, leaving every other object byte for byte as it was. Stores that cannot write
    /// yet say so.
    async fn update_view_meta(
        &self,
        project: &str,
        which: ViewField,
        view: &str,
        edit: &MetaEdit,
    ) -> Result<(), RegistryError> {
        let _ = (project, which, view, edit);
        Err(RegistryError::Unsupported(format!(
            "writing to the registry at {}",
            self.location()
        )))
    }
}

/// Builds the store a repo's `registry` setting names. `env` supplies credentials and
/// endpoints (`AWS_*`, `FEAST_S3_ENDPOINT_URL`).
pub async fn open(
    config: &RepoConfig,
    env: &HashMap<String, String>,
) -> Result<Arc<dyn RegistryStore>, RegistryError> {
    Ok(match &config.registry.location {
        RegistryLocation::File { path } => Arc::new(FileRegistryStore::new(path.clone())),
        RegistryLocation::S3 { url } => Arc::new(ObjectRegistryStore::s3(url, env)?),
        RegistryLocation::Sql { url, schema_mode } => {
            Arc::new(SqlRegistryStore::new(url)?.with_schema_mode(*schema_mode))
        }
        RegistryLocation::Object { url } => {
            return Err(RegistryError::Unsupported(format!("object store {url}")));
        }
        RegistryLocation::Remote { target } => {
            return Err(RegistryError::Unsupported(format!(
                "remote registry {target}"
            )));
        }
    })
}

/// The revision of registry bytes read from a store without versions of its own: their length
/// and a 64-bit digest (an accidental equal digest of different bytes is a 2^-64 chance).
pub(crate) fn content_revision(bytes: &[u8]) -> Revision {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    h.write(bytes);
    Revision(format!("{}:{:016x}", bytes.len(), h.finish()))
}

/// `Unchanged` when `revision` is `seen`, otherwise the decoded registry.
pub(crate) fn fetched(
    location: &str,
    bytes: &[u8],
    revision: Revision,
    seen: Option<&Revision>,
) -> Result<Fetched, RegistryError> {
    if seen == Some(&revision) {
        return Ok(Fetched::Unchanged);
    }
    Ok(Fetched::Changed {
        snapshot: Box::new(RegistrySnapshot::from_proto(decode(location, bytes)?)),
        revision: Some(revision),
    })
}

/// Whether a registry whose bytes (`None`: missing) have revision `current` satisfies a
/// commit's `expected` revision; the [`RegistryError::Conflict`] if not.
pub(crate) fn check_expected(
    location: &str,
    current: Option<(&[u8], &Revision)>,
    expected: Option<&Revision>,
) -> Result<(), RegistryError> {
    let ok = match (current, expected) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some((_, revision)), Some(expected)) => revision == expected,
        (Some((bytes, _)), None) => {
            !crate::writeback::has_objects(bytes).map_err(|e| write_back_err(location, e))?
        }
    };
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Conflict {
            location: location.to_owned(),
            expected: expected.cloned(),
        })
    }
}

/// The bytes of a file-style registry after a commit of `changes` (`current`: empty when the
/// registry did not exist), with a new `version_id`.
pub(crate) fn committed_bytes(
    location: &str,
    current: &[u8],
    changes: &ChangeSet,
    options: &CommitOptions,
) -> Result<Vec<u8>, RegistryError> {
    let version_id = uuid::Uuid::new_v4().to_string();
    crate::writeback::apply_changes(current, changes, &version_id, &options.last_updated())
        .map_err(|e| write_back_err(location, e))
}

/// A wire-level edit's error: a missing object as [`RegistryError::ObjectMissing`], the rest
/// as [`RegistryError::WriteBack`].
pub(crate) fn write_back_err(location: &str, e: WriteBackError) -> RegistryError {
    match e {
        WriteBackError::ObjectNotFound { key } => RegistryError::ObjectMissing {
            kind: key.kind().label(),
            name: key.name().to_owned(),
            project: key.project_name().to_owned(),
        },
        WriteBackError::VersionNotFound { key } => RegistryError::ObjectMissing {
            kind: "feature view version",
            name: format!("{}@v{}", key.view(), key.number()),
            project: key.project_name().to_owned(),
        },
        source => RegistryError::WriteBack {
            location: location.to_owned(),
            source,
        },
    }
}

/// The objects of a file-style registry's bytes.
pub(crate) fn blob_objects(
    location: &str,
    bytes: &bytes::Bytes,
    revision: Revision,
) -> Result<StoredObjects, RegistryError> {
    let objects = crate::writeback::registry_objects(bytes)
        .map_err(|e| write_back_err(location, e))?
        .into_iter()
        .map(|(key, payload)| (key, bytes.slice_ref(payload)))
        .collect();
    let versions = crate::writeback::registry_versions(bytes)
        .map_err(|e| write_back_err(location, e))?
        .into_iter()
        .map(|(key, payload)| (key, bytes.slice_ref(payload)))
        .collect();
    Ok(StoredObjects {
        objects,
        versions,
        revision: Some(revision),
    })
}

pub(crate) fn decode(location: &str, bytes: &[u8]) -> Result<Registry, RegistryError> {
    use prost::Message;
    Registry::decode(bytes).map_err(|source| RegistryError::Corrupt {
        location: location.to_owned(),
        len: bytes.len(),
        source,
    })
}
