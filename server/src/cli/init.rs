//! `larder init NAME`: a new feature repo defined in YAML, like the one `feast init` writes —
//! `NAME/feature_repo/` with `feature_store.yaml` (SQLite online store, file registry), a
//! `definitions.yaml` in the YAML shorthand (the driver entity, its Parquet source, the
//! `driver_hourly_stats` view and a feature service) and `data/driver_stats.parquet`: hourly rows of five drivers over the
//! last 15 days up to now, so `larder apply`, `larder materialize-incremental now` and `larder
//! serve` work at once.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use larder_offline::{
    arrow::{
        array::{Float32Array, Int64Array, TimestampMicrosecondArray},
        datatypes::{DataType, Field, Schema, TimeUnit},
        record_batch::RecordBatch,
    },
    datafusion::parquet::arrow::ArrowWriter,
};

const DRIVERS: [i64; 5] = [1001, 1002, 1003, 1004, 1005];
const DAYS: i64 = 15;

/// The repo's definitions, in the YAML shorthand.
const DEFINITIONS_YAML: &str =
    "# The definitions of project {project}. Larder reads every *.yaml file beside
# feature_store.yaml; `larder plan` shows what `larder apply` would change in the registry.
project:
  name: {project}
  description: A project for driver statistics
entities:
- name: driver
  join_keys: [driver_id]
  value_type: Int64
  description: A driver
data_sources:
- name: driver_hourly_stats_source
  type: file
  path: data/driver_stats.parquet
  timestamp_field: event_timestamp
  created_timestamp_column: created
  description: Hourly statistics of each driver
feature_views:
- name: driver_hourly_stats
  entities: [driver]
  ttl: 1d
  schema:
  - {name: conv_rate, dtype: Float32}
  - {name: acc_rate, dtype: Float32}
  - {name: avg_daily_trips, dtype: Int64, description: Average daily trips}
  source: driver_hourly_stats_source
  tags: {team: driver_performance}
feature_services:
- name: driver_activity
  features: [driver_hourly_stats]
  description: The driver's hourly statistics
";

/// Hourly rows of each driver over the last [`DAYS`] days up to the last full hour, with
/// values from a fixed pseudo-random sequence.
fn driver_stats(now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<RecordBatch> {
    let end = now.timestamp() / 3600 * 3600;
    let hours = DAYS * 24;
    let (mut ids, mut ts, mut conv, mut acc, mut trips) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    for h in (0..hours).rev() {
        for d in DRIVERS {
            ids.push(d);
            ts.push((end - h * 3600) * 1_000_000);
            conv.push(next());
            acc.push(next());
            trips.push((next() * 1000.0) as i64);
        }
    }
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new("event_timestamp", utc(), false),
        Field::new("created", utc(), false),
        Field::new("conv_rate", DataType::Float32, false),
        Field::new("acc_rate", DataType::Float32, false),
        Field::new("avg_daily_trips", DataType::Int64, false),
    ]));
    let stamps = || TimestampMicrosecondArray::from(ts.clone()).with_timezone("UTC");
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(stamps()),
            Arc::new(stamps()),
            Arc::new(Float32Array::from(conv)),
            Arc::new(Float32Array::from(acc)),
            Arc::new(Int64Array::from(trips)),
        ],
    )?)
}

const FEATURE_STORE_YAML: &str = "project: {project}
# The registry is a file; `larder apply` writes it from the YAML definitions beside this file.
registry: data/registry.db
provider: local
online_store:
    type: sqlite
    path: data/online_store.db
entity_key_serialization_version: 3
auth:
    type: no_auth
";

/// Writes the new repo under `dir/name`; refuses a name Feast would refuse or a directory
/// that exists.
pub fn init(dir: &Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        anyhow::bail!(
            "project name {name:?}: use letters, digits and underscores only (it names tables)"
        );
    }
    let root = dir.join(name);
    if root.exists() {
        anyhow::bail!("{} exists already", root.display());
    }
    let repo = root.join("feature_repo");
    std::fs::create_dir_all(repo.join("data"))
        .with_context(|| format!("creating {}", repo.display()))?;
    std::fs::write(
        repo.join("feature_store.yaml"),
        FEATURE_STORE_YAML.replace("{project}", name),
    )?;
    std::fs::write(
        repo.join("definitions.yaml"),
        DEFINITIONS_YAML.replace("{project}", name),
    )?;
    let batch = driver_stats(chrono::Utc::now())?;
    let file = std::fs::File::create(repo.join("data/driver_stats.parquet"))?;
    let mut w = ArrowWriter::try_new(file, batch.schema(), None)?;
    w.write(&batch)?;
    w.close()?;
    Ok(repo)
}
