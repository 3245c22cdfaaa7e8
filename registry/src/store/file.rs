use std::{
    io::Write,
    path::{Path, PathBuf},
};

use super::{
    ChangeSet, CommitOptions, Fetched, RegistryStore, Revision, StoredObjects, blob_objects,
    check_expected, committed_bytes, content_revision, fetched,
};
use crate::{
    error::RegistryError,
    writeback::{MetaEdit, ViewField, edit_registry},
};

/// A registry in a local file (`registry: data/registry.db`).
///
/// Reads take no lock: a commit writes a new file beside the registry and renames it over, so
/// a reader sees the old or the new registry, never a mix. Writers (commits and
/// materialization's meta edits) hold an exclusive advisory lock on the sibling file
/// `<registry file name>.lock` from their read to their rename, so Larder writers never lose
/// each other's changes. Feast's own writers take no lock; a `feast apply` racing a Larder
/// commit can still be overwritten (as between two `feast apply`s).
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

    /// Read, edit and replace the file under the writers' lock, off the async runtime. `edit`
    /// gets the current bytes (or the error reading them, e.g. not found) and returns the new
    /// ones. `create_dir`: create the registry's directory first if it is missing.
    async fn rewrite<F>(&self, create_dir: bool, edit: F) -> Result<Vec<u8>, RegistryError>
    where
        F: FnOnce(std::io::Result<Vec<u8>>) -> Result<Vec<u8>, RegistryError> + Send + 'static,
    {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || locked_rewrite(&path, create_dir, edit))
            .await
            .map_err(|e| RegistryError::WriteFile {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })?
    }
}

/// The lock file beside the registry: the registry itself is replaced by rename, so a lock on
/// it would be a lock on a file that is no longer the registry.
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

fn locked_rewrite<F>(path: &Path, create_dir: bool, edit: F) -> Result<Vec<u8>, RegistryError>
where
    F: FnOnce(std::io::Result<Vec<u8>>) -> Result<Vec<u8>, RegistryError>,
{
    let write_err = |source| RegistryError::WriteFile {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if create_dir {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let lock = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(path))
    {
        Ok(lock) => lock,
        // No directory, so no registry: the edit's own error for a missing registry.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create_dir => {
            let missing = std::io::Error::new(e.kind(), e.to_string());
            edit(Err(e))?;
            return Err(write_err(missing));
        }
        Err(e) => return Err(write_err(e)),
    };
    lock.lock().map_err(write_err)?;
    let edited = edit(std::fs::read(path))?;
    // Write beside the file and rename over it: readers never see a half-written registry.
    let tmp = path.with_extension(format!("larder-{}.tmp", uuid::Uuid::new_v4()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&edited)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_err(e));
    }
    // Make the rename itself durable; not every file system can sync a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    drop(lock);
    Ok(edited)
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

    async fn load_objects(&self) -> Result<StoredObjects, RegistryError> {
        let bytes = bytes::Bytes::from(self.read().await?);
        let revision = content_revision(&bytes);
        blob_objects(&self.location(), &bytes, revision)
    }

    /// Under the writers' lock: compares the digest of the file's bytes with `expected`,
    /// applies the change set at the wire level, writes a temporary file, syncs it and renames
    /// it over the registry. A missing file (or directory) is created.
    async fn commit(
        &self,
        expected: Option<&Revision>,
        changes: &ChangeSet,
        options: &CommitOptions,
    ) -> Result<Revision, RegistryError> {
        let location = self.location();
        let path = self.path.clone();
        let expected = expected.cloned();
        let changes = changes.clone();
        let options = options.clone();
        let edited = self
            .rewrite(true, move |current| {
                let current = match current {
                    Ok(bytes) => Some(bytes),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(source) => return Err(RegistryError::ReadFile { path, source }),
                };
                let revision = current.as_deref().map(content_revision);
                check_expected(
                    &location,
                    current.as_deref().zip(revision.as_ref()),
                    expected.as_ref(),
                )?;
                committed_bytes(
                    &location,
                    current.as_deref().unwrap_or_default(),
                    &changes,
                    &options,
                )
            })
            .await?;
        Ok(content_revision(&edited))
    }

    async fn update_view_meta(
        &self,
        project: &str,
        which: ViewField,
        view: &str,
        edit: &MetaEdit,
    ) -> Result<(), RegistryError> {
        let location = self.location();
        let path = self.path.clone();
        let (project, view, edit) = (project.to_owned(), view.to_owned(), edit.clone());
        self.rewrite(false, move |current| {
            let bytes = current.map_err(|source| RegistryError::ReadFile { path, source })?;
            let version = uuid::Uuid::new_v4().to_string();
            edit_registry(&bytes, which, &project, &view, &edit, &version)
                .map_err(|source| RegistryError::WriteBack { location, source })
        })
        .await?;
        Ok(())
    }
}
