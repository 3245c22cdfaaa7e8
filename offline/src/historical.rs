//! Point-in-time joins (spec §9.2): for every entity row and every requested view, the source
//! row with the greatest event time `ts <= T` (and, with a ttl, `ts >= T - ttl`), ties broken by
//! the greatest created time; nulls when there is none. Every entity row is kept, in its input
//! order, duplicates too, with its other columns passed through.
//!
//! How (per view):
//! 1. The entity side is the build side: each row's key gets a dense id ([`KeyIndex`]), and the
//!    distinct `(key, T)` pairs ("queries") are sorted. Their time bounds prune the source scan.
//! 2. The source is read twice, both times one task per DataFusion partition (every core), and
//!    only the columns needed. The first read looks at narrow `(key, ts, created)` tuples of the
//!    keys asked for: each row goes to the first query of its key it is eligible for (one binary
//!    search), which keeps the best row it has seen by `(ts, created)` and the row's position in
//!    the scan; a running maximum over each key's queries then gives every query its best row.
//!    No sort, no buffer of tuples. The ttl is a check on the winner.
//! 3. The second read takes the winning rows' feature columns by position (checking that the
//!    row there is the one the first read saw); the answer is assembled in entity order with
//!    `take`.
//!
//! Memory: the entity table, 24 bytes per query per partition, and the winning rows; never the
//! source.

use std::{collections::BTreeMap, sync::Arc};

use datafusion::{
    arrow::{
        array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array, new_null_array},
        compute::{CastOptions, cast_with_options, concat_batches, take},
        datatypes::{
            DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
        },
        row::{RowConverter, Rows, SortField},
    },
    logical_expr::{Expr, cast, col, lit},
    prelude::SessionContext,
    scalar::ScalarValue,
};
use futures::StreamExt;
use tracing::Instrument;

use crate::OfflineError;

/// Rows per output batch.
pub const OUTPUT_BATCH: usize = 64 * 1024;

/// One feature view of a retrieval, as its batch source names things (after `field_mapping`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ViewJoin {
    /// The view's name (for errors).
    pub view: String,
    /// Path, directory or glob of the Parquet data (absolute, or an `s3://` URL).
    pub uri: String,
    /// Source column → feature/entity name (Feast's `field_mapping`).
    pub field_mapping: BTreeMap<String, String>,
    /// `(source join key, entity-dataframe column)`: the view's join keys after the
    /// projection's `join_key_map`. Empty for entity-less views.
    pub keys: Vec<(String, String)>,
    /// `(source feature column, output column name)`.
    pub features: Vec<(String, String)>,
    pub timestamp_field: String,
    pub created_timestamp_column: Option<String>,
    /// `None` (or zero): no lower bound.
    pub ttl_micros: Option<i64>,
}

/// A retrieval: the views, and Feast's `filter_by_created_timestamp` (candidates must also have
/// `created <= T`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Retrieval {
    pub views: Vec<ViewJoin>,
    pub filter_by_created_timestamp: bool,
}

/// Errors of the entity table itself (the request's problem).
#[derive(Debug, thiserror::Error)]
pub enum EntityError {
    #[error(
        "the entity dataframe has no event_timestamp column and {found} other timestamp columns (columns: {columns:?})"
    )]
    NoTimestamp { found: usize, columns: Vec<String> },
    #[error("entity dataframe column {column} has type {data_type}, not a timestamp")]
    BadTimestamp { column: String, data_type: String },
    #[error(
        "the entity dataframe has no column {column}, needed by feature view {view} (columns: {columns:?})"
    )]
    MissingKey {
        view: String,
        column: String,
        columns: Vec<String>,
    },
    #[error(
        "entity dataframe column {column} has type {entity_type}, but feature view {view}'s source has {source_type} for {key}"
    )]
    KeyType {
        view: String,
        column: String,
        key: String,
        entity_type: String,
        source_type: String,
    },
    #[error(
        "an entity-less retrieval joins views on their shared columns: column {column} is {} in feature view {}'s source but {} in feature view {}'s",
        .views[1].1, .views[1].0, .views[0].1, .views[0].0
    )]
    EntitylessKeyType {
        column: String,
        /// `(view, type)`: the first view with the column, then the one that differs.
        views: Box<[(String, String); 2]>,
    },
    #[error(
        "output column {column} (feature view {view}) is also a column of the entity dataframe"
    )]
    ColumnClash { view: String, column: String },
}

impl larder_types::error::Coded for EntityError {
    fn code(&self) -> larder_types::error::ErrorCode {
        larder_types::error::ErrorCode::BadRequest
    }
}

/// The session a retrieval runs in.
pub type Context = SessionContext;

/// A DataFusion session for retrievals: `partitions` scans at once (a file may be split among
/// them), no round-robin exchange and no work stealing between scans (each scan's stream is
/// read by its own task, the same rows in the same order every time), and a memory limit for
/// DataFusion's own operators.
pub fn session(
    memory_limit_bytes: usize,
    partitions: usize,
) -> Result<SessionContext, OfflineError> {
    session_reporting(memory_limit_bytes, partitions, None)
}

/// What a retrieval reports as it reads its sources (for a progress bar or log lines): called
/// from the scan tasks, so cheap and thread-safe.
pub trait Progress: Send + Sync {
    /// A read of `view`'s source starts; `rows` is the source's row count from its files'
    /// metadata (an estimate: the scan skips what the time bounds prune; 0 when unknown).
    fn read_started(&self, view: &str, read: SourceReadKind, rows: u64);
    /// `rows` more rows of the current read were read.
    fn rows_read(&self, rows: u64);
    /// The read is done: `rows` were read in all.
    fn read_finished(&self, view: &str, read: SourceReadKind, rows: u64);
}

/// The two reads of a view's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceReadKind {
    /// The `(key, event time, created time)` columns, for the best row per query.
    KeysAndTimes,
    /// The winning rows' features, `winners` of them.
    Winners { winners: u64 },
}

/// The [`Progress`] of a session's retrievals, kept in its config.
struct ProgressHook(Arc<dyn Progress>);

fn progress_of(ctx: &SessionContext) -> Option<Arc<dyn Progress>> {
    ctx.state()
        .config()
        .get_extension::<ProgressHook>()
        .map(|h| h.0.clone())
}

