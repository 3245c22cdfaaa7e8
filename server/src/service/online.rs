//! Online feature retrieval: resolves feature references or a feature service against a
//! serving index precomputed from the registry, turns request entity columns into Feast
//! entity keys, reads every view in one online-store call, and lays the answer out column by
//! column as Feast does (join-key columns first, then each view's features).

use std::{
    borrow::Cow,
    collections::HashMap as StdHashMap,
    hash::{BuildHasher, Hash, Hasher},
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;
use larder_online::{
    layout::ViewLayout,
    store::{OnlineStore, ViewRead},
};
use larder_protos::feast::{
    core::FeatureViewState,
    serving::FieldStatus,
    types::{Value, value_type::Enum as ValueType},
};
use larder_registry::{
    cache::RegistryCache,
    clock::Clock,
    config::OnlineTtl,
    model::{Catalog, ViewKind},
};
use larder_types::entity_key::{EntityValue, KeyVersion, entityless_key, serialize_entity_key};
pub use larder_types::scalar::Scalar;
use prost_types::Timestamp;

use crate::error::{ErrorCode, ServiceError};

use super::{
    feature_log::LogPlan,
    ondemand::{self, Engine},
};

/// The index's maps are looked up with request strings on every request: a fast keyed hash
/// (foldhash, seeded per process) instead of SipHash. Requests only look these maps up, so
/// request strings cannot grow a table.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

/// Which features a request wants (borrowed from the request where it can be).
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureSelection<'a> {
    /// `"<view>:<feature>"` references.
    Refs(Vec<Cow<'a, str>>),
    /// A feature service name.
    Service(Cow<'a, str>),
}

/// A `get-online-features` request, transport-independent.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineRequest<'a> {
    pub selection: FeatureSelection<'a>,
    /// Entity columns in request order: column name → one value per row.
    pub entities: Vec<(Cow<'a, str>, Vec<Scalar>)>,
    pub full_feature_names: bool,
    pub include_view_metadata: bool,
}

/// One output column.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Column {
    pub values: Vec<Value>,
    pub statuses: Vec<FieldStatus>,
    pub event_timestamps: Vec<Timestamp>,
}

/// The answer: `columns[i]` holds `feature_names[i]` for every request row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OnlineResponse {
    pub feature_names: Vec<String>,
    pub columns: Vec<Column>,
    /// `(view name, version)` per requested view, when asked for.
    pub view_metadata: Option<Vec<(String, i32)>>,
}

/// Settings of online retrieval taken from `feature_store.yaml`.
#[derive(Debug, Clone)]
pub struct OnlineConfig {
    pub project: String,
    pub key_version: KeyVersion,
    pub online_ttl: OnlineTtl,
    pub serve_while_materializing: bool,
    /// How on-demand views run.
    pub engines: ondemand::Engines,
    /// Where served features of logged feature services go, when logging is on.
    pub feature_log: Option<Arc<super::feature_log::FeatureLogger>>,
    /// `registry.enable_online_feature_view_versioning`: versions above 0 are stored apart
    /// and `@v<N>` references are served.
    pub versioning: bool,
}

/// A servable view, precomputed when a registry loads.
#[derive(Debug)]
struct ViewPlan {
    name: String,
    layout: ViewLayout,
    /// Feature name → index in `layout.features`.
    feature_index: HashMap<String, usize>,
    /// The view's join keys and their authoritative types (`__dummy_id` for entity-less views).
    join_keys: Vec<(String, ValueType)>,
    entityless: bool,
    ttl: Option<Duration>,
    /// Its version number, if it has one (answered in the version metadata).
    version: Option<i32>,
    /// Why the view cannot be served now, if it cannot.
    unservable: Option<ServiceError>,
    /// `feast_online_features_status_total{feature_view, status}`, indexed by `FieldStatus`.
    status_counters: [metrics::Counter; 5],
}

/// An on-demand view computed at request time (one not written to the online store).
#[derive(Debug)]
struct OdfvPlan {
    name: String,
    /// Output features and their declared types.
    features: Vec<(String, ValueType)>,
    feature_index: HashMap<String, usize>,
    engine: Engine,
    unservable: Option<ServiceError>,
    /// The feature views it reads: view name → the features read (indexes in its layout).
    sources: Vec<(String, Vec<usize>)>,
    request_fields: Vec<String>,
    /// Where each input column of the compiled program (or of the Python engine's frame)
    /// comes from.
    inputs: Vec<InputRef>,
    /// The Python engine's input frame's column names (one per `inputs`).
    python_inputs: Vec<String>,
    /// Each output feature's position in the UDF's returned frame (Feast answers in that order).
    output_rank: Vec<usize>,
}

/// Where a column read for a request is: in the answer, or read only for on-demand views.
#[derive(Debug, Clone, Copy)]
enum Loc {
    Out(usize),
    Hidden(usize),
}

/// The source of one column of an on-demand view's input frame.
#[derive(Debug, Clone)]
enum InputRef {
    Request(String),
    Feature { view: String, feature: usize },
    JoinKey(String),
}

/// One projection of a feature service, resolved.
#[derive(Debug, Clone)]
struct ServiceProjection {
    view: String,
    alias: Option<String>,
    features: Vec<String>,
    join_key_map: Vec<(String, String)>,
    version: Option<i32>,
}

