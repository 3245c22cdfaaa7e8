//! Served-feature logs (Feast's feature logging to a file destination): log rows as Arrow
//! columns of the types Feast's log schema gives each Feast type, and a log table written as a
//! Parquet dataset under the destination directory, as Feast's file offline store writes one
//! (`pyarrow.dataset.write_dataset` with the destination's `partition_by` as directory
//! partitioning: one directory level per partition column, named by its URI-escaped value;
//! the partition columns are not stored in the files). Every file is written in one put (a
//! local file renamed into place, one S3 object), so a reader never sees a partial file.

use std::sync::Arc;

use datafusion::arrow::{
    array::{
        Array, ArrayRef, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder,
        Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
        TimestampSecondBuilder, UInt32Array,
    },
    compute::{cast, take},
    datatypes::{DataType, Field, Schema, TimeUnit},
    util::display::array_value_to_string,
};
use larder_protos::feast::types::{Value, value::Val, value_type::Enum as T};
use object_store::{ObjectStoreExt, path::Path};

use crate::append::{AppendError, SourceDir, writer_props};

/// The Arrow type Feast's log schema gives a feature or entity of type `t`
/// (`FEAST_TYPE_TO_ARROW_TYPE`); JSON, UUID and decimal values, which Feast cannot log, are
/// logged as their text.
pub fn arrow_type(t: T) -> Result<DataType, String> {
    let list = |item: DataType| DataType::List(Arc::new(Field::new("item", item, true)));
    Ok(match t {
        T::Int32 => DataType::Int32,
        T::Int64 => DataType::Int64,
        T::Float => DataType::Float32,
        T::Double => DataType::Float64,
        T::String | T::Json | T::Uuid | T::TimeUuid | T::Decimal => DataType::Utf8,
        T::Bytes => DataType::Binary,
        T::Bool => DataType::Boolean,
        T::UnixTimestamp => DataType::Timestamp(TimeUnit::Second, None),
        T::Int32List => list(DataType::Int32),
        T::Int64List => list(DataType::Int64),
        T::FloatList => list(DataType::Float32),
        T::DoubleList => list(DataType::Float64),
        T::StringList => list(DataType::Utf8),
        T::BytesList => list(DataType::Binary),
        T::BoolList => list(DataType::Boolean),
        T::UnixTimestampList => list(DataType::Timestamp(TimeUnit::Second, None)),
        other => {
            return Err(format!(
                "{} values cannot be logged (Feast's log schema has no type for them)",
                other.as_str_name()
            ));
        }
    })
}

