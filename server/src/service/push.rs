//! `POST /push` and `POST /write-to-online-store` (spec §4.7–4.8, §11): column-oriented JSON
//! rows become Feast values of the view's declared types and are written like materialized rows
//! (Redis: only newer event times overwrite; SQLite: last write wins); pushes to the offline
//! store become new Parquet files in the batch source's directory ([`larder_offline::append`]).

use std::{collections::HashMap, sync::Arc};

use larder_offline::append::{self, AppendError, Prepared, SourceDir};

use super::batching::{Batcher, Group, Policy};
use larder_online::store::{OnlineStore, WriteRow};
use larder_protos::feast::types::{Value, value_type::Enum as ValueType};
use larder_registry::{
    config::RepoConfig,
    model::{Catalog, FeatureView, SourceKind, ViewKind},
    store::RegistryStore,
};
use larder_types::{
    entity_key::EntityValue,
    scalar::Scalar,
    value::{json_timestamp, json_value},
};
use serde_json::Value as Json;

use crate::error::{ErrorCode, ServiceError};

/// Rows as JSON columns: column name → one value per row.
pub type Columns = Vec<(String, Vec<Json>)>;

pub struct PushService {
    pub config: RepoConfig,
    /// The environment `feature_store.yaml` was expanded with (S3 credentials of sources).
    pub env: HashMap<String, String>,
    pub registry: Arc<dyn RegistryStore>,
    pub store: Arc<dyn OnlineStore>,
    /// With `feature_server.offline_push_batching_enabled`: the offline part is queued here.
    pub batcher: Option<Arc<OfflineBatcher>>,
    /// How stored on-demand views' UDFs run on writes.
    pub engines: super::ondemand::Engines,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Everything is written.
    Written(usize),
    /// The online part (if any) is written; the offline part is queued (HTTP 202).
    Queued,
}

fn bad(view: &str, m: impl std::fmt::Display) -> ServiceError {
    ServiceError::bad_request(format!("feature view {view}: {m}"))
}

/// The entity key of row `i` from JSON join-key columns (values converted to the keys' types).
fn json_row_key(
    view: &str,
    key_cols: &[(&str, ValueType, &Vec<Json>)],
    i: usize,
    version: larder_types::entity_key::KeyVersion,
) -> Result<Vec<u8>, ServiceError> {
    let keys: Vec<EntityValue> = key_cols
        .iter()
        .map(|(k, t, col)| {
            Scalar::from_json(&col[i])
                .to_entity_value(*t)
                .map_err(|m| bad(view, format!("column {k}, row {i}: {m}")))
        })
        .collect::<Result<_, _>>()?;
    let pairs: Vec<(&str, &EntityValue)> = key_cols
        .iter()
        .zip(&keys)
        .map(|((k, ..), v)| (*k, v))
        .collect();
    Ok(super::entity_key(&pairs, version))
}

/// A JSON column as values of type `t`.
fn json_column(
    view: &str,
    name: &str,
    col: &[Json],
    t: ValueType,
) -> Result<Vec<Value>, ServiceError> {
    col.iter()
        .enumerate()
        .map(|(i, j)| {
            json_value(j, t).map_err(|m| bad(view, format!("column {name}, row {i}: {m}")))
        })
        .collect()
}