/// Everything the request path needs, built once per registry generation.
#[derive(Debug)]
struct ServingIndex {
    generation: u64,
    views: HashMap<String, Arc<ViewPlan>>,
    /// Every recorded version of each view, by (view, version), when versioning is on.
    versions: HashMap<(String, i32), Arc<ViewPlan>>,
    odfvs: HashMap<String, Arc<OdfvPlan>>,
    services: HashMap<String, Vec<ServiceProjection>>,
    /// The log plans of logged feature services (when logging is on).
    service_logs: HashMap<String, Arc<LogPlan>>,
    /// Join key → type, for echoing entity columns.
    join_key_types: HashMap<String, ValueType>,
    /// Entity name → join key (requests may use entity names).
    entity_join_keys: HashMap<String, String>,
    /// Set when the project could not be indexed (e.g. it is not in the registry).
    error: Option<ServiceError>,
    /// Selections already resolved against this index, by a hash of the selection (entries
    /// compare the selection itself); at most [`RESOLVED_CAPACITY`] selections.
    resolved: Mutex<HashMap<u64, Vec<Arc<Resolved>>>>,
    hasher: foldhash::fast::RandomState,
}

/// How many distinct selections an index remembers; beyond that they are resolved each time.
const RESOLVED_CAPACITY: usize = 1024;

/// A selection resolved against an index: the views to read and the answer's feature names
/// (checked for Feast's name collisions).
#[derive(Debug)]
struct Resolved {
    selection: FeatureSelection<'static>,
    full_feature_names: bool,
    wanted: Vec<Wanted>,
    odfvs: Vec<WantedOdfv>,
    feature_names: Vec<String>,
    /// A logged service's plan and, per logged feature, its place among the answered features.
    log: Option<(Arc<LogPlan>, Vec<usize>)>,
}

impl Resolved {
    fn is(&self, selection: &FeatureSelection<'_>, full_feature_names: bool) -> bool {
        self.full_feature_names == full_feature_names && self.selection == *selection
    }
}

fn selection_hash(
    hasher: &foldhash::fast::RandomState,
    selection: &FeatureSelection<'_>,
    full_feature_names: bool,
) -> u64 {
    let mut h = hasher.build_hasher();
    full_feature_names.hash(&mut h);
    match selection {
        FeatureSelection::Refs(refs) => {
            0u8.hash(&mut h);
            for r in refs {
                r.as_ref().hash(&mut h);
            }
        }
        FeatureSelection::Service(name) => {
            1u8.hash(&mut h);
            name.as_ref().hash(&mut h);
        }
    }
    h.finish()
}