/// [`session`], with `progress` told of every source read.
pub fn session_reporting(
    memory_limit_bytes: usize,
    partitions: usize,
    progress: Option<Arc<dyn Progress>>,
) -> Result<SessionContext, OfflineError> {
    use datafusion::{
        execution::{memory_pool::FairSpillPool, runtime_env::RuntimeEnvBuilder},
        prelude::SessionConfig,
    };
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit_bytes)))
        .build_arc()
        .map_err(OfflineError::DataFusion)?;
    let mut config = SessionConfig::new()
        .with_batch_size(8192)
        .with_target_partitions(partitions.max(1))
        .with_round_robin_repartition(false)
        .with_repartition_file_scans(true);
    config.options_mut().execution.parquet.pushdown_filters = true;
    // Each partition reads its own files and byte ranges, no sibling's: the join's second read
    // finds the winning rows by their positions in the first read's partitions (and the
    // assignment is what an executor of one partition per task, like Ballista, needs anyway).
    config
        .options_mut()
        .execution
        .enable_file_stream_work_stealing = false;
    // Strings as Utf8 (what Feast's stores answer), not DataFusion's view types.
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    if let Some(p) = progress {
        config = config.with_extension(Arc::new(ProgressHook(p)));
    }
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// The entity table's event-time column: `event_timestamp`, else its only timestamp column.
pub fn entity_timestamp_column(schema: &Schema) -> Result<String, EntityError> {
    if schema.column_with_name("event_timestamp").is_some() {
        return Ok("event_timestamp".into());
    }
    let stamps: Vec<&Field> = schema
        .fields()
        .iter()
        .filter(|f| matches!(f.data_type(), DataType::Timestamp(_, _)))
        .map(|f| f.as_ref())
        .collect();
    match stamps.as_slice() {
        [one] => Ok(one.name().clone()),
        _ => Err(EntityError::NoTimestamp {
            found: stamps.len(),
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        }),
    }
}

/// The columns pandas stored its index in (`__index_level_0__`…), listed in the schema's
/// `pandas` metadata: not data, so dropped (as Feast's server turns them back into an index).
pub fn drop_pandas_index(batch: RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    let Some(meta) = schema.metadata().get("pandas") else {
        return batch;
    };
    let Ok(meta) = serde_json::from_str::<serde_json::Value>(meta) else {
        return batch;
    };
    let index: Vec<&str> = meta
        .get("index_columns")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|c| c.as_str()).collect())
        .unwrap_or_default();
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| !index.contains(&schema.field(i).name().as_str()))
        .collect();
    if keep.len() == schema.fields().len() {
        return batch;
    }
    batch.project(&keep).expect("indices are in range")
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The type both sides' key columns are compared in: integers as Int64, strings as Utf8.
fn key_type(t: &DataType) -> DataType {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DataType::Int64,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, v) => key_type(v),
        other => other.clone(),
    }
}

fn strict() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        ..Default::default()
    }
}

/// Dense ids for the entity keys of one view. Source rows whose key no entity row has get none.
enum KeyIndex {
    /// Entity-less view: every row has key 0.
    Single,
    /// One integer key column: the id and (once the queries are known) the key's span of
    /// them, in the map itself so that a source row's lookup is one memory access.
    Int(crate::key_table::KeyTable),
    /// Anything else, by the keys' row-format bytes.
    Rows {
        converter: RowConverter,
        ids: std::collections::HashMap<Box<[u8]>, u32, foldhash::fast::FixedState>,
    },
}

impl KeyIndex {
    fn new(types: &[DataType]) -> Result<Self, datafusion::error::DataFusionError> {
        Ok(match types {
            [] => KeyIndex::Single,
            [DataType::Int64] => KeyIndex::Int(Default::default()),
            _ => KeyIndex::Rows {
                converter: RowConverter::new(
                    types.iter().map(|t| SortField::new(t.clone())).collect(),
                )?,
                ids: Default::default(),
            },
        })
    }

    fn len(&self) -> usize {
        match self {
            KeyIndex::Single => 1,
            KeyIndex::Int(t) => t.len(),
            KeyIndex::Rows { ids, .. } => ids.len(),
        }
    }

    fn rows(&self, cols: &[ArrayRef]) -> Result<Option<Rows>, datafusion::error::DataFusionError> {
        match self {
            KeyIndex::Rows { converter, .. } => Ok(Some(converter.convert_columns(cols)?)),
            _ => Ok(None),
        }
    }

    /// Ids of the entity side's keys (`None` where a key column is null), inserting new ones.
    fn insert(
        &mut self,
        cols: &[ArrayRef],
        n: usize,
    ) -> Result<Vec<Option<u32>>, datafusion::error::DataFusionError> {
        let rows = self.rows(cols)?;
        let any_null = |i: usize| cols.iter().any(|c| c.is_null(i));
        let mut out = Vec::with_capacity(n);
        match self {
            KeyIndex::Single => out.resize(n, Some(0)),
            KeyIndex::Int(table) => {
                let a = cols[0].as_primitive::<Int64Type>();
                for i in 0..n {
                    out.push(if a.is_null(i) {
                        None
                    } else {
                        Some(table.insert(a.value(i)))
                    });
                }
            }
            KeyIndex::Rows { ids, .. } => {
                let rows = rows.expect("row keys");
                for i in 0..n {
                    out.push(if any_null(i) {
                        None
                    } else {
                        let r = rows.row(i);
                        let next = ids.len() as u32;
                        Some(match ids.get(r.as_ref()) {
                            Some(&id) => id,
                            None => {
                                ids.insert(r.as_ref().into(), next);
                                next
                            }
                        })
                    });
                }
            }
        }
        Ok(out)
    }

    /// Sets each integer key's span of queries (`start`: the queries of key `k` are
    /// `start[k]..start[k + 1]`, their times in `t`).
    fn set_spans(&mut self, start: &[u32], t: &[i64]) {
        if let KeyIndex::Int(table) = self {
            table.set_spans(|id| Span::of(start, t, id));
        }
    }

    /// Calls `f(row, id, span)` for each source row whose key the entity side has (the span
    /// where the index holds it, else `None`).
    fn each_known(
        &self,
        cols: &[ArrayRef],
        n: usize,
        mut f: impl FnMut(usize, u32, Option<Span>),
    ) -> Result<(), datafusion::error::DataFusionError> {
        match self {
            KeyIndex::Single => (0..n).for_each(|i| f(i, 0, None)),
            KeyIndex::Int(table) => {
                let a = cols[0].as_primitive::<Int64Type>();
                let values = a.values();
                for i in 0..n {
                    // The slot of a row further on is fetched while this one is looked up.
                    if let Some(&ahead) = values.get(i + PREFETCH_AHEAD) {
                        table.prefetch(ahead);
                    }
                    if a.is_valid(i)
                        && let Some((id, span)) = table.get(values[i])
                    {
                        f(i, id, Some(span))
                    }
                }
            }
            KeyIndex::Rows { ids, .. } => {
                let rows = self.rows(cols)?.expect("row keys");
                for i in 0..n {
                    if cols.iter().any(|c| c.is_null(i)) {
                        continue;
                    }
                    if let Some(&id) = ids.get(rows.row(i).as_ref()) {
                        f(i, id, None)
                    }
                }
            }
        }
        Ok(())
    }
}

/// How many rows ahead a scan asks for the memory a later row will touch (the key's slot, its
/// best row so far): enough to cover a memory round trip.
const PREFETCH_AHEAD: usize = 16;

/// A null created time sorts below every real one.
const NULL_CREATED: i64 = i64::MIN;