impl PushService {
    /// Writes the rows to one view: the columns must hold its join keys, every feature and the
    /// batch source's timestamp column (source names; `field_mapping` is applied).
    pub async fn write_view(
        &self,
        catalog: &Catalog,
        v: &FeatureView,
        df: &Columns,
    ) -> Result<usize, ServiceError> {
        let source = v
            .batch_source
            .as_ref()
            .ok_or_else(|| bad(&v.name, "has no batch source"))?;
        // Columns by feature/entity name (source names renamed by field_mapping).
        let column = |name: &str| -> Option<&Vec<Json>> {
            df.iter()
                .find(|(c, _)| {
                    source
                        .field_mapping
                        .get(c)
                        .map_or(c.as_str(), String::as_str)
                        == name
                })
                .map(|(_, v)| v)
        };
        let rows = df.first().map_or(0, |c| c.1.len());
        if df.iter().any(|c| c.1.len() != rows) {
            return Err(bad(&v.name, "all columns must have the same length"));
        }
        let ts_name = source
            .field_mapping
            .get(&source.timestamp_field)
            .unwrap_or(&source.timestamp_field);
        let ts_col = column(ts_name).ok_or_else(|| {
            bad(
                &v.name,
                format!("column {ts_name} (event timestamp) is missing"),
            )
        })?;
        let created_col = (!source.created_timestamp_column.is_empty())
            .then(|| {
                column(
                    source
                        .field_mapping
                        .get(&source.created_timestamp_column)
                        .unwrap_or(&source.created_timestamp_column),
                )
            })
            .flatten();
        let join_keys = catalog.join_keys(v);
        let mut key_cols = Vec::new();
        for (k, t) in &join_keys {
            let col =
                column(k).ok_or_else(|| bad(&v.name, format!("join key column {k} is missing")))?;
            key_cols.push((k.as_str(), *t, col));
        }
        let mut feature_cols = Vec::new();
        for f in &v.features {
            if key_cols.iter().any(|(k, ..)| *k == f.name) {
                feature_cols.push((f, column(&f.name).expect("a key column exists")));
                continue;
            }
            feature_cols.push((
                f,
                column(&f.name)
                    .ok_or_else(|| bad(&v.name, format!("feature column {} is missing", f.name)))?,
            ));
        }
        let version = super::key_version(&self.config)?;
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let key = json_row_key(&v.name, &key_cols, i, version)?;
            let values = feature_cols
                .iter()
                .map(|(f, col)| {
                    json_value(&col[i], f.value_type)
                        .map(Some)
                        .map_err(|m| bad(&v.name, format!("column {}, row {i}: {m}", f.name)))
                })
                .collect::<Result<_, _>>()?;
            out.push(WriteRow {
                key,
                values,
                event_ts: json_timestamp(&ts_col[i])
                    .map_err(|m| bad(&v.name, format!("column {ts_name}, row {i}: {m}")))?,
                created_ts: created_col
                    .map(|c| json_timestamp(&c[i]))
                    .transpose()
                    .map_err(|m| bad(&v.name, m))?,
            });
        }
        let layout = super::repo_layout(&self.config, v);
        let w = self.store.write(&layout, &out).await?;
        Ok(w.written)
    }

    /// Rows written to a stored on-demand view: keyed by its join keys, at the rows'
    /// `event_timestamp` (now when the rows have none, as Feast stamps them), the UDF's outputs
    /// computed from the rows (by the view's engine) unless `transform` is false.
    async fn write_odfv(
        &self,
        catalog: &Catalog,
        v: &FeatureView,
        df: &Columns,
        transform: bool,
    ) -> Result<usize, ServiceError> {
        let name = &v.name;
        let column = |c: &str| df.iter().find(|(n, _)| n == c).map(|(_, v)| v);
        let rows = df.first().map_or(0, |c| c.1.len());
        if df.iter().any(|c| c.1.len() != rows) {
            return Err(bad(name, "all columns must have the same length"));
        }
        let outputs: Vec<Vec<Value>> = if transform {
            use super::ondemand::Engine;
            match super::ondemand::engine(catalog, v, &self.engines) {
                Engine::Native(program) => transform_native(catalog, v, &program, df, rows)?,
                Engine::Python(py, _) => self.transform_python(catalog, v, &py, df, rows).await?,
                Engine::Unavailable(why) => return Err(super::ondemand::unavailable(name, &why)),
            }
        } else {
            v.features
                .iter()
                .map(|f| {
                    let col = column(&f.name).ok_or_else(|| {
                        bad(name, format!("feature column {} is missing", f.name))
                    })?;
                    json_column(name, &f.name, col, f.value_type)
                })
                .collect::<Result<_, _>>()?
        };
        let keys = super::ondemand::join_keys(catalog, v);
        let mut key_cols = Vec::new();
        for (k, t) in &keys {
            let col =
                column(k).ok_or_else(|| bad(name, format!("join key column {k} is missing")))?;
            key_cols.push((k.as_str(), *t, col));
        }
        let now = chrono::Utc::now();
        let now = prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: now.timestamp_subsec_micros() as i32 * 1000,
        };
        let ts_col = column("event_timestamp");
        let version = super::key_version(&self.config)?;
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let event_ts = match ts_col {
                Some(c) => json_timestamp(&c[i])
                    .map_err(|m| bad(name, format!("column event_timestamp, row {i}: {m}")))?,
                None => now,
            };
            out.push(WriteRow {
                key: json_row_key(name, &key_cols, i, version)?,
                values: outputs.iter().map(|c| Some(c[i].clone())).collect(),
                event_ts,
                created_ts: None,
            });
        }
        let layout = super::repo_layout(&self.config, v);
        Ok(self.store.write(&layout, &out).await?.written)
    }

    /// The UDF's outputs of a Python-engine view over the written rows (its input frame built
    /// from their columns as Feast builds one from the request's values).
    async fn transform_python(
        &self,
        catalog: &Catalog,
        v: &FeatureView,
        py: &super::python_engine::PythonEngine,
        df: &Columns,
        rows: usize,
    ) -> Result<Vec<Vec<Value>>, ServiceError> {
        let name = &v.name;
        let odfv = v.odfv.as_ref().expect("an on-demand view");
        let frame = super::ondemand::python_frame(catalog, odfv);
        let mut names = Vec::with_capacity(frame.len());
        let mut columns = Vec::with_capacity(frame.len());
        for (n, t) in &frame {
            let col = df
                .iter()
                .find(|(c, _)| c == n)
                .map(|(_, v)| v)
                .ok_or_else(|| bad(name, format!("input column {n} is missing")))?;
            names.push(n.clone());
            columns.push(json_column(name, n, col, *t)?);
        }
        let refs: Vec<&[Value]> = columns.iter().map(Vec::as_slice).collect();
        let input = larder_offline::ondemand::batch::inferred_batch(&names, &refs, rows)
            .map_err(|e| super::ondemand::udf_failed(name, e))?;
        let out = py.transform(name, &input).await?;
        v.features
            .iter()
            .map(|f| {
                let column = format!("{name}__{}", f.name);
                let a = out.column_by_name(&column).ok_or_else(|| {
                    ServiceError::bad_request(format!(
                        "on demand feature view {name}: the UDF returned no column {}",
                        f.name
                    ))
                })?;
                larder_offline::convert::feature_values(&column, a, f.value_type)
                    .map_err(|e| bad(name, e))
            })
            .collect()
    }

    async fn catalog(&self) -> Result<Catalog, ServiceError> {
        let snapshot = self.registry.load().await?;
        Ok(Catalog::new(&snapshot, self.config.project.as_str())?)
    }

    /// `/write-to-online-store`: rows of a feature view, or the inputs of an on-demand view
    /// with `write_to_online_store` (its outputs are written; with `transform` false the rows
    /// are the outputs).
    pub async fn write_to_online_store(
        &self,
        view: &str,
        df: &Columns,
        transform: bool,
    ) -> Result<usize, ServiceError> {
        let catalog = self.catalog().await?;
        if let Some(v) = catalog
            .view(view)
            .filter(|v| v.odfv.as_ref().is_some_and(|o| o.write_to_online_store))
        {
            return self.write_odfv(&catalog, v, df, transform).await;
        }
        let v = catalog
            .view(view)
            .filter(|v| {
                matches!(
                    v.kind,
                    ViewKind::FeatureView | ViewKind::StreamFeatureView | ViewKind::LabelView
                )
            })
            .ok_or_else(|| {
                ServiceError::feast(
                    ErrorCode::NotFound,
                    "FeatureViewNotFoundException",
                    format!(
                        "Feature view {view} does not exist in project {}",
                        self.config.project
                    ),
                )
            })?;
        self.write_view(&catalog, v, df).await
    }

    /// `/push`: every view whose stream source is the push source. `to: online` writes each
    /// view's rows to the online store; `to: offline` appends them to each distinct batch
    /// source as one new Parquet file (Feast appends once per view, duplicating rows when
    /// views share a source); `online_and_offline` does both, checking the offline part before
    /// anything is written.
    pub async fn push(
        &self,
        push_source: &str,
        df: &Columns,
        to: &str,
    ) -> Result<Pushed, ServiceError> {
        let (online, offline) = match to {
            "online" => (true, false),
            "offline" => (false, true),
            "online_and_offline" => (true, true),
            other => {
                return Err(ServiceError::bad_request(format!(
                    "{other} is not a supported push format. Please specify one of these ['online', 'offline', 'online_and_offline']."
                )));
            }
        };
        let catalog = self.catalog().await?;
        let views: Vec<&FeatureView> = catalog
            .feature_views
            .iter()
            .filter(|v| {
                v.stream_source.as_ref().is_some_and(|s| {
                    s.name == push_source && matches!(s.kind, SourceKind::Push { .. })
                })
            })
            .collect();
        if views.is_empty() {
            return Err(ServiceError::feast(
                ErrorCode::Unprocessable,
                "PushSourceNotFoundException",
                format!("Unable to find push source '{push_source}'."),
            ));
        }
        let mut appends = Vec::new();
        if offline {
            for v in &views {
                let target = self.offline_target(v)?;
                if appends
                    .iter()
                    .any(|(t, _): &(SourceDir, _)| t.uri == target.uri)
                {
                    continue;
                }
                let prepared = append::prepare(&target, df)
                    .await
                    .map_err(|e| append_error(&v.name, e))?;
                appends.push((target, prepared));
            }
        }
        // Room in the batcher's bounded buffer is taken before anything is written, so a full
        // buffer refuses the push whole (503) instead of writing only its online part.
        let queued = match &self.batcher {
            Some(batcher) if !appends.is_empty() => {
                Some(batcher.reserve(appends.iter().map(|(_, p)| p.rows()).sum())?)
            }
            _ => None,
        };
        let mut written = 0;
        if online {
            for v in &views {
                written += self.write_view(&catalog, v, df).await?;
            }
        }
        if let Some(room) = queued {
            // Checked and converted above; written when the batch fills or ages.
            for (target, prepared) in appends {
                room.batcher.queue(target, prepared);
            }
            room.keep();
            return Ok(Pushed::Queued);
        }
        for (target, prepared) in appends {
            let done = append::write(&target, &[prepared])
                .await
                .map_err(|e| append_error(push_source, e))?;
            tracing::info!(push_source, file = %done.file, rows = done.rows, "pushed rows to the offline store");
            written += done.rows;
        }
        Ok(Pushed::Written(written))
    }

    /// The directory a view's batch source appends pushed rows to.
    fn offline_target(&self, v: &FeatureView) -> Result<SourceDir, ServiceError> {
        match super::file_source(&self.config, &self.env, v, "pushes to the offline store of")? {
            (uri, Some(store)) => Ok(SourceDir::bucket(&uri, store)),
            (uri, None) => SourceDir::local(&uri).map_err(|e| append_error(&v.name, e)),
        }
    }
}

