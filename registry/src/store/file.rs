use std::path::PathBuf;

use super::{RegistrySnapshot, RegistryStore, decode};
use crate::error::RegistryError;

/// A registry in a local file (`registry: data/registry.db`).
#[derive(Debug, Clone)]
pub struct FileRegistryStore {
    path: PathBuf,
}

impl FileRegistryStore {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

#[async_trait::async_trait]
impl RegistryStore for FileRegistryStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn load(&self) -> Result<RegistrySnapshot, RegistryError> {
        let bytes = tokio::fs::read(&self.path).await.map_err(|source| {
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
        })?;
        Ok(RegistrySnapshot::from_proto(decode(
            &self.location(),
            &bytes,
        )?))
    }
}