/// The entity side of one view: key ids, and the sorted distinct `(key, T)` queries.
struct Queries {
    index: KeyIndex,
    /// Queries of key `k`: `start[k]..start[k + 1]`.
    start: Vec<u32>,
    /// Each query's `T` (µs since the epoch), ascending within a key.
    t: Vec<i64>,
    /// Each entity row's query, `u32::MAX` when its key is null.
    row_query: Vec<u32>,
    min_t: i64,
    max_t: i64,
}

impl Queries {
    fn new(keys: &[ArrayRef], t: &[Option<i64>]) -> Result<Self, OfflineError> {
        let n = t.len();
        let types: Vec<DataType> = keys.iter().map(|k| k.data_type().clone()).collect();
        let mut index = KeyIndex::new(&types).map_err(OfflineError::DataFusion)?;
        let ids = index.insert(keys, n).map_err(OfflineError::DataFusion)?;
        // Sort (key, T, row); rows without a key or a time get no query.
        let mut order: Vec<(u32, i64, u32)> = (0..n)
            .filter_map(|i| Some((ids[i]?, t[i]?, i as u32)))
            .collect();
        order.sort_unstable();
        let nkeys = index.len();
        let mut start = vec![0u32; nkeys + 1];
        let mut qt = Vec::new();
        let mut row_query = vec![u32::MAX; n];
        let mut last: Option<(u32, i64)> = None;
        for &(k, ts, row) in &order {
            if last != Some((k, ts)) {
                qt.push(ts);
                start[k as usize + 1] += 1;
                last = Some((k, ts));
            }
            row_query[row as usize] = (qt.len() - 1) as u32;
        }
        for k in 0..nkeys {
            start[k + 1] += start[k];
        }
        let (min_t, max_t) = qt
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        index.set_spans(&start, &qt);
        Ok(Queries {
            index,
            start,
            t: qt,
            row_query,
            min_t,
            max_t,
        })
    }

    fn of_key(&self, k: u32) -> std::ops::Range<usize> {
        self.start[k as usize] as usize..self.start[k as usize + 1] as usize
    }
}

/// A key's queries: `start..start + len`, the first one's time (`i64::MAX` for none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) len: u32,
    pub(crate) first_t: i64,
}

impl Span {
    pub(crate) const EMPTY: Span = Span {
        start: 0,
        len: 0,
        first_t: i64::MAX,
    };

    fn of(start: &[u32], t: &[i64], k: u32) -> Span {
        let (a, b) = (start[k as usize], start[k as usize + 1]);
        Span {
            start: a,
            len: b - a,
            first_t: if b > a { t[a as usize] } else { i64::MAX },
        }
    }
}

/// A source read for one view: the renamed, key-normalized, time-pruned columns asked for.
struct SourceRead<'a> {
    view: &'a ViewJoin,
    /// The source's key column types after normalization (entity columns are cast to these).
    key_types: Vec<DataType>,
}

impl<'a> SourceRead<'a> {
    fn err(&self, e: datafusion::error::DataFusionError) -> OfflineError {
        OfflineError::Source {
            uri: self.view.uri.clone(),
            source: e,
        }
    }

    async fn open(
        ctx: &'a SessionContext,
        view: &'a ViewJoin,
    ) -> Result<(Self, datafusion::dataframe::DataFrame), OfflineError> {
        let df = crate::source::read_renamed(ctx, &view.uri, &view.field_mapping).await?;
        let schema = df.schema().as_arrow().clone();
        let available = || schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut needed: Vec<&String> = view.keys.iter().map(|(k, _)| k).collect();
        needed.extend(view.features.iter().map(|(f, _)| f));
        needed.push(&view.timestamp_field);
        needed.extend(&view.created_timestamp_column);
        for n in needed {
            if schema.column_with_name(n).is_none() {
                return Err(OfflineError::MissingColumn {
                    uri: view.uri.clone(),
                    column: n.clone(),
                    available: available(),
                });
            }
        }
        for c in std::iter::once(&view.timestamp_field).chain(&view.created_timestamp_column) {
            let t = schema.field_with_name(c).expect("checked").data_type();
            if !matches!(
                t,
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
            ) {
                return Err(OfflineError::BadTimestampColumn {
                    uri: view.uri.clone(),
                    column: c.clone(),
                    data_type: t.to_string(),
                });
            }
        }
        let key_types = view
            .keys
            .iter()
            .map(|(k, _)| key_type(schema.field_with_name(k).expect("checked").data_type()))
            .collect();
        Ok((SourceRead { view, key_types }, df))
    }

    /// The partitions' streams of: keys, ts (µs), created (µs, or 0s), then `features`, with
    /// `lo <= ts <= hi`; and the source's row count as its files' metadata gives it (0 unknown).
    async fn streams(
        &self,
        df: datafusion::dataframe::DataFrame,
        lo: i64,
        hi: i64,
        with_features: bool,
    ) -> Result<(Vec<datafusion::execution::SendableRecordBatchStream>, u64), OfflineError> {
        let v = self.view;
        let q = |n: &str| col(format!("\"{n}\""));
        let ts = || cast(q(&v.timestamp_field), utc_micros());
        let bound = |m: i64| {
            lit(ScalarValue::TimestampMicrosecond(
                Some(m),
                Some("UTC".into()),
            ))
        };
        let mut cols: Vec<Expr> = v
            .keys
            .iter()
            .zip(&self.key_types)
            .enumerate()
            .map(|(i, ((k, _), t))| cast(q(k), t.clone()).alias(format!("__k{i}")))
            .collect();
        cols.push(ts().alias("__ts"));
        cols.push(match &v.created_timestamp_column {
            Some(c) => cast(q(c), utc_micros()).alias("__created"),
            None => lit(ScalarValue::TimestampMicrosecond(
                Some(0),
                Some("UTC".into()),
            ))
            .alias("__created"),
        });
        if with_features {
            cols.extend(
                v.features
                    .iter()
                    .enumerate()
                    .map(|(i, (f, _))| q(f).alias(format!("__f{i}"))),
            );
        }
        let df = df
            .filter(ts().gt_eq(bound(lo)).and(ts().lt_eq(bound(hi))))
            .and_then(|df| df.select(cols))
            .map_err(|e| self.err(e))?;
        let task = Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await.map_err(|e| self.err(e))?;
        let rows = source_rows(&plan);
        let streams = datafusion::physical_plan::execute_stream_partitioned(plan, task)
            .map_err(|e| self.err(e))?;
        Ok((streams, rows))
    }
}