/// The UDF's outputs of a native-engine view over the written rows (its inputs taken from the
/// rows' columns, in their declared types).
fn transform_native(
    catalog: &Catalog,
    v: &FeatureView,
    program: &larder_offline::ondemand::Program,
    df: &Columns,
    rows: usize,
) -> Result<Vec<Vec<Value>>, ServiceError> {
    let name = &v.name;
    let odfv = v.odfv.as_ref().expect("an on-demand view");
    let column = |c: &str| df.iter().find(|(n, _)| n == c).map(|(_, v)| v);
    // The declared type of each input the UDF reads.
    let mut types: Vec<(String, ValueType)> = super::ondemand::request_fields(odfv);
    for s in &odfv.sources {
        for (f, t) in super::ondemand::source_features(catalog, s) {
            types.push((f.to_owned(), t));
            types.push((format!("{}__{f}", s.name_to_use()), t));
        }
    }
    types.extend(super::ondemand::join_keys(catalog, v));
    let inputs = program
        .inputs()
        .iter()
        .map(|input| {
            let col = column(input)
                .ok_or_else(|| bad(name, format!("input column {input} is missing")))?;
            let t = types
                .iter()
                .find(|(n, _)| n == input)
                .map_or(ValueType::Invalid, |(_, t)| *t);
            let values = json_column(name, input, col, t)?;
            larder_offline::ondemand::Col::from_values(&values)
                .map_err(|e| super::ondemand::udf_failed(name, e))
        })
        .collect::<Result<Vec<_>, ServiceError>>()?;
    let wanted: Vec<&str> = v.features.iter().map(|f| f.name.as_str()).collect();
    let computed = program
        .evaluate(&inputs, rows, &wanted)
        .map_err(|e| super::ondemand::udf_failed(name, e))?;
    computed
        .iter()
        .zip(&v.features)
        .map(|(c, f)| {
            c.to_values(f.value_type)
                .map_err(|e| super::ondemand::udf_failed(name, e))
        })
        .collect()
}

