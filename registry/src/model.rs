//! The typed model of one project's registry objects, built from the protos once per registry
//! load. Serving and the CLI read these types; the raw protos stay available for round trips.

use std::{collections::BTreeMap, time::Duration};

use larder_protos::feast::{
    core::{self as pb, FeatureViewState, data_source::SourceType, on_demand_source::Source},
    types::value_type::Enum as ValueType,
};

use crate::{error::RegistryError, store::RegistrySnapshot};

/// A feature or entity column: name and Feast value type.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub value_type: ValueType,
    pub tags: BTreeMap<String, String>,
}

impl From<&pb::FeatureSpecV2> for Field {
    fn from(f: &pb::FeatureSpecV2) -> Self {
        Self {
            name: f.name.clone(),
            value_type: ValueType::try_from(f.value_type).unwrap_or(ValueType::Invalid),
            tags: f.tags.clone().into_iter().collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub name: String,
    pub join_key: String,
    /// As declared; `Invalid` when the user did not declare it (use the views' entity columns).
    pub value_type: ValueType,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub owner: String,
}

/// What kind of source a [`DataSource`] is, with the options that matter to Larder.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    File {
        uri: String,
        s3_endpoint_override: String,
    },
    Push {
        batch_source: Box<DataSource>,
    },
    Request {
        schema: Vec<Field>,
    },
    Kafka {
        bootstrap_servers: String,
        topic: String,
    },
    Kinesis {
        region: String,
        stream_name: String,
    },
    /// Any other source type (BigQuery, Snowflake, …): readable metadata, not servable.
    Other {
        source_type: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    pub name: String,
    pub kind: SourceKind,
    pub class_type: String,
    pub timestamp_field: String,
    pub created_timestamp_column: String,
    /// Source column → feature/entity name.
    pub field_mapping: BTreeMap<String, String>,
    pub date_partition_column: String,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub owner: String,
}

impl DataSource {
    pub fn from_proto(d: &pb::DataSource) -> Self {
        use pb::data_source::Options;
        let source_type = SourceType::try_from(d.r#type).unwrap_or(SourceType::Invalid);
        let kind = match (&d.options, source_type) {
            (Some(Options::FileOptions(f)), _) => SourceKind::File {
                uri: f.uri.clone(),
                s3_endpoint_override: f.s3_endpoint_override.clone(),
            },
            (_, SourceType::PushSource) => SourceKind::Push {
                batch_source: Box::new(
                    d.batch_source
                        .as_deref()
                        .map(DataSource::from_proto)
                        .unwrap_or_else(|| DataSource::from_proto(&pb::DataSource::default())),
                ),
            },
            (Some(Options::RequestDataOptions(r)), _) => {
                let mut schema: Vec<Field> = r.schema.iter().map(Field::from).collect();
                if schema.is_empty() {
                    schema = r
                        .deprecated_schema
                        .iter()
                        .map(|(name, t)| Field {
                            name: name.clone(),
                            value_type: ValueType::try_from(*t).unwrap_or(ValueType::Invalid),
                            tags: BTreeMap::new(),
                        })
                        .collect();
                }
                SourceKind::Request { schema }
            }
            (Some(Options::KafkaOptions(k)), _) => SourceKind::Kafka {
                bootstrap_servers: k.kafka_bootstrap_servers.clone(),
                topic: k.topic.clone(),
            },
            (Some(Options::KinesisOptions(k)), _) => SourceKind::Kinesis {
                region: k.region.clone(),
                stream_name: k.stream_name.clone(),
            },
            _ => SourceKind::Other {
                source_type: source_type.as_str_name().to_owned(),
            },
        };
        Self {
            name: d.name.clone(),
            kind,
            class_type: d.data_source_class_type.clone(),
            timestamp_field: d.timestamp_field.clone(),
            created_timestamp_column: d.created_timestamp_column.clone(),
            field_mapping: d.field_mapping.clone().into_iter().collect(),
            date_partition_column: d.date_partition_column.clone(),
            description: d.description.clone(),
            tags: d.tags.clone().into_iter().collect(),
            owner: d.owner.clone(),
        }
    }

    /// The Python class Feast would instantiate, e.g. `feast.data_source.PushSource`.
    pub fn class_name(&self) -> String {
        if !self.class_type.is_empty() {
            return self.class_type.clone();
        }
        let t = match &self.kind {
            SourceKind::File { .. } => SourceType::BatchFile,
            SourceKind::Push { .. } => SourceType::PushSource,
            SourceKind::Request { .. } => SourceType::RequestSource,
            SourceKind::Kafka { .. } => SourceType::StreamKafka,
            SourceKind::Kinesis { .. } => SourceType::StreamKinesis,
            SourceKind::Other { .. } => return "feast.data_source.DataSource".to_owned(),
        };
        feast_source_class(t).expect("a built-in type").to_owned()
    }
}

/// The Python class Feast's registry stores in a data source's `data_source_class_type` for its
/// type (Feast's `_DATA_SOURCE_OPTIONS`); `None` for custom and invalid types.
pub fn feast_source_class(t: SourceType) -> Option<&'static str> {
    use SourceType as T;
    Some(match t {
        T::BatchFile => "feast.infra.offline_stores.file_source.FileSource",
        T::BatchBigquery => "feast.infra.offline_stores.bigquery_source.BigQuerySource",
        T::BatchRedshift => "feast.infra.offline_stores.redshift_source.RedshiftSource",
        T::BatchSnowflake => "feast.infra.offline_stores.snowflake_source.SnowflakeSource",
        T::BatchTrino => {
            "feast.infra.offline_stores.contrib.trino_offline_store.trino_source.TrinoSource"
        }
        T::BatchSpark => {
            "feast.infra.offline_stores.contrib.spark_offline_store.spark_source.SparkSource"
        }
        T::BatchAthena => {
            "feast.infra.offline_stores.contrib.athena_offline_store.athena_source.AthenaSource"
        }
        T::BatchIceberg => {
            "feast.infra.data_sources.contrib.iceberg_catalog.iceberg_source.IcebergSource"
        }
        T::StreamKafka => "feast.data_source.KafkaSource",
        T::StreamKinesis => "feast.data_source.KinesisSource",
        T::RequestSource => "feast.data_source.RequestSource",
        T::PushSource => "feast.data_source.PushSource",
        T::Invalid | T::CustomSource => return None,
    })
}

/// Which proto a view came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    FeatureView,
    StreamFeatureView,
    OnDemandFeatureView,
    LabelView,
}

