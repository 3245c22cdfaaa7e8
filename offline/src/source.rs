//! Reading a FileSource with DataFusion: its Parquet file, directory or glob (local or
//! `s3://`), with `field_mapping` applied, restricted to `start <= ts <= end`, keeping only the
//! latest row per entity key (greatest event time, then greatest created time) — the rows
//! materialization writes. The rows are sorted by key, newest first, and the first row of each
//! key is kept as the sorted batches stream by; sorting spills to disk under a memory limit
//! instead of collecting the source.

use std::{collections::BTreeMap, sync::Arc};

use datafusion::{
    arrow::datatypes::{DataType, TimeUnit},
    execution::{
        SendableRecordBatchStream, memory_pool::FairSpillPool, runtime_env::RuntimeEnvBuilder,
    },
    logical_expr::{SortExpr, col, lit},
    prelude::{ParquetReadOptions, SessionConfig, SessionContext},
    scalar::ScalarValue,
};

use crate::OfflineError;

/// A stream of record batches (DataFusion's), as [`latest_rows`] returns it.
pub use datafusion::error::DataFusionError;
pub use datafusion::execution::SendableRecordBatchStream as BatchStream;

/// What to read from one source.
#[derive(Debug, Clone)]
pub struct LatestRowsQuery {
    /// Path, directory or glob of the Parquet data (absolute, or an `s3://` URL).
    pub uri: String,
    /// Source column → feature/entity name (Feast's `field_mapping`).
    pub field_mapping: BTreeMap<String, String>,
    pub join_keys: Vec<String>,
    pub features: Vec<String>,
    /// Event-time column (after renaming).
    pub timestamp_field: String,
    /// Created-time column (after renaming), if the source has one.
    pub created_timestamp_column: Option<String>,
    /// Inclusive bounds, microseconds since the epoch (UTC).
    pub start_micros: i64,
    pub end_micros: i64,
}

/// Makes `s3://bucket/...` sources readable: registers the bucket's object store (built by the
/// caller from the environment and the source's endpoint override) with the session.
pub fn register_bucket(
    ctx: &SessionContext,
    uri: &str,
    store: Arc<dyn object_store::ObjectStore>,
) -> Result<(), OfflineError> {
    let url = url::Url::parse(uri).map_err(|e| OfflineError::BadUri {
        uri: uri.to_owned(),
        message: e.to_string(),
    })?;
    let host = url.host_str().ok_or_else(|| OfflineError::BadUri {
        uri: uri.to_owned(),
        message: "no bucket".into(),
    })?;
    let base =
        url::Url::parse(&format!("{}://{host}", url.scheme())).expect("scheme and host form a URL");
    ctx.register_object_store(&base, store);
    Ok(())
}

/// The bucket of an `s3://bucket/key` URI.
pub fn s3_bucket_of(uri: &str) -> Option<&str> {
    uri.strip_prefix("s3://")?
        .split('/')
        .next()
        .filter(|b| !b.is_empty())
}

/// A DataFusion session for offline reads, with a memory limit above which sorts spill.
pub fn session(memory_limit_bytes: usize) -> Result<SessionContext, OfflineError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit_bytes)))
        .build_arc()
        .map_err(OfflineError::DataFusion)?;
    let config = SessionConfig::new().with_batch_size(8192);
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// Streams the latest row per entity key within the time range: the join keys, the
/// features, the event time and (if any) the created time, under their feature names.
pub async fn latest_rows(
    ctx: &SessionContext,
    q: &LatestRowsQuery,
) -> Result<SendableRecordBatchStream, OfflineError> {
    let source = |e| OfflineError::Source {
        uri: q.uri.clone(),
        source: e,
    };
    let (df, unique) = rows_in_range(ctx, q).await?;
    // Sorted by key, then newest first: the first row of each key run is the one to keep.
    // (A sort spills under the memory limit; a window per key costs a partition per entity.)
    let mut order: Vec<SortExpr> = q
        .join_keys
        .iter()
        .map(|k| col(format!("\"{k}\"")).sort(true, false))
        .collect();
    order.push(col(format!("\"{}\"", q.timestamp_field)).sort(false, false));
    if let Some(c) = &q.created_timestamp_column {
        order.push(col(format!("\"{c}\"")).sort(false, false));
    }
    let df = df.sort(order).map_err(source)?;
    let key_at: Vec<usize> = q
        .join_keys
        .iter()
        .map(|k| {
            unique
                .iter()
                .position(|n| n == k)
                .expect("join keys are selected")
        })
        .collect();
    let stream = df.execute_stream().await.map_err(source)?;
    first_per_key(stream, key_at).map_err(source)
}