/// An offline append's error, in the context of the view or push source it was for (its code:
/// the source cannot take appends → 422, bad rows → 400, the store failed → 503).
fn append_error(context: &str, e: AppendError) -> ServiceError {
    ServiceError::from(e).context(context)
}

/// Buffers the offline part of pushes (already converted to the source's columns) per batch
/// source and writes each buffer as one file when it holds `batch_size` rows or its oldest rows
/// are `interval` old (Feast's offline push batching), so frequent small pushes do not become
/// many tiny files. A buffer whose write fails is kept and retried at the next tick;
/// [`OfflineBatcher::flush`] writes everything (the server calls it when it stops).
pub struct OfflineBatcher {
    batcher: Batcher<PushGroup>,
    /// Rows buffered or reserved, at most `capacity`: a store that keeps failing fills the
    /// buffer, and then pushes are refused (503) instead of the buffer growing without bound.
    buffered: Arc<std::sync::atomic::AtomicUsize>,
    capacity: usize,
}

/// Room for rows in the batcher's buffer; given back when dropped unless kept (then the rows
/// hold it until they are written).
pub struct Reserved<'a> {
    batcher: &'a OfflineBatcher,
    rows: usize,
    kept: bool,
}

impl Reserved<'_> {
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.batcher
                .buffered
                .fetch_sub(self.rows, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// How many batches' worth of rows the batcher buffers at most.
const BUFFERED_BATCHES: usize = 100;

/// Pushed rows for one file: one source, the same columns; `buffered` is given their room
/// back once they are written.
struct PushGroup {
    target: SourceDir,
    parts: Vec<Prepared>,
    rows: usize,
    buffered: Arc<std::sync::atomic::AtomicUsize>,
}

impl Group for PushGroup {
    type Item = (SourceDir, Prepared, Arc<std::sync::atomic::AtomicUsize>);

    fn new((target, rows, buffered): Self::Item) -> Self {
        Self {
            target,
            rows: rows.rows(),
            parts: vec![rows],
            buffered,
        }
    }

    fn takes(&self, (target, rows, _): &Self::Item) -> bool {
        self.target.uri == target.uri && self.parts[0].same_columns(rows)
    }

    fn add(&mut self, (_, rows, _): Self::Item) {
        self.rows += rows.rows();
        self.parts.push(rows);
    }

    fn rows(&self) -> usize {
        self.rows
    }

    async fn write(&self) -> Result<(), String> {
        match append::write(&self.target, &self.parts).await {
            Ok(done) => {
                tracing::info!(
                    source = %self.target.uri, file = %done.file, rows = done.rows,
                    "wrote batched offline pushes"
                );
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    source = %self.target.uri, rows = self.rows, error = %e,
                    "writing batched offline pushes failed; kept for a retry"
                );
                Err(e.to_string())
            }
        }
    }

    fn written(self) {
        self.buffered
            .fetch_sub(self.rows, std::sync::atomic::Ordering::Relaxed);
    }
}

