//! `feature_store.yaml`, read as Feast 0.67 reads it (spec §1): environment expansion before
//! parsing, every key and default, unknown keys allowed at the top level and in `registry`,
//! rejected (with the key and the file named) in store-specific blocks and in Larder's own
//! `larder:` block. Relative paths are resolved against the repo directory.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::envexpand;

/// What went wrong while loading `feature_store.yaml`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid yaml: {source}")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{path}: key `{key}`: {message}")]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// A Feast project name: word characters and `-`, not starting with `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let valid_chars = name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
        if name.is_empty() || !valid_chars || name.starts_with(['_', '-']) {
            return Err(format!(
                "project name {name:?} must be alphanumeric, underscores and hyphens, not starting with an underscore or hyphen"
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the registry lives.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RegistryLocation {
    /// A local file (absolute after resolution against the repo path).
    File { path: PathBuf },
    /// An object in S3 or an S3-compatible store (MinIO): `s3://bucket/key`.
    S3 { url: String },
    /// Another object-store URL Feast accepts (`gs://`, `az://`, `hdfs://`); read support
    /// depends on the build.
    Object { url: String },
    /// Feast's SQL registry, given as a SQLAlchemy URL.
    Sql {
        url: String,
        schema_mode: SqlSchemaMode,
    },
    /// A Feast registry server (`host:port`).
    Remote { target: String },
}

/// What a SQL registry does about missing tables (`schema_mode`, Feast's default `auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlSchemaMode {
    /// Missing tables are created (Feast: on startup; Larder: by the first commit needing them).
    #[default]
    Auto,
    /// No DDL: a write to a missing table fails.
    Verify,
    /// No DDL either.
    Skip,
}

/// How the registry cache refreshes (`cache_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    #[default]
    Sync,
    Thread,
}

/// The `registry` key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryConfig {
    pub registry_type: String,
    pub location: RegistryLocation,
    /// The `path` value as written (after environment expansion).
    pub path: String,
    pub registry_store_type: Option<String>,
    /// `0` means the cache never expires.
    pub cache_ttl_seconds: u64,
    pub cache_mode: CacheMode,
    pub s3_additional_kwargs: Option<BTreeMap<String, String>>,
    pub purge_feast_metadata: bool,
    pub enable_online_feature_view_versioning: bool,
    pub serve_features_while_materializing: bool,
    /// Every other key under `registry` (Feast allows extra keys there).
    pub extra: BTreeMap<String, Json>,
}

/// `online_store.redis_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RedisType {
    #[default]
    Redis,
    RedisCluster,
    RedisSentinel,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteOnlineConfig {
    #[serde(default = "default_sqlite_path")]
    pub path: PathBuf,
    #[serde(default)]
    pub vector_enabled: bool,
    #[serde(default = "default_similarity")]
    pub similarity: String,
    #[serde(default)]
    pub text_search_enabled: bool,
    #[serde(default)]
    pub enable_openai_compatible_store: bool,
    #[serde(default)]
    pub vector_len: Option<u32>,
}

impl Default for SqliteOnlineConfig {
    fn default() -> Self {
        Self {
            path: default_sqlite_path(),
            vector_enabled: false,
            similarity: default_similarity(),
            text_search_enabled: false,
            enable_openai_compatible_store: false,
            vector_len: None,
        }
    }
}

fn default_sqlite_path() -> PathBuf {
    PathBuf::from("data/online.db")
}
fn default_similarity() -> String {
    "cosine".to_owned()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisOnlineConfig {
    #[serde(default)]
    pub redis_type: RedisType,
    #[serde(default = "default_redis_connection")]
    pub connection_string: String,
    #[serde(default = "default_sentinel_master")]
    pub sentinel_master: String,
    #[serde(default)]
    pub key_ttl_seconds: Option<u64>,
    #[serde(default = "yes")]
    pub full_scan_for_deletion: bool,
    #[serde(default)]
    pub skip_dedup: bool,
    #[serde(default = "default_redis_client")]
    pub client: String,
}

fn default_redis_connection() -> String {
    "localhost:6379".to_owned()
}
fn default_sentinel_master() -> String {
    "mymaster".to_owned()
}
fn default_redis_client() -> String {
    "redis".to_owned()
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteOnlineConfig {
    #[serde(default = "default_remote_path")]
    pub path: String,
    #[serde(default)]
    pub cert: String,
    #[serde(default = "default_pool")]
    pub connection_pool_size: u32,
    #[serde(default = "default_idle")]
    pub connection_idle_timeout: u64,
    #[serde(default = "default_retries")]
    pub connection_retries: u32,
}

fn default_remote_path() -> String {
    "http://localhost:6566".to_owned()
}
fn default_pool() -> u32 {
    50
}
fn default_idle() -> u64 {
    300
}
fn default_retries() -> u32 {
    3
}

/// The `online_store` key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OnlineStoreConfig {
    Sqlite(SqliteOnlineConfig),
    Redis(RedisOnlineConfig),
    Remote(RemoteOnlineConfig),
    /// A store type Feast knows that Larder does not serve; kept so the repo still loads.
    Other {
        type_name: String,
        options: BTreeMap<String, Json>,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteOfflineConfig {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub cert: String,
    #[serde(default = "default_retries")]
    pub connection_retries: u32,
}

fn default_scheme() -> String {
    "http".to_owned()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DuckDbOfflineConfig {
    #[serde(default)]
    pub staging_location: Option<String>,
    #[serde(default)]
    pub staging_location_endpoint_override: Option<String>,
}

/// The `offline_store` key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OfflineStoreConfig {
    /// `file` / `dask` (the default): Parquet files named by FileSources.
    File,
    Duckdb(DuckDbOfflineConfig),
    Remote(RemoteOfflineConfig),
    Other {
        type_name: String,
        options: BTreeMap<String, Json>,
    },
}

/// The `auth` key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthConfig {
    NoAuth,
    Kubernetes { options: BTreeMap<String, Json> },
    Oidc { options: BTreeMap<String, Json> },
}

/// The `materialization` key.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MaterializationConfig {
    #[serde(default)]
    pub pull_latest_features: bool,
    #[serde(default)]
    pub online_write_batch_size: Option<std::num::NonZeroUsize>,
}

/// How online reads treat values older than their view's `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnlineTtl {
    /// Report `OUTSIDE_MAX_AGE` (as Feast's Go server does).
    #[default]
    Enforce,
    /// Report such values as `PRESENT` (Feast Python's behaviour).
    Ignore,
}