/// Every row within the time range (an `end` of `i64::MAX`: no upper bound): the join keys,
/// the features, the event time and (if any) the created time, under their feature names —
/// Feast's `pull_all_from_table_or_query`.
pub async fn all_rows(
    ctx: &SessionContext,
    q: &LatestRowsQuery,
) -> Result<SendableRecordBatchStream, OfflineError> {
    let (df, _) = rows_in_range(ctx, q).await?;
    df.execute_stream().await.map_err(|e| OfflineError::Source {
        uri: q.uri.clone(),
        source: e,
    })
}

/// The source renamed by `field_mapping`, restricted to the range, with the query's columns
/// (each once) — and their names.
async fn rows_in_range(
    ctx: &SessionContext,
    q: &LatestRowsQuery,
) -> Result<(datafusion::dataframe::DataFrame, Vec<String>), OfflineError> {
    let source = |e| OfflineError::Source {
        uri: q.uri.clone(),
        source: e,
    };
    let df = read_renamed(ctx, &q.uri, &q.field_mapping).await?;
    let available: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut needed: Vec<&String> = q.join_keys.iter().chain(&q.features).collect();
    needed.push(&q.timestamp_field);
    if let Some(c) = &q.created_timestamp_column {
        needed.push(c);
    }
    if let Some(missing) = needed.iter().find(|n| !available.contains(n)) {
        return Err(OfflineError::MissingColumn {
            uri: q.uri.clone(),
            column: (*missing).clone(),
            available,
        });
    }
    let ts_type = df
        .schema()
        .field_with_unqualified_name(&q.timestamp_field)
        .map_err(source)?
        .data_type()
        .clone();
    let bound = |micros: i64| -> Result<datafusion::logical_expr::Expr, OfflineError> {
        let micros_lit = lit(ScalarValue::TimestampMicrosecond(
            Some(micros),
            Some("UTC".into()),
        ));
        Ok(match &ts_type {
            DataType::Timestamp(_, _) => micros_lit,
            DataType::Date32 | DataType::Date64 => micros_lit,
            other => {
                return Err(OfflineError::BadTimestampColumn {
                    uri: q.uri.clone(),
                    column: q.timestamp_field.clone(),
                    data_type: other.to_string(),
                });
            }
        })
    };
    let ts = || col(format!("\"{}\"", q.timestamp_field)).cast_to_utc();
    let mut range = ts().gt_eq(bound(q.start_micros)?);
    if q.end_micros != i64::MAX {
        range = range.and(ts().lt_eq(bound(q.end_micros)?));
    }
    let df = df.filter(range).map_err(source)?;
    // A column may be both a join key and a feature (stream views list their entity column).
    let mut unique: Vec<String> = Vec::new();
    for n in needed {
        if !unique.contains(n) {
            unique.push(n.clone());
        }
    }
    let out_cols: Vec<_> = unique.iter().map(|n| col(format!("\"{n}\""))).collect();
    Ok((df.select(out_cols).map_err(source)?, unique))
}

/// The columns of the Parquet data at `uri` (file, directory or glob; local or `s3://`).
pub async fn columns(
    ctx: &SessionContext,
    uri: &str,
) -> Result<Vec<datafusion::arrow::datatypes::FieldRef>, OfflineError> {
    let df = read_renamed(ctx, uri, &BTreeMap::new()).await?;
    Ok(df.schema().as_arrow().fields().iter().cloned().collect())
}