/// `values` as an Arrow array of [`arrow_type`]`(t)`; a missing value, or one of another
/// kind, is null.
pub fn array_of(values: &[Value], t: T) -> Result<ArrayRef, String> {
    macro_rules! scalars {
        ($builder:expr, $($pat:pat => $v:expr),+) => {{
            let mut b = $builder;
            for v in values {
                match &v.val {
                    $(Some($pat) => b.append_value($v),)+
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    macro_rules! lists {
        ($builder:expr, $pat:pat => $items:expr) => {{
            let mut b = ListBuilder::new($builder);
            for v in values {
                match &v.val {
                    Some($pat) => {
                        for x in $items {
                            b.values().append_value(x);
                        }
                        b.append(true);
                    }
                    _ => b.append(false),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match t {
        T::Int32 => scalars!(Int32Builder::new(), Val::Int32Val(i) => *i),
        T::Int64 => scalars!(Int64Builder::new(), Val::Int64Val(i) => *i),
        T::Float => scalars!(Float32Builder::new(), Val::FloatVal(f) => *f),
        T::Double => scalars!(Float64Builder::new(), Val::DoubleVal(f) => *f),
        T::Bool => scalars!(BooleanBuilder::new(), Val::BoolVal(b) => *b),
        T::Bytes => scalars!(BinaryBuilder::new(), Val::BytesVal(b) => b),
        T::UnixTimestamp => {
            scalars!(TimestampSecondBuilder::new(), Val::UnixTimestampVal(s) => *s)
        }
        T::String | T::Json | T::Uuid | T::TimeUuid | T::Decimal => scalars!(
            StringBuilder::new(),
            Val::StringVal(s) | Val::JsonVal(s) | Val::UuidVal(s) | Val::TimeUuidVal(s)
                | Val::DecimalVal(s) => s
        ),
        T::Int32List => lists!(Int32Builder::new(), Val::Int32ListVal(l) => l.val.iter().copied()),
        T::Int64List => lists!(Int64Builder::new(), Val::Int64ListVal(l) => l.val.iter().copied()),
        T::FloatList => {
            lists!(Float32Builder::new(), Val::FloatListVal(l) => l.val.iter().copied())
        }
        T::DoubleList => {
            lists!(Float64Builder::new(), Val::DoubleListVal(l) => l.val.iter().copied())
        }
        T::BoolList => lists!(BooleanBuilder::new(), Val::BoolListVal(l) => l.val.iter().copied()),
        T::StringList => lists!(StringBuilder::new(), Val::StringListVal(l) => l.val.iter()),
        T::BytesList => lists!(BinaryBuilder::new(), Val::BytesListVal(l) => l.val.iter()),
        T::UnixTimestampList => lists!(
            TimestampSecondBuilder::new(),
            Val::UnixTimestampListVal(l) => l.val.iter().copied()
        ),
        other => return Err(arrow_type(other).unwrap_err()),
    })
}

/// A local destination directory (absolute path), created if it does not exist.
pub fn local_destination(path: &str) -> Result<SourceDir, AppendError> {
    let failed = |m: String| AppendError::Store {
        uri: path.to_owned(),
        message: m,
    };
    let p = std::path::Path::new(path.strip_prefix("file://").unwrap_or(path));
    std::fs::create_dir_all(p).map_err(|e| failed(e.to_string()))?;
    SourceDir::local(path)
}

/// A partition directory's name for row `i` of `a`, as Arrow names it (the value's text,
/// URI-escaped; a null is Hive's default partition name).
fn segment(a: &dyn Array, i: usize) -> Result<String, String> {
    if a.is_null(i) {
        return Ok("__HIVE_DEFAULT_PARTITION__".into());
    }
    let text = array_value_to_string(a, i).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// The type a column of type `t` is stored as: Parquet has no seconds, so timestamps in
/// seconds are stored in milliseconds (as pyarrow stores them); lists of them too.
fn stored_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(TimeUnit::Second, tz) => {
            DataType::Timestamp(TimeUnit::Millisecond, tz.clone())
        }
        DataType::List(item) => DataType::List(Arc::new(
            item.as_ref()
                .clone()
                .with_data_type(stored_type(item.data_type())),
        )),
        other => other.clone(),
    }
}

/// Writes `batch` under `target` as Feast's file logging destination stores a log table: one
/// Parquet file per partition (the values of the `partition_by` columns), named
/// `<uuid>-<i>.parquet`. Returns the files written.
pub async fn write_dataset(
    target: &SourceDir,
    batch: &RecordBatch,
    partition_by: &[String],
) -> Result<Vec<String>, AppendError> {
    let failed = |message: String| AppendError::Store {
        uri: target.uri.clone(),
        message,
    };
    let schema = batch.schema();
    let mut part_cols = Vec::with_capacity(partition_by.len());
    for name in partition_by {
        let i = schema.index_of(name).map_err(|_| AppendError::Columns {
            uri: target.uri.clone(),
            missing: vec![name.clone()],
            unexpected: Vec::new(),
        })?;
        part_cols.push(i);
    }
    // Rows by partition, in order of first appearance.
    let mut groups: Vec<(Vec<String>, Vec<u32>)> = Vec::new();
    let mut index: std::collections::HashMap<Vec<String>, usize> = Default::default();
    for row in 0..batch.num_rows() {
        let key = part_cols
            .iter()
            .map(|&c| segment(batch.column(c).as_ref(), row))
            .collect::<Result<Vec<_>, _>>()
            .map_err(&failed)?;
        let at = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(row as u32);
    }
    let kept: Vec<usize> = (0..schema.fields().len())
        .filter(|i| !part_cols.contains(i))
        .collect();
    let file_schema = Arc::new(Schema::new(
        kept.iter()
            .map(|&i| {
                let f = schema.field(i);
                f.clone().with_data_type(stored_type(f.data_type()))
            })
            .collect::<Vec<_>>(),
    ));
    let stem = uuid::Uuid::new_v4().simple().to_string();
    let mut files = Vec::with_capacity(groups.len());
    for (n, (segments, rows)) in groups.into_iter().enumerate() {
        let rows = UInt32Array::from(rows);
        let columns = kept
            .iter()
            .zip(file_schema.fields())
            .map(|(&i, f)| {
                let a = take(batch.column(i).as_ref(), &rows, None)?;
                if a.data_type() == f.data_type() {
                    Ok(a)
                } else {
                    cast(&a, f.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed(e.to_string()))?;
        let part = RecordBatch::try_new(file_schema.clone(), columns)
            .map_err(|e| failed(e.to_string()))?;
        let mut buf = Vec::new();
        let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(
            &mut buf,
            file_schema.clone(),
            Some(writer_props()),
        )
        .map_err(|e| failed(e.to_string()))?;
        writer.write(&part).map_err(|e| failed(e.to_string()))?;
        writer.close().map_err(|e| failed(e.to_string()))?;
        // Segments are escaped already: parsed, not joined (a join would escape them again).
        let mut file = target.dir.as_ref().to_owned();
        for s in segments
            .iter()
            .map(String::as_str)
            .chain([format!("{stem}-{n}.parquet").as_str()])
        {
            if !file.is_empty() {
                file.push('/');
            }
            file.push_str(s);
        }
        let file = Path::parse(&file).map_err(|e| failed(e.to_string()))?;
        target
            .store
            .put(&file, buf.into())
            .await
            .map_err(|e| failed(e.to_string()))?;
        files.push(file.to_string());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Date32Array, Int64Array, StringArray};

    fn v(val: Val) -> Value {
        Value { val: Some(val) }
    }

    #[test]
    fn values_become_the_log_schema_types() {
        let a = array_of(
            &[
                v(Val::Int64Val(3)),
                Value::default(),
                v(Val::DoubleVal(1.0)),
            ],
            T::Int64,
        )
        .unwrap();
        assert_eq!(a.data_type(), &DataType::Int64);
        let a = a.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert_eq!(a.iter().collect::<Vec<_>>(), [Some(3), None, None]);

        let l = array_of(
            &[
                v(Val::FloatListVal(larder_protos::feast::types::FloatList {
                    val: vec![1.5, 2.0],
                })),
                Value::default(),
            ],
            T::FloatList,
        )
        .unwrap();
        assert_eq!(l.data_type(), &arrow_type(T::FloatList).unwrap());
        assert_eq!(l.as_list::<i32>().value(0).len(), 2);
        assert!(l.is_null(1));

        let ts = array_of(&[v(Val::UnixTimestampVal(1_700_000_000))], T::UnixTimestamp).unwrap();
        assert_eq!(ts.data_type(), &DataType::Timestamp(TimeUnit::Second, None));
        assert!(arrow_type(T::Map).unwrap_err().contains("MAP"));
    }

    #[tokio::test]
    async fn partitions_are_directories_without_their_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs");
        let target = local_destination(path.to_str().unwrap()).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("driver_id", DataType::Int64, true),
            Field::new("__log_date", DataType::Date32, true),
            Field::new("zone", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Date32Array::from(vec![20424, 20425, 20424])),
                Arc::new(StringArray::from(vec![Some("a b/c"), None, Some("a b/c")])),
            ],
        )
        .unwrap();
        let files = write_dataset(
            &target,
            &batch,
            &["__log_date".to_owned(), "zone".to_owned()],
        )
        .await
        .unwrap();
        assert_eq!(files.len(), 2);
        // The directories on disk (object-store paths percent-encode what they hold).
        let mut dirs = Vec::new();
        for date in std::fs::read_dir(&path).unwrap() {
            let date = date.unwrap();
            for zone in std::fs::read_dir(date.path()).unwrap() {
                let zone = zone.unwrap();
                let names: Vec<_> = std::fs::read_dir(zone.path()).unwrap().collect();
                assert_eq!(names.len(), 1);
                let file = names[0].as_ref().unwrap().path();
                assert!(file.to_string_lossy().ends_with(".parquet"), "{file:?}");
                let t = crate::table::read_table(&file).unwrap();
                assert_eq!(t.num_columns(), 1);
                dirs.push((
                    format!(
                        "{}/{}",
                        date.file_name().to_string_lossy(),
                        zone.file_name().to_string_lossy()
                    ),
                    t.num_rows(),
                ));
            }
        }
        dirs.sort();
        assert_eq!(
            dirs,
            [
                ("2025-12-02/a%20b%2Fc".to_owned(), 2),
                ("2025-12-03/__HIVE_DEFAULT_PARTITION__".to_owned(), 1)
            ]
        );

        let missing = write_dataset(&target, &batch, &["nope".to_owned()])
            .await
            .unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