/// Larder-only settings, in a top-level `larder:` block (Feast ignores unknown top-level keys).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LarderConfig {
    #[serde(default)]
    pub online_ttl: OnlineTtl,
    /// Limits of the servers' connections (`larder.server`).
    #[serde(default)]
    pub server: ServerLimits,
    /// How on-demand views run (`larder.on_demand`).
    #[serde(default)]
    pub on_demand: OnDemandConfig,
}

/// `larder.on_demand`: the engines of on-demand views.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnDemandConfig {
    /// A Python with the Feast SDK: Larder starts its transformation worker with it (the
    /// Python engine). A path, or a command on `PATH`.
    pub python: Option<String>,
    /// The address (`host:port`) of a running transformation service instead (Feast's
    /// `feast serve_transformations`, pandas mode only).
    pub transformation_service: Option<String>,
    /// How long one transformation may take.
    pub timeout_seconds: f64,
    /// Per view: `native` or `python` (default: native when the UDF compiles, else python).
    pub engines: std::collections::BTreeMap<String, EngineChoice>,
}

impl Default for OnDemandConfig {
    fn default() -> Self {
        Self {
            python: None,
            transformation_service: None,
            timeout_seconds: 10.0,
            engines: Default::default(),
        }
    }
}

/// An on-demand view's engine, chosen in `larder.on_demand.engines`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    Native,
    Python,
}

/// `larder.server`: timeouts and caps of every endpoint's connections.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// A request head must be complete this long after its first byte (408 after).
    pub header_timeout_seconds: f64,
    /// A request body must be complete this long after its head (408 after).
    pub body_timeout_seconds: f64,
    /// A connection is closed after this long without a request (before its first, or between
    /// two on a kept-alive one).
    pub idle_timeout_seconds: f64,
    /// Writing one answer may take this long (a client that does not read is dropped).
    pub write_timeout_seconds: f64,
    /// Open connections per server port; a connection beyond it is answered 503 and closed.
    pub max_connections: usize,
    /// h2 (gRPC): streams one connection may have open at once.
    pub h2_max_concurrent_streams: u32,
    /// h2: a PING after this long without frames, and the connection closed when it is not
    /// answered within `h2_keep_alive_timeout_seconds`.
    pub h2_keep_alive_interval_seconds: f64,
    pub h2_keep_alive_timeout_seconds: f64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout_seconds: 10.0,
            body_timeout_seconds: 30.0,
            idle_timeout_seconds: 60.0,
            write_timeout_seconds: 30.0,
            max_connections: 10_000,
            h2_max_concurrent_streams: 256,
            h2_keep_alive_interval_seconds: 60.0,
            h2_keep_alive_timeout_seconds: 20.0,
        }
    }
}

impl ServerLimits {
    /// Every timeout positive and finite, every cap at least 1.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("header_timeout_seconds", self.header_timeout_seconds),
            ("body_timeout_seconds", self.body_timeout_seconds),
            ("idle_timeout_seconds", self.idle_timeout_seconds),
            ("write_timeout_seconds", self.write_timeout_seconds),
            (
                "h2_keep_alive_interval_seconds",
                self.h2_keep_alive_interval_seconds,
            ),
            (
                "h2_keep_alive_timeout_seconds",
                self.h2_keep_alive_timeout_seconds,
            ),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 1e9) {
                return Err(format!(
                    "larder.server.{name} must be a positive number of seconds"
                ));
            }
        }
        if self.max_connections == 0 {
            return Err("larder.server.max_connections must be at least 1".into());
        }
        if self.h2_max_concurrent_streams == 0 {
            return Err("larder.server.h2_max_concurrent_streams must be at least 1".into());
        }
        Ok(())
    }
}

