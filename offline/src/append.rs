//! Appending pushed rows to a FileSource (`/push` with `to: offline`): the rows become one new
//! Parquet file inside the source's directory (local or `s3://`), with the column names and
//! Arrow types of the files already there. Existing files are never rewritten, so a reader
//! (Feast, DataFusion, a training job) sees either the old files or the old files plus the new
//! one, never a half-written source.
//!
//! A source whose path names a single Parquet file (what `feast init` writes) is rewritten: its
//! rows and the new ones go to a new object that replaces it in one step — locally a file
//! renamed over the old one, on S3 a put conditional on the old object's ETag where the store
//! supports it — so a failed write leaves the old file as it was and a reader sees the old file
//! or the new one, never a partial one. Rewrites are serialized within the process.

use std::sync::Arc;

use datafusion::{
    arrow::{
        array::{ArrayRef, RecordBatch, new_null_array},
        datatypes::{Field, Schema, SchemaRef},
        json::ReaderBuilder,
    },
    parquet::{
        arrow::{ArrowWriter, parquet_to_arrow_schema},
        basic::Compression,
        file::{metadata::ParquetMetaDataReader, properties::WriterProperties},
    },
};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, path::Path};
use serde_json::{Map, Value as Json};

/// Why rows could not be appended. Every variant names the source.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("{uri} changed while larder rewrote it; nothing was written, push again")]
    Changed { uri: String },
    #[error("{uri} is a glob; push to the offline store needs the source's path to be a directory")]
    Glob { uri: String },
    #[error("{uri} holds no Parquet file to take the column types from (push needs at least one)")]
    NoFiles { uri: String },
    #[error(
        "the pushed columns must equal the columns of {uri}: missing {missing:?}, unexpected {unexpected:?}"
    )]
    Columns {
        uri: String,
        missing: Vec<String>,
        unexpected: Vec<String>,
    },
    #[error("column {column} has {got} values, column {first} has {expected}")]
    Ragged {
        column: String,
        got: usize,
        first: String,
        expected: usize,
    },
    #[error("column {column} of {uri}: {message}")]
    Value {
        uri: String,
        column: String,
        message: String,
    },
    #[error("{uri}: {message}")]
    Store { uri: String, message: String },
}

/// Where a source's files live: an object store and the directory within it (or the file,
/// for a single-file source).
pub struct SourceDir {
    /// The source path as configured (absolute local path or `s3://` URL), for messages.
    pub uri: String,
    pub store: Arc<dyn ObjectStore>,
    pub dir: Path,
}

/// Single-file rewrites, one at a time (a read-modify-write).
static REWRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl SourceDir {
    /// A local directory (absolute path).
    pub fn local(path: &str) -> Result<Self, AppendError> {
        let store_err = |m: String| AppendError::Store {
            uri: path.to_owned(),
            message: m,
        };
        let p = std::path::Path::new(path.strip_prefix("file://").unwrap_or(path));
        if !p.is_dir() && !p.is_file() {
            return Err(store_err("no such directory".into()));
        }
        let dir = Path::from_filesystem_path(p).map_err(|e| store_err(e.to_string()))?;
        Ok(Self {
            uri: path.to_owned(),
            store: Arc::new(object_store::local::LocalFileSystem::new()),
            dir,
        })
    }

    /// `s3://bucket/prefix` on `store` (the bucket's store).
    pub fn bucket(uri: &str, store: Arc<dyn ObjectStore>) -> Self {
        let key = uri
            .strip_prefix("s3://")
            .and_then(|r| r.split_once('/'))
            .map_or("", |(_, k)| k);
        Self {
            uri: uri.to_owned(),
            store,
            dir: Path::from(key.trim_end_matches('/')),
        }
    }
}

/// What was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The new file's location within the store.
    pub file: String,
    pub rows: usize,
}

fn is_data_file(p: &Path) -> bool {
    let name = p.filename().unwrap_or("");
    name.ends_with(".parquet") && !name.starts_with('.') && !name.starts_with('_')
}

/// pandas writes a non-default index as `__index_level_N__`; pushed rows have no index.
fn is_index_column(name: &str) -> bool {
    name.starts_with("__index_level_") && name.ends_with("__")
}

/// Rows converted to a source's schema, ready to be written.
pub struct Prepared {
    batch: RecordBatch,
}

