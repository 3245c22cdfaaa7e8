//! The command line, following Feast's conventions: global `-c/--chdir` and
//! `-f/--feature-store-yaml`, the same verbs and the same output documents.

mod check;
mod historical;
mod init;
mod list;
mod materialize;

use std::{collections::HashMap, path::PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use larder_registry::{
    config::{ConfigLocation, RepoConfig},
    dump, store,
};

#[derive(Debug, Parser)]
#[command(name = "larder", version, about = "A Feast-compatible feature server")]
pub struct Cli {
    /// Run as if started in this directory (the feature repo). As in Feast it goes before the
    /// command (`larder -c REPO serve`); after `serve`, `-c` is the TLS certificate.
    #[arg(short = 'c', long = "chdir", env = "FEATURE_REPO_DIR_ENV_VAR")]
    pub chdir: Option<PathBuf>,
    /// Path to feature_store.yaml (default: <repo>/feature_store.yaml).
    #[arg(
        short = 'f',
        long = "feature-store-yaml",
        env = "FEAST_FS_YAML_FILE_PATH"
    )]
    pub feature_store_yaml: Option<PathBuf>,
    /// Log level (overridden by the LARDER_LOG environment variable).
    #[arg(long, value_enum, default_value_t = LogLevel::Warning)]
    pub log_level: LogLevel,
    /// Log lines as text, or as one JSON object per line (for a log collector).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "LARDER_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warn",
            LogLevel::Error | LogLevel::Critical => "error",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve online features over HTTP/JSON and gRPC on one port (like `feast serve`).
    Serve(ServeArgs),
    /// Serve historical retrieval over Arrow Flight, as Feast's offline server (`feast
    /// serve_offline`) does, for `offline_store: {type: remote}` clients.
    ServeOffline(ServeOfflineArgs),
    /// Serve the registry to Feast clients (`registry_type: remote`), as `feast
    /// serve_registry` does: reads and writes over gRPC, the REST API with `--rest-api`.
    ServeRegistry(ServeRegistryArgs),
    /// Materialize the views' latest values in [START, END] into the online store.
    Materialize(MaterializeArgs),
    /// Materialize from each view's last materialized time up to END.
    MaterializeIncremental(MaterializeIncrementalArgs),
    /// Point-in-time join of an entity dataframe with features, written to a file (like the
    /// SDK's `get_historical_features(...).to_df()`).
    GetHistoricalFeatures(historical::HistoricalArgs),
    /// Print the project's registry as JSON (the same document as `feast registry-dump`).
    RegistryDump,
    /// Show what `apply` would change in the registry: the repo's YAML definitions (`*.yaml`
    /// beside feature_store.yaml) against the registry, as `feast plan` prints it.
    Plan,
    /// Apply the repo's YAML definitions to the registry (objects no file defines are
    /// deleted), in one revision-checked commit.
    Apply,
    /// Remove the project: its online values and its registry objects (refused for a
    /// protected project), as `feast teardown`.
    Teardown,
    /// Create a new feature repo NAME/feature_repo defined in YAML, with example data up to
    /// now (then: `larder -c NAME/feature_repo apply`, `materialize-incremental now`, `serve`).
    Init(InitArgs),
    /// Write the project's registry objects as YAML definitions (stdout, or --output FILE).
    ExportDefinitions(ExportArgs),
    /// Print the resolved feature_store.yaml.
    Configuration,
    /// Print the Larder version and the Feast version it is compatible with.
    Version,
    /// Check the repo before a rollout: settings, registry, sources, online store, on-demand
    /// engines, log destinations; one line per finding, exit 1 on any error.
    Check,
    /// Entities of the project.
    Entities(ListArgs),
    /// Feature views of the project (plain and on-demand).
    FeatureViews(ListArgs),
    /// On-demand feature views of the project.
    OnDemandFeatureViews(ListArgs),
    /// Feature services of the project.
    FeatureServices(ListArgs),
    /// Data sources of the project.
    DataSources(ListArgs),
    /// Projects in the registry.
    Projects(ListArgs),
}

