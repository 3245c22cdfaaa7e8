//! The offline store: DataFusion over the Parquet data of Feast FileSources. Today it provides
//! what materialization needs — the latest row per entity key within a time range
//! ([`source::latest_rows`]) and the Arrow → Feast value conversion ([`convert`]) — and what
//! `/push` to the offline store needs: pushed rows appended as new Parquet files ([`append`]).

pub mod append;
pub mod convert;
pub mod source;

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
    #[error(transparent)]
    DataFusion(datafusion::error::DataFusionError),
    #[error(transparent)]
    Convert(#[from] convert::ConvertError),
}