/// The tables an entity SQL query names (`SELECT … FROM name`), as written, for the caller to
/// register with [`register_table`]. Only a single query is accepted: no DDL, DML or other
/// statements.
pub fn sql_table_names(ctx: &SessionContext, sql: &str) -> Result<Vec<String>, OfflineError> {
    let state = ctx.state();
    let bad = |e: datafusion::error::DataFusionError| OfflineError::BadSql {
        message: e.to_string(),
    };
    let statement = state
        .sql_to_statement(sql, &datafusion::config::Dialect::Generic)
        .map_err(bad)?;
    use datafusion::sql::{parser::Statement, sqlparser::ast};
    if !matches!(&statement, Statement::Statement(s) if matches!(**s, ast::Statement::Query(_))) {
        return Err(OfflineError::BadSql {
            message: "only a query (SELECT …) can give the entity rows".into(),
        });
    }
    let refs = state.resolve_table_references(&statement).map_err(bad)?;
    Ok(refs.iter().map(|r| r.table().to_owned()).collect())
}

/// Registers a source's Parquet data (file, directory or glob, after `field_mapping`) as table
/// `name` of the session, for entity SQL queries.
pub async fn register_table(
    ctx: &SessionContext,
    name: &str,
    uri: &str,
    field_mapping: &BTreeMap<String, String>,
) -> Result<(), OfflineError> {
    let df = read_renamed(ctx, uri, field_mapping).await?;
    ctx.register_table(name, df.into_view())
        .map_err(|e| OfflineError::Source {
            uri: uri.to_owned(),
            source: e,
        })?;
    Ok(())
}

/// The physical plan of an entity SQL query over the tables registered with
/// [`register_table`] (a query only: DDL, DML and other statements are refused).
pub async fn sql_plan(
    ctx: &SessionContext,
    sql: &str,
) -> Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>, OfflineError> {
    let bad = |e: datafusion::error::DataFusionError| OfflineError::BadSql {
        message: e.to_string(),
    };
    let options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await.map_err(bad)?;
    df.create_physical_plan().await.map_err(bad)
}

/// The Parquet data at `uri` (file, directory or glob; local or `s3://`) with its columns
/// renamed by `field_mapping` (source column → feature/entity name).
pub(crate) async fn read_renamed(
    ctx: &SessionContext,
    uri: &str,
    field_mapping: &BTreeMap<String, String>,
) -> Result<datafusion::dataframe::DataFrame, OfflineError> {
    let source = |e| OfflineError::Source {
        uri: uri.to_owned(),
        source: e,
    };
    let at = directory_aware(ctx, uri).await;
    let df = ctx
        .read_parquet(at.as_str(), ParquetReadOptions::default())
        .await
        .map_err(source)?;
    let renamed: Vec<_> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let name = f.name();
            let to = field_mapping.get(name).unwrap_or(name);
            col(format!("\"{name}\"")).alias(to.clone())
        })
        .collect();
    df.select(renamed).map_err(source)
}

/// An object-store path without a trailing `/` names a directory (a prefix) when no object has
/// exactly that key — as Feast's readers take it; DataFusion needs the `/` to list it.
pub(crate) async fn directory_aware(ctx: &SessionContext, uri: &str) -> String {
    use object_store::ObjectStoreExt;
    if !uri.contains("://") || uri.starts_with("file://") || uri.ends_with('/') {
        return uri.to_owned();
    }
    if uri.contains(['*', '?', '[']) {
        return uri.to_owned();
    }
    let Ok(url) = url::Url::parse(uri) else {
        return uri.to_owned();
    };
    let Ok(base) = datafusion::execution::object_store::ObjectStoreUrl::parse(format!(
        "{}://{}",
        url.scheme(),
        url.host_str().unwrap_or_default()
    )) else {
        return uri.to_owned();
    };
    let Ok(store) = ctx.runtime_env().object_store(&base) else {
        return uri.to_owned();
    };
    let key = object_store::path::Path::from(url.path().trim_start_matches('/'));
    match store.head(&key).await {
        Err(object_store::Error::NotFound { .. }) => format!("{uri}/"),
        _ => uri.to_owned(),
    }
}