/// The rows of a scan's files before any filter, from their metadata: the leaf's statistics.
fn source_rows(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> u64 {
    let mut node = plan.clone();
    while let Some(child) = node.children().first().map(|c| (*c).clone()) {
        node = child;
    }
    use datafusion::physical_plan::{StatisticsArgs, StatisticsContext};
    StatisticsContext::new()
        .compute(node.as_ref(), &StatisticsArgs::new())
        .ok()
        .and_then(|s| s.num_rows.get_value().copied())
        .unwrap_or(0) as u64
}

/// The µs timestamps of a column cast to UTC micros (nulls as `None`).
fn micros(a: &ArrayRef) -> Result<Vec<Option<i64>>, datafusion::arrow::error::ArrowError> {
    let a = cast_with_options(a, &utc_micros(), &strict())?;
    let a = a.as_primitive::<TimestampMicrosecondType>();
    Ok(a.iter().collect())
}

/// Calls `f(row, (key, ts, created), span)` for each row of a source batch (keys, ts,
/// created, …) whose key the entity side has and whose event time is not null.
fn each_tuple(
    batch: &RecordBatch,
    nkeys: usize,
    queries: &Queries,
    mut f: impl FnMut(usize, (u32, i64, i64), Span),
) -> Result<(), datafusion::error::DataFusionError> {
    let keys: Vec<ArrayRef> = batch.columns()[..nkeys].to_vec();
    let ts = batch
        .column(nkeys)
        .as_primitive::<TimestampMicrosecondType>();
    let created = batch
        .column(nkeys + 1)
        .as_primitive::<TimestampMicrosecondType>();
    queries
        .index
        .each_known(&keys, batch.num_rows(), |i, k, span| {
            if ts.is_valid(i) {
                let c = if created.is_valid(i) {
                    created.value(i)
                } else {
                    NULL_CREATED
                };
                let span = span.unwrap_or_else(|| Span::of(&queries.start, &queries.t, k));
                f(i, (k, ts.value(i), c), span);
            }
        })
}

/// A candidate row for a query: its `(ts, created)` and its position in the scan (partition in
/// the high bits, row within the partition's stream below), [`Best::NONE`] for none.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Best {
    ts: i64,
    created: i64,
    pos: u64,
}

/// Bits of a position that number the rows of one partition's stream.
const ROW_BITS: u32 = 40;

impl Best {
    const NONE: Best = Best {
        ts: i64::MIN,
        created: i64::MIN,
        pos: u64::MAX,
    };

    fn is_none(&self) -> bool {
        self.pos == u64::MAX
    }

    /// The later `(ts, created)`; of equal ones, the first row of the scan.
    fn beats(&self, other: &Best) -> bool {
        match (self.ts, self.created).cmp(&(other.ts, other.created)) {
            std::cmp::Ordering::Greater => !self.is_none(),
            std::cmp::Ordering::Equal => self.pos < other.pos,
            std::cmp::Ordering::Less => other.is_none() && !self.is_none(),
        }
    }
}

/// Phase 1 of one partition: for every query the best row among those whose *first* eligible
/// query it is (the query of the key with the smallest `T >= ts`, or `T >= max(ts, created)`
/// when filtering by created time). A row eligible for a query is eligible for the key's later
/// ones too, so a running maximum over each key's queries (in [`best_per_query`]) turns these
/// into the best row per query. One binary search per row; no sort, no buffer.
async fn best_of_partition(
    mut stream: datafusion::execution::SendableRecordBatchStream,
    queries: Arc<Queries>,
    nkeys: usize,
    filter_created: bool,
    partition: usize,
    progress: Option<Arc<dyn Progress>>,
) -> Result<(Vec<Best>, u64), datafusion::error::DataFusionError> {
    let mut best = vec![Best::NONE; queries.t.len()];
    let base = (partition as u64) << ROW_BITS;
    let mut row = 0u64;
    let mut hits: Vec<(Span, Best)> = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        hits.clear();
        each_tuple(&batch, nkeys, &queries, |i, (_, ts, created), span| {
            let cand = Best {
                ts,
                created,
                pos: base | (row + i as u64),
            };
            hits.push((span, cand));
        })?;
        // The best rows of a batch's keys are scattered over the array: the one a later row
        // will update is fetched while this row's is.
        for j in 0..hits.len() {
            if let Some((ahead, _)) = hits.get(j + PREFETCH_AHEAD)
                && ahead.len > 0
            {
                crate::key_table::prefetch(&best[ahead.start as usize]);
                if ahead.len > 1 {
                    crate::key_table::prefetch(&queries.t[ahead.start as usize]);
                }
            }
            let (span, cand) = hits[j];
            offer(&mut best, &queries, span, cand, filter_created);
        }
        row += batch.num_rows() as u64;
        if let Some(p) = &progress {
            p.rows_read(batch.num_rows() as u64);
        }
        if row >= 1 << ROW_BITS {
            return Err(datafusion::error::DataFusionError::Execution(format!(
                "a scan partition has more than 2^{ROW_BITS} rows"
            )));
        }
    }
    Ok((best, row))
}

/// A source row of key `k` offered to the first query of the key it is eligible for: `T >= ts`
/// (and `T >= created`, a created time required, when filtering by it).
fn offer(best: &mut [Best], queries: &Queries, span: Span, cand: Best, filter_created: bool) {
    let eligible_at = if filter_created {
        if cand.created == NULL_CREATED {
            return;
        }
        cand.ts.max(cand.created)
    } else {
        cand.ts
    };
    // Most keys have one query: its time is in the span, no second memory access.
    let j = match span.len {
        0 => return,
        1 if span.first_t >= eligible_at => span.start as usize,
        1 => return,
        _ => {
            let range = span.start as usize..(span.start + span.len) as usize;
            let j = range.start + queries.t[range.clone()].partition_point(|&t| t < eligible_at);
            if j == range.end {
                return;
            }
            j
        }
    };
    if cand.beats(&best[j]) {
        best[j] = cand;
    }
}

/// The partitions' phase-1 answers merged, then each key's queries in ascending `T` given the
/// best of their own and every earlier query's rows.
fn best_per_query(parts: Vec<Vec<Best>>, queries: &Queries) -> Vec<Best> {
    let mut parts = parts.into_iter();
    let mut best = parts
        .next()
        .unwrap_or_else(|| vec![Best::NONE; queries.t.len()]);
    for part in parts {
        for (b, p) in best.iter_mut().zip(part) {
            if p.beats(b) {
                *b = p;
            }
        }
    }
    for k in 0..queries.index.len() as u32 {
        let range = queries.of_key(k);
        for q in range.start + 1..range.end {
            if best[q - 1].beats(&best[q]) {
                best[q] = best[q - 1];
            }
        }
    }
    best
}

/// A winning row phase 2 takes: its row in the partition's stream, its slot in the answer and
/// what phase 1 saw there (checked: a source changed between the reads is an error, never a
/// wrong answer).
#[derive(Debug, Clone, Copy)]
struct Wanted {
    row: u64,
    slot: u32,
    key: u32,
    ts: i64,
    created: i64,
}

