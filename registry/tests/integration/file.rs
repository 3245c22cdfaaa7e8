use std::{path::PathBuf, sync::Arc};

use larder_protos::feast::core::FeatureViewState;
use larder_registry::{
    conformance::{self, Blob, Fixture},
    error::RegistryError,
    store::{ChangeSet, CommitOptions, FileRegistryStore, ObjectKind, RegistryStore},
    writeback::{MetaEdit, ViewField},
};

/// A registry file in a directory that does not exist yet (a first commit creates it).
struct File {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Fixture for File {
    fn handle(&self) -> Arc<dyn RegistryStore> {
        Arc::new(FileRegistryStore::new(self.path.clone()))
    }

    fn blob(&self) -> Option<&dyn Blob> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl Blob for File {
    async fn read(&self) -> Vec<u8> {
        std::fs::read(&self.path).expect("the registry file")
    }

    async fn write(&self, bytes: Vec<u8>) {
        std::fs::create_dir_all(self.path.parent().unwrap()).unwrap();
        std::fs::write(&self.path, bytes).unwrap();
    }
}

async fn fixture() -> Box<dyn Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/registry.db");
    Box::new(File { _dir: dir, path })
}

larder_registry::registry_store_suite!(fixture);

#[tokio::test]
async fn commits_lock_a_sibling_file_and_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileRegistryStore::new(dir.path().join("data/registry.db"));
    let mut set = ChangeSet::new();
    set.upsert(ObjectKind::Project, conformance::project("p"))
        .unwrap();
    let r1 = store
        .commit(None, &set, &CommitOptions::default())
        .await
        .unwrap();
    let mut set = ChangeSet::new();
    set.upsert(ObjectKind::Entity, conformance::entity("p", "driver", ""))
        .unwrap();
    store
        .commit(Some(&r1), &set, &CommitOptions::default())
        .await
        .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["registry.db", "registry.db.lock"]);
}

#[tokio::test]
async fn a_meta_edit_of_a_missing_file_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileRegistryStore::new(dir.path().join("data/registry.db"));
    let edit = MetaEdit {
        state: FeatureViewState::AvailableOnline,
        last_updated: prost_types::Timestamp::default(),
        append_interval: None,
    };
    let e = store
        .update_view_meta("p", ViewField::FeatureView, "v", &edit)
        .await
        .unwrap_err();
    match e {
        RegistryError::ReadFile { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        other => panic!("{other}"),
    }
    assert!(!dir.path().join("data").exists());
}