/// A loaded `feature_store.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepoConfig {
    /// The repo directory: the base of every relative path.
    pub repo_path: PathBuf,
    /// The yaml file this was read from.
    pub config_path: PathBuf,
    pub project: ProjectName,
    pub project_description: Option<String>,
    pub registry: RegistryConfig,
    pub provider: String,
    /// `None` when the yaml sets `online_store: null`.
    pub online_store: Option<OnlineStoreConfig>,
    pub offline_store: OfflineStoreConfig,
    pub batch_engine: Json,
    pub feature_server: Option<Json>,
    pub auth: AuthConfig,
    pub entity_key_serialization_version: u32,
    pub coerce_tz_aware: bool,
    pub materialization: MaterializationConfig,
    pub larder: LarderConfig,
}

const PROVIDERS: &[&str] = &["local", "gcp", "aws", "azure", "chronon", "unity_catalog"];

/// Where to find the yaml: Feast's `--chdir` / `--feature-store-yaml` conventions.
#[derive(Debug, Clone, Default)]
pub struct ConfigLocation {
    /// The repo directory (`-c/--chdir`); default the current directory.
    pub repo_dir: Option<PathBuf>,
    /// An explicit yaml path (`-f/--feature-store-yaml`).
    pub yaml_path: Option<PathBuf>,
}

/// `feature_server.offline_push_batching_*`: buffer the offline part of pushes and write it
/// when this many rows are buffered or the oldest buffered row is this old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushBatching {
    pub batch_size: usize,
    pub interval: std::time::Duration,
}

/// `feature_server.feature_logging`: how served features are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureLogging {
    /// Buffered rows are written to the destinations this often.
    pub flush_interval: std::time::Duration,
    /// Feast's Go server spills its buffer to local disk this often; Larder writes to the
    /// destination instead when a buffer reaches `queue_capacity` rows.
    pub write_to_disk_interval: std::time::Duration,
    /// Rows queued or buffered at most; beyond it rows are dropped (and counted).
    pub queue_capacity: usize,
    /// How long a request waits for room in the queue before its rows are dropped.
    pub emit_timeout: std::time::Duration,
}

impl RepoConfig {
    /// Offline push batching, when `feature_server.offline_push_batching_enabled` is true
    /// (defaults: 1000 rows, 10 seconds).
    pub fn offline_push_batching(&self) -> Result<Option<PushBatching>, ConfigError> {
        let Some(Json::Object(fs)) = &self.feature_server else {
            return Ok(None);
        };
        let bad = |key: &str, msg: &str| ConfigError::Key {
            path: self.config_path.clone(),
            key: format!("feature_server.{key}"),
            message: msg.to_owned(),
        };
        match fs.get("offline_push_batching_enabled") {
            None | Some(Json::Null) | Some(Json::Bool(false)) => return Ok(None),
            Some(Json::Bool(true)) => {}
            Some(_) => {
                return Err(bad(
                    "offline_push_batching_enabled",
                    "expected true or false",
                ));
            }
        }
        let positive = |key: &str, default: u64| -> Result<u64, ConfigError> {
            match fs.get(key) {
                None | Some(Json::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(key, "expected a positive integer")),
            }
        };
        Ok(Some(PushBatching {
            batch_size: positive("offline_push_batching_batch_size", 1000)? as usize,
            interval: std::time::Duration::from_secs(positive(
                "offline_push_batching_batch_interval_seconds",
                10,
            )?),
        }))
    }

