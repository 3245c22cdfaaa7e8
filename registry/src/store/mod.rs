//! Registry stores: where the serialized Feast registry lives.
//!
//! Contract of [`RegistryStore::load`]: it returns the whole registry (every project) as it is
//! stored now, or an error naming the location; it never returns a partially read registry.
//! Stores hold no cache of their own — [`crate::cache::RegistryCache`] does that.

mod file;
mod memory;
mod s3;
mod sql;

use std::{collections::BTreeMap, collections::HashMap, sync::Arc};

use larder_protos::feast::core::{Infra, Registry};

pub use file::FileRegistryStore;
pub use memory::InMemoryRegistryStore;
pub use object_store::{ObjectStore, ObjectStoreExt};
pub use s3::{ObjectRegistryStore, s3_bucket};
pub use sql::SqlRegistryStore;

use crate::{
    config::{RegistryLocation, RepoConfig},
    error::RegistryError,
    writeback::{MetaEdit, ViewField},
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

/// A place the registry is read from.
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
        RegistryLocation::Sql { url } => Arc::new(SqlRegistryStore::new(url)?),
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

pub(crate) fn decode(location: &str, bytes: &[u8]) -> Result<Registry, RegistryError> {
    use prost::Message;
    Registry::decode(bytes).map_err(|source| RegistryError::Corrupt {
        location: location.to_owned(),
        len: bytes.len(),
        source,
    })
}