impl OfflineBatcher {
    /// Starts the batcher's task on the current runtime. It buffers at most
    /// [`BUFFERED_BATCHES`] batches' worth of rows (at least 100,000).
    pub fn start(batching: larder_registry::config::PushBatching) -> Arc<Self> {
        let capacity = batching
            .batch_size
            .saturating_mul(BUFFERED_BATCHES)
            .max(100_000);
        Arc::new(Self {
            batcher: Batcher::start(Policy {
                max_rows: batching.batch_size,
                max_age: batching.interval,
            }),
            buffered: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            capacity,
        })
    }

    /// Room for `rows` more rows, or 503 when the buffer is full (its writes keep failing).
    fn reserve(&self, rows: usize) -> Result<Reserved<'_>, ServiceError> {
        use std::sync::atomic::Ordering;
        let before = self.buffered.fetch_add(rows, Ordering::Relaxed);
        let reserved = Reserved {
            batcher: self,
            rows,
            kept: false,
        };
        if before + rows > self.capacity && before > 0 {
            return Err(ServiceError::new(
                ErrorCode::Unavailable,
                format!(
                    "the offline push buffer holds {before} rows not yet written (at most {}): \
                     the offline store is not taking writes; try again later",
                    self.capacity
                ),
            ));
        }
        Ok(reserved)
    }

    fn queue(&self, target: SourceDir, rows: Prepared) {
        if let Err((target, rows, _)) = self.batcher.send((target, rows, self.buffered.clone())) {
            // Only after the task has ended (shutdown): write now rather than lose the rows.
            tokio::spawn(async move {
                if let Err(e) = append::write(&target, &[rows]).await {
                    tracing::error!(source = %target.uri, error = %e, "offline push lost");
                }
            });
        }
    }

    /// Writes every buffer now; returns when done.
    pub async fn flush(&self) {
        self.batcher.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_batchers_buffer_is_bounded() {
        let batcher = OfflineBatcher::start(larder_registry::config::PushBatching {
            batch_size: 10,
            interval: Duration::from_secs(3600),
        });
        assert_eq!(batcher.capacity, 100_000);
        // Rows held (queued, not yet written) count against the bound.
        let held = batcher.reserve(99_990).unwrap();
        held.keep();
        let more = batcher.reserve(10).unwrap();
        let e = batcher.reserve(1).err().expect("the buffer is full");
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(e.message.contains("100000"), "{}", e.message);
        // Room not kept (a push that failed before queuing) is given back.
        drop(more);
        assert!(batcher.reserve(10).is_ok());
        // One push larger than the bound is still taken into an empty buffer.
        let empty = OfflineBatcher::start(larder_registry::config::PushBatching {
            batch_size: 10,
            interval: Duration::from_secs(3600),
        });
        assert!(empty.reserve(1_000_000).is_ok());
    }
}