fn owned_selection(selection: &FeatureSelection<'_>) -> FeatureSelection<'static> {
    match selection {
        FeatureSelection::Refs(refs) => {
            FeatureSelection::Refs(refs.iter().map(|r| Cow::Owned(r.to_string())).collect())
        }
        FeatureSelection::Service(name) => FeatureSelection::Service(Cow::Owned(name.to_string())),
    }
}

impl ServingIndex {
    fn build(
        generation: u64,
        snapshot: &larder_registry::store::RegistrySnapshot,
        cfg: &OnlineConfig,
    ) -> Self {
        let mut index = ServingIndex {
            generation,
            views: HashMap::default(),
            versions: HashMap::default(),
            odfvs: HashMap::default(),
            services: HashMap::default(),
            service_logs: HashMap::default(),
            join_key_types: HashMap::default(),
            entity_join_keys: HashMap::default(),
            error: None,
            resolved: Mutex::default(),
            hasher: foldhash::fast::RandomState::default(),
        };
        let catalog = match Catalog::new(snapshot, &cfg.project) {
            Ok(c) => c,
            Err(e) => {
                index.error = Some(e.into());
                return index;
            }
        };
        for e in &catalog.entities {
            index
                .entity_join_keys
                .insert(e.name.clone(), e.join_key.clone());
            if e.value_type != ValueType::Invalid {
                index
                    .join_key_types
                    .insert(e.join_key.clone(), e.value_type);
            }
        }
        for v in &catalog.feature_views {
            if v.kind == ViewKind::LabelView && !v.online {
                continue;
            }
            let (join_keys, entityless) = keys_of(&catalog, v);
            if !entityless {
                for (k, t) in &join_keys {
                    index.join_key_types.insert(k.clone(), *t);
                }
            }
            let allowed = matches!(
                v.state,
                FeatureViewState::StateUnspecified | FeatureViewState::AvailableOnline
            ) || (v.state == FeatureViewState::Materializing
                && cfg.serve_while_materializing);
            let unservable = if v.disabled {
                Some(ServiceError::new(
                    ErrorCode::Conflict,
                    format!(
                        "feature view {} is disabled and cannot serve features",
                        v.name
                    ),
                ))
            } else if !allowed {
                Some(ServiceError::new(
                    ErrorCode::Conflict,
                    format!(
                        "feature view {} cannot serve features in state {}",
                        v.name,
                        v.state.as_str_name()
                    ),
                ))
            } else {
                None
            };
            if let Some(odfv) = v.odfv.as_ref().filter(|o| !o.write_to_online_store) {
                index.odfvs.insert(
                    v.name.clone(),
                    Arc::new(OdfvPlan::build(&catalog, v, odfv, unservable, &cfg.engines)),
                );
                continue;
            }
            index.views.insert(
                v.name.clone(),
                Arc::new(ViewPlan::build(v, cfg, join_keys, entityless, unservable)),
            );
        }
        if cfg.versioning {
            for r in &catalog.versions {
                let v = &r.view;
                let (join_keys, entityless) = keys_of(&catalog, v);
                index.versions.insert(
                    (v.name.clone(), r.number),
                    Arc::new(ViewPlan::build(v, cfg, join_keys, entityless, None)),
                );
            }
        }
        for s in &catalog.feature_services {
            let projections = s
                .projections
                .iter()
                .map(|p| ServiceProjection {
                    view: p.view.clone(),
                    alias: p.alias.clone(),
                    features: p.features.iter().map(|f| f.name.clone()).collect(),
                    join_key_map: p
                        .join_key_map
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    version: p.version,
                })
                .collect();
            index.services.insert(s.name.clone(), projections);
            if cfg.feature_log.is_some() {
                match LogPlan::build(&catalog, s) {
                    Ok(Some(plan)) => {
                        index.service_logs.insert(s.name.clone(), Arc::new(plan));
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        }
        index
    }
}

/// The keys a view's rows are stored under and whether it is entity-less (keyed by
/// `__dummy_id`); a stored on-demand view is keyed by the join keys of the views it reads.
fn keys_of(
    catalog: &Catalog,
    v: &larder_registry::model::FeatureView,
) -> (Vec<(String, ValueType)>, bool) {
    let odfv_keys =
        (v.kind == ViewKind::OnDemandFeatureView).then(|| ondemand::join_keys(catalog, v));
    let entityless = odfv_keys.as_ref().map_or(v.is_entityless(), Vec::is_empty);
    if entityless {
        return (vec![("__dummy_id".to_owned(), ValueType::String)], true);
    }
    (odfv_keys.unwrap_or_else(|| catalog.join_keys(v)), false)
}

/// Feature name → position in the view's features.
fn feature_index(v: &larder_registry::model::FeatureView) -> HashMap<String, usize> {
    v.features
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.clone(), i))
        .collect()
}

impl ViewPlan {
    fn build(
        v: &larder_registry::model::FeatureView,
        cfg: &OnlineConfig,
        join_keys: Vec<(String, ValueType)>,
        entityless: bool,
        unservable: Option<ServiceError>,
    ) -> Self {
        ViewPlan {
            name: v.name.clone(),
            feature_index: feature_index(v),
            layout: super::view_layout(&cfg.project, v, cfg.versioning),
            join_keys,
            entityless,
            ttl: v.ttl,
            version: v.version,
            unservable,
            status_counters: std::array::from_fn(|i| {
                let status = FieldStatus::try_from(i as i32).unwrap_or(FieldStatus::Invalid);
                metrics::counter!("feast_online_features_status_total",
                    "feature_view" => v.name.clone(), "status" => status.as_str_name())
            }),
        }
    }
}

impl OdfvPlan {
    fn build(
        catalog: &Catalog,
        v: &larder_registry::model::FeatureView,
        odfv: &larder_registry::model::OnDemand,
        unservable: Option<ServiceError>,
        engines: &ondemand::Engines,
    ) -> Self {
        let engine = ondemand::engine(catalog, v, engines);
        let mut sources: Vec<(String, Vec<usize>)> = Vec::new();
        // Input column name → (view, feature index), short and full names.
        let mut by_name: Vec<(String, String, usize)> = Vec::new();
        for s in &odfv.sources {
            let Some(view) = catalog.view(&s.view) else {
                continue;
            };
            let mut idxs = Vec::new();
            for (f, _) in ondemand::source_features(catalog, s) {
                if let Some(i) = view.features.iter().position(|x| x.name == f) {
                    idxs.push(i);
                    by_name.push((f.to_owned(), s.view.clone(), i));
                    by_name.push((format!("{}__{f}", s.name_to_use()), s.view.clone(), i));
                }
            }
            sources.push((s.view.clone(), idxs));
        }
        let request_fields: Vec<String> = ondemand::request_fields(odfv)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        let mut python_inputs = Vec::new();
        let (inputs, output_rank) = match &engine {
            Engine::Native(p) => (
                p.inputs()
                    .iter()
                    .map(|c| {
                        if request_fields.contains(c) {
                            InputRef::Request(c.clone())
                        } else if let Some((_, view, i)) = by_name.iter().find(|(n, ..)| n == c) {
                            InputRef::Feature {
                                view: view.clone(),
                                feature: *i,
                            }
                        } else {
                            InputRef::JoinKey(c.clone())
                        }
                    })
                    .collect(),
                v.features
                    .iter()
                    .map(|f| p.output_position(&f.name).unwrap_or(usize::MAX))
                    .collect(),
            ),
            Engine::Python(..) => {
                // The whole input frame, as Feast builds it: join keys, source features under
                // their short names, request data.
                let mut inputs: Vec<(String, InputRef)> = Vec::new();
                for s in &odfv.sources {
                    if let Some(view) = catalog.view(&s.view) {
                        for (k, _) in catalog.join_keys(view) {
                            inputs.push((k.clone(), InputRef::JoinKey(k)));
                        }
                    }
                }
                for (name, view, i) in by_name.iter().step_by(2) {
                    inputs.push((
                        name.clone(),
                        InputRef::Feature {
                            view: view.clone(),
                            feature: *i,
                        },
                    ));
                }
                for f in &request_fields {
                    inputs.push((f.clone(), InputRef::Request(f.clone())));
                }
                let mut seen = std::collections::HashSet::new();
                inputs.retain(|(n, _)| seen.insert(n.clone()));
                let (names, refs) = inputs.into_iter().unzip();
                python_inputs = names;
                (refs, (0..v.features.len()).collect())
            }
            Engine::Unavailable(_) => (Vec::new(), (0..v.features.len()).collect()),
        };
        OdfvPlan {
            name: v.name.clone(),
            features: v
                .features
                .iter()
                .map(|f| (f.name.clone(), f.value_type))
                .collect(),
            feature_index: feature_index(v),
            engine,
            unservable,
            sources,
            request_fields,
            inputs,
            python_inputs,
            output_rank,
        }
    }
}

/// A view with the features a request wants from it.
#[derive(Debug)]
struct Wanted {
    plan: Arc<ViewPlan>,
    alias: Option<String>,
    /// The features read; the first `visible` are answered, the rest only feed on-demand views.
    features: Vec<usize>,
    visible: usize,
    join_key_map: Vec<(String, String)>,
    /// The version a reference pinned (`@v<N>`); its features are named `<view>@v<N>__…`.
    version_tag: Option<i32>,
}

/// An on-demand view with the outputs a request wants from it (in the UDF's frame order).
#[derive(Debug)]
struct WantedOdfv {
    plan: Arc<OdfvPlan>,
    alias: Option<String>,
    features: Vec<usize>,
}

/// Serves online features from the registry cache and an online store.
#[derive(Debug)]
pub struct OnlineService {
    registry: Arc<RegistryCache>,
    store: Arc<dyn OnlineStore>,
    config: OnlineConfig,
    clock: Arc<dyn Clock>,
    index: ArcSwap<ServingIndex>,
    rebuild: Mutex<()>,
    metrics: RequestMetrics,
}

/// Per-request metric handles, registered once (the request path only records).
#[derive(Clone, Debug)]
struct RequestMetrics {
    read_duration: metrics::Histogram,
    requests: metrics::Counter,
    entity_count: metrics::Histogram,
}

impl RequestMetrics {
    fn new() -> Self {
        Self {
            read_duration: metrics::histogram!(
                "feast_feature_server_online_store_read_duration_seconds"
            ),
            requests: metrics::counter!("feast_online_features_request_total"),
            entity_count: metrics::histogram!("feast_online_features_entity_count"),
        }
    }
}

const EPOCH: Timestamp = Timestamp {
    seconds: 0,
    nanos: 0,
};

impl OnlineService {
    pub fn new(
        registry: Arc<RegistryCache>,
        store: Arc<dyn OnlineStore>,
        config: OnlineConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let loaded = registry.current();
        let index = ServingIndex::build(loaded.generation, &loaded.snapshot, &config);
        Self {
            registry,
            store,
            config,
            clock,
            index: ArcSwap::from_pointee(index),
            rebuild: Mutex::new(()),
            metrics: RequestMetrics::new(),
        }
    }

    pub fn registry(&self) -> &Arc<RegistryCache> {
        &self.registry
    }

    /// The same service (registry cache, settings, current index) over another handle to the
    /// store: one per serving thread.
    pub fn with_store(&self, store: Arc<dyn OnlineStore>) -> Self {
        Self {
            registry: self.registry.clone(),
            store,
            config: self.config.clone(),
            clock: self.clock.clone(),
            index: ArcSwap::new(self.index.load_full()),
            rebuild: Mutex::new(()),
            metrics: self.metrics.clone(),
        }
    }

    pub fn store(&self) -> &Arc<dyn OnlineStore> {
        &self.store
    }

    /// The index of the current registry generation (rebuilt at most once per generation).
    fn index(&self) -> Arc<ServingIndex> {
        let loaded = self.registry.current();
        let index = self.index.load_full();
        if index.generation == loaded.generation {
            return index;
        }
        let _guard = self.rebuild.lock().expect("not poisoned");
        let index = self.index.load_full();
        if index.generation == loaded.generation {
            return index;
        }
        let fresh = Arc::new(ServingIndex::build(
            loaded.generation,
            &loaded.snapshot,
            &self.config,
        ));
        self.index.store(fresh.clone());
        fresh
    }

    fn resolve(
        &self,
        index: &ServingIndex,
        selection: &FeatureSelection<'_>,
    ) -> Result<(Vec<Wanted>, Vec<WantedOdfv>), ServiceError> {
        let project = &self.config.project;
        let view = |name: &str| -> Result<&Arc<ViewPlan>, ServiceError> {
            let plan = index
                .views
                .get(name)
                .ok_or_else(|| super::view_not_found(name, project))?;
            if let Some(e) = &plan.unservable {
                return Err(e.clone());
            }
            Ok(plan)
        };
        let versioned = |name: &str, n: i32| -> Result<&Arc<ViewPlan>, ServiceError> {
            if !self.config.versioning {
                return Err(super::versioning_disabled(name, n));
            }
            index
                .versions
                .get(&(name.to_owned(), n))
                .ok_or_else(|| super::version_not_found(name, n, project))
        };
        let odfv = |name: &str| -> Option<Result<&Arc<OdfvPlan>, ServiceError>> {
            let plan = index.odfvs.get(name)?;
            Some(match (&plan.unservable, &plan.engine) {
                (Some(e), _) => Err(e.clone()),
                (None, Engine::Unavailable(why)) => Err(ondemand::unavailable(name, why)),
                (None, Engine::Native(_) | Engine::Python(..)) => Ok(plan),
            })
        };
        let not_in = |feature: &str, label: &str| {
            ServiceError::new(
                ErrorCode::NotFound,
                format!("Feature {feature} not found in projection {label}"),
            )
        };
        let feature_index =
            |plan: &ViewPlan, feature: &str, label: &str| -> Result<usize, ServiceError> {
                plan.feature_index
                    .get(feature)
                    .copied()
                    .ok_or_else(|| not_in(feature, label))
            };
        let mut wanted: Vec<Wanted> = Vec::new();
        let mut odfvs: Vec<WantedOdfv> = Vec::new();
        match selection {
            FeatureSelection::Service(name) => {
                let projections = index
                    .services
                    .get(name.as_ref())
                    .ok_or_else(|| super::service_not_found(name, project))?;
                for p in projections {
                    let label = p.alias.as_deref().unwrap_or(&p.view);
                    if let Some(plan) = odfv(&p.view) {
                        let plan = plan?;
                        let features = p
                            .features
                            .iter()
                            .map(|f| {
                                plan.feature_index
                                    .get(f)
                                    .copied()
                                    .ok_or_else(|| not_in(f, label))
                            })
                            .collect::<Result<_, _>>()?;
                        odfvs.push(WantedOdfv {
                            plan: plan.clone(),
                            alias: p.alias.clone(),
                            features,
                        });
                        continue;
                    }
                    let plan = match p.version {
                        None => view(&p.view)?,
                        Some(n) => versioned(&p.view, n)?,
                    };
                    let features: Vec<usize> = p
                        .features
                        .iter()
                        .map(|f| feature_index(plan, f, label))
                        .collect::<Result<_, _>>()?;
                    wanted.push(Wanted {
                        plan: plan.clone(),
                        alias: p.alias.clone(),
                        visible: features.len(),
                        features,
                        join_key_map: p.join_key_map.clone(),
                        version_tag: p.version,
                    });
                }
            }
            FeatureSelection::Refs(refs) => {
                if refs.is_empty() {
                    return Err(ServiceError::bad_request(
                        "No features specified for retrieval",
                    ));
                }
                let mut last: Option<usize> = None;
                for r in refs {
                    let super::FeatureRef {
                        view: view_name,
                        version,
                        feature,
                    } = super::parse_feature_ref(r)?;
                    if version.is_none()
                        && let Some(plan) = odfv(view_name)
                    {
                        let plan = plan?;
                        let idx = plan
                            .feature_index
                            .get(feature)
                            .copied()
                            .ok_or_else(|| not_in(feature, view_name))?;
                        match odfvs.iter_mut().find(|o| o.plan.name == view_name) {
                            Some(o) if o.features.contains(&idx) => {}
                            Some(o) => o.features.push(idx),
                            None => odfvs.push(WantedOdfv {
                                plan: plan.clone(),
                                alias: None,
                                features: vec![idx],
                            }),
                        }
                        continue;
                    }
                    // References mostly come grouped by view: the previous one's view is
                    // checked first.
                    let is = |w: &Wanted| w.plan.name == view_name && w.version_tag == version;
                    let at = match last {
                        Some(i) if is(&wanted[i]) => Some(i),
                        _ => wanted.iter().position(is),
                    };
                    let label = match version {
                        Some(n) => Cow::Owned(format!("{view_name}@v{n}")),
                        None => Cow::Borrowed(view_name),
                    };
                    match at {
                        Some(i) => {
                            let w = &mut wanted[i];
                            let idx = feature_index(&w.plan, feature, &label)?;
                            if !w.features.contains(&idx) {
                                w.features.push(idx);
                                w.visible += 1;
                            }
                            last = Some(i);
                        }
                        None => {
                            let plan = match version {
                                None => view(view_name)?,
                                Some(n) => versioned(view_name, n)?,
                            };
                            let idx = feature_index(plan, feature, &label)?;
                            wanted.push(Wanted {
                                plan: plan.clone(),
                                alias: None,
                                features: vec![idx],
                                visible: 1,
                                join_key_map: Vec::new(),
                                version_tag: version,
                            });
                            last = Some(wanted.len() - 1);
                        }
                    }
                }
            }
        }
        // On-demand outputs come in the order of the UDF's frame; the views they read are
        // read too (features not asked for are read, not answered).
        for o in &mut odfvs {
            o.features.sort_by_key(|i| o.plan.output_rank[*i]);
            for (source, idxs) in &o.plan.sources {
                let at = wanted.iter().position(|w| {
                    w.plan.name == *source
                        && w.alias.is_none()
                        && w.join_key_map.is_empty()
                        && w.version_tag.is_none()
                });
                let w = match at {
                    Some(i) => &mut wanted[i],
                    None => {
                        wanted.push(Wanted {
                            plan: view(source)?.clone(),
                            alias: None,
                            features: Vec::new(),
                            visible: 0,
                            join_key_map: Vec::new(),
                            version_tag: None,
                        });
                        wanted.last_mut().expect("pushed")
                    }
                };
                for i in idxs {
                    if !w.features.contains(i) {
                        w.features.push(*i);
                    }
                }
            }
        }
        Ok((wanted, odfvs))
    }

    /// `selection` resolved against `index`: remembered by the index after the first time, so a
    /// repeated selection (the usual case) is neither re-resolved nor re-named.
    fn resolved(
        &self,
        index: &ServingIndex,
        selection: &FeatureSelection<'_>,
        full_feature_names: bool,
    ) -> Result<Arc<Resolved>, ServiceError> {
        let hash = selection_hash(&index.hasher, selection, full_feature_names);
        let known = |cache: &HashMap<u64, Vec<Arc<Resolved>>>| {
            cache
                .get(&hash)
                .and_then(|rs| rs.iter().find(|r| r.is(selection, full_feature_names)))
                .cloned()
        };
        if let Some(r) = known(&index.resolved.lock().expect("not poisoned")) {
            return Ok(r);
        }
        let (wanted, odfvs) = self.resolve(index, selection)?;

        // Output names, and Feast's collision rule.
        let mut feature_names = Vec::new();
        let mut full_names = Vec::new();
        let mut name = |prefix: &str, f: &str| {
            let full = format!("{prefix}__{f}");
            feature_names.push(if full_feature_names {
                full.clone()
            } else {
                f.to_owned()
            });
            full_names.push(full);
        };
        for w in &wanted {
            let base = w.alias.as_deref().unwrap_or(&w.plan.name);
            let prefix = match w.version_tag {
                Some(n) => Cow::Owned(format!("{base}@v{n}")),
                None => Cow::Borrowed(base),
            };
            for &i in &w.features[..w.visible] {
                name(&prefix, &w.plan.layout.features[i]);
            }
        }
        for o in &odfvs {
            let prefix = o.alias.as_deref().unwrap_or(&o.plan.name);
            for &i in &o.features {
                name(prefix, &o.plan.features[i].0);
            }
        }
        // One view's references are deduplicated and its feature names are distinct (unless
        // the registry says otherwise): only several views or a service can repeat a name.
        let may_repeat = match (selection, wanted.as_slice()) {
            (FeatureSelection::Refs(_), [w]) if odfvs.is_empty() => {
                w.plan.feature_index.len() != w.plan.layout.features.len()
            }
            _ => true,
        };
        if !full_feature_names
            && may_repeat
            && let Some(dup) = super::first_repeat(&feature_names)
        {
            return Err(super::collision_error(dup));
        }

        let log = match selection {
            FeatureSelection::Service(name) => {
                index.service_logs.get(name.as_ref()).and_then(|plan| {
                    let at: Option<Vec<usize>> = plan
                        .features
                        .iter()
                        .map(|f| full_names.iter().position(|n| n == f))
                        .collect();
                    if at.is_none() {
                        tracing::warn!(feature_service = %plan.service,
                        "served features are not logged: the answer lacks a logged feature");
                    }
                    Some((plan.clone(), at?))
                })
            }
            FeatureSelection::Refs(_) => None,
        };
        let resolved = Arc::new(Resolved {
            selection: owned_selection(selection),
            full_feature_names,
            wanted,
            odfvs,
            feature_names,
            log,
        });
        let mut cache = index.resolved.lock().expect("not poisoned");
        if let Some(r) = known(&cache) {
            return Ok(r);
        }
        if cache.len() < RESOLVED_CAPACITY {
            cache.entry(hash).or_default().push(resolved.clone());
        }
        Ok(resolved)
    }

    /// The requested outputs of on-demand view `o` over `rows` rows, from its inputs' values.
    async fn run_odfv(
        &self,
        o: &WantedOdfv,
        inputs: &[&[Value]],
        rows: usize,
    ) -> Result<Vec<Vec<Value>>, ServiceError> {
        let name = &o.plan.name;
        let failed = |e| ondemand::udf_failed(name, e);
        match &o.plan.engine {
            Engine::Native(program) => {
                let cols = inputs
                    .iter()
                    .map(|v| larder_offline::ondemand::Col::from_values(v))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(failed)?;
                let wanted: Vec<&str> = o
                    .features
                    .iter()
                    .map(|i| o.plan.features[*i].0.as_str())
                    .collect();
                let computed = program.evaluate(&cols, rows, &wanted).map_err(failed)?;
                computed
                    .iter()
                    .zip(&o.features)
                    .map(|(c, i)| c.to_values(o.plan.features[*i].1).map_err(failed))
                    .collect()
            }
            Engine::Python(py, _) => {
                let input = larder_offline::ondemand::batch::inferred_batch(
                    &o.plan.python_inputs,
                    inputs,
                    rows,
                )
                .map_err(failed)?;
                let output = py.transform(name, &input).await?;
                o.features
                    .iter()
                    .map(|i| {
                        let (f, t) = &o.plan.features[*i];
                        let column = format!("{name}__{f}");
                        let a = output.column_by_name(&column).ok_or_else(|| {
                            ServiceError::bad_request(format!(
                                "on demand feature view {name}: the UDF returned no column {f}"
                            ))
                        })?;
                        Ok(larder_offline::convert::feature_values(&column, a, *t)?)
                    })
                    .collect()
            }
            Engine::Unavailable(why) => Err(ondemand::unavailable(name, why)),
        }
    }

    /// Answers a `get-online-features` request.
    pub async fn get_online_features(
        &self,
        req: &OnlineRequest<'_>,
    ) -> Result<OnlineResponse, ServiceError> {
        let index = self.index();
        if let Some(e) = &index.error {
            return Err(e.clone());
        }
        let resolved = self.resolved(&index, &req.selection, req.full_feature_names)?;
        let wanted = &resolved.wanted;

        // Entity columns: entity names become join keys; a later column replaces an earlier one.
        let mut columns: Vec<(&str, &[Scalar])> = Vec::new();
        for (name, values) in &req.entities {
            let name = index
                .entity_join_keys
                .get(name.as_ref())
                .map_or(name.as_ref(), String::as_str);
            match columns.iter_mut().find(|(n, _)| *n == name) {
                Some(c) => c.1 = values,
                None => columns.push((name, values)),
            }
        }
        let rows = columns.first().map_or(0, |c| c.1.len());
        if columns.iter().any(|c| c.1.len() != rows) {
            return Err(ServiceError::bad_request(
                "All entity rows must have the same columns.",
            ));
        }
        let column = |name: &str| columns.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        if !resolved.odfvs.is_empty() {
            let mut missing: Vec<String> = resolved
                .odfvs
                .iter()
                .flat_map(|o| o.plan.request_fields.iter())
                .filter(|f| column(f).is_none())
                .cloned()
                .collect();
            if !missing.is_empty() {
                missing.sort();
                missing.dedup();
                return Err(ondemand::request_data_missing(&missing));
            }
        }

        // Entity keys per wanted view, deduplicated.
        let mut missing: Vec<String> = Vec::new();
        let mut per_view: Vec<(Vec<Vec<u8>>, Vec<usize>)> = Vec::with_capacity(wanted.len());
        // Join key column -> type, in first-use order (a handful: a list, not a map).
        let mut echo_types: Vec<(&str, ValueType)> = Vec::new();
        for w in wanted {
            if w.plan.entityless {
                per_view.push((vec![entityless_key(self.config.key_version)], vec![0; rows]));
                continue;
            }
            let mut key_columns = Vec::with_capacity(w.plan.join_keys.len());
            for (jk, t) in &w.plan.join_keys {
                let col = w
                    .join_key_map
                    .iter()
                    .find(|(k, _)| k == jk)
                    .map_or(jk.as_str(), |(_, c)| c.as_str());
                if !echo_types.iter().any(|(c, _)| *c == col) {
                    echo_types.push((col, *t));
                }
                match column(col) {
                    Some(values) => key_columns.push((jk.as_str(), col, *t, values)),
                    None => missing.push(col.to_owned()),
                }
            }
            if !missing.is_empty() {
                continue;
            }
            let mut keys: Vec<Vec<u8>> = Vec::new();
            // Only a request of several rows can repeat a key. Request data is inserted here:
            // the standard (DoS-resistant) hasher.
            let mut seen: StdHashMap<Vec<u8>, usize> = StdHashMap::new();
            let mut row_key = Vec::with_capacity(rows);
            let mut typed: Vec<EntityValue> = Vec::with_capacity(key_columns.len());
            for row in 0..rows {
                typed.clear();
                for (_, col, t, values) in &key_columns {
                    typed.push(values[row].to_entity_value(*t).map_err(|m| {
                        ServiceError::bad_request(format!("entity column {col}, row {row}: {m}"))
                    })?);
                }
                let pairs: Vec<(&str, &EntityValue)> = key_columns
                    .iter()
                    .zip(&typed)
                    .map(|((jk, ..), v)| (*jk, v))
                    .collect();
                let key = serialize_entity_key(&pairs, self.config.key_version);
                let next = keys.len();
                if rows == 1 {
                    keys.push(key);
                    row_key.push(next);
                    continue;
                }
                let slot = *seen.entry(key.clone()).or_insert_with(|| {
                    keys.push(key);
                    next
                });
                row_key.push(slot);
            }
            per_view.push((keys, row_key));
        }
        if !missing.is_empty() {
            missing.sort();
            missing.dedup();
            return Err(ServiceError::bad_request(format!(
                "Missing join key values for keys: {missing:?}. Provided entity columns: {:?}",
                columns.iter().map(|(n, _)| *n).collect::<Vec<_>>()
            )));
        }

        let reads: Vec<ViewRead<'_>> = wanted
            .iter()
            .zip(&per_view)
            .map(|(w, (keys, _))| ViewRead {
                layout: &w.plan.layout,
                features: &w.features,
                keys,
            })
            .collect();
        let started = std::time::Instant::now();
        let records = self.store.read(&reads).await?;
        self.metrics
            .read_duration
            .record(started.elapsed().as_secs_f64());

        // Join-key columns first (request order), then each view's features.
        let mut out = OnlineResponse {
            feature_names: Vec::with_capacity(columns.len() + resolved.feature_names.len()),
            columns: Vec::with_capacity(columns.len() + resolved.feature_names.len()),
            // One entry per view name (its alias if any, never `@v<N>`), the first's version.
            view_metadata: req.include_view_metadata.then(|| {
                let mut meta: Vec<(String, i32)> = Vec::new();
                for w in wanted.iter().filter(|w| w.visible > 0) {
                    let name = w.alias.as_deref().unwrap_or(&w.plan.name);
                    if !meta.iter().any(|(n, _)| n == name) {
                        meta.push((name.to_owned(), w.plan.version.unwrap_or(0)));
                    }
                }
                meta
            }),
        };
        for (name, values) in &columns {
            let Some(t) = echo_types
                .iter()
                .find(|(c, _)| c == name)
                .map(|(_, t)| t)
                .or_else(|| index.join_key_types.get(*name))
            else {
                continue;
            };
            let values = values
                .iter()
                .map(|v| {
                    v.to_entity_value(*t)
                        .map(|e| e.to_proto())
                        .unwrap_or_else(|_| v.to_inferred_value())
                })
                .collect();
            out.feature_names.push((*name).to_owned());
            out.columns.push(Column {
                values,
                statuses: vec![FieldStatus::Present; rows],
                event_timestamps: vec![EPOCH; rows],
            });
        }
        let now = self.clock.now();
        let now_nanos =
            now.timestamp() as i128 * 1_000_000_000 + now.timestamp_subsec_nanos() as i128;
        let enforce_ttl = self.config.online_ttl == OnlineTtl::Enforce;
        let mut names = resolved.feature_names.iter();
        // Every column read, per view, when on-demand views need them as inputs.
        let keep = !resolved.odfvs.is_empty();
        // Per view, per feature read: where its column is (answered, or read only for them).
        let mut kept: Vec<Vec<Loc>> = Vec::new();
        let mut hidden: Vec<Column> = Vec::new();
        let echoed = out.columns.len();

        for ((w, (_, row_key)), view_records) in wanted.iter().zip(&per_view).zip(records) {
            let mut view_kept = Vec::new();
            let mut counts = [0u64; 5];
            let max_age = w
                .plan
                .ttl
                .filter(|_| enforce_ttl)
                .map(|d| d.as_nanos() as i128);
            for (fi, _) in w.features.iter().enumerate() {
                let mut col = Column {
                    values: Vec::with_capacity(rows),
                    statuses: Vec::with_capacity(rows),
                    event_timestamps: Vec::with_capacity(rows),
                };
                for &k in row_key {
                    let found = view_records[k]
                        .as_ref()
                        .and_then(|r| Some((r.values[fi].as_ref()?, r.event_ts)));
                    match found {
                        Some((value, ts)) => {
                            let age = now_nanos - larder_online::store::ts_nanos(&ts);
                            let status = match max_age {
                                Some(max) if age > max => FieldStatus::OutsideMaxAge,
                                _ => FieldStatus::Present,
                            };
                            col.values.push(value.clone());
                            col.statuses.push(status);
                            col.event_timestamps.push(ts);
                        }
                        None => {
                            col.values.push(Value::default());
                            col.statuses.push(FieldStatus::NotFound);
                            col.event_timestamps.push(EPOCH);
                        }
                    }
                    if fi < w.visible {
                        counts[*col.statuses.last().expect("pushed") as usize] += 1;
                    }
                }
                if fi < w.visible {
                    out.feature_names
                        .push(names.next().expect("one name per feature").clone());
                    if keep {
                        view_kept.push(Loc::Out(out.columns.len()));
                    }
                    out.columns.push(col);
                } else {
                    view_kept.push(Loc::Hidden(hidden.len()));
                    hidden.push(col);
                }
            }
            if keep {
                kept.push(view_kept);
            }
            for (counter, n) in w.plan.status_counters.iter().zip(counts) {
                if n > 0 {
                    counter.increment(n);
                }
            }
        }
        for o in &resolved.odfvs {
            // Request data as values (the other inputs are columns already read).
            let request: Vec<Vec<Value>> = o
                .plan
                .inputs
                .iter()
                .filter_map(|input| match input {
                    InputRef::Request(name) => Some(
                        column(name)
                            .expect("request data checked")
                            .iter()
                            .map(Scalar::to_inferred_value)
                            .collect(),
                    ),
                    _ => None,
                })
                .collect();
            let mut request = request.iter();
            let input_values = o
                .plan
                .inputs
                .iter()
                .map(|input| {
                    Ok(match input {
                        InputRef::Request(_) => request.next().expect("one per input").as_slice(),
                        InputRef::Feature { view, feature } => {
                            let at = wanted
                                .iter()
                                .position(|w| {
                                    w.plan.name == *view
                                        && w.version_tag.is_none()
                                        && w.alias.is_none()
                                        && w.join_key_map.is_empty()
                                })
                                .expect("resolve reads every source view");
                            let pos = wanted[at]
                                .features
                                .iter()
                                .position(|f| f == feature)
                                .expect("resolve reads every source feature");
                            match kept[at][pos] {
                                Loc::Out(i) => out.columns[i].values.as_slice(),
                                Loc::Hidden(i) => hidden[i].values.as_slice(),
                            }
                        }
                        InputRef::JoinKey(name) => {
                            match out.feature_names[..echoed].iter().position(|n| n == name) {
                                Some(i) => out.columns[i].values.as_slice(),
                                None => {
                                    return Err(ServiceError::bad_request(format!(
                                        "on demand feature view {} reads {name}, which the \
                                         request does not give",
                                        o.plan.name
                                    )));
                                }
                            }
                        }
                    })
                })
                .collect::<Result<Vec<&[Value]>, ServiceError>>()?;
            let computed = self.run_odfv(o, &input_values, rows).await?;
            for values in computed {
                out.feature_names
                    .push(names.next().expect("one name per feature").clone());
                out.columns.push(Column {
                    values,
                    statuses: vec![FieldStatus::Present; rows],
                    event_timestamps: vec![EPOCH; rows],
                });
            }
        }
        if let (Some((plan, at)), Some(logger)) = (&resolved.log, &self.config.feature_log) {
            let request = req
                .entities
                .iter()
                .map(|(n, v)| {
                    let n = index
                        .entity_join_keys
                        .get(n.as_ref())
                        .map_or(n.as_ref(), String::as_str);
                    (n.to_owned(), v.clone())
                })
                .collect();
            let features = at
                .iter()
                .map(|&i| {
                    let c = &out.columns[echoed + i];
                    (
                        c.values.clone(),
                        c.statuses.iter().map(|s| *s as i32).collect(),
                        c.event_timestamps.iter().map(|t| t.seconds).collect(),
                    )
                })
                .collect();
            logger.log(super::feature_log::LogRequest {
                plan: plan.clone(),
                request,
                features,
                rows,
                at_micros: now.timestamp_micros(),
            });
        }
        self.metrics.requests.increment(1);
        self.metrics.entity_count.record(rows as f64);
        Ok(out)
    }
}