/// Phase 2 of one partition: the winning rows' feature columns, taken by position (rows in
/// ascending order; `wanted` is sorted by row), with their slots.
async fn winners_of_partition(
    mut stream: datafusion::execution::SendableRecordBatchStream,
    queries: Arc<Queries>,
    wanted: Vec<Wanted>,
    nkeys: usize,
    progress: Option<Arc<dyn Progress>>,
) -> Result<(Vec<u32>, Vec<RecordBatch>, u64), datafusion::error::DataFusionError> {
    let changed = || {
        datafusion::error::DataFusionError::Execution(
            "the source changed while it was read (its rows differ between the join's two \
             reads); retry the retrieval"
                .into(),
        )
    };
    let mut slots = Vec::with_capacity(wanted.len());
    let mut parts = Vec::new();
    let mut next = 0;
    let mut row = 0u64;
    while let Some(batch) = stream.next().await {
        if next == wanted.len() {
            break;
        }
        let batch = batch?;
        let end = row + batch.num_rows() as u64;
        if let Some(p) = &progress {
            p.rows_read(batch.num_rows() as u64);
        }
        let from = next;
        while next < wanted.len() && wanted[next].row < end {
            next += 1;
        }
        let here = &wanted[from..next];
        if !here.is_empty() {
            let idx = UInt32Array::from_iter_values(here.iter().map(|w| (w.row - row) as u32));
            let cols = batch
                .columns()
                .iter()
                .map(|c| take(c, &idx, None))
                .collect::<Result<Vec<_>, _>>()?;
            let taken = RecordBatch::try_new(batch.schema(), cols)?;
            let mut ok = 0;
            each_tuple(&taken, nkeys, &queries, |i, (k, ts, created), _| {
                let w = &here[i];
                if (w.key, w.ts, w.created) == (k, ts, created) {
                    ok += 1;
                }
            })?;
            if ok != here.len() {
                return Err(changed());
            }
            slots.extend(here.iter().map(|w| w.slot));
            parts.push(taken.project(&((nkeys + 2)..taken.num_columns()).collect::<Vec<_>>())?);
        }
        row = end;
    }
    if next != wanted.len() {
        return Err(changed());
    }
    Ok((slots, parts, row))
}

/// For every entity row, the index of its row in the returned feature batch (null: none).
#[derive(Debug)]
struct Joined {
    features: RecordBatch,
    rows: UInt32Array,
}

/// The entity table's column for one of a view's join keys, if it has it in a type that
/// compares with the source's.
fn entity_key(
    view: &ViewJoin,
    entity: &Schema,
    key: &str,
    column: &str,
    source_type: &DataType,
) -> Result<usize, EntityError> {
    let (i, field) = entity
        .column_with_name(column)
        .ok_or_else(|| EntityError::MissingKey {
            view: view.view.clone(),
            column: column.into(),
            columns: entity.fields().iter().map(|f| f.name().clone()).collect(),
        })?;
    if key_type(field.data_type()) != *source_type {
        return Err(key_mismatch(
            view,
            key,
            column,
            field.data_type(),
            source_type,
        ));
    }
    Ok(i)
}

fn key_mismatch(
    view: &ViewJoin,
    key: &str,
    column: &str,
    entity_type: &DataType,
    source_type: &DataType,
) -> EntityError {
    EntityError::KeyType {
        view: view.view.clone(),
        column: column.into(),
        key: key.into(),
        entity_type: entity_type.to_string(),
        source_type: source_type.to_string(),
    }
}

/// What a view's join holds per entity row while it runs (the key index, the sorted queries,
/// each partition's best row per query, the winners' bookkeeping), for rows with distinct keys
/// and times; the estimate that splits the entity rows into groups when they would not fit in
/// the memory limit.
fn join_bytes_per_row(partitions: usize) -> usize {
    // A key slot (32 bytes at a load of 5/16 to 5/8: 64 on average), row → query, the query's
    // time, a winner's list entry and slot; then 24 bytes per partition.
    64 + 4 + 8 + 16 + 4 + 24 * partitions
}

/// How many groups of keys a view's join of `n` entity rows runs in: one, unless the rows
/// would take more than what the session's memory pool has left (the entity table is
/// reserved already; the scans' buffers are DataFusion's and not reserved).
fn key_groups(ctx: &SessionContext, n: usize) -> usize {
    use datafusion::execution::memory_pool::MemoryLimit;
    let pool = &ctx.runtime_env().memory_pool;
    let per_row = join_bytes_per_row(ctx.state().config().target_partitions());
    let budget = match pool.memory_limit() {
        MemoryLimit::Finite(limit) => limit.saturating_sub(pool.reserved()).max(1),
        MemoryLimit::Infinite | MemoryLimit::Unknown => usize::MAX,
    };
    n.saturating_mul(per_row)
        .div_ceil(budget)
        .clamp(1, n.max(1))
}