impl Prepared {
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// Whether `other` can go into the same file.
    pub fn same_columns(&self, other: &Prepared) -> bool {
        self.batch.schema() == other.batch.schema()
    }
}

/// Writes `columns` (name → one JSON value per row) as a new Parquet file in `target`.
pub async fn append_rows(
    target: &SourceDir,
    columns: &[(String, Vec<Json>)],
) -> Result<Appended, AppendError> {
    let prepared = prepare(target, columns).await?;
    write(target, &[prepared]).await
}

/// Checks `target` (a directory with at least one Parquet file) and converts `columns` to the
/// column order and types of its newest file; nothing is written.
pub async fn prepare(
    target: &SourceDir,
    columns: &[(String, Vec<Json>)],
) -> Result<Prepared, AppendError> {
    let file_schema = newest_schema(target).await?;
    Ok(Prepared {
        batch: to_batch(&target.uri, &file_schema, columns)?,
    })
}

/// [`prepare`] for rows that are already Arrow (Feast's `offline_write_batch`): the batch's
/// columns, by name, cast to the newest file's types (a value that does not fit is an error,
/// never a null); the same columns as the file, no more, no fewer.
pub async fn prepare_arrow(
    target: &SourceDir,
    batch: &RecordBatch,
) -> Result<Prepared, AppendError> {
    use datafusion::arrow::compute::{CastOptions, cast_with_options};
    let uri = &target.uri;
    let file_schema = newest_schema(target).await?;
    let given = batch.schema();
    let wanted: Vec<&Field> = file_schema
        .fields()
        .iter()
        .map(|f| f.as_ref())
        .filter(|f| !is_index_column(f.name()) || given.column_with_name(f.name()).is_some())
        .collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|f| given.column_with_name(f.name()).is_none())
        .map(|f| f.name().clone())
        .collect();
    let unexpected: Vec<String> = given
        .fields()
        .iter()
        .filter(|f| file_schema.field_with_name(f.name()).is_err())
        .map(|f| f.name().clone())
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(AppendError::Columns {
            uri: uri.clone(),
            missing,
            unexpected,
        });
    }
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for f in &wanted {
        let column = batch.column_by_name(f.name()).expect("checked");
        let array =
            cast_with_options(column, f.data_type(), &strict).map_err(|e| AppendError::Value {
                uri: uri.clone(),
                column: f.name().clone(),
                message: e.to_string(),
            })?;
        fields.push(Field::new(f.name(), f.data_type().clone(), true));
        arrays.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| {
        AppendError::Store {
            uri: uri.clone(),
            message: e.to_string(),
        }
    })?;
    Ok(Prepared { batch })
}

/// The schema of the newest Parquet file of `target`, a directory (not a file or a glob).
async fn newest_schema(target: &SourceDir) -> Result<Schema, AppendError> {
    let uri = &target.uri;
    if uri.contains(['*', '?', '[']) {
        return Err(AppendError::Glob { uri: uri.clone() });
    }
    let store_err = |e: object_store::Error| AppendError::Store {
        uri: uri.clone(),
        message: e.to_string(),
    };
    // A path that is itself an object is a single-file source.
    match target.store.head(&target.dir).await {
        Ok(meta) => return read_schema(target, &meta).await,
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(store_err(e)),
    }
    let mut files: Vec<object_store::ObjectMeta> = target
        .store
        .list(Some(&target.dir))
        .try_filter(|m| std::future::ready(is_data_file(&m.location)))
        .try_collect()
        .await
        .map_err(store_err)?;
    files.sort_by(|a, b| a.location.cmp(&b.location));
    let newest = files
        .last()
        .ok_or_else(|| AppendError::NoFiles { uri: uri.clone() })?;
    read_schema(target, newest).await
}

