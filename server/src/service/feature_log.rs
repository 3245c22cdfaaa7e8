//! Served-feature logging (`feature_server.feature_logging` and a feature service's
//! `logging_config`): every sampled request answered through a logged feature service becomes
//! rows of Feast's log schema (`FeatureServiceLoggingSource.get_schema`: the request's join
//! keys and request data, each feature's value, `__timestamp` and `__status`, then
//! `__log_timestamp`, `__log_date`, `__request_id`), queued off the request path and written
//! as Parquet files to the service's file destination, as Feast's file offline store writes
//! them. The Flight server's `write_logged_features` writes a log table the same way.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use larder_offline::{
    append::SourceDir,
    arrow::{
        array::{
            ArrayRef, Date32Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
            TimestampSecondArray,
        },
        compute::concat_batches,
        datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit},
    },
    feature_log,
};
use larder_protos::feast::types::{Value, value_type::Enum as T};
use larder_registry::{
    config::{FeatureLogging, RepoConfig},
    model::{Catalog, FeatureService},
};
use larder_types::scalar::Scalar;

use super::batching::{Batcher, Group, Policy};
use crate::error::{ErrorCode, ServiceError};

pub const LOG_TIMESTAMP: &str = "__log_timestamp";
pub const LOG_DATE: &str = "__log_date";
pub const REQUEST_ID: &str = "__request_id";

/// What one column of a log row holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    /// A request column (join key or request data) of this type.
    Request(T),
    /// Feature `i` of [`LogPlan::features`]: its value, event time, status.
    Value(usize, T),
    Timestamp(usize),
    Status(usize),
}

/// A logged feature service's log schema and where its rows come from.
#[derive(Debug)]
pub struct LogPlan {
    pub service: String,
    pub schema: SchemaRef,
    /// `(column, what it holds)` per schema column before the three system columns.
    columns: Vec<(String, Part)>,
    /// The logged features' full names (`<projection>__<feature>`), in schema order.
    pub features: Vec<String>,
    pub sample_rate: f32,
    /// The destination path as configured, its S3 endpoint, its partition columns.
    pub path: String,
    pub s3_endpoint_override: String,
    pub partition_by: Vec<String>,
}

/// Why a service's features cannot be logged.
fn not_logged(s: &FeatureService, why: impl std::fmt::Display) -> String {
    format!(
        "feature service {}: served features are not logged: {why}",
        s.name
    )
}

impl LogPlan {
    /// The plan of service `s` (none when it has no `logging_config`); an error when its
    /// destination or a type cannot be logged. The schema is Feast's: per projection, an
    /// on-demand view's request data or a view's join keys (renamed by `join_key_map`), then
    /// its features with their time and status; a repeated name keeps its first place and
    /// takes the later type (a Python dict's assignment).
    pub fn build(catalog: &Catalog, s: &FeatureService) -> Result<Option<Self>, String> {
        let Some(logging) = &s.logging else {
            return Ok(None);
        };
        let file = logging.file().map_err(|kind| {
            not_logged(
                s,
                format!("larder writes logs to file destinations only, not {kind}"),
            )
        })?;
        let mut columns: Vec<(String, Part)> = Vec::new();
        let mut put = |name: String, part: Part| match columns.iter_mut().find(|(n, _)| *n == name)
        {
            Some(c) => c.1 = part,
            None => columns.push((name, part)),
        };
        let mut features = Vec::new();
        for p in &s.projections {
            let v = catalog
                .view(&p.view)
                .ok_or_else(|| not_logged(s, format!("no feature view {}", p.view)))?;
            match &v.odfv {
                Some(odfv) => {
                    for (f, t) in super::ondemand::request_fields(odfv) {
                        put(f, Part::Request(t));
                    }
                }
                None if !v.is_entityless() => {
                    for (k, t) in catalog.join_keys(v) {
                        let name = p.join_key_map.get(&k).cloned().unwrap_or(k);
                        put(name, Part::Request(t));
                    }
                }
                None => {}
            }
            // Feast's `name_to_use()`: a pinned version is part of the name.
            let prefix = match p.version {
                Some(n) => format!("{}@v{n}", p.name_to_use()),
                None => p.name_to_use().to_owned(),
            };
            for f in &p.features {
                let full = format!("{prefix}__{}", f.name);
                let i = features.len();
                features.push(full.clone());
                put(full.clone(), Part::Value(i, f.value_type));
                put(format!("{full}__timestamp"), Part::Timestamp(i));
                put(format!("{full}__status"), Part::Status(i));
            }
        }
        let schema = schema_of(&columns).map_err(|e| not_logged(s, e))?;
        Ok(Some(LogPlan {
            service: s.name.clone(),
            schema,
            columns,
            features,
            sample_rate: logging.sample_rate,
            path: file.path.clone(),
            s3_endpoint_override: file.s3_endpoint_override.clone(),
            partition_by: file.partition_by.clone(),
        }))
    }
}

