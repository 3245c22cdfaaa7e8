//! `larder check`: a repo checked as an operator would before a rollout — the yaml's settings,
//! the registry and the project in it, every view's source (present, readable, with the
//! columns the view reads), the online store reachable, each on-demand view's engine, the
//! feature services whose logs cannot be written. One line per finding (`ok`, `warn`,
//! `error`); the exit status is 1 when any finding is an error.

use std::collections::HashMap;

use larder_registry::{
    config::RepoConfig,
    model::{Catalog, ViewKind},
    store,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Error,
}

struct Findings {
    worst: Level,
}

impl Findings {
    fn say(&mut self, level: Level, what: &str, detail: impl std::fmt::Display) {
        let tag = match level {
            Level::Ok => "ok   ",
            Level::Warn => "warn ",
            Level::Error => "error",
        };
        let detail = detail.to_string();
        if detail.is_empty() {
            println!("{tag} {what}");
        } else {
            println!("{tag} {what}: {detail}");
        }
        self.worst = self.worst.max(level);
    }
}

/// Runs every check; `Ok(false)` when an error was found (printed).
pub async fn check(config: &RepoConfig, env: &HashMap<String, String>) -> anyhow::Result<bool> {
    let mut f = Findings { worst: Level::Ok };
    f.say(
        Level::Ok,
        &format!("{}", config.config_path.display()),
        format!("project {}", config.project),
    );
    if let Err(e) = config.offline_push_batching() {
        f.say(Level::Error, "feature_server.offline_push_batching", e);
    }
    let logging = match config.feature_logging() {
        Ok(l) => l,
        Err(e) => {
            f.say(Level::Error, "feature_server.feature_logging", e);
            None
        }
    };
    if let Err(e) = crate::app::gate(config) {
        f.say(Level::Error, "auth", e);
    }
    if let Err(e) = crate::service::key_version(config) {
        f.say(Level::Error, "entity_key_serialization_version", e);
    }

    // The registry and the project.
    let catalog = match registry(config, env).await {
        Ok((location, snapshot)) => match Catalog::new(&snapshot, config.project.as_str()) {
            Ok(c) => {
                f.say(
                    Level::Ok,
                    &format!("registry {location}"),
                    format!(
                        "{} entities, {} feature views, {} feature services",
                        c.entities.len(),
                        c.feature_views.len(),
                        c.feature_services.len()
                    ),
                );
                Some(c)
            }
            Err(e) => {
                f.say(Level::Error, &format!("registry {location}"), e);
                None
            }
        },
        Err(e) => {
            f.say(Level::Error, "registry", format!("{e:#}"));
            None
        }
    };

    // The online store.
    match &config.online_store {
        None => f.say(
            Level::Warn,
            "online store",
            "online_store is null: nothing to serve",
        ),
        // A check creates nothing: a SQLite file not there yet is made at first use.
        Some(larder_registry::config::OnlineStoreConfig::Sqlite(s)) if !s.path.exists() => f.say(
            Level::Warn,
            &format!("online store sqlite {}", s.path.display()),
            "does not exist yet (created by the first materialize or serve)",
        ),
        Some(_) => match crate::app::online_store(config).await {
            Ok(store) => match store.check().await {
                Ok(()) => f.say(Level::Ok, &format!("online store {}", store.describe()), ""),
                Err(e) => f.say(
                    Level::Error,
                    &format!("online store {}", store.describe()),
                    e,
                ),
            },
            Err(e) => f.say(Level::Error, "online store", format!("{e:#}")),
        },
    }

    let Some(catalog) = catalog else {
        return Ok(f.worst < Level::Error);
    };
    // Sources: present, readable, holding what the views read.
    let engines = crate::service::ondemand::Engines::from_config(config);
    let ctx = larder_offline::source::session(256 << 20)?;
    for v in &catalog.feature_views {
        let what = format!("feature view {}", v.name);
        if v.kind == ViewKind::OnDemandFeatureView {
            use crate::service::ondemand::Engine;
            match crate::service::ondemand::engine(&catalog, v, &engines) {
                Engine::Native(_) => {
                    f.say(Level::Ok, &format!("on demand {what}"), "native engine")
                }
                Engine::Python(_, why) => f.say(
                    Level::Ok,
                    &format!("on demand {what}"),
                    format!("python engine ({why})"),
                ),
                Engine::Unavailable(why) => f.say(
                    Level::Error,
                    &format!("on demand {what}"),
                    format!("no engine can run it: {why}"),
                ),
            }
            continue;
        }
        let Some(source) = &v.batch_source else {
            continue;
        };
        let (uri, bucket) = match crate::service::source_file(config, env, source, &what, "reads") {
            Ok(x) => x,
            Err(e) => {
                f.say(Level::Warn, &what, e.message);
                continue;
            }
        };
        if let Some(store) = bucket
            && let Err(e) = larder_offline::source::register_bucket(&ctx, &uri, store)
        {
            f.say(Level::Error, &what, e);
            continue;
        }
        match larder_offline::source::columns(&ctx, &uri).await {
            Ok(columns) => {
                let have = |c: &str| {
                    columns.iter().any(|f| {
                        source
                            .field_mapping
                            .get(f.name())
                            .map_or(f.name().as_str(), |m| m)
                            == c
                    })
                };
                let mut missing: Vec<&str> = Vec::new();
                if !have(&source.timestamp_field) && !source.timestamp_field.is_empty() {
                    missing.push(&source.timestamp_field);
                }
                for c in v.entity_columns.iter().chain(&v.features) {
                    if !have(&c.name) {
                        missing.push(&c.name);
                    }
                }
                if missing.is_empty() {
                    f.say(Level::Ok, &format!("{what} source {uri}"), "");
                } else {
                    f.say(
                        Level::Error,
                        &format!("{what} source {uri}"),
                        format!("no column {}", missing.join(", ")),
                    );
                }
            }
            Err(e) if e.to_string().contains("No files found") => f.say(
                Level::Error,
                &format!("{what} source {uri}"),
                "no Parquet file there",
            ),
            Err(e) => f.say(Level::Error, &format!("{what} source {uri}"), e),
        }
    }
    let od = &config.larder.on_demand;
    if let Some(python) = &od.python {
        // The worker starts on first use; here only that the interpreter is there.
        let found = std::path::Path::new(python).is_file()
            || std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(python).is_file()));
        if found {
            f.say(
                Level::Ok,
                "python engine",
                format!("started with {python} on first use"),
            );
        } else {
            f.say(
                Level::Error,
                "larder.on_demand.python",
                format!("{python} is not a file nor a command on PATH"),
            );
        }
    } else if let Some(addr) = &od.transformation_service {
        f.say(
            Level::Ok,
            "python engine",
            format!("transformation service at {addr}"),
        );
    }
    // Served-feature logging.
    if logging.is_some() {
        for s in &catalog.feature_services {
            match crate::service::feature_log::LogPlan::build(&catalog, s) {
                Ok(Some(plan)) => f.say(
                    Level::Ok,
                    &format!("feature service {}", s.name),
                    format!("logged to {}", config.resolve(&plan.path)),
                ),
                Ok(None) => {}
                Err(e) => f.say(Level::Warn, &format!("feature service {}", s.name), e),
            }
        }
    }
    Ok(f.worst < Level::Error)
}

async fn registry(
    config: &RepoConfig,
    env: &HashMap<String, String>,
) -> anyhow::Result<(String, larder_registry::store::RegistrySnapshot)> {
    let r = store::open(config, env).await?;
    let location = r.location();
    let snapshot = r.load().await?;
    Ok((location, snapshot))
}