    /// Served-feature logging, when `feature_server.feature_logging.enabled` is true (Feast's
    /// defaults: flush every 600 s, a queue of 100,000 rows, 10 ms to enqueue).
    pub fn feature_logging(&self) -> Result<Option<FeatureLogging>, ConfigError> {
        let Some(Json::Object(fs)) = &self.feature_server else {
            return Ok(None);
        };
        let bad = |key: &str, msg: &str| ConfigError::Key {
            path: self.config_path.clone(),
            key: format!("feature_server.feature_logging.{key}"),
            message: msg.to_owned(),
        };
        let fl = match fs.get("feature_logging") {
            None | Some(Json::Null) => return Ok(None),
            Some(Json::Object(m)) => m,
            Some(_) => return Err(bad("", "expected a mapping")),
        };
        const KEYS: [&str; 5] = [
            "enabled",
            "flush_interval_secs",
            "write_to_disk_interval_secs",
            "queue_capacity",
            "emit_timeout_micro_secs",
        ];
        if let Some(k) = fl.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(bad(k, "unknown key"));
        }
        match fl.get("enabled") {
            None | Some(Json::Null) | Some(Json::Bool(false)) => return Ok(None),
            Some(Json::Bool(true)) => {}
            Some(_) => return Err(bad("enabled", "expected true or false")),
        }
        let positive = |key: &str, default: u64| -> Result<u64, ConfigError> {
            match fl.get(key) {
                None | Some(Json::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(key, "expected a positive integer")),
            }
        };
        Ok(Some(FeatureLogging {
            flush_interval: std::time::Duration::from_secs(positive("flush_interval_secs", 600)?),
            write_to_disk_interval: std::time::Duration::from_secs(positive(
                "write_to_disk_interval_secs",
                30,
            )?),
            queue_capacity: positive("queue_capacity", 100_000)? as usize,
            emit_timeout: std::time::Duration::from_micros(positive(
                "emit_timeout_micro_secs",
                10_000,
            )?),
        }))
    }

    /// Loads the repo's `feature_store.yaml` with the given environment (for `$VAR` expansion).
    pub fn load(loc: &ConfigLocation, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let repo_path = match &loc.repo_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().map_err(|source| ConfigError::Read {
                path: PathBuf::from("."),
                source,
            })?,
        };
        let config_path = match &loc.yaml_path {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => repo_path.join(p),
            None => repo_path.join("feature_store.yaml"),
        };
        let text = std::fs::read_to_string(&config_path).map_err(|source| ConfigError::Read {
            path: config_path.clone(),
            source,
        })?;
        Self::parse(&text, &repo_path, &config_path, env)
    }

    /// Parses yaml text; `repo_path` resolves relative paths, `config_path` names the file in errors.
    pub fn parse(
        text: &str,
        repo_path: &Path,
        config_path: &Path,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let expanded = envexpand::expand(text, env);
        let doc: Json = serde_norway::from_str(&expanded).map_err(|source| ConfigError::Yaml {
            path: config_path.to_owned(),
            source,
        })?;
        let p = Parser {
            path: config_path,
            repo: repo_path,
        };
        let Json::Object(top) = doc else {
            return Err(p.err("(document)", "expected a mapping at the top level"));
        };

        let project_raw = match top.get("project") {
            Some(Json::String(s)) => s.clone(),
            Some(_) => return Err(p.err("project", "expected a string")),
            None => return Err(p.err("project", "is required")),
        };
        let project = ProjectName::parse(&project_raw).map_err(|m| p.err("project", &m))?;
        let project_description = p.opt_string(&top, "project_description")?;
        let registry = match top.get("registry") {
            None | Some(Json::Null) => return Err(p.err("registry", "registry not set")),
            Some(v) => p.registry(v)?,
        };
        let provider = p
            .opt_string(&top, "provider")?
            .unwrap_or_else(|| "local".to_owned());
        if !PROVIDERS.contains(&provider.as_str()) && !provider.contains('.') {
            return Err(p.err(
                "provider",
                &format!(
                    "unknown provider {provider:?}; expected one of {PROVIDERS:?} or a class path"
                ),
            ));
        }
        let online_store = match top.get("online_store") {
            None => Some(OnlineStoreConfig::Sqlite(p.sqlite(Obj::new())?)),
            Some(v) => p.online_store(v)?,
        };
        if matches!(online_store, Some(OnlineStoreConfig::Sqlite(_))) && project.0.contains('-') {
            return Err(p.err(
                "project",
                &format!(
                    "project name {:?} contains a hyphen, which the sqlite online store does not allow (it ends up in table names)",
                    project.0
                ),
            ));
        }
        let offline_store = match top.get("offline_store") {
            None | Some(Json::Null) => OfflineStoreConfig::File,
            Some(v) => p.offline_store(v)?,
        };
        let batch_engine = top
            .get("batch_engine")
            .or_else(|| top.get("batch_engine_config"))
            .cloned()
            .unwrap_or_else(|| Json::String("local".into()));
        let feature_server = match top.get("feature_server") {
            None | Some(Json::Null) => None,
            Some(v) => Some(p.feature_server(v)?),
        };
        let auth = match top.get("auth") {
            None | Some(Json::Null) => AuthConfig::NoAuth,
            Some(v) => p.auth(v)?,
        };
        let entity_key_serialization_version = match top.get("entity_key_serialization_version") {
            None | Some(Json::Null) => 3,
            Some(v) => match v.as_u64() {
                Some(n @ 1..=3) => n as u32,
                _ => {
                    return Err(p.err("entity_key_serialization_version", "expected 1, 2 or 3"));
                }
            },
        };
        let coerce_tz_aware = match top.get("coerce_tz_aware") {
            None | Some(Json::Null) => true,
            Some(Json::Bool(b)) => *b,
            Some(_) => return Err(p.err("coerce_tz_aware", "expected a boolean")),
        };
        let materialization = p.typed(&top, "materialization")?.unwrap_or_default();
        let larder: LarderConfig = p.typed(&top, "larder")?.unwrap_or_default();
        larder
            .server
            .check()
            .map_err(|m| p.err("larder.server", &m))?;
        let timeout = larder.on_demand.timeout_seconds;
        if timeout.is_nan() || timeout <= 0.0 || timeout.is_infinite() {
            return Err(p.err(
                "larder.on_demand.timeout_seconds",
                "must be a positive number of seconds",
            ));
        }
        if larder.on_demand.python.is_some() && larder.on_demand.transformation_service.is_some() {
            return Err(p.err(
                "larder.on_demand",
                "set python or transformation_service, not both",
            ));
        }
        Ok(Self {
            repo_path: repo_path.to_owned(),
            config_path: config_path.to_owned(),
            project,
            project_description,
            registry,
            provider,
            online_store,
            offline_store,
            batch_engine,
            feature_server,
            auth,
            entity_key_serialization_version,
            coerce_tz_aware,
            materialization,
            larder,
        })
    }

    /// Resolves a path from the repo (a FileSource uri, a sqlite path): URLs stay as they
    /// are, relative paths are joined to the repo directory.
    pub fn resolve(&self, path: &str) -> String {
        resolve_path(&self.repo_path, path)
    }
}

fn resolve_path(repo: &Path, path: &str) -> String {
    if path.contains("://") || Path::new(path).is_absolute() {
        path.to_owned()
    } else {
        repo.join(path).to_string_lossy().into_owned()
    }
}

