//! `larder materialize` / `materialize-incremental`: the materialization service run from the
//! command line, with a progress bar per view on a terminal and one line per view otherwise.

use std::{collections::HashMap, sync::Arc};

use larder_registry::{clock::SystemClock, config::RepoConfig, store};

use crate::service::materialize;

/// `larder materialize` / `materialize-incremental`: one line per view and a summary.
pub async fn materialize(
    config: &RepoConfig,
    env: &HashMap<String, String>,
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: chrono::DateTime<chrono::Utc>,
    views: Vec<String>,
) -> anyhow::Result<()> {
    let service = materialize::MaterializeService {
        config: config.clone(),
        env: env.clone(),
        registry: store::open(config, env).await?,
        store: crate::app::online_store(config).await?,
        clock: Arc::new(SystemClock),
    };
    let req = materialize::MaterializeRequest {
        start,
        end,
        views: (!views.is_empty()).then_some(views),
    };
    let started = std::time::Instant::now();
    let progress = CliProgress::new();
    let outcomes = service.materialize(&req, &progress).await?;
    let rows: usize = outcomes.iter().map(|o| o.rows).sum();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "materialized {} views into the {} online store: {rows} rows in {secs:.2}s ({:.0} rows/s)",
        outcomes.len(),
        service.store.describe(),
        rows as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// A progress bar per view on a terminal, one line per view otherwise.
struct CliProgress {
    bars: Option<indicatif::MultiProgress>,
    current: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl CliProgress {
    fn new() -> Self {
        use std::io::IsTerminal;
        Self {
            bars: std::io::stderr()
                .is_terminal()
                .then(indicatif::MultiProgress::new),
            current: std::sync::Mutex::new(None),
        }
    }
}

impl materialize::Progress for CliProgress {
    fn view_started(
        &self,
        view: &str,
        _: chrono::DateTime<chrono::Utc>,
        _: chrono::DateTime<chrono::Utc>,
    ) {
        if let Some(bars) = &self.bars {
            let bar = bars.add(indicatif::ProgressBar::new_spinner());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {prefix}: {human_pos} rows ({per_sec}) {elapsed}",
                )
                .expect("a valid template"),
            );
            bar.set_prefix(view.to_owned());
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            *self.current.lock().expect("not poisoned") = Some(bar);
        }
    }

    fn rows(&self, _: &str, n: usize) {
        if let Some(bar) = self.current.lock().expect("not poisoned").as_ref() {
            bar.inc(n as u64);
        }
    }

    fn view_done(&self, o: &materialize::ViewOutcome) {
        if let Some(bar) = self.current.lock().expect("not poisoned").take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "{}: {} rows from {} to {} ({} written, {} not newer than stored) in {:.2}s, {:.0} rows/s",
            o.view,
            o.rows,
            o.start.to_rfc3339(),
            o.end.to_rfc3339(),
            o.written,
            o.skipped_not_newer,
            o.seconds,
            o.rows as f64 / o.seconds.max(1e-9)
        );
    }
}