/// The log schema of `columns`, then the three system columns (Feast's types).
fn schema_of(columns: &[(String, Part)]) -> Result<SchemaRef, String> {
    let mut fields = Vec::with_capacity(columns.len() + 3);
    for (name, part) in columns {
        let t = match part {
            Part::Request(t) | Part::Value(_, t) => {
                feature_log::arrow_type(*t).map_err(|e| format!("column {name}: {e}"))?
            }
            Part::Timestamp(_) => DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
            Part::Status(_) => DataType::Int32,
        };
        fields.push(Field::new(name, t, true));
    }
    fields.push(Field::new(
        LOG_TIMESTAMP,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    ));
    fields.push(Field::new(LOG_DATE, DataType::Date32, true));
    fields.push(Field::new(REQUEST_ID, DataType::Utf8, true));
    Ok(Arc::new(Schema::new(fields)))
}

/// One logged request, as the request path hands it over (converted in the background).
pub struct LogRequest {
    pub plan: Arc<LogPlan>,
    /// The request's columns by name (join keys and request data).
    pub request: Vec<(String, Vec<Scalar>)>,
    /// Per [`LogPlan::features`]: values, statuses (as Feast's enum numbers), event times (s).
    pub features: Vec<(Vec<Value>, Vec<i32>, Vec<i64>)>,
    pub rows: usize,
    /// When the request was answered (µs since the epoch).
    pub at_micros: i64,
}

impl LogRequest {
    /// The rows in the plan's schema.
    fn to_batch(&self, request_id: &str) -> Result<RecordBatch, String> {
        let n = self.rows;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.plan.schema.fields().len());
        for (name, part) in &self.plan.columns {
            let a: ArrayRef = match *part {
                Part::Request(t) => {
                    let values: Vec<Value> = match self.request.iter().find(|(c, _)| c == name) {
                        Some((_, col)) => col.iter().map(|s| s.to_value(t)).collect(),
                        None => vec![Value::default(); n],
                    };
                    feature_log::array_of(&values, t)?
                }
                Part::Value(i, t) => feature_log::array_of(&self.features[i].0, t)?,
                Part::Timestamp(i) => Arc::new(
                    TimestampSecondArray::from(self.features[i].2.clone()).with_timezone("UTC"),
                ),
                Part::Status(i) => Arc::new(Int32Array::from(self.features[i].1.clone())),
            };
            arrays.push(a);
        }
        arrays.push(Arc::new(
            TimestampMicrosecondArray::from(vec![self.at_micros; n]).with_timezone("UTC"),
        ));
        let day = self.at_micros.div_euclid(86_400_000_000) as i32;
        arrays.push(Arc::new(Date32Array::from(vec![day; n])));
        arrays.push(Arc::new(StringArray::from(vec![request_id; n])));
        RecordBatch::try_new(self.plan.schema.clone(), arrays).map_err(|e| e.to_string())
    }
}

/// Where a log destination's files go.
pub fn destination(
    config: &RepoConfig,
    env: &std::collections::HashMap<String, String>,
    path: &str,
    s3_endpoint_override: &str,
) -> Result<SourceDir, ServiceError> {
    let uri = config.resolve(path);
    match larder_offline::source::s3_bucket_of(&uri) {
        Some(bucket) => {
            let store = larder_registry::store::s3_bucket(bucket, Some(s3_endpoint_override), env)
                .map_err(|e| ServiceError::bad_request(format!("log destination {uri}: {e}")))?;
            Ok(SourceDir::bucket(&uri, store))
        }
        None => feature_log::local_destination(&uri).map_err(|e| {
            ServiceError::new(
                ErrorCode::Unavailable,
                format!("log destination {uri}: {e}"),
            )
        }),
    }
}

