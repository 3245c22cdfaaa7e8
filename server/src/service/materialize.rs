//! Materialization (spec §10.1–10.2): for each selected view, the latest source row per entity
//! within `[start, end]` goes to the online store in Feast's layout; then the registry records
//! the interval and the state `AVAILABLE_ONLINE`. Rows stream from DataFusion in batches and
//! are written batch by batch, so memory stays bounded whatever the source size.

use std::{sync::Arc, time::Instant};
use tracing::Instrument;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures::StreamExt;
use larder_offline::{
    convert::{entity_values, feature_values, timestamp_at},
    source::{LatestRowsQuery, latest_rows, session},
};
use larder_online::store::{OnlineStore, WriteRow};
use larder_protos::feast::{core::FeatureViewState, types::value_type::Enum as ValueType};
use larder_registry::{
    clock::Clock,
    config::RepoConfig,
    model::{Catalog, FeatureView, ViewKind},
    store::RegistryStore,
    writeback::{MetaEdit, ViewField},
};
use larder_types::entity_key::{EntityValue, KeyVersion};
use prost_types::Timestamp;

use crate::error::{ErrorCode, ServiceError};

/// What to materialize.
#[derive(Debug, Clone)]
pub struct MaterializeRequest {
    /// `None`: incremental (from each view's last interval, else now − ttl).
    pub start: Option<DateTime<Utc>>,
    pub end: DateTime<Utc>,
    /// `None`: every online, enabled feature view and stream feature view.
    pub views: Option<Vec<String>>,
}

/// What happened to one view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewOutcome {
    pub view: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub rows: usize,
    pub written: usize,
    pub skipped_not_newer: usize,
    pub seconds: f64,
}

/// Where a materialization reports as it goes (a terminal progress bar, log lines).
pub trait Progress: Send + Sync {
    fn view_started(&self, view: &str, start: DateTime<Utc>, end: DateTime<Utc>);
    /// `n` more rows of `view` were written.
    fn rows(&self, view: &str, n: usize);
    fn view_done(&self, outcome: &ViewOutcome);
}

/// Progress as log lines (servers, non-terminals).
pub struct LogProgress;

impl Progress for LogProgress {
    fn view_started(&self, view: &str, start: DateTime<Utc>, end: DateTime<Utc>) {
        tracing::info!(%view, %start, %end, "materializing");
    }
    fn rows(&self, _: &str, _: usize) {}
    fn view_done(&self, o: &ViewOutcome) {
        tracing::info!(view = %o.view, rows = o.rows, written = o.written, seconds = o.seconds, "materialized");
    }
}

/// Memory DataFusion may use before its sorts spill to disk.
const MEMORY_LIMIT: usize = 256 * 1024 * 1024;

/// Memory the point-in-time join of a stored on-demand view's materialization may keep: its
/// entity table is the latest row of every key of its source views.
const ODFV_JOIN_MEMORY_LIMIT: usize = 4 * 1024 * 1024 * 1024;

pub struct MaterializeService {
    pub config: RepoConfig,
    /// Credentials and endpoints for `s3://` sources (`AWS_*`, `FEAST_S3_ENDPOINT_URL`).
    pub env: std::collections::HashMap<String, String>,
    pub registry: Arc<dyn RegistryStore>,
    pub store: Arc<dyn OnlineStore>,
    pub clock: Arc<dyn Clock>,
}

fn ts(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// A source read that failed mid-stream.
fn read_failed(uri: &str, source: larder_offline::source::DataFusionError) -> ServiceError {
    larder_offline::OfflineError::Source {
        uri: uri.to_owned(),
        source,
    }
    .into()
}

fn ts_order(t: &Timestamp) -> (i64, i32) {
    (t.seconds, t.nanos)
}

fn from_ts(t: &Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32).unwrap_or_default()
}