/// The Arrow schema of a Parquet file, from its footer alone (two ranged reads).
async fn read_schema(
    target: &SourceDir,
    file: &object_store::ObjectMeta,
) -> Result<Schema, AppendError> {
    let bad = |m: String| AppendError::Store {
        uri: target.uri.clone(),
        message: format!("reading the schema of {}: {m}", file.location),
    };
    if file.size < 12 {
        return Err(bad("not a Parquet file".into()));
    }
    let tail = target
        .store
        .get_range(&file.location, file.size - 8..file.size)
        .await
        .map_err(|e| bad(e.to_string()))?;
    if &tail[4..] != b"PAR1" {
        return Err(bad("not a Parquet file".into()));
    }
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if len + 12 > file.size {
        return Err(bad("corrupt footer".into()));
    }
    let footer = target
        .store
        .get_range(&file.location, file.size - 8 - len..file.size - 8)
        .await
        .map_err(|e| bad(e.to_string()))?;
    let metadata =
        ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| bad(e.to_string()))?;
    let fm = metadata.file_metadata();
    parquet_to_arrow_schema(fm.schema_descr(), fm.key_value_metadata())
        .map_err(|e| bad(e.to_string()))
}

/// Writes prepared rows (parts with the same columns, see [`Prepared::same_columns`]) as one
/// new file: a single put, so readers see all of it or none; a single-file source is
/// rewritten with its rows and these.
pub async fn write(target: &SourceDir, parts: &[Prepared]) -> Result<Appended, AppendError> {
    let failed = |message: String| AppendError::Store {
        uri: target.uri.clone(),
        message,
    };
    let Some(first) = parts.first() else {
        return Err(failed("nothing to write".into()));
    };
    let schema = first.batch.schema();
    match target.store.head(&target.dir).await {
        Ok(_) => {
            let _one = REWRITES.lock().await;
            // Read again under the lock: another rewrite may have replaced it.
            let meta = target
                .store
                .head(&target.dir)
                .await
                .map_err(|e| AppendError::Store {
                    uri: target.uri.clone(),
                    message: e.to_string(),
                })?;
            rewrite(target, &meta, schema, parts, &failed).await
        }
        Err(object_store::Error::NotFound { .. }) => {
            write_new(target, schema, parts, &failed).await
        }
        Err(e) => Err(AppendError::Store {
            uri: target.uri.clone(),
            message: e.to_string(),
        }),
    }
}

pub(crate) fn writer_props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build()
}

/// The single file `meta` rewritten as its rows then `parts`, replacing it in one step.
async fn rewrite(
    target: &SourceDir,
    meta: &object_store::ObjectMeta,
    schema: SchemaRef,
    parts: &[Prepared],
    failed: &(dyn Fn(String) -> AppendError + Sync),
) -> Result<Appended, AppendError> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let uri = &target.uri;
    let old = target
        .store
        .get(&meta.location)
        .await
        .map_err(|e| failed(e.to_string()))?
        .bytes()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(old)
        .and_then(|b| b.build())
        .map_err(|e| failed(format!("reading {}: {e}", meta.location)))?;
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, schema.clone(), Some(writer_props()))
        .map_err(|e| failed(e.to_string()))?;
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| failed(format!("reading {}: {e}", meta.location)))?;
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                batch
                    .column_by_name(f.name())
                    .cloned()
                    .ok_or_else(|| failed(format!("the file has no column {}", f.name())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch =
            RecordBatch::try_new(schema.clone(), columns).map_err(|e| failed(e.to_string()))?;
        writer.write(&batch).map_err(|e| failed(e.to_string()))?;
    }
    for part in parts {
        rows += part.rows();
        writer
            .write(&part.batch)
            .map_err(|e| failed(e.to_string()))?;
    }
    writer.close().map_err(|e| failed(e.to_string()))?;
    let payload: object_store::PutPayload = buf.into();
    let conditional = object_store::PutOptions {
        mode: object_store::PutMode::Update(object_store::UpdateVersion {
            e_tag: meta.e_tag.clone(),
            version: meta.version.clone(),
        }),
        ..Default::default()
    };
    match target
        .store
        .put_opts(&meta.location, payload.clone(), conditional)
        .await
    {
        Ok(_) => {}
        Err(object_store::Error::Precondition { .. }) => {
            return Err(AppendError::Changed { uri: uri.clone() });
        }
        // Stores without conditional puts (a local file system: the put writes a file and
        // renames it over the old one; S3 without ETag matching): an overwrite, serialized
        // with the other rewrites of this process.
        Err(
            object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. },
        ) => {
            target
                .store
                .put(&meta.location, payload)
                .await
                .map_err(|e| failed(e.to_string()))?;
        }
        Err(e) => return Err(failed(e.to_string())),
    }
    Ok(Appended {
        file: meta.location.to_string(),
        rows,
    })
}