/// Keeps the first row of every run of equal keys (columns `key_at`) of a key-sorted stream,
/// across batch boundaries; with no key columns, the first row of the stream.
fn first_per_key(
    stream: BatchStream,
    key_at: Vec<usize>,
) -> Result<BatchStream, datafusion::error::DataFusionError> {
    use datafusion::arrow::{
        array::BooleanArray,
        compute::filter_record_batch,
        row::{OwnedRow, RowConverter, SortField},
    };
    use futures::StreamExt;
    let schema = stream.schema();
    let converter = RowConverter::new(
        key_at
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect(),
    )?;
    let mut last: Option<OwnedRow> = None;
    let mut seen_any = false;
    let deduped = stream.map(move |batch| {
        let batch = batch?;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(batch);
        }
        let keep: Vec<bool> = if key_at.is_empty() {
            let first = !seen_any;
            seen_any = true;
            (0..n).map(|i| first && i == 0).collect()
        } else {
            let cols: Vec<_> = key_at.iter().map(|&i| batch.column(i).clone()).collect();
            let rows = converter.convert_columns(&cols)?;
            let keep = (0..n)
                .map(|i| {
                    if i == 0 {
                        last.as_ref().is_none_or(|l| l.row() != rows.row(0))
                    } else {
                        rows.row(i) != rows.row(i - 1)
                    }
                })
                .collect();
            last = Some(rows.row(n - 1).owned());
            keep
        };
        Ok(filter_record_batch(&batch, &BooleanArray::from(keep))?)
    });
    Ok(Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, deduped),
    ))
}

trait CastUtc {
    fn cast_to_utc(self) -> datafusion::logical_expr::Expr;
}

impl CastUtc for datafusion::logical_expr::Expr {
    /// Naive timestamps are taken as UTC, as Feast does.
    fn cast_to_utc(self) -> datafusion::logical_expr::Expr {
        datafusion::logical_expr::cast(
            self,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::{
        array::{AsArray, Int64Array, RecordBatch},
        datatypes::{DataType, Field, Int64Type, Schema},
    };
    use futures::StreamExt;

    use super::*;

    fn batch(keys: &[i64], vals: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(keys.to_vec())),
                Arc::new(Int64Array::from(vals.to_vec())),
            ],
        )
        .unwrap()
    }

    async fn kept(batches: Vec<RecordBatch>, key_at: Vec<usize>) -> Vec<(i64, i64)> {
        let schema = batches[0].schema();
        let input: BatchStream = Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                schema,
                futures::stream::iter(batches.into_iter().map(Ok)),
            ),
        );
        let mut out = Vec::new();
        let mut s = first_per_key(input, key_at).unwrap();
        while let Some(b) = s.next().await {
            let b = b.unwrap();
            let (k, v) = (
                b.column(0).as_primitive::<Int64Type>(),
                b.column(1).as_primitive::<Int64Type>(),
            );
            out.extend((0..b.num_rows()).map(|i| (k.value(i), v.value(i))));
        }
        out
    }

    /// A key's run may continue into the next batch: only its first row is kept.
    #[tokio::test]
    async fn first_row_per_key_across_batches() {
        let batches = vec![
            batch(&[1, 1, 2], &[10, 11, 20]),
            batch(&[2, 2, 3], &[21, 22, 30]),
            batch(&[], &[]),
            batch(&[3, 4], &[31, 40]),
        ];
        assert_eq!(
            kept(batches.clone(), vec![0]).await,
            vec![(1, 10), (2, 20), (3, 30), (4, 40)]
        );
        // No key columns (entityless views): the stream's first row.
        assert_eq!(kept(batches, vec![]).await, vec![(1, 10)]);
    }
}
