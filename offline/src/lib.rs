//! The offline store: DataFusion over the Parquet data of Feast FileSources. Today it provides
//! what materialization needs — the latest row per entity key within a time range
//! ([`source::latest_rows`]) and the Arrow → Feast value conversion ([`convert`]) — and what
//! `/push` to the offline store needs: pushed rows appended as new Parquet files ([`append`]);
//! and historical retrieval: point-in-time joins ([`historical`]) of entity tables read from and
//! written to Parquet or CSV files ([`table`]).
//! It depends on the shared Feast types (`larder_types`), not on the online stores.

/// DataFusion, for callers that run the offline store's plan nodes.
pub use datafusion;
/// Arrow, as the offline store's callers see its tables.
pub use datafusion::arrow;
/// The object store API the offline store reads and writes through.
pub use object_store;

pub mod append;
pub mod convert;
pub mod feature_log;
pub mod historical;
mod key_table;
pub mod ondemand;
pub mod source;
pub mod table;

/// Errors of offline reads.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("reading {uri}: {source}")]
    Source {
        uri: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    #[error("{uri} has no column {column} (columns: {available:?})")]
    MissingColumn {
        uri: String,
        column: String,
        available: Vec<String>,
    },
    #[error("{uri}: timestamp column {column} has type {data_type}, not a timestamp")]
    BadTimestampColumn {
        uri: String,
        column: String,
        data_type: String,
    },
    #[error("invalid source URI {uri}: {message}")]
    BadUri { uri: String, message: String },
    #[error("the entity SQL query: {message}")]
    BadSql { message: String },
    #[error(transparent)]
    DataFusion(datafusion::error::DataFusionError),
    #[error(transparent)]
    Convert(#[from] convert::ConvertError),
    #[error(transparent)]
    Entity(#[from] historical::EntityError),
    #[error(transparent)]
    Table(#[from] table::TableError),
    #[error("on demand feature view {0}")]
    OnDemand(#[from] ondemand::EvalError),
}

impl larder_types::error::Coded for OfflineError {
    /// A source that cannot be read as its view declares it is the request's problem to fix
    /// in the repo (as Feast reports it to the caller); a failure of the engine itself is
    /// internal.
    fn code(&self) -> larder_types::error::ErrorCode {
        use larder_types::error::ErrorCode as C;
        match self {
            OfflineError::Source { .. }
            | OfflineError::MissingColumn { .. }
            | OfflineError::BadTimestampColumn { .. }
            | OfflineError::BadUri { .. }
            | OfflineError::BadSql { .. }
            | OfflineError::Convert(_)
            | OfflineError::Entity(_)
            | OfflineError::OnDemand(_) => C::BadRequest,
            OfflineError::Table(e) => e.code(),
            OfflineError::DataFusion(_) => C::Internal,
        }
    }
}

impl larder_types::error::Coded for convert::ConvertError {
    fn code(&self) -> larder_types::error::ErrorCode {
        larder_types::error::ErrorCode::BadRequest
    }
}

impl larder_types::error::Coded for append::AppendError {
    /// The source cannot take appends → 422, bad rows → 400, the store failed → 503.
    fn code(&self) -> larder_types::error::ErrorCode {
        use append::AppendError as A;
        use larder_types::error::ErrorCode as C;
        match self {
            A::Glob { .. } | A::NoFiles { .. } => C::Unprocessable,
            A::Changed { .. } => C::Conflict,
            A::Columns { .. } | A::Ragged { .. } | A::Value { .. } => C::BadRequest,
            A::Store { .. } => C::Unavailable,
        }
    }
}