async fn write_new(
    target: &SourceDir,
    schema: SchemaRef,
    parts: &[Prepared],
    failed: &(dyn Fn(String) -> AppendError + Sync),
) -> Result<Appended, AppendError> {
    let rows = parts.iter().map(Prepared::rows).sum();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, schema, Some(writer_props()))
        .map_err(|e| failed(e.to_string()))?;
    for part in parts {
        writer
            .write(&part.batch)
            .map_err(|e| failed(e.to_string()))?;
    }
    writer.close().map_err(|e| failed(e.to_string()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let name = format!(
        "larder-push-{}{:06}-{}.parquet",
        now.as_secs(),
        now.subsec_micros(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let file = target.dir.clone().join(name.as_str());
    target
        .store
        .put(&file, buf.into())
        .await
        .map_err(|e| failed(e.to_string()))?;
    Ok(Appended {
        file: file.to_string(),
        rows,
    })
}

/// The pushed columns as one record batch with the file's column order and types (schema
/// metadata such as pandas' index description is not carried over).
pub fn to_batch(
    uri: &str,
    file_schema: &Schema,
    columns: &[(String, Vec<Json>)],
) -> Result<RecordBatch, AppendError> {
    let wanted: Vec<&Field> = file_schema
        .fields()
        .iter()
        .map(|f| f.as_ref())
        .filter(|f| !is_index_column(f.name()) || columns.iter().any(|(c, _)| c == f.name()))
        .collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|f| !columns.iter().any(|(c, _)| c == f.name()))
        .map(|f| f.name().clone())
        .collect();
    let unexpected: Vec<String> = columns
        .iter()
        .filter(|(c, _)| file_schema.field_with_name(c).is_err())
        .map(|(c, _)| c.clone())
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(AppendError::Columns {
            uri: uri.to_owned(),
            missing,
            unexpected,
        });
    }
    let rows = columns.first().map_or(0, |(_, v)| v.len());
    if let Some((c, v)) = columns.iter().find(|(_, v)| v.len() != rows) {
        return Err(AppendError::Ragged {
            column: c.clone(),
            got: v.len(),
            first: columns[0].0.clone(),
            expected: rows,
        });
    }
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for f in file_schema.fields() {
        let field = Field::new(f.name(), f.data_type().clone(), true);
        let array = match columns.iter().find(|(c, _)| c == f.name()) {
            Some((_, values)) => {
                column_array(&field, values).map_err(|message| AppendError::Value {
                    uri: uri.to_owned(),
                    column: f.name().clone(),
                    message,
                })?
            }
            None => new_null_array(f.data_type(), rows),
        };
        fields.push(field);
        arrays.push(array);
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    RecordBatch::try_new(schema, arrays).map_err(|e| AppendError::Store {
        uri: uri.to_owned(),
        message: e.to_string(),
    })
}

/// One JSON column as an Arrow array of `field`'s type (strings parse as timestamps and dates,
/// numbers must fit the type; nothing is silently turned into null).
fn column_array(field: &Field, values: &[Json]) -> Result<ArrayRef, String> {
    let schema = Arc::new(Schema::new(vec![field.clone()]));
    let rows: Vec<Map<String, Json>> = values
        .iter()
        .map(|v| {
            let mut m = Map::new();
            m.insert(field.name().clone(), v.clone());
            m
        })
        .collect();
    let mut decoder = ReaderBuilder::new(schema)
        .with_strict_mode(true)
        .with_batch_size(values.len().max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder.serialize(&rows).map_err(|e| e.to_string())?;
    let batch = decoder
        .flush()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no rows".to_owned());
    match batch {
        Ok(b) => Ok(b.column(0).clone()),
        Err(_) if values.is_empty() => Ok(new_null_array(field.data_type(), 0)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::{
        array::{Array, AsArray},
        datatypes::{DataType, Float32Type, Int64Type, TimeUnit, TimestampMicrosecondType},
    };
    use serde_json::json;

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("driver_id", DataType::Int64, true),
            Field::new("rate", DataType::Float32, true),
            Field::new(
                "event_timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("__index_level_0__", DataType::Int64, true),
        ])
    }

    fn cols(v: Json) -> Vec<(String, Vec<Json>)> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_array().unwrap().clone()))
            .collect()
    }

    #[test]
    fn json_columns_take_the_file_types() {
        let b = to_batch(
            "d",
            &schema(),
            &cols(json!({
                "event_timestamp": ["2026-11-28T09:00:00+01:00", "2026-11-28 10:00:00"],
                "rate": [0.5, null],
                "driver_id": [1, "2"],
            })),
        )
        .unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.schema().field(0).name(), "driver_id");
        let ids = b.column(0).as_primitive::<Int64Type>();
        assert_eq!((ids.value(0), ids.value(1)), (1, 2));
        let rate = b.column(1).as_primitive::<Float32Type>();
        assert_eq!(rate.value(0), 0.5);
        assert!(rate.is_null(1));
        let ts = b.column(2).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_795_852_800_000_000); // 08:00 UTC
        assert_eq!(ts.value(1), 1_795_860_000_000_000); // naive = UTC
        assert_eq!(
            b.column(3).null_count(),
            2,
            "pandas index filled with nulls"
        );
    }

    #[test]
    fn column_sets_must_match_and_values_must_fit() {
        let e = to_batch(
            "d",
            &schema(),
            &cols(json!({"driver_id": [1], "extra": [1], "event_timestamp": ["2026-01-01"]})),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(r#"missing ["rate"]"#) && msg.contains(r#"unexpected ["extra"]"#));
        let e = to_batch(
            "d",
            &schema(),
            &cols(json!({"driver_id": ["x"], "rate": [1], "event_timestamp": ["2026-01-01"]})),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("column driver_id of d:"), "{e}");
        let e = to_batch(
            "d",
            &schema(),
            &cols(json!({"driver_id": [1, 2], "rate": [1], "event_timestamp": ["2026-01-01"]})),
        )
        .unwrap_err();
        assert!(matches!(e, AppendError::Ragged { .. }), "{e}");
    }

    #[tokio::test]
    async fn appends_a_new_file_and_rewrites_single_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("trips");
        std::fs::create_dir(&data).unwrap();
        // An existing file to take the schema from.
        let first = to_batch(
            "d",
            &schema(),
            &cols(json!({"driver_id": [1], "rate": [1.5], "event_timestamp": ["2026-01-01"]})),
        )
        .unwrap();
        let f = std::fs::File::create(data.join("part-0.parquet")).unwrap();
        let mut w = ArrowWriter::try_new(f, first.schema(), None).unwrap();
        w.write(&first).unwrap();
        w.close().unwrap();
        let before = std::fs::read(data.join("part-0.parquet")).unwrap();

        let target = SourceDir::local(data.to_str().unwrap()).unwrap();
        let out = append_rows(
            &target,
            &cols(json!({"driver_id": [7, 8], "rate": [2.5, 3.5], "event_timestamp": ["2026-02-01", "2026-02-02"]})),
        )
        .await
        .unwrap();
        assert_eq!(out.rows, 2);
        assert_eq!(std::fs::read(data.join("part-0.parquet")).unwrap(), before);
        let names: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");

        let ctx = datafusion::prelude::SessionContext::new();
        let df = ctx
            .read_parquet(
                data.to_str().unwrap(),
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(df.count().await.unwrap(), 3);

        // A single-file source is rewritten as its rows then the new ones, in place.
        let file = data.join("part-0.parquet");
        let single = SourceDir::local(file.to_str().unwrap()).unwrap();
        let out = append_rows(
            &single,
            &cols(json!({"driver_id": [9], "rate": [4.5], "event_timestamp": ["2026-03-01"]})),
        )
        .await
        .unwrap();
        assert_eq!(out.rows, 1);
        let df = ctx
            .read_parquet(
                file.to_str().unwrap(),
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await
            .unwrap();
        let got = df.collect().await.unwrap();
        let ids: Vec<i64> = got
            .iter()
            .flat_map(|b| {
                b.column_by_name("driver_id")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(ids, vec![1, 9]);
        let names: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "no file left beside it: {names:?}");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let e = append_rows(
            &SourceDir::local(empty.to_str().unwrap()).unwrap(),
            &cols(json!({"driver_id": [1]})),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, AppendError::NoFiles { .. }), "{e}");
    }
}
