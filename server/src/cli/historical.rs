//! `larder get-historical-features`: an entity table from a Parquet or CSV file joined
//! point-in-time with the requested features, written to a Parquet or CSV file (through a
//! temporary file: a failed run leaves none), with a progress bar of the source rows read on a
//! terminal (log lines otherwise) and a summary.

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Instant};

use anyhow::Context;
use larder_offline::historical::{Progress, SourceReadKind};
use larder_registry::{config::RepoConfig, store};

use crate::service::historical::{Features, HistoricalRequest, HistoricalService};

#[derive(Debug, clap::Args)]
pub struct HistoricalArgs {
    /// The entity dataframe: a .parquet or .csv file with the join keys and an event_timestamp
    /// column (or one timestamp column); other columns are passed through.
    #[arg(long = "entity-df", required_unless_present_any = ["start_date", "end_date", "entity_sql"])]
    pub entity_df: Option<PathBuf>,
    /// The entity rows as a SQL query over the repo's sources: each file data source under its
    /// name, each feature view's batch source under the view's name (Feast's `entity_df` given
    /// as SQL), e.g. "SELECT driver_id, event_timestamp FROM driver_hourly_stats_source".
    #[arg(long = "entity-sql", conflicts_with_all = ["entity_df", "start_date", "end_date"])]
    pub entity_sql: Option<String>,
    /// Entity-less mode (no --entity-df): every key with rows in [START, END], at END. Default:
    /// END minus the largest ttl of the views, else 30 days.
    #[arg(long = "start-date", conflicts_with = "entity_df")]
    pub start_date: Option<String>,
    /// Entity-less mode: the time of the answer (default now).
    #[arg(long = "end-date", conflicts_with = "entity_df")]
    pub end_date: Option<String>,
    /// Feature references `view:feature` (repeatable, or comma-separated).
    #[arg(
        long = "features",
        value_delimiter = ',',
        required_unless_present = "feature_service",
        conflicts_with = "feature_service"
    )]
    pub features: Vec<String>,
    /// A feature service instead of references.
    #[arg(long = "feature-service")]
    pub feature_service: Option<String>,
    /// Name feature columns `view__feature`.
    #[arg(long)]
    pub full_feature_names: bool,
    /// Only rows created at or before the entity row's time are candidates.
    #[arg(long)]
    pub filter_by_created_timestamp: bool,
    /// Where to write the result (.parquet or .csv).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Memory DataFusion's operators may use (e.g. 512MiB, 2GiB).
    #[arg(long = "memory-limit", default_value = "1GiB", value_parser = parse_size)]
    pub memory_limit: usize,
}

/// `1024`, `512KiB`, `2GiB`, `1.5GB`: bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 512MiB or 2GiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    Ok((num * mult) as usize)
}

/// The process's peak resident memory (Linux `VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A retrieval's source reads as a progress bar (on a terminal) or as log lines.
struct Reporter {
    bar: Option<indicatif::ProgressBar>,
    started: std::sync::Mutex<Instant>,
}

impl Reporter {
    fn what(view: &str, read: SourceReadKind) -> String {
        match read {
            SourceReadKind::KeysAndTimes => format!("{view}: reading keys and times"),
            SourceReadKind::Winners { winners } => {
                format!("{view}: reading the features of {winners} winning rows")
            }
        }
    }

    fn spinner(&self) {
        if let Some(b) = &self.bar {
            b.set_style(indicatif::ProgressStyle::default_spinner());
        }
    }
}

