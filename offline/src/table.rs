//! Whole tables in files: an entity dataframe read from Parquet or CSV, a retrieval's answer
//! written to Parquet or CSV — written beside the target and renamed into place, so a failed
//! write leaves no partial file.

use std::{fs::File, path::Path, sync::Arc};

use datafusion::{
    arrow::{
        array::RecordBatch,
        compute::concat_batches,
        csv,
        datatypes::{Schema, SchemaRef},
    },
    parquet::arrow::{ArrowWriter, arrow_reader::ParquetRecordBatchReaderBuilder},
};

/// Why a table file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{path}: unknown format (expected a .parquet or .csv file)")]
    Format { path: String },
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("writing {path}: {message}")]
    Write { path: String, message: String },
}

impl larder_types::error::Coded for TableError {
    fn code(&self) -> larder_types::error::ErrorCode {
        use larder_types::error::ErrorCode as C;
        match self {
            TableError::Format { .. } | TableError::Read { .. } => C::BadRequest,
            TableError::Write { .. } => C::Internal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv,
}

impl Format {
    pub fn of(path: &Path) -> Result<Self, TableError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
        {
            Some(e) if e == "parquet" || e == "pq" => Ok(Format::Parquet),
            Some(e) if e == "csv" => Ok(Format::Csv),
            _ => Err(TableError::Format {
                path: path.display().to_string(),
            }),
        }
    }
}

/// The whole table in `path` as one batch (CSV: header row, types inferred, ISO-8601 times
/// read as timestamps).
pub fn read_table(path: &Path) -> Result<RecordBatch, TableError> {
    let format = Format::of(path)?;
    let read = |e: &dyn std::fmt::Display| TableError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(|e| read(&e))?;
    let (schema, batches): (SchemaRef, Vec<RecordBatch>) = match format {
        Format::Parquet => {
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read(&e))?;
            let schema = builder.schema().clone();
            let reader = builder
                .with_batch_size(64 * 1024)
                .build()
                .map_err(|e| read(&e))?;
            let batches = reader.collect::<Result<_, _>>().map_err(|e| read(&e))?;
            (schema, batches)
        }
        Format::Csv => {
            let mut file = file;
            let (schema, _) = csv::reader::Format::default()
                .with_header(true)
                .infer_schema(&mut file, Some(10_000))
                .map_err(|e| read(&e))?;
            use std::io::Seek;
            file.rewind().map_err(|e| read(&e))?;
            let schema = Arc::new(schema);
            let reader = csv::ReaderBuilder::new(schema.clone())
                .with_header(true)
                .with_batch_size(64 * 1024)
                .build(file)
                .map_err(|e| read(&e))?;
            let batches = reader.collect::<Result<_, _>>().map_err(|e| read(&e))?;
            (schema, batches)
        }
    };
    concat_batches(&schema, &batches).map_err(|e| read(&e))
}

/// Writes `batches` as one Parquet object `uri` (`s3://bucket/key`) in `store` (the bucket's):
/// one put, or a multipart upload that becomes the object only when it completes, so a failure
/// (of a batch too) leaves no object and the one that was there as it was.
pub async fn put_parquet<E: std::fmt::Display>(
    store: Arc<dyn object_store::ObjectStore>,
    uri: &str,
    schema: &Arc<Schema>,
    batches: impl IntoIterator<Item = Result<RecordBatch, E>>,
) -> Result<(), TableError> {
    use datafusion::parquet::arrow::async_writer::AsyncArrowWriter;
    let write = |e: &dyn std::fmt::Display| TableError::Write {
        path: uri.to_owned(),
        message: e.to_string(),
    };
    let key = uri
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
        .map(|(_, k)| k)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| write(&"expected s3://bucket/key"))?;
    let key = object_store::path::Path::parse(key).map_err(|e| write(&e))?;
    let mut w = AsyncArrowWriter::try_new(
        object_store::buffered::BufWriter::new(store, key),
        schema.clone(),
        None,
    )
    .map_err(|e| write(&e))?;
    for b in batches {
        let b = match b {
            Ok(b) => b,
            Err(e) => {
                // Aborts the upload: nothing becomes visible.
                drop(w);
                return Err(write(&e));
            }
        };
        w.write(&b).await.map_err(|e| write(&e))?;
    }
    w.close().await.map_err(|e| write(&e))?;
    Ok(())
}

/// Writes `batches` to `path` (its format by extension) through a temporary file beside it; a
/// failure (of a batch too) leaves no file.
pub fn write_table<E: std::fmt::Display>(
    path: &Path,
    schema: &Arc<Schema>,
    batches: impl IntoIterator<Item = Result<RecordBatch, E>>,
) -> Result<(), TableError> {
    let format = Format::of(path)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let write = |e: &dyn std::fmt::Display| TableError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".larder-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| write(&e))?;
    let file = tmp.as_file().try_clone().map_err(|e| write(&e))?;
    match format {
        Format::Parquet => {
            let mut w = ArrowWriter::try_new(file, schema.clone(), None).map_err(|e| write(&e))?;
            for b in batches {
                w.write(&b.map_err(|e| write(&e))?).map_err(|e| write(&e))?;
            }
            w.close().map_err(|e| write(&e))?;
        }
        Format::Csv => {
            let mut w = csv::WriterBuilder::new().with_header(true).build(file);
            for b in batches {
                w.write(&b.map_err(|e| write(&e))?).map_err(|e| write(&e))?;
            }
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| write(&e))?;
    }
    tmp.persist(path).map_err(|e| write(&e.error))?;
    Ok(())
}