struct Parser<'a> {
    path: &'a Path,
    repo: &'a Path,
}

type Obj = serde_json::Map<String, Json>;

impl Parser<'_> {
    fn err(&self, key: &str, message: &str) -> ConfigError {
        ConfigError::Key {
            path: self.path.to_owned(),
            key: key.to_owned(),
            message: message.to_owned(),
        }
    }

    fn opt_string(&self, obj: &Obj, key: &str) -> Result<Option<String>, ConfigError> {
        match obj.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.err(key, "expected a string")),
        }
    }

    fn typed<T: serde::de::DeserializeOwned>(
        &self,
        obj: &Obj,
        key: &str,
    ) -> Result<Option<T>, ConfigError> {
        match obj.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => self.decode(key, v.clone()).map(Some),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, key: &str, v: Json) -> Result<T, ConfigError> {
        serde_json::from_value(v).map_err(|e| self.err(key, &e.to_string()))
    }

    /// Splits `{type: x, ...rest}` (or a bare string = the type) into the type and the rest.
    fn typed_block(
        &self,
        key: &str,
        v: &Json,
        default_type: Option<&str>,
    ) -> Result<(String, Obj), ConfigError> {
        match v {
            Json::String(s) => Ok((s.clone(), Obj::new())),
            Json::Object(m) => {
                let mut rest = m.clone();
                let ty = match rest.remove("type") {
                    Some(Json::String(s)) => s,
                    None => match default_type {
                        Some(d) => d.to_owned(),
                        None => return Err(self.err(&format!("{key}.type"), "is required")),
                    },
                    Some(_) => return Err(self.err(&format!("{key}.type"), "expected a string")),
                };
                Ok((ty, rest))
            }
            _ => Err(self.err(key, "expected a mapping or a string")),
        }
    }

    fn registry(&self, v: &Json) -> Result<RegistryConfig, ConfigError> {
        let mut m = match v {
            Json::String(s) => {
                let mut m = Obj::new();
                m.insert("path".into(), Json::String(s.clone()));
                m
            }
            Json::Object(m) => m.clone(),
            _ => return Err(self.err("registry", "expected a path or a mapping")),
        };
        let mut take_string = |k: &str, default: &str| -> Result<String, ConfigError> {
            match m.remove(k) {
                None | Some(Json::Null) => Ok(default.to_owned()),
                Some(Json::String(s)) => Ok(s),
                Some(_) => Err(self.err(&format!("registry.{k}"), "expected a string")),
            }
        };
        let registry_type = take_string("registry_type", "file")?;
        let path = take_string("path", "")?;
        let registry_store_type = match take_string("registry_store_type", "")? {
            s if s.is_empty() => None,
            s => Some(s),
        };
        let schema_mode = take_string("schema_mode", "auto")?;
        let cache_mode: CacheMode = match take_string("cache_mode", "sync")?.as_str() {
            "sync" => CacheMode::Sync,
            "thread" => CacheMode::Thread,
            other => {
                return Err(self.err(
                    "registry.cache_mode",
                    &format!("unknown cache mode {other:?}; expected sync or thread"),
                ));
            }
        };
        let cache_ttl_seconds = match m.remove("cache_ttl_seconds") {
            None | Some(Json::Null) => 600,
            Some(v) => v.as_u64().ok_or_else(|| {
                self.err(
                    "registry.cache_ttl_seconds",
                    "expected a non-negative integer",
                )
            })?,
        };
        let mut flag = |k: &str| -> Result<bool, ConfigError> {
            match m.remove(k) {
                None | Some(Json::Null) => Ok(false),
                Some(Json::Bool(b)) => Ok(b),
                Some(_) => Err(self.err(&format!("registry.{k}"), "expected a boolean")),
            }
        };
        let purge_feast_metadata = flag("purge_feast_metadata")?;
        let enable_online_feature_view_versioning = flag("enable_online_feature_view_versioning")?;
        let serve_features_while_materializing = flag("serve_features_while_materializing")?;
        let s3_additional_kwargs = match m.remove("s3_additional_kwargs") {
            None | Some(Json::Null) => None,
            Some(v) => Some(self.decode("registry.s3_additional_kwargs", v)?),
        };
        let location = match registry_type.as_str() {
            "file" => self.file_location(&path, registry_store_type.as_deref())?,
            "sql" => {
                if path.is_empty() {
                    return Err(self.err("registry.path", "a sql registry needs a database URL"));
                }
                let schema_mode = match schema_mode.as_str() {
                    "auto" => SqlSchemaMode::Auto,
                    "verify" => SqlSchemaMode::Verify,
                    "skip" => SqlSchemaMode::Skip,
                    other => {
                        return Err(self.err(
                            "registry.schema_mode",
                            &format!(
                                "unknown schema mode {other:?}; expected auto, verify or skip"
                            ),
                        ));
                    }
                };
                RegistryLocation::Sql {
                    url: path.clone(),
                    schema_mode,
                }
            }
            "remote" => {
                if path.is_empty() || path.contains("://") {
                    return Err(self.err(
                        "registry.path",
                        "a remote registry needs a gRPC target `host:port` with no scheme",
                    ));
                }
                RegistryLocation::Remote {
                    target: path.clone(),
                }
            }
            other => {
                return Err(self.err(
                    "registry.registry_type",
                    &format!(
                        "registry type {other:?} is not supported; expected file, sql or remote"
                    ),
                ));
            }
        };
        Ok(RegistryConfig {
            registry_type,
            location,
            path,
            registry_store_type,
            cache_ttl_seconds,
            cache_mode,
            s3_additional_kwargs,
            purge_feast_metadata,
            enable_online_feature_view_versioning,
            serve_features_while_materializing,
            extra: m.into_iter().collect(),
        })
    }

    fn file_location(
        &self,
        path: &str,
        store_type: Option<&str>,
    ) -> Result<RegistryLocation, ConfigError> {
        let path = if path.is_empty() {
            "data/registry.db"
        } else {
            path
        };
        let scheme = path.split_once("://").map(|(s, _)| s);
        let explicit = store_type.map(|s| s.rsplit('.').next().unwrap_or(s));
        match (explicit, scheme) {
            (Some("S3RegistryStore"), _) | (None, Some("s3")) => Ok(RegistryLocation::S3 {
                url: path.to_owned(),
            }),
            (Some("FileRegistryStore"), _) | (None, None | Some("file")) => {
                let local = path.strip_prefix("file://").unwrap_or(path);
                Ok(RegistryLocation::File {
                    path: PathBuf::from(resolve_path(self.repo, local)),
                })
            }
            (Some("GCSRegistryStore" | "AzureRegistryStore" | "HDFSRegistryStore"), _)
            | (None, Some("gs" | "az" | "abfs" | "hdfs")) => Ok(RegistryLocation::Object {
                url: path.to_owned(),
            }),
            (Some(other), _) => Err(self.err(
                "registry.registry_store_type",
                &format!("unknown registry store {other:?}"),
            )),
            (None, Some(other)) => Err(self.err(
                "registry.path",
                &format!("unsupported registry URL scheme {other:?}"),
            )),
        }
    }

    fn sqlite(&self, rest: Obj) -> Result<SqliteOnlineConfig, ConfigError> {
        let mut cfg: SqliteOnlineConfig = self.decode("online_store", Json::Object(rest))?;
        cfg.path = PathBuf::from(resolve_path(self.repo, &cfg.path.to_string_lossy()));
        Ok(cfg)
    }

    fn online_store(&self, v: &Json) -> Result<Option<OnlineStoreConfig>, ConfigError> {
        if v.is_null() {
            return Ok(None);
        }
        let (ty, rest) = self.typed_block("online_store", v, Some("sqlite"))?;
        Ok(Some(match ty.as_str() {
            "none" | "null" => return Ok(None),
            "sqlite" | "feast.infra.online_stores.sqlite.SqliteOnlineStore" => {
                OnlineStoreConfig::Sqlite(self.sqlite(rest)?)
            }
            "redis" | "feast.infra.online_stores.redis.RedisOnlineStore" => {
                OnlineStoreConfig::Redis(self.decode("online_store", Json::Object(rest))?)
            }
            "remote" | "feast.infra.online_stores.remote.RemoteOnlineStore" => {
                OnlineStoreConfig::Remote(self.decode("online_store", Json::Object(rest))?)
            }
            _ => OnlineStoreConfig::Other {
                type_name: ty,
                options: rest.into_iter().collect(),
            },
        }))
    }

    fn offline_store(&self, v: &Json) -> Result<OfflineStoreConfig, ConfigError> {
        let (ty, rest) = self.typed_block("offline_store", v, Some("dask"))?;
        Ok(match ty.as_str() {
            "file" | "dask" => {
                if let Some(k) = rest.keys().next() {
                    return Err(self.err(
                        &format!("offline_store.{k}"),
                        "unknown key: the file offline store takes no options",
                    ));
                }
                OfflineStoreConfig::File
            }
            "duckdb" => {
                OfflineStoreConfig::Duckdb(self.decode("offline_store", Json::Object(rest))?)
            }
            "remote" => {
                OfflineStoreConfig::Remote(self.decode("offline_store", Json::Object(rest))?)
            }
            _ => OfflineStoreConfig::Other {
                type_name: ty,
                options: rest.into_iter().collect(),
            },
        })
    }

    fn feature_server(&self, v: &Json) -> Result<Json, ConfigError> {
        let (ty, rest) = self.typed_block("feature_server", v, Some("local"))?;
        let mut known: Vec<&str> = vec![
            "enabled",
            "metrics",
            "feature_logging",
            "audit_logging",
            "offline_push_batching_enabled",
            "offline_push_batching_batch_size",
            "offline_push_batching_batch_interval_seconds",
        ];
        match ty.as_str() {
            "local" => known.push("transformation_service_endpoint"),
            "mcp" => known.extend([
                "mcp_enabled",
                "mcp_server_name",
                "mcp_server_version",
                "mcp_transport",
                "transformation_service_endpoint",
            ]),
            other => {
                return Err(self.err(
                    "feature_server.type",
                    &format!("unknown feature server type {other:?}; expected local or mcp"),
                ));
            }
        }
        if let Some(k) = rest.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(self.err(&format!("feature_server.{k}"), "unknown key"));
        }
        let mut out = rest;
        out.insert("type".into(), Json::String(ty));
        Ok(Json::Object(out))
    }

    fn auth(&self, v: &Json) -> Result<AuthConfig, ConfigError> {
        let Json::Object(_) = v else {
            return Err(self.err("auth", "expected a mapping with a `type`"));
        };
        let (ty, rest) = self.typed_block("auth", v, None)?;
        let options: BTreeMap<String, Json> = rest.into_iter().collect();
        match ty.as_str() {
            "no_auth" => match options.keys().next() {
                Some(k) => Err(self.err(&format!("auth.{k}"), "unknown key for no_auth")),
                None => Ok(AuthConfig::NoAuth),
            },
            "kubernetes" => Ok(AuthConfig::Kubernetes { options }),
            "oidc" => {
                const OIDC: &[&str] = &[
                    "auth_discovery_url",
                    "client_id",
                    "ui_client_id",
                    "verify_ssl",
                    "ca_cert_path",
                    "audience",
                    "issuer",
                    "jwks_cache_lifespan_seconds",
                    "jwks_request_timeout_seconds",
                    "client_secret",
                    "token",
                    "token_env_var",
                    "username",
                    "password",
                    "token_refresh_margin_seconds",
                ];
                if let Some(k) = options.keys().find(|k| !OIDC.contains(&k.as_str())) {
                    return Err(self.err(&format!("auth.{k}"), "unknown key for oidc"));
                }
                Ok(AuthConfig::Oidc { options })
            }
            other => Err(self.err(
                "auth.type",
                &format!("unknown auth type {other:?}; expected no_auth, kubernetes or oidc"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<RepoConfig, ConfigError> {
        let env = HashMap::from([("REDIS_HOST".to_owned(), "cache.internal".to_owned())]);
        RepoConfig::parse(
            yaml,
            Path::new("/repo"),
            Path::new("/repo/feature_store.yaml"),
            &env,
        )
    }

    #[test]
    fn offline_push_batching_settings() {
        let base = "project: demo\nregistry: r.db\n";
        assert_eq!(parse(base).unwrap().offline_push_batching().unwrap(), None);
        let on = parse(&format!(
            "{base}feature_server:\n  offline_push_batching_enabled: true\n  offline_push_batching_batch_size: 50\n"
        ))
        .unwrap();
        assert_eq!(
            on.offline_push_batching().unwrap(),
            Some(PushBatching {
                batch_size: 50,
                interval: std::time::Duration::from_secs(10)
            })
        );
        let bad = parse(&format!(
            "{base}feature_server:\n  offline_push_batching_enabled: true\n  offline_push_batching_batch_interval_seconds: 0\n"
        ))
        .unwrap();
        let e = bad.offline_push_batching().unwrap_err().to_string();
        assert!(
            e.contains("offline_push_batching_batch_interval_seconds") && e.contains("positive"),
            "{e}"
        );
    }

    #[test]
    fn feature_logging_settings() {
        let base = "project: demo\nregistry: r.db\n";
        assert_eq!(parse(base).unwrap().feature_logging().unwrap(), None);
        let off = parse(&format!(
            "{base}feature_server:\n  feature_logging:\n    flush_interval_secs: 5\n"
        ))
        .unwrap();
        assert_eq!(off.feature_logging().unwrap(), None);
        let on = parse(&format!(
            "{base}feature_server:\n  feature_logging:\n    enabled: true\n    flush_interval_secs: 5\n"
        ))
        .unwrap();
        assert_eq!(
            on.feature_logging().unwrap(),
            Some(FeatureLogging {
                flush_interval: std::time::Duration::from_secs(5),
                write_to_disk_interval: std::time::Duration::from_secs(30),
                queue_capacity: 100_000,
                emit_timeout: std::time::Duration::from_micros(10_000),
            })
        );
        for (yaml, key) in [
            ("enabled: true\n    queue_capacity: 0", "queue_capacity"),
            ("enabled: yes please", "enabled"),
            ("enabled: true\n    flush_every: 3", "flush_every"),
        ] {
            let c = parse(&format!(
                "{base}feature_server:\n  feature_logging:\n    {yaml}\n"
            ))
            .unwrap();
            let e = c.feature_logging().unwrap_err().to_string();
            assert!(e.contains(&format!("feature_logging.{key}")), "{e}");
        }
    }

    #[test]
    fn minimal_repo_gets_feast_defaults() {
        let c = parse("project: demo\nregistry: data/registry.db\n").unwrap();
        assert_eq!(c.project.as_str(), "demo");
        assert_eq!(
            c.registry.location,
            RegistryLocation::File {
                path: "/repo/data/registry.db".into()
            }
        );
        assert_eq!(c.registry.cache_ttl_seconds, 600);
        assert_eq!(c.registry.cache_mode, CacheMode::Sync);
        assert_eq!(c.provider, "local");
        assert_eq!(
            c.online_store,
            Some(OnlineStoreConfig::Sqlite(SqliteOnlineConfig {
                path: "/repo/data/online.db".into(),
                ..Default::default()
            }))
        );
        assert_eq!(c.offline_store, OfflineStoreConfig::File);
        assert_eq!(c.auth, AuthConfig::NoAuth);
        assert_eq!(c.entity_key_serialization_version, 3);
        assert!(c.coerce_tz_aware);
        assert_eq!(c.larder.online_ttl, OnlineTtl::Enforce);
        assert_eq!(c.larder.server, ServerLimits::default());
    }

    #[test]
    fn server_limits_are_checked() {
        let c = parse(
            "project: p\nregistry: r.db\nlarder:\n  server:\n    header_timeout_seconds: 2.5\n    max_connections: 50\n",
        )
        .unwrap();
        assert_eq!(c.larder.server.header_timeout_seconds, 2.5);
        assert_eq!(c.larder.server.max_connections, 50);
        assert_eq!(c.larder.server.body_timeout_seconds, 30.0, "defaults kept");
        let e =
            err("project: p\nregistry: r.db\nlarder:\n  server:\n    idle_timeout_seconds: 0\n");
        assert!(e.contains("idle_timeout_seconds"), "{e}");
        let e = err("project: p\nregistry: r.db\nlarder:\n  server:\n    max_conections: 5\n");
        assert!(e.contains("max_conections"), "{e}");
    }

    #[test]
    fn redis_with_env_and_registry_mapping() {
        let c = parse(
            "project: demo\nregistry:\n  path: s3://bucket/feast/registry.pb\n  cache_ttl_seconds: 0\n  cache_mode: thread\n\
             online_store:\n  type: redis\n  connection_string: \"${REDIS_HOST}:6379,db=0\"\n  key_ttl_seconds: 3600\n\
             larder:\n  online_ttl: ignore\nsome_future_key: 1\n",
        )
        .unwrap();
        assert_eq!(
            c.registry.location,
            RegistryLocation::S3 {
                url: "s3://bucket/feast/registry.pb".into()
            }
        );
        assert_eq!(c.registry.cache_ttl_seconds, 0);
        assert_eq!(c.registry.cache_mode, CacheMode::Thread);
        let Some(OnlineStoreConfig::Redis(r)) = c.online_store else {
            panic!("expected redis")
        };
        assert_eq!(r.connection_string, "cache.internal:6379,db=0");
        assert_eq!(r.key_ttl_seconds, Some(3600));
        assert!(r.full_scan_for_deletion);
        assert_eq!(c.larder.online_ttl, OnlineTtl::Ignore);
    }

    #[test]
    fn sql_and_remote_registries() {
        let c = parse("project: p\nregistry:\n  registry_type: sql\n  path: postgresql+psycopg://u:p@h:5432/feast\n")
            .unwrap();
        assert_eq!(
            c.registry.location,
            RegistryLocation::Sql {
                url: "postgresql+psycopg://u:p@h:5432/feast".into(),
                schema_mode: SqlSchemaMode::Auto,
            }
        );
        let c = parse("project: p\nregistry:\n  registry_type: remote\n  path: localhost:6570\n")
            .unwrap();
        assert_eq!(
            c.registry.location,
            RegistryLocation::Remote {
                target: "localhost:6570".into()
            }
        );
    }

    #[test]
    fn online_store_string_and_null() {
        let c = parse("project: p\nregistry: r.db\nonline_store: redis\n").unwrap();
        assert!(matches!(c.online_store, Some(OnlineStoreConfig::Redis(_))));
        let c = parse("project: my-proj\nregistry: r.db\nonline_store: null\n").unwrap();
        assert_eq!(c.online_store, None);
    }

    fn err(yaml: &str) -> String {
        parse(yaml).unwrap_err().to_string()
    }

    #[test]
    fn bad_input_names_the_key_and_file() {
        let e = err(
            "project: p\nregistry: r.db\nonline_store:\n  type: redis\n  conection_string: x\n",
        );
        assert!(
            e.contains("/repo/feature_store.yaml") && e.contains("conection_string"),
            "{e}"
        );
        let e = err("project: p\nregistry: r.db\noffline_store:\n  type: file\n  path: x\n");
        assert!(e.contains("offline_store.path"), "{e}");
        let e = err("project: p\nregistry: r.db\nlarder:\n  online_tll: ignore\n");
        assert!(e.contains("online_tll"), "{e}");
        let e = err("project: p\nregistry: r.db\nauth:\n  client_id: x\n");
        assert!(e.contains("auth.type"), "{e}");
        let e = err("project: p\n");
        assert!(e.contains("registry not set"), "{e}");
        let e = err("registry: r.db\n");
        assert!(e.contains("`project`"), "{e}");
        let e = err("project: _p\nregistry: r.db\n");
        assert!(e.contains("project name"), "{e}");
        let e = err("project: p\nregistry: r.db\nprovider: moon\n");
        assert!(e.contains("provider"), "{e}");
        let e = err("project: [unclosed\n");
        assert!(e.contains("invalid yaml"), "{e}");
        let e = err("project: p\nregistry: r.db\nentity_key_serialization_version: 7\n");
        assert!(e.contains("entity_key_serialization_version"), "{e}");
    }

    #[test]
    fn hyphenated_project_is_rejected_with_sqlite_only() {
        let e = err("project: my-proj\nregistry: r.db\n");
        assert!(e.contains("hyphen"), "{e}");
        parse("project: my-proj\nregistry: r.db\nonline_store:\n  type: redis\n").unwrap();
    }
}