impl MaterializeService {
    /// Rows per online-store write (`materialization.online_write_batch_size`; else all).
    fn write_batch_size(&self) -> usize {
        self.config
            .materialization
            .online_write_batch_size
            .map_or(usize::MAX, |n| n.get())
    }

    fn select<'a>(
        &self,
        catalog: &'a Catalog,
        names: Option<&[String]>,
    ) -> Result<Vec<&'a FeatureView>, ServiceError> {
        let project = &self.config.project;
        let Some(names) = names else {
            let mut out = Vec::new();
            for v in &catalog.feature_views {
                match v.kind {
                    ViewKind::FeatureView | ViewKind::StreamFeatureView
                        if v.online && !v.disabled =>
                    {
                        out.push(v)
                    }
                    ViewKind::OnDemandFeatureView
                        if !v.disabled
                            && v.odfv.as_ref().is_some_and(|o| o.write_to_online_store) =>
                    {
                        out.push(v)
                    }
                    _ => {}
                }
            }
            return Ok(out);
        };
        names
            .iter()
            .map(|name| {
                let v = catalog.view(name).ok_or_else(|| {
                    ServiceError::feast(
                        ErrorCode::NotFound,
                        "FeatureViewNotFoundException",
                        format!("Feature view {name} does not exist in project {project}"),
                    )
                })?;
                match v.kind {
                    ViewKind::FeatureView | ViewKind::StreamFeatureView => {}
                    ViewKind::LabelView => {
                        return Err(ServiceError::bad_request(format!(
                            "label view {name} cannot be materialized"
                        )));
                    }
                    ViewKind::OnDemandFeatureView
                        if v.odfv.as_ref().is_some_and(|o| o.write_to_online_store) => {}
                    ViewKind::OnDemandFeatureView => {
                        return Err(ServiceError::bad_request(format!(
                            "on demand feature view {name} is computed at request time \
                             (write_to_online_store is false): there is nothing to materialize"
                        )));
                    }
                }
                if v.disabled {
                    return Err(ServiceError::bad_request(format!(
                        "feature view {name} is disabled"
                    )));
                }
                if !v.online && !v.offline {
                    return Err(ServiceError::bad_request(format!(
                        "feature view {name} is neither online nor offline"
                    )));
                }
                Ok(v)
            })
            .collect()
    }

    /// Feast's incremental start: the last interval's end, else now − ttl, else now − 52 weeks
    /// (an on-demand view: now − the largest ttl of the views it reads, else 52 weeks).
    fn incremental_start(&self, catalog: &Catalog, v: &FeatureView) -> DateTime<Utc> {
        if let Some(odfv) = &v.odfv {
            let ttl = odfv
                .sources
                .iter()
                .filter_map(|s| catalog.view(&s.view).and_then(|sv| sv.ttl))
                .max();
            return match ttl {
                Some(ttl) => {
                    self.clock.now()
                        - ChronoDuration::from_std(ttl).unwrap_or(ChronoDuration::zero())
                }
                None => self.clock.now() - ChronoDuration::weeks(52),
            };
        }
        let last = v
            .materialization_intervals
            .iter()
            .map(|(_, end)| from_ts(end))
            .max();
        match (last, v.ttl) {
            (Some(end), _) => end,
            (None, Some(ttl)) => {
                self.clock.now() - ChronoDuration::from_std(ttl).unwrap_or(ChronoDuration::zero())
            }
            (None, None) => self.clock.now() - ChronoDuration::weeks(52),
        }
    }

    /// Materializes the selected views, one after another; stops at the first failure (the
    /// failed view keeps its previous state and gets no interval).
    pub async fn materialize(
        &self,
        req: &MaterializeRequest,
        progress: &dyn Progress,
    ) -> Result<Vec<ViewOutcome>, ServiceError> {
        if let Some(start) = req.start
            && start > req.end
        {
            return Err(ServiceError::bad_request(format!(
                "start ({start}) must not be after end ({})",
                req.end
            )));
        }
        let snapshot = self.registry.load().await?;
        let catalog = Catalog::new(&snapshot, self.config.project.as_str())?;
        let views = self.select(&catalog, req.views.as_deref())?;
        let key_version = super::key_version(&self.config)?;
        let mut out = Vec::new();
        for v in views {
            let start = req
                .start
                .unwrap_or_else(|| self.incremental_start(&catalog, v));
            if v.kind == ViewKind::OnDemandFeatureView {
                // Its meta keeps no state or intervals.
                progress.view_started(&v.name, start, req.end);
                let outcome = self
                    .materialize_odfv(&catalog, v, start, req.end, key_version, progress)
                    .instrument(tracing::info_span!("materialize.view", view = %v.name))
                    .await?;
                progress.view_done(&outcome);
                out.push(outcome);
                continue;
            }
            let which = if v.kind == ViewKind::StreamFeatureView {
                ViewField::StreamFeatureView
            } else {
                ViewField::FeatureView
            };
            if v.state != FeatureViewState::StateUnspecified {
                self.set_meta(&v.name, which, FeatureViewState::Materializing, None)
                    .await?;
            }
            progress.view_started(&v.name, start, req.end);
            match self
                .materialize_view(&catalog, v, start, req.end, key_version, progress)
                .instrument(tracing::info_span!("materialize.view", view = %v.name))
                .await
            {
                Ok(outcome) => {
                    self.set_meta(
                        &v.name,
                        which,
                        FeatureViewState::AvailableOnline,
                        Some((ts(start), ts(req.end))),
                    )
                    .await?;
                    progress.view_done(&outcome);
                    out.push(outcome);
                }
                Err(e) => {
                    if v.state != FeatureViewState::StateUnspecified
                        && let Err(restore) = self.set_meta(&v.name, which, v.state, None).await
                    {
                        tracing::error!(view = %v.name, error = %restore, "could not restore the view's state");
                    }
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    async fn set_meta(
        &self,
        view: &str,
        which: ViewField,
        state: FeatureViewState,
        interval: Option<(Timestamp, Timestamp)>,
    ) -> Result<(), ServiceError> {
        let edit = MetaEdit {
            state,
            last_updated: ts(self.clock.now()),
            append_interval: interval,
        };
        Ok(self
            .registry
            .update_view_meta(self.config.project.as_str(), which, view, &edit)
            .await?)
    }

    async fn materialize_view(
        &self,
        catalog: &Catalog,
        v: &FeatureView,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        key_version: KeyVersion,
        progress: &dyn Progress,
    ) -> Result<ViewOutcome, ServiceError> {
        let started = Instant::now();
        let join_keys = catalog.join_keys(v);
        let (query, mut stream) = self.latest(catalog, v, start, end).await?;
        let layout = super::repo_layout(&self.config, v);
        let batch_size = self.write_batch_size();
        let mut outcome = ViewOutcome {
            view: v.name.clone(),
            start,
            end,
            rows: 0,
            written: 0,
            skipped_not_newer: 0,
            seconds: 0.0,
        };
        // Reading and converting overlap with writing: a writer task takes chunks in order
        // (so Redis's newer-event-time rule sees them in source order), at most two queued.
        let (chunks, mut queue) = tokio::sync::mpsc::channel::<Vec<WriteRow>>(2);
        let writer = {
            let store = self.store.clone();
            let layout = Arc::new(layout.clone());
            // The source yields each key once, so batches hold disjoint keys and the store may
            // take several at once (Redis: in order on one connection, no waiting in between).
            let depth = store.concurrent_disjoint_writes().max(1);
            // The writer's batches are spans of the view's (the task does not inherit it).
            let view_span = tracing::Span::current();
            tokio::spawn(async move {
                use futures::StreamExt;
                let mut done = (0usize, 0usize);
                let mut inflight = futures::stream::FuturesOrdered::new();
                let mut open = true;
                while open || !inflight.is_empty() {
                    tokio::select! {
                        chunk = queue.recv(), if open && inflight.len() < depth => match chunk {
                            Some(chunk) => {
                                let (store, layout) = (store.clone(), layout.clone());
                                let n = chunk.len();
                                let span = tracing::info_span!(
                                    parent: &view_span, "materialize.batch", rows = n
                                );
                                inflight.push_back(
                                    async move {
                                        store.write(&layout, &chunk).await.map_err(|e| (e, n))
                                    }
                                    .instrument(span),
                                );
                            }
                            None => open = false,
                        },
                        Some(result) = inflight.next(), if !inflight.is_empty() => match result {
                            Ok(w) => {
                                done.0 += w.written;
                                done.1 += w.skipped_not_newer;
                            }
                            Err((e, n)) => return Err((e, done.0 + done.1, n)),
                        },
                    }
                }
                Ok(done)
            })
        };
        let produced = self
            .produce(
                v,
                &query,
                &mut stream,
                &join_keys,
                key_version,
                batch_size,
                &chunks,
                progress,
            )
            .await;
        drop(chunks);
        let written = writer.await.map_err(ServiceError::internal)?;
        let (written, skipped) = match written {
            Ok(done) => done,
            Err((e, before, lost)) => {
                let mut e = ServiceError::from(e).context(format!("feature view {}", v.name));
                e.message.push_str(&format!(
                    "; {before} rows were written before the failure, a batch of {lost} was not \
                     (no interval is recorded: run again to complete)"
                ));
                return Err(e);
            }
        };
        outcome.rows = produced?;
        outcome.written = written;
        outcome.skipped_not_newer = skipped;
        outcome.seconds = started.elapsed().as_secs_f64();
        Ok(outcome)
    }

    /// The latest row per key of view `v`'s source in `[start, end]`, as a stream.
    async fn latest(
        &self,
        catalog: &Catalog,
        v: &FeatureView,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(LatestRowsQuery, larder_offline::source::BatchStream), ServiceError> {
        let (uri, bucket) = super::file_source(&self.config, &self.env, v, "materializes")?;
        let source = v.batch_source.as_ref().expect("file_source checked it");
        let mapping: std::collections::BTreeMap<String, String> = source.field_mapping.clone();
        let renamed = |c: &str| mapping.get(c).cloned().unwrap_or_else(|| c.to_owned());
        let query = LatestRowsQuery {
            uri,
            field_mapping: mapping.clone(),
            join_keys: catalog.join_keys(v).into_iter().map(|(k, _)| k).collect(),
            features: v.features.iter().map(|f| f.name.clone()).collect(),
            timestamp_field: renamed(&source.timestamp_field),
            created_timestamp_column: (!source.created_timestamp_column.is_empty())
                .then(|| renamed(&source.created_timestamp_column)),
            start_micros: start.timestamp_micros(),
            end_micros: end.timestamp_micros(),
        };
        let in_view = |e: larder_offline::OfflineError| {
            ServiceError::from(e).context(format!("feature view {}", v.name))
        };
        let ctx = session(MEMORY_LIMIT).map_err(in_view)?;
        if let Some(store) = bucket {
            larder_offline::source::register_bucket(&ctx, &query.uri, store).map_err(in_view)?;
        }
        let stream = latest_rows(&ctx, &query).await.map_err(in_view)?;
        Ok((query, stream))
    }

    /// An on-demand view written to the online store, as Feast materializes one: the keys and
    /// times of the latest rows (in `[start, end]`) of the views it reads, their features at
    /// those times (a point-in-time join), the UDF over them, the outputs written at those
    /// times. The native engine runs the UDF.
    async fn materialize_odfv(
        &self,
        catalog: &Catalog,
        v: &FeatureView,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        key_version: KeyVersion,
        progress: &dyn Progress,
    ) -> Result<ViewOutcome, ServiceError> {
        use larder_offline::arrow::{
            array::RecordBatch,
            compute::concat_batches,
            datatypes::{Field, Schema},
        };
        let started = Instant::now();
        let odfv = v.odfv.as_ref().expect("an on-demand view");
        let in_view = |e: ServiceError| e.context(format!("on demand feature view {}", v.name));
        if !odfv.request_sources.is_empty() {
            return Err(ServiceError::bad_request(format!(
                "on demand feature view {} reads request data, which materialization does not have",
                v.name
            )));
        }
        // The entity table: each source view's latest keys and times.
        let join_keys = super::ondemand::join_keys(catalog, v);
        let mut entity: Vec<RecordBatch> = Vec::new();
        let mut schema = None;
        for src in &odfv.sources {
            let sv = catalog
                .view(&src.view)
                .ok_or_else(|| super::view_not_found(&src.view, self.config.project.as_str()))?;
            let (query, mut stream) = self
                .latest(catalog, sv, start, end)
                .await
                .map_err(in_view)?;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| in_view(read_failed(&query.uri, e)))?;
                let mut fields = Vec::new();
                let mut cols = Vec::new();
                for (k, _) in &join_keys {
                    let c = batch.column_by_name(k).ok_or_else(|| {
                        ServiceError::bad_request(format!(
                            "on demand feature view {}: source view {} has no join key {k}",
                            v.name, sv.name
                        ))
                    })?;
                    fields.push(Field::new(k, c.data_type().clone(), true));
                    cols.push(c.clone());
                }
                let t = batch
                    .column_by_name(&query.timestamp_field)
                    .expect("latest_rows returns the timestamp");
                fields.push(Field::new("event_timestamp", t.data_type().clone(), true));
                cols.push(t.clone());
                let s = schema.get_or_insert_with(|| Arc::new(Schema::new(fields.clone())));
                if s.fields().len() != fields.len()
                    || s.fields()
                        .iter()
                        .zip(&fields)
                        .any(|(a, b)| a.data_type() != b.data_type())
                {
                    return Err(ServiceError::bad_request(format!(
                        "on demand feature view {}: its source views' keys or times differ in type",
                        v.name
                    )));
                }
                entity.push(RecordBatch::try_new(s.clone(), cols).map_err(ServiceError::internal)?);
            }
        }
        let mut outcome = ViewOutcome {
            view: v.name.clone(),
            start,
            end,
            rows: 0,
            written: 0,
            skipped_not_newer: 0,
            seconds: 0.0,
        };
        let Some(schema) = schema else {
            outcome.seconds = started.elapsed().as_secs_f64();
            return Ok(outcome);
        };
        let entity = concat_batches(&schema, &entity).map_err(ServiceError::internal)?;
        let historical = super::historical::HistoricalService {
            config: self.config.clone(),
            env: self.env.clone(),
            registry: self.registry.clone(),
            // The join keeps every key's latest row and its answer (reserved from this limit).
            memory_limit: ODFV_JOIN_MEMORY_LIMIT,
            engines: super::ondemand::Engines::from_config(&self.config),
            progress: None,
        };
        let req = super::historical::HistoricalRequest {
            features: super::historical::Features::Refs(
                v.features
                    .iter()
                    .map(|f| format!("{}:{}", v.name, f.name))
                    .collect(),
            ),
            full_feature_names: false,
            filter_by_created_timestamp: false,
        };
        let answer = historical
            .get_historical_features(entity, &req)
            .await
            .map_err(in_view)?;
        // One row per key: the latest time wins.
        let mut rows: std::collections::HashMap<Vec<u8>, WriteRow> = Default::default();
        for batch in answer.collect().await.map_err(in_view)? {
            let answered = write_rows(
                &v.name,
                &batch,
                &join_keys,
                &v.features,
                "event_timestamp",
                None,
                key_version,
            )?;
            for row in answered {
                match rows.get(&row.key) {
                    Some(old) if ts_order(&old.event_ts) >= ts_order(&row.event_ts) => {}
                    _ => {
                        rows.insert(row.key.clone(), row);
                    }
                }
            }
        }
        let rows: Vec<WriteRow> = rows.into_values().collect();
        outcome.rows = rows.len();
        progress.rows(&v.name, rows.len());
        let layout = super::repo_layout(&self.config, v);
        let batch_size = self.write_batch_size();
        for chunk in rows.chunks(batch_size.max(1)) {
            let w = self
                .store
                .write(&layout, chunk)
                .instrument(tracing::info_span!("materialize.batch", rows = chunk.len()))
                .await
                .map_err(|e| in_view(e.into()))?;
            outcome.written += w.written;
            outcome.skipped_not_newer += w.skipped_not_newer;
        }
        outcome.seconds = started.elapsed().as_secs_f64();
        Ok(outcome)
    }

    /// Reads the source stream, converts each batch to rows and queues them in chunks of
    /// `batch_size`; the number of rows read. Stops early when the writer has gone.
    #[allow(clippy::too_many_arguments)]
    async fn produce(
        &self,
        v: &FeatureView,
        query: &LatestRowsQuery,
        stream: &mut larder_offline::source::BatchStream,
        join_keys: &[(String, ValueType)],
        key_version: KeyVersion,
        batch_size: usize,
        chunks: &tokio::sync::mpsc::Sender<Vec<WriteRow>>,
        progress: &dyn Progress,
    ) -> Result<usize, ServiceError> {
        let mut total = 0;
        while let Some(batch) = stream.next().await {
            let in_view = |e: ServiceError| e.context(format!("feature view {}", v.name));
            let batch = batch.map_err(|e| in_view(read_failed(&query.uri, e)))?;
            let mut rows = write_rows(
                &v.name,
                &batch,
                join_keys,
                &v.features,
                &query.timestamp_field,
                query.created_timestamp_column.as_deref(),
                key_version,
            )?;
            total += rows.len();
            progress.rows(&v.name, rows.len());
            while !rows.is_empty() {
                let n = batch_size.min(rows.len());
                let chunk: Vec<WriteRow> = if n == rows.len() {
                    std::mem::take(&mut rows)
                } else {
                    rows.drain(..n).collect()
                };
                if chunks.send(chunk).await.is_err() {
                    // The writer failed; its error is the one to report.
                    return Ok(total);
                }
            }
        }
        Ok(total)
    }
}

/// The online rows of a batch: entity keys from the `join_keys` columns, the `features`'
/// values, the event (and created) time of each row.
fn write_rows(
    view: &str,
    batch: &larder_offline::arrow::array::RecordBatch,
    join_keys: &[(String, ValueType)],
    features: &[larder_registry::model::Field],
    event_column: &str,
    created_column: Option<&str>,
    key_version: KeyVersion,
) -> Result<Vec<WriteRow>, ServiceError> {
    let in_view = |e: ServiceError| e.context(format!("feature view {view}"));
    let view_err = |e: larder_offline::convert::ConvertError| in_view(e.into());
    let column = |name: &str| {
        batch.column_by_name(name).cloned().ok_or_else(|| {
            ServiceError::bad_request(format!("feature view {view}: no column {name}"))
        })
    };
    let keys: Vec<Vec<EntityValue>> = join_keys
        .iter()
        .map(|(k, t)| entity_values(k, &column(k)?, *t).map_err(view_err))
        .collect::<Result<_, _>>()?;
    let values: Vec<Vec<larder_protos::feast::types::Value>> = features
        .iter()
        .map(|f| feature_values(&f.name, &column(&f.name)?, f.value_type).map_err(view_err))
        .collect::<Result<_, _>>()?;
    let event = column(event_column)?;
    let created = created_column.map(column).transpose()?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let pairs: Vec<(&str, &EntityValue)> = join_keys
            .iter()
            .zip(&keys)
            .map(|((k, _), col)| (k.as_str(), &col[i]))
            .collect();
        let key = super::entity_key(&pairs, key_version);
        let event_ts = timestamp_at(event.as_ref(), i).ok_or_else(|| {
            ServiceError::bad_request(format!(
                "feature view {view}: row {i} has no event timestamp"
            ))
        })?;
        rows.push(WriteRow {
            key,
            values: values.iter().map(|col| Some(col[i].clone())).collect(),
            event_ts,
            created_ts: created.as_ref().and_then(|c| timestamp_at(c.as_ref(), i)),
        });
    }
    Ok(rows)
}

/// Materialization jobs started over HTTP: at most one job per view at a time.
pub struct MaterializeJobs {
    service: Arc<MaterializeService>,
    running: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Jobs run here (the runtime that made this), not on the serving thread that took the
    /// request.
    runtime: tokio::runtime::Handle,
}

/// How a job request ended.
#[derive(Debug)]
pub enum JobAnswer {
    /// Finished (synchronous request).
    Done,
    /// Started in the background (`?async=true`) for these views.
    Accepted(Vec<String>),
}

/// Why a job did not start or failed.
#[derive(Debug)]
pub enum JobError {
    /// These views are being materialized already.
    Conflict(Vec<String>),
    Failed(ServiceError),
}

impl MaterializeJobs {
    pub fn new(service: MaterializeService) -> Self {
        Self {
            service: Arc::new(service),
            running: std::sync::Mutex::new(Default::default()),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Starts a job; `force` ignores a `MATERIALIZING` state left in the registry (as Feast's
    /// `?force=true`), never a job running in this process.
    pub async fn start(
        self: &Arc<Self>,
        req: MaterializeRequest,
        run_async: bool,
        force: bool,
    ) -> Result<JobAnswer, JobError> {
        let failed = |e: larder_registry::error::RegistryError| JobError::Failed(e.into());
        let snapshot = self.service.registry.load().await.map_err(failed)?;
        let catalog =
            Catalog::new(&snapshot, self.service.config.project.as_str()).map_err(failed)?;
        let views: Vec<String> = self
            .service
            .select(&catalog, req.views.as_deref())
            .map_err(JobError::Failed)?
            .iter()
            .map(|v| v.name.clone())
            .collect();
        {
            let mut running = self.running.lock().expect("not poisoned");
            let mut busy: Vec<String> = views
                .iter()
                .filter(|v| running.contains(*v))
                .cloned()
                .collect();
            if !force {
                busy.extend(
                    catalog
                        .feature_views
                        .iter()
                        .filter(|v| {
                            views.contains(&v.name) && v.state == FeatureViewState::Materializing
                        })
                        .map(|v| v.name.clone()),
                );
            }
            if !busy.is_empty() {
                busy.sort();
                busy.dedup();
                return Err(JobError::Conflict(busy));
            }
            running.extend(views.iter().cloned());
        }
        let req = MaterializeRequest {
            views: Some(views.clone()),
            ..req
        };
        let this = self.clone();
        let job = async move {
            let result = this.service.materialize(&req, &LogProgress).await;
            let mut running = this.running.lock().expect("not poisoned");
            for v in req.views.iter().flatten() {
                running.remove(v);
            }
            result
        };
        let job = self.runtime.spawn(job);
        if run_async {
            self.runtime.spawn(async move {
                match job.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "background materialization failed"),
                    Err(e) => tracing::error!(error = %e, "background materialization failed"),
                }
            });
            Ok(JobAnswer::Accepted(views))
        } else {
            match job.await {
                Ok(r) => r.map(|_| JobAnswer::Done).map_err(JobError::Failed),
                Err(e) => Err(JobError::Failed(ServiceError::internal(e))),
            }
        }
    }
}