/// A logged request on its way to its group: the request and where it is written.
pub struct Queued {
    req: LogRequest,
    sink: Arc<Sink>,
}

/// What every group needs: the repo (paths, S3 settings), and the queued-row count.
struct Sink {
    config: RepoConfig,
    env: HashMap<String, String>,
    pending: Arc<AtomicUsize>,
}

/// Logged rows of one service, schema and destination.
struct LogGroup {
    plan: Arc<LogPlan>,
    sink: Arc<Sink>,
    batches: Vec<RecordBatch>,
    rows: usize,
}

impl LogGroup {
    /// Converts a request's rows (a request that cannot be converted is counted as failed).
    fn take(&mut self, req: LogRequest) {
        match req.to_batch(&uuid::Uuid::new_v4().to_string()) {
            Ok(batch) => {
                self.rows += batch.num_rows();
                self.batches.push(batch);
            }
            Err(e) => {
                self.sink.pending.fetch_sub(req.rows, Ordering::Relaxed);
                rows_counter(&req.plan.service, "failed").increment(req.rows as u64);
                tracing::error!(feature_service = %req.plan.service, error = %e,
                    "served features could not be logged");
            }
        }
    }
}

impl Group for LogGroup {
    type Item = Queued;

    fn new(q: Queued) -> Self {
        let mut g = Self {
            plan: q.req.plan.clone(),
            sink: q.sink,
            batches: Vec::new(),
            rows: 0,
        };
        g.take(q.req);
        g
    }

    fn takes(&self, q: &Queued) -> bool {
        let p = &q.req.plan;
        self.plan.service == p.service && self.plan.schema == p.schema && self.plan.path == p.path
    }

    fn add(&mut self, q: Queued) {
        self.take(q.req);
    }

    fn rows(&self) -> usize {
        self.rows
    }

    async fn write(&self) -> Result<(), String> {
        let written = async {
            let target = destination(
                &self.sink.config,
                &self.sink.env,
                &self.plan.path,
                &self.plan.s3_endpoint_override,
            )
            .map_err(|e| e.message)?;
            let batch =
                concat_batches(&self.plan.schema, &self.batches).map_err(|e| e.to_string())?;
            feature_log::write_dataset(&target, &batch, &self.plan.partition_by)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match written {
            Ok(files) => {
                tracing::info!(feature_service = %self.plan.service, rows = self.rows,
                    files = files.len(), "served features logged");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(feature_service = %self.plan.service, rows = self.rows,
                    error = %e, "writing served-feature logs failed; retrying");
                Err(e)
            }
        }
    }

    fn written(self) {
        self.sink.pending.fetch_sub(self.rows, Ordering::Relaxed);
        rows_counter(&self.plan.service, "written").increment(self.rows as u64);
    }
}

/// The background writer of served-feature logs. [`FeatureLogger::log`] never waits: when
/// `queue_capacity` rows are queued or buffered (a destination that keeps failing), further
/// rows are dropped and counted (`larder_feature_log_rows_total{outcome="dropped"}`) rather
/// than slowing requests or growing memory.
pub struct FeatureLogger {
    batcher: Batcher<LogGroup>,
    sink: Arc<Sink>,
    pending: Arc<AtomicUsize>,
    capacity: usize,
}

impl std::fmt::Debug for FeatureLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureLogger")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .field("capacity", &self.capacity)
            .finish()
    }
}

fn rows_counter(service: &str, outcome: &'static str) -> metrics::Counter {
    metrics::counter!("larder_feature_log_rows_total",
        "feature_service" => service.to_owned(), "outcome" => outcome)
}

impl FeatureLogger {
    /// Starts the writer on the current runtime: a service's rows are written when they are
    /// `flush_interval` old, when they are half the capacity, and on [`FeatureLogger::flush`].
    pub fn start(
        settings: FeatureLogging,
        config: RepoConfig,
        env: HashMap<String, String>,
    ) -> Arc<Self> {
        let pending = Arc::new(AtomicUsize::new(0));
        let capacity = settings.queue_capacity;
        Arc::new(Self {
            batcher: Batcher::start(Policy {
                max_rows: (capacity / 2).max(1),
                max_age: settings.flush_interval,
            }),
            sink: Arc::new(Sink {
                config,
                env,
                pending: pending.clone(),
            }),
            pending,
            capacity,
        })
    }