impl ViewKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ViewKind::FeatureView => "FeatureView",
            ViewKind::StreamFeatureView => "StreamFeatureView",
            ViewKind::OnDemandFeatureView => "OnDemandFeatureView",
            ViewKind::LabelView => "LabelView",
        }
    }
}

/// A feature view of any kind.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureView {
    pub name: String,
    pub kind: ViewKind,
    /// Entity names (`__dummy` for entity-less views).
    pub entities: Vec<String>,
    /// The join-key columns with their authoritative types.
    pub entity_columns: Vec<Field>,
    pub features: Vec<Field>,
    /// `None` = unlimited (ttl absent or 0 s).
    pub ttl: Option<Duration>,
    pub batch_source: Option<DataSource>,
    pub stream_source: Option<DataSource>,
    pub online: bool,
    pub offline: bool,
    pub disabled: bool,
    pub state: FeatureViewState,
    pub materialization_intervals: Vec<(prost_types::Timestamp, prost_types::Timestamp)>,
    pub tags: BTreeMap<String, String>,
    pub description: String,
    pub owner: String,
    /// On-demand views: the transformation mode, the views and request sources they read.
    pub odfv: Option<OnDemand>,
    /// Its version number (`meta.current_version_number`, Feast's rule: set when above 0, or
    /// when the spec pins a version); `None` for the unversioned view.
    pub version: Option<i32>,
}

/// One entry of the registry's version history: a view as it was at `number`.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewVersion {
    pub number: i32,
    pub view: FeatureView,
}

impl FeatureView {
    /// The name its online data is stored under: `<view>_v<N>` for a version above 0 when
    /// online versioning is on (`registry.enable_online_feature_view_versioning`), else the
    /// view's name (Feast's `compute_versioned_name`).
    pub fn storage_name(&self, versioning: bool) -> String {
        match self.version {
            Some(n) if versioning && n > 0 => format!("{}_v{n}", self.name),
            _ => self.name.clone(),
        }
    }

