use std::path::PathBuf;

use super::{Fetched, RegistryStore, Revision, content_revision, fetched};
use crate::{
    error::RegistryError,
    writeback::{MetaEdit, ViewField, edit_registry},
};

/// A registry in a local file (`registry: data/registry.db`).
#[derive(Debug, Clone)]
pub struct FileRegistryStore {
    path: PathBuf,
}

impl FileRegistryStore {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    async fn read(&self) -> Result<Vec<u8>, RegistryError> {
        tokio::fs::read(&self.path).await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                RegistryError::FileNotFound {
                    path: self.path.clone(),
                }
            } else {
                RegistryError::ReadFile {
                    path: self.path.clone(),
                    source,
                }
            }
        })
    }
}

#[async_trait::async_trait]
impl RegistryStore for FileRegistryStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// The file is read every time (a modification time can miss a rewrite within its
    /// granularity); it is decoded only when its bytes differ from the revision seen.
    async fn load_if_changed(&self, seen: Option<&Revision>) -> Result<Fetched, RegistryError> {
        let bytes = self.read().await?;
        fetched(&self.location(), &bytes, content_revision(&bytes), seen)
    }

    async fn update_view_meta(
        &self,
        project: &str,
        which: ViewField,
        view: &str,
        edit: &MetaEdit,
    ) -> Result<(), RegistryError> {
        let read_err = |source| RegistryError::ReadFile {
            path: self.path.clone(),
            source,
        };
        let write_err = |source| RegistryError::WriteFile {
            path: self.path.clone(),
            source,
        };
        let bytes = tokio::fs::read(&self.path).await.map_err(read_err)?;
        let version = uuid::Uuid::new_v4().to_string();
        let edited =
            edit_registry(&bytes, which, project, view, edit, &version).map_err(|source| {
                RegistryError::WriteBack {
                    location: self.location(),
                    source,
                }
            })?;
        // Write beside the file and rename over it: readers never see a half-written registry.
        let tmp = self.path.with_extension(format!("larder-{version}.tmp"));
        tokio::fs::write(&tmp, &edited).await.map_err(write_err)?;
        let file = tokio::fs::File::open(&tmp).await.map_err(write_err)?;
        file.sync_all().await.map_err(write_err)?;
        if let Err(e) = tokio::fs::rename(&tmp, &self.path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(write_err(e));
        }
        Ok(())
    }
}
