use std::sync::Mutex;

use bytes::Bytes;
use prost::Message;

use super::{
    ChangeSet, CommitOptions, Fetched, RegistrySnapshot, RegistryStore, Revision, StoredObjects,
    blob_objects, check_expected, committed_bytes, decode,
};
use crate::{
    error::RegistryError,
    writeback::{MetaEdit, ViewField, edit_registry},
};

/// An in-memory registry for tests: the serialized `feast.core.Registry` (so commits keep
/// unknown fields as the file store does) and a revision counter that every change moves on.
/// `set` replaces what the next `load` returns. [`Default`] is an empty registry.
#[derive(Debug, Default)]
pub struct InMemoryRegistryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    bytes: Bytes,
    /// `bytes` decoded, with the per-project infra given to `new`/`set`.
    snapshot: RegistrySnapshot,
    counter: u64,
}

impl State {
    fn revision(&self) -> Revision {
        Revision(format!("memory:{}", self.counter))
    }

    /// Replaces the bytes (already known to decode as `proto`) and moves the revision on.
    fn replace(&mut self, bytes: Bytes, proto: larder_protos::feast::core::Registry) {
        self.bytes = bytes;
        self.snapshot.proto = proto;
        self.counter += 1;
    }
}

impl InMemoryRegistryStore {
    pub fn new(snapshot: RegistrySnapshot) -> Self {
        Self {
            state: Mutex::new(State {
                bytes: snapshot.proto.encode_to_vec().into(),
                snapshot,
                counter: 0,
            }),
        }
    }

    /// A store holding these serialized registry bytes (kept as they are).
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Result<Self, RegistryError> {
        let store = Self::default();
        store.set_bytes(bytes)?;
        Ok(store)
    }

    pub fn set(&self, snapshot: RegistrySnapshot) {
        let mut state = self.state();
        state.bytes = snapshot.proto.encode_to_vec().into();
        state.snapshot = snapshot;
        state.counter += 1;
    }

    /// Replaces the registry with these serialized bytes, keeping the per-project infra.
    pub fn set_bytes(&self, bytes: impl Into<Bytes>) -> Result<(), RegistryError> {
        let bytes = bytes.into();
        let proto = decode("memory", &bytes)?;
        self.state().replace(bytes, proto);
        Ok(())
    }

    /// The registry as stored: the serialized `feast.core.Registry`.
    pub fn bytes(&self) -> Bytes {
        self.state().bytes.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }

    /// Replaces the bytes with `edit(bytes)` (under the lock, so edits never interleave).
    fn rewrite(
        &self,
        edit: impl FnOnce(&[u8], &Revision) -> Result<Vec<u8>, RegistryError>,
    ) -> Result<Revision, RegistryError> {
        let mut state = self.state();
        let edited = Bytes::from(edit(&state.bytes, &state.revision())?);
        let proto = decode("memory", &edited)?;
        state.replace(edited, proto);
        Ok(state.revision())
    }
}

#[async_trait::async_trait]
impl RegistryStore for InMemoryRegistryStore {
    fn location(&self) -> String {
        "memory".to_owned()
    }

    async fn load_if_changed(&self, seen: Option<&Revision>) -> Result<Fetched, RegistryError> {
        let state = self.state();
        let revision = state.revision();
        if seen == Some(&revision) {
            return Ok(Fetched::Unchanged);
        }
        Ok(Fetched::Changed {
            snapshot: Box::new(state.snapshot.clone()),
            revision: Some(revision),
        })
    }

    async fn load_objects(&self) -> Result<StoredObjects, RegistryError> {
        let (bytes, revision) = {
            let state = self.state();
            (state.bytes.clone(), state.revision())
        };
        blob_objects("memory", &bytes, revision)
    }

    /// Compares the revision counter with `expected` and applies the change set at the wire
    /// level, under the store's lock.
    async fn commit(
        &self,
        expected: Option<&Revision>,
        changes: &ChangeSet,
        options: &CommitOptions,
    ) -> Result<Revision, RegistryError> {
        let revision = self.rewrite(|bytes, revision| {
            check_expected("memory", Some((bytes, revision)), expected)?;
            committed_bytes("memory", bytes, changes, options)
        })?;
        // A store given per-project infra (as the SQL registry keeps it) keeps it per project.
        let mut state = self.state();
        if !state.snapshot.project_infra.is_empty() {
            for (project, bytes) in changes.infra() {
                let infra = larder_protos::feast::core::Infra::decode(bytes.as_ref())
                    .expect("a change set holds valid infra");
                state
                    .snapshot
                    .project_infra
                    .insert(project.to_owned(), infra);
            }
        }
        Ok(revision)
    }

    async fn update_view_meta(
        &self,
        project: &str,
        which: ViewField,
        view: &str,
        edit: &MetaEdit,
    ) -> Result<(), RegistryError> {
        self.rewrite(|bytes, _| {
            let version_id = uuid::Uuid::new_v4().to_string();
            edit_registry(bytes, which, project, view, edit, &version_id).map_err(|source| {
                RegistryError::WriteBack {
                    location: "memory".to_owned(),
                    source,
                }
            })
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::core::{Infra, Registry, SqliteTable};
    use std::collections::BTreeMap;

    impl InMemoryRegistryStore {
        fn project_infra(&self) -> BTreeMap<String, Infra> {
            self.state().snapshot.project_infra.clone()
        }
    }

    #[tokio::test]
    async fn per_project_infra_survives_commits() {
        let mut snapshot = RegistrySnapshot::from_proto(Registry::default());
        snapshot.project_infra = BTreeMap::from([(
            "p".to_owned(),
            Infra {
                infra_objects: vec![larder_protos::feast::core::InfraObject {
                    infra_object: Some(
                        larder_protos::feast::core::infra_object::InfraObject::SqliteTable(
                            SqliteTable {
                                path: "/x".into(),
                                name: "p_v".into(),
                            },
                        ),
                    ),
                    ..Default::default()
                }],
            },
        )]);
        let store = InMemoryRegistryStore::new(snapshot.clone());
        let (_, revision) = store.load_revised().await.unwrap();
        store
            .commit(
                revision.as_ref(),
                &ChangeSet::new(),
                &CommitOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(store.project_infra(), snapshot.project_infra);
        assert_eq!(store.load().await.unwrap().infra("p"), snapshot.infra("p"));
    }
}