    /// A view without entities (Feast gives it the `__dummy` entity).
    pub fn is_entityless(&self) -> bool {
        self.entities.iter().all(|e| e == "__dummy")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OnDemand {
    pub mode: String,
    pub write_to_online_store: bool,
    pub source_views: Vec<String>,
    /// The feature views it reads, as projections (name to use, features), in source order.
    pub sources: Vec<OnDemandSource>,
    pub request_sources: Vec<DataSource>,
    pub udf_source: String,
}

/// A feature view an on-demand view reads.
#[derive(Debug, Clone, PartialEq)]
pub struct OnDemandSource {
    pub view: String,
    /// The projection's alias (`with_name`), if any.
    pub alias: Option<String>,
    /// The features it reads (all of the view's when the projection names none).
    pub features: Vec<String>,
}

impl OnDemandSource {
    /// The name the UDF's input frame prefixes full feature names with.
    pub fn name_to_use(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.view)
    }
}

/// One view of a feature service.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub view: String,
    /// Output prefix when set (`with_name`).
    pub alias: Option<String>,
    pub features: Vec<Field>,
    /// View join key → request column.
    pub join_key_map: BTreeMap<String, String>,
    /// The view version it pins (`version_tag`), if any.
    pub version: Option<i32>,
}

impl Projection {
    /// The name used in output columns: the alias if any, else the view name.
    pub fn name_to_use(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.view)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeatureService {
    pub name: String,
    pub projections: Vec<Projection>,
    pub tags: BTreeMap<String, String>,
    pub description: String,
    pub owner: String,
    /// Where its served features are logged (`logging_config`), if anywhere.
    pub logging: Option<LoggingConfig>,
}

/// A feature service's `logging_config`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggingConfig {
    /// The share of requests logged (Feast logs a request when a uniform draw in [0, 1) is at
    /// most this).
    pub sample_rate: f32,
    pub destination: LogDestination,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LogDestination {
    File(FileLogDestination),
    /// Another destination, by its `LoggingConfig` field name (or a custom destination's kind).
    Other(String),
}

/// Parquet files under `path` (local, relative to the repo, or `s3://`), in directories named
/// by the values of the `partition_by` columns.
#[derive(Debug, Clone, PartialEq)]
pub struct FileLogDestination {
    pub path: String,
    pub s3_endpoint_override: String,
    pub partition_by: Vec<String>,
}

impl LoggingConfig {
    /// The file destination, or the kind of the other destination it names.
    pub fn file(&self) -> Result<&FileLogDestination, &str> {
        match &self.destination {
            LogDestination::File(f) => Ok(f),
            LogDestination::Other(kind) => Err(kind),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub name: String,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub owner: String,
}

/// An access rule (`feast.core.Permission`).
#[derive(Debug, Clone, PartialEq)]
pub struct Permission {
    pub name: String,
    /// Object kinds it applies to, by Feast's names (`FEATURE_VIEW`, `FEATURE_SERVICE`, …).
    pub types: Vec<String>,
    /// Regular expressions on object names.
    pub name_patterns: Vec<String>,
    pub required_tags: BTreeMap<String, String>,
    /// Allowed actions, by Feast's names (`DESCRIBE`, `READ_ONLINE`, …).
    pub actions: Vec<String>,
    pub policy: Policy,
    pub tags: BTreeMap<String, String>,
}

/// Who a permission admits.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    Roles(Vec<String>),
    Groups(Vec<String>),
    Namespaces(Vec<String>),
    GroupsAndNamespaces {
        groups: Vec<String>,
        namespaces: Vec<String>,
    },
    None,
}

/// A piece of online-store infrastructure Feast created (e.g. a SQLite table).
#[derive(Debug, Clone, PartialEq)]
pub enum InfraObject {
    SqliteTable { path: String, name: String },
    DatastoreTable { project: String, name: String },
    Other { class_type: String },
}

/// Every object of one project, in registry order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalog {
    pub project: String,
    pub entities: Vec<Entity>,
    pub data_sources: Vec<DataSource>,
    pub feature_views: Vec<FeatureView>,
    pub feature_services: Vec<FeatureService>,
    pub permissions: Vec<Permission>,
    pub infra: Vec<InfraObject>,
    /// The version history of its feature and stream views (`feature_view_version_history`).
    pub versions: Vec<ViewVersion>,
}

fn ttl(d: Option<&prost_types::Duration>) -> Option<Duration> {
    d.filter(|d| d.seconds > 0 || d.nanos > 0)
        .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
}

fn intervals(
    meta: Option<&pb::FeatureViewMeta>,
) -> Vec<(prost_types::Timestamp, prost_types::Timestamp)> {
    meta.map(|m| {
        m.materialization_intervals
            .iter()
            .map(|i| {
                (
                    i.start_time.unwrap_or_default(),
                    i.end_time.unwrap_or_default(),
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

fn state(state: Option<i32>) -> FeatureViewState {
    state
        .and_then(|s| FeatureViewState::try_from(s).ok())
        .unwrap_or(FeatureViewState::StateUnspecified)
}

/// A [`FeatureView`] from a `FeatureViewSpec` or a `StreamFeatureViewSpec` (same field names).
macro_rules! batch_view {
    ($s:expr, $meta:expr, $kind:expr, $offline:expr) => {
        FeatureView {
            name: $s.name.clone(),
            kind: $kind,
            entities: $s.entities.clone(),
            entity_columns: $s.entity_columns.iter().map(Field::from).collect(),
            features: $s.features.iter().map(Field::from).collect(),
            ttl: ttl($s.ttl.as_ref()),
            batch_source: $s.batch_source.as_ref().map(DataSource::from_proto),
            stream_source: $s.stream_source.as_ref().map(DataSource::from_proto),
            online: $s.online,
            offline: $offline,
            disabled: $s.disabled,
            state: state($meta.map(|m| m.state)),
            materialization_intervals: intervals($meta),
            tags: $s.tags.clone().into_iter().collect(),
            description: $s.description.clone(),
            owner: $s.owner.clone(),
            odfv: None,
            version: version_number(&$s.version, $meta.map(|m| m.current_version_number)),
        }
    };
}

/// Feast's `FeatureView.from_proto` rule for the version number: the meta's when above 0; 0
/// when the spec pins a version (`v0`); else none.
fn version_number(spec_version: &str, current: Option<i32>) -> Option<i32> {
    match current.unwrap_or(0) {
        n if n > 0 => Some(n),
        _ if !spec_version.is_empty() && !spec_version.eq_ignore_ascii_case("latest") => Some(0),
        _ => None,
    }
}

impl Catalog {
    /// The objects of `project`. Fails if the project has no objects and no project record.
    pub fn new(snapshot: &RegistrySnapshot, project: &str) -> Result<Self, RegistryError> {
        let r = &snapshot.proto;
        let invalid = |kind: &'static str, name: &str, message: &str| RegistryError::Invalid {
            kind,
            name: name.to_owned(),
            project: project.to_owned(),
            message: message.to_owned(),
        };
        let mut c = Catalog {
            project: project.to_owned(),
            ..Default::default()
        };
        for e in &r.entities {
            let Some(s) = &e.spec else { continue };
            if s.project != project {
                continue;
            }
            c.entities.push(Entity {
                name: s.name.clone(),
                join_key: s.join_key.clone(),
                value_type: ValueType::try_from(s.value_type).unwrap_or(ValueType::Invalid),
                description: s.description.clone(),
                tags: s.tags.clone().into_iter().collect(),
                owner: s.owner.clone(),
            });
        }
        c.data_sources = r
            .data_sources
            .iter()
            .filter(|d| d.project == project)
            .map(DataSource::from_proto)
            .collect();
        for v in &r.feature_views {
            let Some(s) = v.spec.as_ref().filter(|s| s.project == project) else {
                continue;
            };
            c.feature_views.push(batch_view!(
                s,
                v.meta.as_ref(),
                ViewKind::FeatureView,
                s.offline
            ));
        }
        for rec in r
            .feature_view_version_history
            .iter()
            .flat_map(|h| &h.records)
            .filter(|rec| rec.project_id == project)
        {
            use prost::Message;
            let view = match rec.feature_view_type.as_str() {
                "feature_view" => pb::FeatureView::decode(rec.feature_view_proto.as_slice())
                    .ok()
                    .and_then(|v| {
                        let s = v.spec.as_ref()?;
                        Some(batch_view!(
                            s,
                            v.meta.as_ref(),
                            ViewKind::FeatureView,
                            s.offline
                        ))
                    }),
                "stream_feature_view" => {
                    pb::StreamFeatureView::decode(rec.feature_view_proto.as_slice())
                        .ok()
                        .and_then(|v| {
                            let s = v.spec.as_ref()?;
                            Some(batch_view!(
                                s,
                                v.meta.as_ref(),
                                ViewKind::StreamFeatureView,
                                false
                            ))
                        })
                }
                _ => None,
            };
            if let Some(mut view) = view {
                view.version = Some(rec.version_number);
                c.versions.push(ViewVersion {
                    number: rec.version_number,
                    view,
                });
            }
        }
        for v in &r.stream_feature_views {
            let Some(s) = v.spec.as_ref().filter(|s| s.project == project) else {
                continue;
            };
            c.feature_views.push(batch_view!(
                s,
                v.meta.as_ref(),
                ViewKind::StreamFeatureView,
                false
            ));
        }
        for v in &r.on_demand_feature_views {
            let Some(s) = v.spec.as_ref().filter(|s| s.project == project) else {
                continue;
            };
            let mut source_views = Vec::new();
            let mut sources = Vec::new();
            let mut request_sources = Vec::new();
            for (key, src) in &s.sources {
                match &src.source {
                    Some(Source::FeatureView(fv)) => {
                        let name = fv
                            .spec
                            .as_ref()
                            .map(|s| s.name.clone())
                            .unwrap_or_else(|| key.clone());
                        source_views.push(name.clone());
                        sources.push(OnDemandSource {
                            view: name,
                            alias: None,
                            features: fv
                                .spec
                                .iter()
                                .flat_map(|s| s.features.iter().map(|f| f.name.clone()))
                                .collect(),
                        });
                    }
                    Some(Source::FeatureViewProjection(p)) => {
                        source_views.push(p.feature_view_name.clone());
                        sources.push(OnDemandSource {
                            view: p.feature_view_name.clone(),
                            alias: Some(p.feature_view_name_alias.clone())
                                .filter(|a| !a.is_empty()),
                            features: p.feature_columns.iter().map(|f| f.name.clone()).collect(),
                        });
                    }
                    Some(Source::RequestDataSource(d)) => {
                        request_sources.push(DataSource::from_proto(d))
                    }
                    None => {
                        return Err(invalid(
                            "on demand feature view",
                            &s.name,
                            &format!("source {key} is empty"),
                        ));
                    }
                }
            }
            let udf_source = match s
                .feature_transformation
                .as_ref()
                .and_then(|t| t.transformation.as_ref())
            {
                Some(pb::feature_transformation_v2::Transformation::UserDefinedFunction(f)) => {
                    f.body_text.clone()
                }
                _ => s
                    .user_defined_function
                    .as_ref()
                    .map(|f| f.body_text.clone())
                    .unwrap_or_default(),
            };
            c.feature_views.push(FeatureView {
                name: s.name.clone(),
                kind: ViewKind::OnDemandFeatureView,
                entities: s.entities.clone(),
                entity_columns: s.entity_columns.iter().map(Field::from).collect(),
                features: s.features.iter().map(Field::from).collect(),
                ttl: None,
                batch_source: None,
                stream_source: None,
                online: true,
                offline: false,
                disabled: s.disabled,
                state: state(v.meta.as_ref().map(|m| m.state)),
                materialization_intervals: Vec::new(),
                tags: s.tags.clone().into_iter().collect(),
                description: s.description.clone(),
                owner: s.owner.clone(),
                odfv: Some(OnDemand {
                    mode: s.mode.clone(),
                    write_to_online_store: s.write_to_online_store,
                    source_views,
                    sources,
                    request_sources,
                    udf_source,
                }),
                version: None,
            });
        }
        for v in &r.label_views {
            let Some(s) = v.spec.as_ref().filter(|s| s.project == project) else {
                continue;
            };
            c.feature_views.push(FeatureView {
                name: s.name.clone(),
                kind: ViewKind::LabelView,
                entities: s.entities.clone(),
                entity_columns: s.entity_columns.iter().map(Field::from).collect(),
                features: s.features.iter().map(Field::from).collect(),
                ttl: ttl(s.ttl.as_ref()),
                // A label view's rows are written where its push source's are (as Feast's
                // views with a push source take its batch source).
                batch_source: s
                    .source
                    .as_ref()
                    .and_then(|d| d.batch_source.as_deref())
                    .map(DataSource::from_proto),
                stream_source: s.source.as_ref().map(DataSource::from_proto),
                online: s.online,
                offline: false,
                disabled: false,
                state: FeatureViewState::StateUnspecified,
                materialization_intervals: Vec::new(),
                tags: s.tags.clone().into_iter().collect(),
                description: s.description.clone(),
                owner: s.owner.clone(),
                odfv: None,
                version: None,
            });
        }
        for fs in &r.feature_services {
            let Some(s) = fs.spec.as_ref().filter(|s| s.project == project) else {
                continue;
            };
            let mut projections = Vec::new();
            for p in &s.features {
                if !c
                    .feature_views
                    .iter()
                    .any(|v| v.name == p.feature_view_name)
                {
                    return Err(invalid(
                        "feature service",
                        &s.name,
                        &format!(
                            "it references feature view {} which does not exist",
                            p.feature_view_name
                        ),
                    ));
                }
                projections.push(Projection {
                    view: p.feature_view_name.clone(),
                    alias: (!p.feature_view_name_alias.is_empty())
                        .then(|| p.feature_view_name_alias.clone()),
                    features: p.feature_columns.iter().map(Field::from).collect(),
                    join_key_map: p.join_key_map.clone().into_iter().collect(),
                    version: p.version_tag,
                });
            }
            c.feature_services.push(FeatureService {
                name: s.name.clone(),
                projections,
                tags: s.tags.clone().into_iter().collect(),
                description: s.description.clone(),
                owner: s.owner.clone(),
                logging: s.logging_config.as_ref().and_then(logging_config),
            });
        }
        for p in &r.permissions {
            let Some(s) = p.spec.as_ref().filter(|s| s.project == project) else {
                continue;
            };
            use pb::{
                permission_spec::{AuthzedAction, Type},
                policy::PolicyType,
            };
            let policy = match s.policy.as_ref().and_then(|p| p.policy_type.as_ref()) {
                Some(PolicyType::RoleBasedPolicy(r)) => Policy::Roles(r.roles.clone()),
                Some(PolicyType::GroupBasedPolicy(g)) => Policy::Groups(g.groups.clone()),
                Some(PolicyType::NamespaceBasedPolicy(n)) => {
                    Policy::Namespaces(n.namespaces.clone())
                }
                Some(PolicyType::CombinedGroupNamespacePolicy(c)) => Policy::GroupsAndNamespaces {
                    groups: c.groups.clone(),
                    namespaces: c.namespaces.clone(),
                },
                None => Policy::None,
            };
            c.permissions.push(Permission {
                name: s.name.clone(),
                types: s
                    .types
                    .iter()
                    .map(|t| {
                        Type::try_from(*t)
                            .map_or_else(|_| format!("UNKNOWN_{t}"), |t| t.as_str_name().to_owned())
                    })
                    .collect(),
                name_patterns: s.name_patterns.clone(),
                required_tags: s.required_tags.clone().into_iter().collect(),
                actions: s
                    .actions
                    .iter()
                    .map(|a| {
                        AuthzedAction::try_from(*a)
                            .map_or_else(|_| format!("UNKNOWN_{a}"), |a| a.as_str_name().to_owned())
                    })
                    .collect(),
                policy,
                tags: s.tags.clone().into_iter().collect(),
            });
        }
        c.infra = snapshot
            .infra(project)
            .infra_objects
            .iter()
            .map(|o| match &o.infra_object {
                Some(pb::infra_object::InfraObject::SqliteTable(t)) => InfraObject::SqliteTable {
                    path: t.path.clone(),
                    name: t.name.clone(),
                },
                Some(pb::infra_object::InfraObject::DatastoreTable(t)) => {
                    InfraObject::DatastoreTable {
                        project: t.project.clone(),
                        name: t.name.clone(),
                    }
                }
                _ => InfraObject::Other {
                    class_type: o.infra_object_class_type.clone(),
                },
            })
            .collect();
        let has_project_record = r
            .projects
            .iter()
            .any(|p| p.spec.as_ref().is_some_and(|s| s.name == project));
        if !has_project_record && c.entities.is_empty() && c.feature_views.is_empty() {
            return Err(RegistryError::ProjectNotFound {
                project: project.to_owned(),
            });
        }
        Ok(c)
    }

    pub fn view(&self, name: &str) -> Option<&FeatureView> {
        self.feature_views.iter().find(|v| v.name == name)
    }

    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&FeatureService> {
        self.feature_services.iter().find(|s| s.name == name)
    }

    /// The view's join keys and their types ([`larder_types::join_key::join_key_type`]: the
    /// entity column's declared type, else its entity's, else STRING); empty for entity-less
    /// views. Every path that builds entity keys for a view types them with this.
    pub fn join_keys(&self, v: &FeatureView) -> Vec<(String, ValueType)> {
        if v.is_entityless() {
            return Vec::new();
        }
        v.entity_columns
            .iter()
            .map(|c| {
                let entity = self
                    .entities
                    .iter()
                    .find(|e| e.join_key == c.name)
                    .map(|e| e.value_type);
                (
                    c.name.clone(),
                    larder_types::join_key::join_key_type(c.value_type, entity),
                )
            })
            .collect()
    }
}

/// Every project record in the registry.
pub fn projects(snapshot: &RegistrySnapshot) -> Vec<Project> {
    snapshot
        .proto
        .projects
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .map(|s| Project {
            name: s.name.clone(),
            description: s.description.clone(),
            tags: s.tags.clone().into_iter().collect(),
            owner: s.owner.clone(),
        })
        .collect()
}

/// Feast's tag filter: the object has every `(key, value)` pair.
pub fn has_all_tags(tags: &BTreeMap<String, String>, wanted: &[(String, String)]) -> bool {
    wanted.iter().all(|(k, v)| tags.get(k) == Some(v))
}

/// A `LoggingConfig` message as the model's; none when it names no destination (as Feast reads it).
fn logging_config(l: &pb::LoggingConfig) -> Option<LoggingConfig> {
    use pb::logging_config::Destination as D;
    let destination = match l.destination.as_ref()? {
        D::FileDestination(f) => LogDestination::File(FileLogDestination {
            path: f.path.clone(),
            s3_endpoint_override: f.s3_endpoint_override.clone(),
            partition_by: f.partition_by.clone(),
        }),
        D::BigqueryDestination(_) => LogDestination::Other("bigquery_destination".into()),
        D::RedshiftDestination(_) => LogDestination::Other("redshift_destination".into()),
        D::SnowflakeDestination(_) => LogDestination::Other("snowflake_destination".into()),
        D::AthenaDestination(_) => LogDestination::Other("athena_destination".into()),
        D::CouchbaseColumnarDestination(_) => {
            LogDestination::Other("couchbase_columnar_destination".into())
        }
        D::CustomDestination(c) => LogDestination::Other(c.kind.clone()),
    };
    Some(LoggingConfig {
        sample_rate: l.sample_rate,
        destination,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::core::{
        Permission as PbPermission, PermissionSpec, Policy as PbPolicy, Project, ProjectSpec,
        Registry, RoleBasedPolicy,
        permission_spec::{AuthzedAction, Type},
        policy::PolicyType,
    };

    #[test]
    fn permissions_and_missing_projects() {
        let r = Registry {
            projects: vec![Project {
                spec: Some(ProjectSpec {
                    name: "p".into(),
                    ..Default::default()
                }),
                meta: None,
            }],
            permissions: vec![PbPermission {
                spec: Some(PermissionSpec {
                    name: "reader".into(),
                    project: "p".into(),
                    types: vec![Type::FeatureView as i32],
                    actions: vec![AuthzedAction::ReadOnline as i32],
                    name_patterns: vec!["driver.*".into()],
                    policy: Some(PbPolicy {
                        policy_type: Some(PolicyType::RoleBasedPolicy(RoleBasedPolicy {
                            roles: vec!["r".into()],
                        })),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                meta: None,
            }],
            ..Default::default()
        };
        let snap = RegistrySnapshot::from_proto(r);
        let c = Catalog::new(&snap, "p").unwrap();
        assert_eq!(c.permissions[0].types, ["FEATURE_VIEW"]);
        assert_eq!(c.permissions[0].actions, ["READ_ONLINE"]);
        assert_eq!(c.permissions[0].policy, Policy::Roles(vec!["r".into()]));
        assert!(matches!(
            Catalog::new(&snap, "other"),
            Err(RegistryError::ProjectNotFound { .. })
        ));
    }
}