#[tracing::instrument(name = "pit_join.view", skip_all, fields(view = %view.view, groups))]
async fn join_view(
    ctx: &SessionContext,
    view: &ViewJoin,
    entity: &RecordBatch,
    t: &[Option<i64>],
    filter_created: bool,
    not_before: Option<i64>,
) -> Result<Joined, OfflineError> {
    use datafusion::execution::memory_pool::MemoryConsumer;
    let (read, df) = SourceRead::open(ctx, view).await?;
    let n = entity.num_rows();
    // The entity's key columns, in the source's (normalized) key types.
    let mut keys = Vec::new();
    for ((key, column), source_type) in view.keys.iter().zip(&read.key_types) {
        let i = entity_key(view, &entity.schema(), key, column, source_type)?;
        let a = entity.column(i);
        keys.push(
            cast_with_options(a, source_type, &strict())
                .map_err(|_| key_mismatch(view, key, column, a.data_type(), source_type))?,
        );
    }
    // Rows that would not fit in what the memory pool has left are joined in groups of keys,
    // each group reading the source again (rows of one key are in one group): the memory is
    // bounded, the price is more reads.
    let pool = ctx.runtime_env().memory_pool.clone();
    let per_row = join_bytes_per_row(ctx.state().config().target_partitions());
    let groups = if view.keys.is_empty() {
        1
    } else {
        key_groups(ctx, n)
    };
    tracing::Span::current().record("groups", groups);
    let reservation = MemoryConsumer::new(format!("pit_join({})", view.view)).register(&pool);
    reservation
        .try_grow(n.div_ceil(groups) * per_row)
        .map_err(|e| read.err(e))?;
    if groups == 1 {
        return join_group(ctx, &read, df, &keys, t, filter_created, not_before).await;
    }
    tracing::info!(
        view = %view.view,
        groups,
        "the entity rows do not fit in the memory limit at once: joined in groups of keys"
    );
    let mut hashes = vec![0u64; n];
    datafusion::common::hash_utils::create_hashes(
        &keys,
        &datafusion::common::hash_utils::RandomState::with_seed(0),
        &mut hashes,
    )
    .map_err(OfflineError::DataFusion)?;
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); groups];
    for (i, h) in hashes.iter().enumerate() {
        members[(*h % groups as u64) as usize].push(i as u32);
    }
    drop(hashes);
    let err = |e: datafusion::arrow::error::ArrowError| read.err(e.into());
    let mut rows = vec![None; n];
    let mut features = Vec::with_capacity(groups);
    let mut offset = 0u32;
    for member in members {
        let idx = UInt32Array::from(member);
        let keys = keys
            .iter()
            .map(|k| take(k, &idx, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let t: Vec<Option<i64>> = idx.values().iter().map(|&i| t[i as usize]).collect();
        let j = join_group(
            ctx,
            &read,
            df.clone(),
            &keys,
            &t,
            filter_created,
            not_before,
        )
        .await?;
        for (&i, r) in idx.values().iter().zip(j.rows.iter()) {
            rows[i as usize] = r.map(|r| r + offset);
        }
        offset += j.features.num_rows() as u32;
        features.push(j.features);
    }
    let schema = features[0].schema();
    Ok(Joined {
        features: concat_batches(&schema, &features).map_err(err)?,
        rows: rows.into_iter().collect(),
    })
}

/// The join of one view for entity rows with these key columns (in the source's key types)
/// and times.
async fn join_group(
    ctx: &SessionContext,
    read: &SourceRead<'_>,
    df: datafusion::dataframe::DataFrame,
    keys: &[ArrayRef],
    t: &[Option<i64>],
    filter_created: bool,
    not_before: Option<i64>,
) -> Result<Joined, OfflineError> {
    let view = read.view;
    let n = t.len();
    let queries = Arc::new(Queries::new(keys, t)?);
    let nkeys = view.keys.len();
    let feature_schema = || -> Result<SchemaRef, OfflineError> {
        let s = df.schema().as_arrow();
        Ok(Arc::new(Schema::new(
            view.features
                .iter()
                .enumerate()
                .map(|(i, (f, _))| {
                    let field = s.field_with_name(f).expect("checked");
                    Field::new(format!("__f{i}"), field.data_type().clone(), true)
                })
                .collect::<Vec<_>>(),
        )))
    };
    let schema = feature_schema()?;
    if queries.t.is_empty() {
        return Ok(Joined {
            features: RecordBatch::new_empty(schema),
            rows: UInt32Array::new_null(n),
        });
    }
    let ttl = view.ttl_micros.filter(|&l| l > 0);
    let lo = ttl
        .map_or(i64::MIN, |l| queries.min_t.saturating_sub(l))
        .max(not_before.unwrap_or(i64::MIN));
    let hi = queries.max_t;
    let engine = |e: tokio::task::JoinError| {
        OfflineError::DataFusion(datafusion::error::DataFusionError::External(Box::new(e)))
    };

    // Phase 1: the best row per query, over all partitions.
    // A span per phase, entered by each partition's task (tasks do not inherit spans).
    let phase = tracing::info_span!("pit_join.best", queries = queries.t.len());
    let progress = progress_of(ctx);
    let (streams, source_rows) = read.streams(df.clone(), lo, hi, false).await?;
    let kind = SourceReadKind::KeysAndTimes;
    if let Some(p) = &progress {
        p.read_started(&view.view, kind, source_rows);
    }
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(p, s)| {
            tokio::spawn(
                best_of_partition(
                    s,
                    queries.clone(),
                    nkeys,
                    filter_created,
                    p,
                    progress.clone(),
                )
                .instrument(phase.clone()),
            )
        })
        .collect();
    let npartitions = tasks.len();
    let mut parts = Vec::with_capacity(npartitions);
    let mut read_rows = 0;
    for task in tasks {
        let (part, rows) = task.await.map_err(engine)?.map_err(|e| read.err(e))?;
        parts.push(part);
        read_rows += rows;
    }
    if let Some(p) = &progress {
        p.read_finished(&view.view, kind, read_rows);
    }
    let best = best_per_query(parts, &queries);
    // The ttl, as a check on the winner; then one slot per distinct winning row, and each
    // partition's winning rows in scan order.
    let mut query_slot = vec![u32::MAX; queries.t.len()];
    let mut won: Vec<(u64, u32, usize)> = Vec::new();
    for k in 0..queries.index.len() as u32 {
        for q in queries.of_key(k) {
            let b = best[q];
            if b.is_none() || ttl.is_some_and(|l| b.ts < queries.t[q].saturating_sub(l)) {
                continue;
            }
            won.push((b.pos, k, q));
        }
    }
    won.sort_unstable();
    let mut wanted: Vec<Vec<Wanted>> = vec![Vec::new(); npartitions];
    let mut nslots = 0u32;
    let mut last = u64::MAX;
    for &(pos, key, q) in &won {
        if pos != last {
            let b = best[q];
            wanted[(pos >> ROW_BITS) as usize].push(Wanted {
                row: pos & ((1 << ROW_BITS) - 1),
                slot: nslots,
                key,
                ts: b.ts,
                created: b.created,
            });
            nslots += 1;
            last = pos;
        }
        query_slot[q] = nslots - 1;
    }
    drop((best, won));
    drop(phase);

    // Phase 2: the winning rows' features, by their positions in the same scan.
    let phase = tracing::info_span!("pit_join.take", winners = nslots);
    let (streams, source_rows) = read.streams(df, lo, hi, true).await?;
    let kind = SourceReadKind::Winners {
        winners: nslots as u64,
    };
    if let Some(p) = &progress {
        p.read_started(&view.view, kind, source_rows);
    }
    if streams.len() != npartitions {
        return Err(
            read.err(datafusion::error::DataFusionError::Internal(format!(
                "the source's scan has {} partitions, {npartitions} before",
                streams.len()
            ))),
        );
    }
    let tasks: Vec<_> = streams
        .into_iter()
        .zip(wanted)
        .map(|(s, w)| {
            tokio::spawn(
                winners_of_partition(s, queries.clone(), w, nkeys, progress.clone())
                    .instrument(phase.clone()),
            )
        })
        .collect();
    let mut slot_row = vec![u32::MAX; nslots as usize];
    let mut batches = Vec::new();
    let mut offset = 0u32;
    let mut read_rows = 0;
    for task in tasks {
        let (slots, parts, rows) = task.await.map_err(engine)?.map_err(|e| read.err(e))?;
        read_rows += rows;
        for (i, s) in slots.into_iter().enumerate() {
            slot_row[s as usize] = offset + i as u32;
        }
        offset += parts.iter().map(|b| b.num_rows() as u32).sum::<u32>();
        batches.extend(parts);
    }
    if let Some(p) = &progress {
        p.read_finished(&view.view, kind, read_rows);
    }
    let features = concat_batches(&schema, &batches).map_err(|e| read.err(e.into()))?;
    drop(batches);
    let rows: UInt32Array = queries
        .row_query
        .iter()
        .map(|&q| {
            (q != u32::MAX)
                .then(|| query_slot[q as usize])
                .filter(|&s| s != u32::MAX)
                .map(|s| slot_row[s as usize])
                .filter(|&r| r != u32::MAX)
        })
        .collect();
    Ok(Joined { features, rows })
}

/// The point-in-time join of `entity` (one batch: the whole entity table, pandas index columns
/// already dropped) with the retrieval's views: the entity columns (the event-time column as
/// UTC) and then each view's features under their output names.
pub async fn point_in_time_join(
    ctx: &SessionContext,
    entity: &RecordBatch,
    retrieval: &Retrieval,
) -> Result<Answer, OfflineError> {
    join_not_before(ctx, entity, retrieval, None).await
}