impl Progress for Reporter {
    fn read_started(&self, view: &str, read: SourceReadKind, rows: u64) {
        *self.started.lock().expect("not poisoned") = Instant::now();
        match &self.bar {
            Some(b) => {
                let style = indicatif::ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} rows ({per_sec}, {eta})",
                )
                .expect("a valid template")
                .progress_chars("=> ");
                b.set_style(style);
                b.set_length(rows);
                b.set_position(0);
                b.set_message(Self::what(view, read));
            }
            None => eprintln!("{} ({rows} rows in the source)", Self::what(view, read)),
        }
    }

    fn rows_read(&self, rows: u64) {
        if let Some(b) = &self.bar {
            b.inc(rows);
        }
    }

    fn read_finished(&self, view: &str, read: SourceReadKind, rows: u64) {
        let secs = self
            .started
            .lock()
            .expect("not poisoned")
            .elapsed()
            .as_secs_f64();
        let line = format!("{}: {rows} rows read in {secs:.2}s", Self::what(view, read));
        match &self.bar {
            Some(b) => {
                b.println(line);
                self.spinner();
            }
            None => eprintln!("{line}"),
        }
    }
}

pub async fn get_historical_features(
    config: &RepoConfig,
    env: &HashMap<String, String>,
    a: HistoricalArgs,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let spinner = {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal().then(|| {
            let s = indicatif::ProgressBar::new_spinner();
            s.enable_steady_tick(std::time::Duration::from_millis(120));
            s
        })
    };
    let reporter = Arc::new(Reporter {
        bar: spinner.clone(),
        started: std::sync::Mutex::new(started),
    });
    let service = HistoricalService {
        config: config.clone(),
        env: env.clone(),
        registry: store::open(config, env).await?,
        memory_limit: a.memory_limit,
        engines: crate::service::ondemand::Engines::from_config(config),
        progress: Some(reporter.clone()),
    };
    let req = HistoricalRequest {
        features: match a.feature_service {
            Some(s) => Features::Service(s),
            None => Features::Refs(a.features),
        },
        full_feature_names: a.full_feature_names,
        filter_by_created_timestamp: a.filter_by_created_timestamp,
    };
    let say = |m: String| match &spinner {
        Some(s) => s.set_message(m),
        None => eprintln!("{m}"),
    };
    let answer = match (&a.entity_df, &a.entity_sql) {
        (None, Some(sql)) => {
            say("joining the entity SQL query's rows".into());
            service.get_historical_features_sql(sql, &req).await?
        }
        (Some(path), _) => {
            say(format!("reading {}", path.display()));
            let path = path.clone();
            let entity =
                tokio::task::spawn_blocking(move || larder_offline::table::read_table(&path))
                    .await
                    .context("reading the entity dataframe")??;
            say(format!(
                "planning the join of {} entity rows",
                entity.num_rows()
            ));
            service.get_historical_features(entity, &req).await?
        }
        (None, None) => {
            let date = |d: &Option<String>| -> anyhow::Result<_> {
                d.as_deref()
                    .map(larder_types::value::parse_timestamp)
                    .transpose()
                    .map_err(anyhow::Error::msg)
            };
            say("joining every entity key in the window".into());
            service
                .get_historical_features_entityless(&req, date(&a.start_date)?, date(&a.end_date)?)
                .await?
        }
    };
    reporter.spinner();
    // The plan runs as its answer is written.
    say(format!("joining into {}", a.output.display()));
    let out = a.output.clone();
    // Batches are made here (the Python engine's outputs are awaited) and written by a
    // blocking thread as they come.
    let schema = answer.schema();
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let writer = tokio::task::spawn_blocking(move || {
        larder_offline::table::write_table(&out, &schema, std::iter::from_fn(|| rx.blocking_recv()))
    });
    let rows = answer.send_batches(tx).await;
    writer.await.context("writing the result")??;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let peak = peak_rss().map_or_else(
        || "?".into(),
        |b| format!("{:.0} MiB", b as f64 / 1048576.0),
    );
    eprintln!(
        "wrote {rows} rows to {} in {:.2}s (peak memory {peak})",
        a.output.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(super::parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(super::parse_size("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(super::parse_size("1024"), Ok(1024));
        assert!(super::parse_size("lots").is_err());
        assert!(super::parse_size("3 parsecs").is_err());
    }
}
