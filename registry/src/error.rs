//! The registry crate's one error type.

use std::path::PathBuf;

/// Errors from reading the Feast registry or resolving objects in it.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("registry file {path} does not exist")]
    FileNotFound { path: PathBuf },
    #[error("cannot read registry file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registry at {location} is not a valid feast.core.Registry ({len} bytes): {source}")]
    Corrupt {
        location: String,
        len: usize,
        #[source]
        source: prost::DecodeError,
    },
    #[error("invalid registry URL {url}: {message}")]
    BadUrl { url: String, message: String },
    #[error("registry object {url} does not exist")]
    ObjectNotFound { url: String },
    #[error("bucket {bucket} of registry {url} does not exist")]
    BucketNotFound { url: String, bucket: String },
    #[error("cannot read registry {url}: {source}")]
    ObjectStore {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("sql registry {url}: {source}")]
    Sql {
        url: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "sql registry {url}: table {table} row {name:?} of project {project:?} is not a valid {message}: {source}"
    )]
    CorruptRow {
        url: String,
        table: &'static str,
        project: String,
        name: String,
        message: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    #[error("cannot write registry file {path}: {source}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registry at {location}: {source}")]
    WriteBack {
        location: String,
        #[source]
        source: crate::writeback::WriteBackError,
    },
    #[error(
        "registry at {location} is no longer at {} (another writer committed first): re-read it and retry",
        expected.as_ref().map_or_else(|| "no registry / an empty registry".to_owned(), |r| format!("revision {r}"))
    )]
    Conflict {
        location: String,
        /// The revision the refused commit expected.
        expected: Option<crate::store::Revision>,
    },
    #[error("invalid {kind} for the registry: {message}")]
    InvalidObject { kind: &'static str, message: String },
    #[error(
        "sql registry {url} has no table {table} for {kind} objects: create Feast's schema first (feast apply with schema_mode auto)"
    )]
    SqlTableMissing {
        url: String,
        table: &'static str,
        kind: &'static str,
    },
    #[error("registry type {0} is not supported by this command yet")]
    Unsupported(String),
    #[error("project {project} does not exist in the registry")]
    ProjectNotFound { project: String },
    #[error("{kind} {name} does not exist in project {project}")]
    ObjectMissing {
        kind: &'static str,
        name: String,
        project: String,
    },
    #[error("{kind} {name} in project {project} is invalid: {message}")]
    Invalid {
        kind: &'static str,
        name: String,
        project: String,
        message: String,
    },
}

impl RegistryError {
    /// Whether the error says the registry has not been written yet (no file, no object).
    pub fn is_missing_registry(&self) -> bool {
        matches!(
            self,
            RegistryError::FileNotFound { .. } | RegistryError::ObjectNotFound { .. }
        )
    }
}

impl larder_types::error::Coded for RegistryError {
    /// A registry that cannot be read or written now is `Unavailable`; what is missing from it
    /// `NotFound`; a stale revision `Conflict`; a bad configuration a fault of the server.
    fn code(&self) -> larder_types::error::ErrorCode {
        use larder_types::error::ErrorCode as C;
        match self {
            RegistryError::FileNotFound { .. }
            | RegistryError::ReadFile { .. }
            | RegistryError::Corrupt { .. }
            | RegistryError::ObjectNotFound { .. }
            | RegistryError::BucketNotFound { .. }
            | RegistryError::ObjectStore { .. }
            | RegistryError::Sql { .. }
            | RegistryError::CorruptRow { .. }
            | RegistryError::WriteFile { .. } => C::Unavailable,
            RegistryError::ProjectNotFound { .. } | RegistryError::ObjectMissing { .. } => {
                C::NotFound
            }
            RegistryError::Unsupported(_) => C::NotImplemented,
            RegistryError::Conflict { .. } => C::Conflict,
            RegistryError::InvalidObject { .. } => C::BadRequest,
            RegistryError::SqlTableMissing { .. } => C::Unavailable,
            RegistryError::WriteBack {
                source: crate::writeback::WriteBackError::ViewNotFound { .. },
                ..
            } => C::NotFound,
            RegistryError::Config(_)
            | RegistryError::BadUrl { .. }
            | RegistryError::WriteBack { .. }
            | RegistryError::Invalid { .. } => C::Internal,
        }
    }
}