/// Entity-less retrieval (Feast's `start_date`/`end_date` without an entity dataframe): one
/// row per distinct key that has a source row in its view's window — `[start, end]`, and
/// `ts >= end - ttl` for a view with a ttl — at `end`, with each view's latest row of that
/// window (ties by created time). The entity columns are the union of the keyed views' join
/// columns (after `join_key_map`); a view's rows have nulls in the columns it lacks (a driver
/// view's rows have no customer), so views keyed differently give rows of their own and views
/// sharing a column meet in it — the union of per-view distinct keys that Feast's Spark store
/// builds. The rows come ordered by key (nulls first). Entity-less views give one row.
pub async fn entityless(
    ctx: &SessionContext,
    retrieval: &Retrieval,
    start_micros: i64,
    end_micros: i64,
) -> Result<Answer, OfflineError> {
    use datafusion::arrow::{
        array::TimestampMicrosecondArray,
        compute::{SortColumn, lexsort_to_indices, take_record_batch},
    };
    let (columns, sources) = entityless_columns(ctx, retrieval).await?;
    let key_schema = Arc::new(Schema::new(key_fields(&columns)));
    let err = |e: datafusion::arrow::error::ArrowError| OfflineError::DataFusion(e.into());
    let mut keyed: Vec<RecordBatch> = Vec::new();
    for (read, df) in sources {
        let v = read.view;
        let lo = v.ttl_micros.filter(|&l| l > 0).map_or(start_micros, |l| {
            start_micros.max(end_micros.saturating_sub(l))
        });
        let ts = || cast(col(format!("\"{}\"", v.timestamp_field)), utc_micros());
        let bound = |m: i64| {
            lit(ScalarValue::TimestampMicrosecond(
                Some(m),
                Some("UTC".into()),
            ))
        };
        let keys: Vec<Expr> = v
            .keys
            .iter()
            .zip(&read.key_types)
            .map(|((k, c), t)| cast(col(format!("\"{k}\"")), t.clone()).alias(c.clone()))
            .collect();
        let df = df
            .filter(ts().gt_eq(bound(lo)).and(ts().lt_eq(bound(end_micros))))
            .and_then(|df| df.select(keys))
            .and_then(|df| df.distinct())
            .map_err(|e| read.err(e))?;
        for batch in df.collect().await.map_err(|e| read.err(e))? {
            // In the union's columns: this view's keys, nulls for the others'.
            let cols = columns
                .iter()
                .map(|(c, t)| match batch.column_by_name(c) {
                    Some(a) => a.clone(),
                    None => new_null_array(t, batch.num_rows()),
                })
                .collect();
            keyed.push(RecordBatch::try_new(key_schema.clone(), cols).map_err(err)?);
        }
    }
    let mut entity_cols: Vec<ArrayRef> = Vec::new();
    let mut fields: Vec<Field> = Vec::new();
    let rows = if columns.is_empty() {
        1
    } else {
        if keyed.iter().all(|b| b.num_rows() == 0) {
            // No key has a row in the window: an empty answer with the key columns.
            let schema = keyed_schema(&columns);
            return join_not_before(ctx, &empty_entity(&schema), retrieval, Some(start_micros))
                .await;
        }
        let all = concat_batches(&key_schema, &keyed).map_err(err)?;
        // Distinct across views, then ordered by key.
        let converter = RowConverter::new(
            columns
                .iter()
                .map(|(_, t)| SortField::new(t.clone()))
                .collect(),
        )
        .map_err(err)?;
        let keyrows = converter.convert_columns(all.columns()).map_err(err)?;
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<u32> = (0..all.num_rows())
            .filter(|&i| seen.insert(keyrows.row(i).as_ref().to_vec()))
            .map(|i| i as u32)
            .collect();
        let all = take_record_batch(&all, &UInt32Array::from(unique)).map_err(err)?;
        let order = lexsort_to_indices(
            &all.columns()
                .iter()
                .map(|c| SortColumn {
                    values: c.clone(),
                    options: None,
                })
                .collect::<Vec<_>>(),
            None,
        )
        .map_err(err)?;
        let all = take_record_batch(&all, &order).map_err(err)?;
        for (f, c) in key_schema.fields().iter().zip(all.columns()) {
            fields.push(f.as_ref().clone());
            entity_cols.push(c.clone());
        }
        all.num_rows()
    };
    fields.push(Field::new("event_timestamp", utc_micros(), false));
    entity_cols.push(Arc::new(
        TimestampMicrosecondArray::from(vec![end_micros; rows]).with_timezone("UTC"),
    ));
    let entity = RecordBatch::try_new(Arc::new(Schema::new(fields)), entity_cols).map_err(err)?;
    join_not_before(ctx, &entity, retrieval, Some(start_micros)).await
}

/// [`entityless_columns`]: the entity columns and each keyed view's opened source.
type EntitylessColumns<'a> = (
    Vec<(String, DataType)>,
    Vec<(SourceRead<'a>, datafusion::dataframe::DataFrame)>,
);

/// The entity columns of an entity-less retrieval: the union of the keyed views' join columns
/// in the order the views name them, each in its source's key type (a column two views share
/// must have one type in both); and the keyed views' opened sources, read once.
async fn entityless_columns<'a>(
    ctx: &'a SessionContext,
    retrieval: &'a Retrieval,
) -> Result<EntitylessColumns<'a>, OfflineError> {
    let mut columns: Vec<(String, DataType, &str)> = Vec::new();
    let mut sources = Vec::new();
    for v in retrieval.views.iter().filter(|v| !v.keys.is_empty()) {
        let (read, df) = SourceRead::open(ctx, v).await?;
        for ((_, c), t) in v.keys.iter().zip(&read.key_types) {
            match columns.iter().find(|(name, _, _)| name == c) {
                None => columns.push((c.clone(), t.clone(), &v.view)),
                Some((_, first, _)) if first == t => {}
                Some((_, first, other)) => {
                    return Err(EntityError::EntitylessKeyType {
                        column: c.clone(),
                        views: Box::new([
                            ((*other).to_owned(), first.to_string()),
                            (v.view.clone(), t.to_string()),
                        ]),
                    }
                    .into());
                }
            }
        }
        sources.push((read, df));
    }
    Ok((
        columns.into_iter().map(|(c, t, _)| (c, t)).collect(),
        sources,
    ))
}

/// The answer's schema of [`entityless`] (without running it).
pub async fn entityless_schema(
    ctx: &SessionContext,
    retrieval: &Retrieval,
) -> Result<Schema, OfflineError> {
    let (columns, _) = entityless_columns(ctx, retrieval).await?;
    output_schema(ctx, &keyed_schema(&columns), retrieval).await
}