    /// Queues a request's rows after sampling it at the plan's rate (a uniform draw in
    /// [0, 1) above the rate skips the request, as Feast's logger does).
    pub fn log(&self, req: LogRequest) {
        let draw = (uuid::Uuid::new_v4().as_u128() >> 104) as f32 / (1u32 << 24) as f32;
        if draw > req.plan.sample_rate || req.rows == 0 {
            return;
        }
        let rows = req.rows;
        let before = self.pending.fetch_add(rows, Ordering::Relaxed);
        if before + rows > self.capacity {
            self.pending.fetch_sub(rows, Ordering::Relaxed);
            rows_counter(&req.plan.service, "dropped").increment(rows as u64);
            return;
        }
        let queued = Queued {
            req,
            sink: self.sink.clone(),
        };
        if let Err(q) = self.batcher.send(queued) {
            self.pending.fetch_sub(rows, Ordering::Relaxed);
            rows_counter(&q.req.plan.service, "dropped").increment(rows as u64);
        }
    }

    /// Writes everything queued and buffered (the server calls it when it stops).
    pub async fn flush(&self) {
        self.batcher.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::types::value::Val;
    use std::time::Duration;

    fn plan(sample_rate: f32) -> Arc<LogPlan> {
        let columns = vec![
            ("driver_id".to_owned(), Part::Request(T::Int64)),
            ("v__f".to_owned(), Part::Value(0, T::Double)),
            ("v__f__timestamp".to_owned(), Part::Timestamp(0)),
            ("v__f__status".to_owned(), Part::Status(0)),
        ];
        Arc::new(LogPlan {
            service: "svc".into(),
            schema: schema_of(&columns).unwrap(),
            columns,
            features: vec!["v__f".into()],
            sample_rate,
            path: "/nonexistent/logs".into(),
            s3_endpoint_override: String::new(),
            partition_by: Vec::new(),
        })
    }

    fn request(plan: Arc<LogPlan>, rows: usize, with_keys: bool) -> LogRequest {
        LogRequest {
            plan,
            request: if with_keys {
                vec![(
                    "driver_id".into(),
                    (0..rows as i64).map(Scalar::Int).collect(),
                )]
            } else {
                Vec::new()
            },
            features: vec![(
                (0..rows)
                    .map(|i| Value {
                        val: Some(Val::DoubleVal(i as f64)),
                    })
                    .collect(),
                vec![1; rows],
                vec![1_700_000_000; rows],
            )],
            rows,
            at_micros: 1_764_633_600_000_000,
        }
    }

    #[test]
    fn a_request_becomes_rows_of_the_plan_schema() {
        let b = request(plan(1.0), 2, true).to_batch("id").unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.schema(), plan(1.0).schema);
        let d = b.column(5).as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(d.value(0), 20424);
        // A request column the request lacks is null.
        let b = request(plan(1.0), 2, false).to_batch("id").unwrap();
        assert_eq!(b.column(0).null_count(), 2);
    }

    #[tokio::test]
    async fn sampling_and_capacity_bound_what_is_queued() {
        let settings = FeatureLogging {
            flush_interval: Duration::from_secs(3600),
            write_to_disk_interval: Duration::from_secs(30),
            queue_capacity: 3,
            emit_timeout: Duration::from_millis(10),
        };
        let config = RepoConfig::parse(
            "project: demo\nregistry: r.db\n",
            std::path::Path::new("/repo"),
            std::path::Path::new("/repo/feature_store.yaml"),
            &HashMap::new(),
        )
        .unwrap();
        let logger = FeatureLogger::start(settings, config, HashMap::new());
        logger.log(request(plan(0.0), 1, true));
        assert_eq!(
            logger.pending.load(Ordering::Relaxed),
            0,
            "rate 0 logs nothing"
        );
        logger.log(request(plan(1.0), 2, true));
        assert_eq!(logger.pending.load(Ordering::Relaxed), 2);
        logger.log(request(plan(1.0), 2, true));
        assert_eq!(
            logger.pending.load(Ordering::Relaxed),
            2,
            "beyond the capacity rows are dropped"
        );
    }
}