impl Command {
    /// A retrieval: a job that runs to completion and exits (its memory is given back then).
    /// (Materialization is not one of these yet: its memory bound is measured with the
    /// allocator's default.)
    pub fn is_batch_job(&self) -> bool {
        matches!(self, Command::GetHistoricalFeatures(_))
    }
}

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct ServeArgs {
    /// Host to bind (Feast's `-h`).
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind; 0 picks a free port.
    #[arg(short = 'p', long, default_value_t = 6566)]
    pub port: u16,
    /// Refresh the registry every this many seconds; 0 never refreshes.
    #[arg(
        short = 'r',
        long = "registry_ttl_sec",
        alias = "registry-ttl-sec",
        default_value_t = 5
    )]
    pub registry_ttl_sec: u64,
    /// Serving threads, each with its own runtime, socket and store connection; 0 = one per
    /// core (Feast's `-w` sets its worker processes).
    #[arg(short = 'w', long, default_value_t = 0)]
    pub workers: usize,
    /// TLS private key (PEM); with `--cert`, serve HTTPS and gRPC over TLS.
    #[arg(short = 'k', long = "key", requires = "cert")]
    pub key: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(short = 'c', long = "cert", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The project's name (and the repo's directory).
    pub name: String,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The file to write (e.g. definitions.yaml beside feature_store.yaml); stdout if none.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct ServeRegistryArgs {
    /// Host to bind (Feast's `-h`).
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind; 0 picks a free port.
    #[arg(short = 'p', long, default_value_t = 6570)]
    pub port: u16,
    /// TLS private key (PEM); with `--cert`, serve over TLS.
    #[arg(short = 'k', long = "key", requires = "cert")]
    pub key: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(short = 'c', long = "cert", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Also serve the REST API (`/api/v1`, what the Feast UI reads) on `--rest-port`.
    #[arg(short = 'r', long)]
    pub rest_api: bool,
    /// Port of the REST API; 0 picks a free port.
    #[arg(long, default_value_t = 6572)]
    pub rest_port: u16,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct ServeOfflineArgs {
    /// Host to bind (Feast's `-h`).
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind; 0 picks a free port.
    #[arg(short = 'p', long, default_value_t = 8815)]
    pub port: u16,
    /// TLS private key (PEM); with `--cert`, serve grpc+tls.
    #[arg(short = 'k', long = "key", requires = "cert")]
    pub key: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(short = 'c', long = "cert", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Memory DataFusion's operators may use per retrieval (e.g. 2GiB).
    #[arg(long = "memory-limit", default_value = "1GiB", value_parser = historical::parse_size)]
    pub memory_limit: usize,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

#[derive(Debug, clap::Args)]
pub struct MaterializeArgs {
    /// Start (ISO 8601; naive = UTC). Omit both with --disable-event-timestamp.
    pub start: Option<String>,
    /// End (ISO 8601; naive = UTC).
    pub end: Option<String>,
    /// Only these views (repeatable).
    #[arg(short = 'v', long = "views")]
    pub views: Vec<String>,
    /// Materialize everything up to now, whatever the event times (range 1970-01-01 .. now).
    #[arg(long)]
    pub disable_event_timestamp: bool,
}

#[derive(Debug, clap::Args)]
pub struct MaterializeIncrementalArgs {
    /// End (ISO 8601; naive = UTC), or `now` (what a timer or a CronJob runs).
    pub end: String,
    /// Only these views (repeatable).
    #[arg(short = 'v', long = "views")]
    pub views: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(subcommand)]
    pub action: ListAction,
}

#[derive(Debug, Subcommand)]
pub enum ListAction {
    /// List them.
    List {
        /// Only objects with these tags (`key:value`), all of them.
        #[arg(long = "tags")]
        tags: Vec<String>,
    },
}

pub async fn run(cli: Cli, env: HashMap<String, String>) -> anyhow::Result<()> {
    if let Command::Version = cli.command {
        println!(
            "Larder {} (compatible with Feast 0.67.0)",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(());
    }
    if let Command::Init(a) = &cli.command {
        let dir = cli.chdir.clone().unwrap_or_else(|| PathBuf::from("."));
        let repo = init::init(&dir, &a.name)?;
        println!(
            "Created a new feature repo in {}: `larder -c {} apply`, then \
             `materialize-incremental now` and `serve`.",
            repo.display(),
            repo.display()
        );
        return Ok(());
    }
    let location = ConfigLocation {
        repo_dir: cli.chdir.clone(),
        yaml_path: cli.feature_store_yaml.clone(),
    };
    let config = RepoConfig::load(&location, &env)?;
    if let Command::Configuration = cli.command {
        print!(
            "{}",
            serde_norway::to_string(&config).context("rendering the configuration")?
        );
        return Ok(());
    }
    if let Command::Serve(a) = cli.command {
        let opts = crate::app::ServeOptions {
            host: a.host,
            port: a.port,
            registry_ttl_sec: a.registry_ttl_sec,
            tls: a.key.zip(a.cert),
            workers: a.workers,
        };
        return crate::app::serve(config, env, opts).await;
    }
    if let Command::ServeRegistry(a) = cli.command {
        let opts = crate::app::ServeRegistryOptions {
            host: a.host,
            port: a.port,
            tls: a.key.zip(a.cert),
            rest_port: a.rest_api.then_some(a.rest_port),
        };
        return crate::app::serve_registry(config, env, opts).await;
    }
    if let Command::ServeOffline(a) = cli.command {
        let opts = crate::app::ServeOfflineOptions {
            host: a.host,
            port: a.port,
            tls: a.key.zip(a.cert),
            memory_limit: a.memory_limit,
        };
        return crate::app::serve_offline(config, env, opts).await;
    }
    match cli.command {
        Command::Materialize(a) => {
            let (start, end) = match (a.disable_event_timestamp, a.start, a.end) {
                (true, None, None) => (Some(chrono::DateTime::UNIX_EPOCH), chrono::Utc::now()),
                (true, _, _) => {
                    anyhow::bail!("START and END must be omitted with --disable-event-timestamp")
                }
                (false, Some(s), Some(e)) => (Some(parse_ts(&s)?), parse_ts(&e)?),
                (false, _, _) => anyhow::bail!("materialize needs START and END"),
            };
            return materialize::materialize(&config, &env, start, end, a.views).await;
        }
        Command::MaterializeIncremental(a) => {
            let end = match a.end.as_str() {
                "now" => chrono::Utc::now(),
                end => parse_ts(end)?,
            };
            return materialize::materialize(&config, &env, None, end, a.views).await;
        }
        Command::GetHistoricalFeatures(a) => {
            return historical::get_historical_features(&config, &env, a).await;
        }
        Command::Check => {
            if check::check(&config, &env).await? {
                return Ok(());
            }
            std::process::exit(1);
        }
        Command::Plan | Command::Apply => {
            use crate::service::definitions::{plan, render};
            let apply = matches!(cli.command, Command::Apply);
            let online = match (&config.online_store, apply) {
                (Some(_), true) => Some(crate::app::online_store(&config).await?),
                _ => None,
            };
            let steps = plan(&config, store::open(&config, &env).await?, online, apply).await?;
            print!("{}", render(&steps));
            return Ok(());
        }
        Command::Teardown => {
            let online = match &config.online_store {
                Some(_) => Some(crate::app::online_store(&config).await?),
                None => None,
            };
            let lines = crate::service::definitions::teardown(
                &config,
                store::open(&config, &env).await?,
                online,
            )
            .await?;
            for l in lines {
                println!("{l}");
            }
            return Ok(());
        }
        _ => {}
    }
    let registry = store::open(&config, &env).await?;
    let snapshot = registry.load().await?;
    let project = config.project.as_str();
    match cli.command {
        Command::ExportDefinitions(a) => {
            let yaml = larder_registry::definitions::export(&snapshot, project)?;
            match a.output {
                Some(path) => std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{yaml}"),
            }
        }
        Command::RegistryDump => {
            let doc = dump::registry_dump(&snapshot, project).with_context(|| {
                format!(
                    "the registry at {} holds an invalid value",
                    registry.location()
                )
            })?;
            println!("{}", dump::render(&doc));
        }
        Command::Entities(a) => list::entities(&snapshot, project, &tags(&a)?)?,
        Command::FeatureViews(a) => list::feature_views(&snapshot, project, &tags(&a)?)?,
        Command::OnDemandFeatureViews(a) => list::odfvs(
            &snapshot,
            project,
            &tags(&a)?,
            &crate::service::ondemand::Engines::from_config(&config),
        )?,
        Command::FeatureServices(a) => list::services(&snapshot, project, &tags(&a)?)?,
        Command::DataSources(a) => list::data_sources(&snapshot, project, &tags(&a)?)?,
        Command::Projects(a) => list::projects(&snapshot, &tags(&a)?)?,
        Command::Version
        | Command::Check
        | Command::Plan
        | Command::Apply
        | Command::Teardown
        | Command::Init(_)
        | Command::Configuration
        | Command::Serve(_)
        | Command::ServeOffline(_)
        | Command::ServeRegistry(_)
        | Command::Materialize(_)
        | Command::MaterializeIncremental(_)
        | Command::GetHistoricalFeatures(_) => unreachable!("handled above"),
    }
    Ok(())
}

fn parse_ts(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    larder_types::value::parse_timestamp(s).map_err(anyhow::Error::msg)
}

fn tags(args: &ListArgs) -> anyhow::Result<Vec<(String, String)>> {
    let ListAction::List { tags } = &args.action;
    tags.iter()
        .map(|t| {
            t.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .with_context(|| format!("tag {t:?} must be written key:value"))
        })
        .collect()
}