/// The answer's schema of [`point_in_time_join`] of an entity table with this schema (without
/// running it): the entity columns (the event time as UTC), then each view's features.
pub async fn output_schema(
    ctx: &SessionContext,
    entity: &Schema,
    retrieval: &Retrieval,
) -> Result<Schema, OfflineError> {
    let (mut fields, _) = entity_fields(entity, retrieval)?;
    for v in &retrieval.views {
        let (read, df) = SourceRead::open(ctx, v).await?;
        for ((key, column), source_type) in v.keys.iter().zip(&read.key_types) {
            entity_key(v, entity, key, column, source_type)?;
        }
        let s = df.schema().as_arrow();
        for (f, out) in &v.features {
            let t = s.field_with_name(f).expect("checked").data_type();
            fields.push(Field::new(out, t.clone(), true));
        }
    }
    Ok(Schema::new(fields))
}

/// The entity side's output fields (the event-time column as UTC) and the event-time column's
/// name and UTC type; checks that no output column clashes with an entity column.
fn entity_fields(
    schema: &Schema,
    retrieval: &Retrieval,
) -> Result<(Vec<Field>, (String, DataType)), EntityError> {
    let ts_name = entity_timestamp_column(schema)?;
    let ts_type = schema.field_with_name(&ts_name).expect("found").data_type();
    let as_utc = match ts_type {
        // Parquet has no seconds unit: those are widened.
        DataType::Timestamp(TimeUnit::Second, _) => utc_micros(),
        DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, Some("UTC".into())),
        DataType::Date32 | DataType::Date64 | DataType::Utf8 | DataType::LargeUtf8 => utc_micros(),
        other => {
            return Err(EntityError::BadTimestamp {
                column: ts_name,
                data_type: other.to_string(),
            });
        }
    };
    for v in &retrieval.views {
        if let Some((_, out)) = v
            .features
            .iter()
            .find(|(_, out)| schema.column_with_name(out).is_some())
        {
            return Err(EntityError::ColumnClash {
                view: v.view.clone(),
                column: out.clone(),
            });
        }
    }
    let fields = schema
        .fields()
        .iter()
        .map(|f| {
            if *f.name() == ts_name {
                Field::new(f.name(), as_utc.clone(), f.is_nullable())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Ok((fields, (ts_name, as_utc)))
}

/// The entity columns of an entity-less retrieval (the first keyed view's key columns in its
/// source's normalized types) and `event_timestamp`.
/// The entity-less key columns as nullable fields.
fn key_fields(columns: &[(String, DataType)]) -> Vec<Field> {
    columns
        .iter()
        .map(|(c, t)| Field::new(c, t.clone(), true))
        .collect()
}

/// The entity-less entity table's schema: the key columns, then the event time.
fn keyed_schema(columns: &[(String, DataType)]) -> Schema {
    let mut fields = key_fields(columns);
    fields.push(Field::new("event_timestamp", utc_micros(), false));
    Schema::new(fields)
}

fn empty_entity(schema: &Schema) -> RecordBatch {
    RecordBatch::new_empty(Arc::new(schema.clone()))
}

/// [`point_in_time_join`] with source rows before `not_before` (µs) never candidates.
async fn join_not_before(
    ctx: &SessionContext,
    entity: &RecordBatch,
    retrieval: &Retrieval,
    not_before: Option<i64>,
) -> Result<Answer, OfflineError> {
    let entity_schema = entity.schema();
    let (mut fields, (ts_name, as_utc)) = entity_fields(&entity_schema, retrieval)?;
    let ts_col = entity.column_by_name(&ts_name).expect("found").clone();
    let bad_ts = |_: datafusion::arrow::error::ArrowError| EntityError::BadTimestamp {
        column: ts_name.clone(),
        data_type: ts_col.data_type().to_string(),
    };
    let ts_utc = cast_with_options(&ts_col, &as_utc, &strict()).map_err(bad_ts)?;
    let t = micros(&ts_utc).map_err(bad_ts)?;
    let columns: Vec<ArrayRef> = entity_schema
        .fields()
        .iter()
        .zip(entity.columns())
        .map(|(f, c)| {
            if *f.name() == ts_name {
                ts_utc.clone()
            } else {
                c.clone()
            }
        })
        .collect();
    let mut joined = Vec::new();
    for v in &retrieval.views {
        let j = join_view(
            ctx,
            v,
            entity,
            &t,
            retrieval.filter_by_created_timestamp,
            not_before,
        )
        .await?;
        for ((_, out), f) in v.features.iter().zip(j.features.schema().fields()) {
            fields.push(Field::new(out, f.data_type().clone(), true));
        }
        joined.push(j);
    }
    let schema = Arc::new(Schema::new(fields));
    Ok(Answer {
        schema,
        columns,
        joined,
        rows: entity.num_rows(),
    })
}

/// A retrieval's answer, assembled batch by batch as it is read (so writing it needs no second
/// copy of the whole table).
#[derive(Debug)]
pub struct Answer {
    schema: SchemaRef,
    /// The entity table's columns (the event time in UTC).
    columns: Vec<ArrayRef>,
    joined: Vec<Joined>,
    rows: usize,
}

impl Answer {
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// How many batches [`Answer::batch`] has: [`OUTPUT_BATCH`] rows each, one empty batch for
    /// no rows.
    pub fn num_batches(&self) -> usize {
        self.rows.max(1).div_ceil(OUTPUT_BATCH)
    }

    /// The bytes the answer holds (entity columns, each view's winning rows and row indices).
    pub fn memory_size(&self) -> usize {
        let entity: usize = self.columns.iter().map(|c| c.get_array_memory_size()).sum();
        let joined: usize = self
            .joined
            .iter()
            .map(|j| j.features.get_array_memory_size() + j.rows.get_array_memory_size())
            .sum();
        entity + joined
    }

    /// Batch `i` (`i < num_batches()`), assembled with `take` from the winning rows.
    pub fn batch(&self, i: usize) -> Result<RecordBatch, OfflineError> {
        let at = i * OUTPUT_BATCH;
        let len = OUTPUT_BATCH.min(self.rows - at);
        let mut cols: Vec<ArrayRef> = self.columns.iter().map(|c| c.slice(at, len)).collect();
        for j in &self.joined {
            let idx = j.rows.slice(at, len);
            for c in j.features.columns() {
                cols.push(if j.features.num_rows() == 0 {
                    new_null_array(c.data_type(), len)
                } else {
                    take(c, &idx, None).map_err(|e| OfflineError::DataFusion(e.into()))?
                });
            }
        }
        RecordBatch::try_new(self.schema.clone(), cols)
            .map_err(|e| OfflineError::DataFusion(e.into()))
    }

    /// The answer in batches of [`OUTPUT_BATCH`] rows (one empty batch for no rows).
    pub fn batches(&self) -> impl Iterator<Item = Result<RecordBatch, OfflineError>> + '_ {
        (0..self.num_batches()).map(|i| self.batch(i))
    }

    /// Every batch.
    pub fn collect(&self) -> Result<Vec<RecordBatch>, OfflineError> {
        self.batches().collect()
    }
}

#[path = "historical_exec.rs"]
pub mod exec;

#[cfg(test)]
#[path = "historical_tests.rs"]
mod tests;
