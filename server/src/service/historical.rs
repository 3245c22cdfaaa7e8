//! Historical retrieval (spec §9): a request's feature references or feature service resolved
//! against the registry into the views to join — their sources, join keys after the
//! projection's `join_key_map`, output names and ttls — and the point-in-time join run over
//! them ([`larder_offline::historical`]) as a DataFusion plan node
//! ([`larder_offline::historical::exec::PointInTimeJoinExec`]). The CLI and the Flight server
//! call this.

use std::{collections::HashMap, sync::Arc};

use larder_offline::arrow::array::RecordBatch;
use larder_offline::historical::{
    Retrieval, ViewJoin,
    exec::{PointInTimeJoinExec, offline_error},
};
use larder_offline::ondemand::batch::Step;
use larder_registry::{
    config::RepoConfig,
    model::{Catalog, FeatureView, ViewKind},
    store::RegistryStore,
};

use crate::error::{ErrorCode, ServiceError};

/// The `s3://` sources' object stores, by source URI.
pub type Buckets = Vec<(String, Arc<dyn larder_registry::store::ObjectStore>)>;

/// What features to retrieve.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// `"<view>:<feature>"` references.
    Refs(Vec<String>),
    /// A feature service name.
    Service(String),
    /// What Feast's remote client sends: the views (`feature_view_names`) with their aliases
    /// (`name_aliases`), and references whose view part is a view's alias or name. An alias
    /// takes the feature-service projection of that alias (any service's, the last found),
    /// with its `join_key_map` — as Feast's offline server applies it.
    Remote {
        views: Vec<(String, Option<String>)>,
        refs: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoricalRequest {
    pub features: Features,
    pub full_feature_names: bool,
    pub filter_by_created_timestamp: bool,
}

pub struct HistoricalService {
    pub config: RepoConfig,
    /// Credentials and endpoints for `s3://` sources.
    pub env: HashMap<String, String>,
    pub registry: Arc<dyn RegistryStore>,
    /// Memory DataFusion's own operators may use.
    pub memory_limit: usize,
    /// How on-demand views run (the Python engine's worker is shared by every retrieval).
    pub engines: super::ondemand::Engines,
    /// Told of every source read of a retrieval (the CLI's progress bar); `None` on servers.
    pub progress: Option<Arc<dyn larder_offline::historical::Progress>>,
}

/// An on-demand view run by the Python engine over each batch of a retrieval's answer.
pub struct PythonStep {
    view: String,
    engine: Arc<super::python_engine::PythonEngine>,
    /// (column of the UDF's input frame, the answer's column it is taken from).
    inputs: Vec<(String, String)>,
    /// (feature, output column, declared type).
    outputs: Vec<(
        String,
        String,
        larder_protos::feast::types::value_type::Enum,
    )>,
}

/// A retrieval's answer, made batch by batch as it is read: the join plan's output with the
/// on-demand outputs of native-engine views, then of Python-engine views.
pub struct Retrieved {
    stream: larder_offline::historical::exec::Stream,
    native: Vec<Step>,
    /// The join's columns with the native outputs.
    native_schema: larder_offline::arrow::datatypes::SchemaRef,
    python: PythonOutputs,
}

/// The Python engine's steps, and the answer's schema with their outputs.
struct PythonOutputs {
    steps: Vec<PythonStep>,
    schema: larder_offline::arrow::datatypes::SchemaRef,
}

impl Retrieved {
    fn new(
        plan: PointInTimeJoinExec,
        ctx: &larder_offline::historical::Context,
        native: Vec<Step>,
        python: Vec<PythonStep>,
    ) -> Result<Self, ServiceError> {
        use larder_offline::arrow::datatypes::{Field, Schema};
        use larder_offline::datafusion::physical_plan::ExecutionPlan;
        let native_schema = larder_offline::ondemand::batch::schema_with(&plan.schema(), &native)
            .map_err(larder_offline::OfflineError::from)?;
        let mut fields: Vec<Field> = native_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for s in &python {
            for (_, column, t) in &s.outputs {
                let t = larder_offline::ondemand::batch::arrow_type(*t)
                    .map_err(|e| ServiceError::bad_request(format!("{}: {e}", s.view)))?;
                fields.push(Field::new(column, t, true));
            }
        }
        let stream = plan
            .execute(0, ctx.task_ctx())
            .map_err(|e| ServiceError::from(offline_error(e)))?;
        Ok(Self {
            stream,
            native,
            native_schema,
            python: PythonOutputs {
                steps: python,
                schema: Arc::new(Schema::new(fields)),
            },
        })
    }

    pub fn schema(&self) -> larder_offline::arrow::datatypes::SchemaRef {
        self.python.schema.clone()
    }

    /// The next batch of the answer (`None` at the end).
    async fn next(&mut self) -> Option<Result<RecordBatch, ServiceError>> {
        use futures::StreamExt;
        let batch = match self.stream.next().await? {
            Ok(b) => b,
            Err(e) => return Some(Err(offline_error(e).into())),
        };
        let batch = if self.native.is_empty() {
            batch
        } else {
            match larder_offline::ondemand::batch::apply(
                &batch,
                &self.native,
                self.native_schema.clone(),
            ) {
                Ok(b) => b,
                Err(e) => return Some(Err(larder_offline::OfflineError::from(e).into())),
            }
        };
        Some(self.python.finish(batch).await)
    }

    /// Every batch.
    pub async fn collect(mut self) -> Result<Vec<RecordBatch>, ServiceError> {
        let mut out = Vec::new();
        while let Some(b) = self.next().await {
            out.push(b?);
        }
        Ok(out)
    }

    /// Every batch, sent to `tx` one by one (an error ends the stream); stops when the
    /// receiver is gone. Returns the rows sent.
    pub async fn send_batches(
        mut self,
        tx: tokio::sync::mpsc::Sender<Result<RecordBatch, ServiceError>>,
    ) -> usize {
        let mut rows = 0;
        while let Some(b) = self.next().await {
            let failed = b.is_err();
            rows += b.as_ref().map_or(0, |b| b.num_rows());
            if tx.send(b).await.is_err() || failed {
                break;
            }
        }
        rows
    }
}

impl PythonOutputs {
    /// One batch of the answer with the Python engine's outputs appended.
    async fn finish(&self, batch: RecordBatch) -> Result<RecordBatch, ServiceError> {
        if self.steps.is_empty() {
            return Ok(batch);
        }
        use larder_offline::arrow::{
            compute::cast,
            datatypes::{Field, Schema},
        };
        let mut columns = batch.columns().to_vec();
        for s in &self.steps {
            let mut fields = Vec::new();
            let mut arrays = Vec::new();
            for (name, column) in &s.inputs {
                let a = batch.column_by_name(column).ok_or_else(|| {
                    ServiceError::internal(format!("{}: no answer column {column}", s.view))
                })?;
                fields.push(Field::new(name, a.data_type().clone(), true));
                arrays.push(a.clone());
            }
            let input = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
                .map_err(ServiceError::internal)?;
            let out = s.engine.transform(&s.view, &input).await?;
            for (f, _, t) in &s.outputs {
                let name = format!("{}__{f}", s.view);
                let a = out.column_by_name(&name).ok_or_else(|| {
                    ServiceError::bad_request(format!(
                        "on demand feature view {}: the UDF returned no column {f}",
                        s.view
                    ))
                })?;
                let to = larder_offline::ondemand::batch::arrow_type(*t)
                    .map_err(|e| ServiceError::bad_request(e.to_string()))?;
                columns.push(cast(a, &to).map_err(|e| {
                    ServiceError::bad_request(format!(
                        "on demand feature view {}: output {f}: {e}",
                        s.view
                    ))
                })?);
            }
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(ServiceError::internal)
    }
}

/// One view of a request: which features, under which prefix, keyed by which columns.
struct Wanted<'a> {
    view: &'a FeatureView,
    alias: Option<String>,
    features: Vec<String>,
    join_key_map: std::collections::BTreeMap<String, String>,
    /// The version a reference pinned (`@v<N>`): `view` is that version's definition.
    version_tag: Option<i32>,
}

impl Wanted<'_> {
    /// The prefix of its output columns: Feast's `name_to_use()` (alias or name, `@v<N>`).
    fn label(&self) -> std::borrow::Cow<'_, str> {
        let base = self.alias.as_deref().unwrap_or(&self.view.name);
        match self.version_tag {
            Some(n) => format!("{base}@v{n}").into(),
            None => base.into(),
        }
    }
}

/// Adds each `"<label>:<feature>"` reference to the wanted view of that label (its alias, else
/// its name) and version, or to a new entry for the view (or its pinned version) of that name.
fn add_refs<'a>(
    wanted: &mut Vec<Wanted<'a>>,
    refs: &[String],
    view: &dyn Fn(&str) -> Result<&'a FeatureView, ServiceError>,
    versioned: &dyn Fn(&str, i32) -> Result<&'a FeatureView, ServiceError>,
) -> Result<(), ServiceError> {
    for r in refs {
        let super::FeatureRef {
            view: label,
            version,
            feature,
        } = super::parse_feature_ref(r)?;
        let at = match wanted.iter().position(|w| {
            w.alias.as_deref().unwrap_or(&w.view.name) == label && w.version_tag == version
        }) {
            Some(i) => i,
            None => {
                wanted.push(Wanted {
                    view: match version {
                        None => view(label)?,
                        Some(n) => versioned(label, n)?,
                    },
                    alias: None,
                    features: Vec::new(),
                    join_key_map: Default::default(),
                    version_tag: version,
                });
                wanted.len() - 1
            }
        };
        let w = &mut wanted[at];
        if !w.features.iter().any(|f| f == feature) {
            w.features.push(feature.to_owned());
        }
    }
    Ok(())
}

fn not_retrievable(v: &FeatureView) -> Option<ServiceError> {
    match v.kind {
        ViewKind::FeatureView | ViewKind::StreamFeatureView => None,
        ViewKind::OnDemandFeatureView => Some(ServiceError::bad_request(format!(
            "on demand feature view {} is computed from other views, not joined",
            v.name
        ))),
        ViewKind::LabelView => Some(ServiceError::bad_request(format!(
            "label view {} cannot be retrieved as features",
            v.name
        ))),
    }
}

/// The output name of feature `f` under `prefix`.
fn out_name(prefix: &str, f: &str, full_feature_names: bool) -> String {
    if full_feature_names {
        format!("{prefix}__{f}")
    } else {
        f.to_owned()
    }
}

/// The answer's column an on-demand view's input column `input` (a source feature under its
/// short or full name, request data, a join key) is taken from.
fn answer_column(
    v: &FeatureView,
    input: &str,
    wanted: &[Wanted<'_>],
    full_feature_names: bool,
) -> String {
    let odfv = v.odfv.as_ref().expect("an on-demand view");
    for src in &odfv.sources {
        let Some(w) = wanted
            .iter()
            .find(|w| w.view.name == src.view && w.alias.is_none() && w.version_tag.is_none())
        else {
            continue;
        };
        let full = format!("{}__", src.name_to_use());
        let f = input.strip_prefix(&full).unwrap_or(input);
        if w.features.iter().any(|x| x == f) {
            return out_name(&src.view, f, full_feature_names);
        }
    }
    // Request data and join keys: entity columns.
    input.to_owned()
}

/// (feature, output column, declared type) of each requested output of `v`.
fn step_outputs(
    v: &FeatureView,
    label: &str,
    features: &[String],
    full_feature_names: bool,
) -> Result<
    Vec<(
        String,
        String,
        larder_protos::feast::types::value_type::Enum,
    )>,
    ServiceError,
> {
    features
        .iter()
        .map(|f| {
            let t = v
                .features
                .iter()
                .find(|x| x.name == *f)
                .map(|x| x.value_type)
                .ok_or_else(|| {
                    ServiceError::new(
                        ErrorCode::NotFound,
                        format!("Feature {f} not found in projection {label}"),
                    )
                })?;
            Ok((f.clone(), out_name(label, f, full_feature_names), t))
        })
        .collect()
}

/// A Python-engine view's step: its input frame as Feast builds it (the source views' join
/// keys, source features under their short names, request data) from the answer's columns.
fn python_step(
    catalog: &Catalog,
    v: &FeatureView,
    engine: Arc<super::python_engine::PythonEngine>,
    label: &str,
    features: &[String],
    wanted: &[Wanted<'_>],
    full_feature_names: bool,
) -> Result<PythonStep, ServiceError> {
    let odfv = v.odfv.as_ref().expect("an on-demand view");
    let frame = super::ondemand::python_frame(catalog, odfv);
    Ok(PythonStep {
        view: v.name.clone(),
        engine,
        inputs: frame
            .into_iter()
            .map(|(n, _)| {
                let column = answer_column(v, &n, wanted, full_feature_names);
                (n, column)
            })
            .collect(),
        outputs: step_outputs(v, label, features, full_feature_names)?,
    })
}

/// The request data the on-demand views of a retrieval read must be columns of the entity
/// table (`None`: an entity-less retrieval, which has none): else Feast's
/// `RequestDataNotFoundInEntityDfException`, naming the field and the view.
fn request_data_present(
    catalog: &Catalog,
    steps: &[Step],
    python: &[PythonStep],
    entity: Option<&larder_offline::datafusion::arrow::datatypes::Schema>,
) -> Result<(), ServiceError> {
    let views = steps
        .iter()
        .map(|s| &s.view)
        .chain(python.iter().map(|s| &s.view));
    for view in views {
        let v = catalog.view(view).expect("planned");
        let odfv = v.odfv.as_ref().expect("an on-demand view");
        for (f, _) in super::ondemand::request_fields(odfv) {
            let missing = match entity {
                Some(schema) => schema.column_with_name(&f).is_none(),
                None => true,
            };
            if missing {
                let why = match entity {
                    Some(_) => "",
                    None => {
                        " (an entity-less retrieval has no request data: pass an entity \
                         dataframe with that column)"
                    }
                };
                return Err(ServiceError::feast(
                    ErrorCode::NotFound,
                    "RequestDataNotFoundInEntityDfException",
                    format!(
                        "Feature {f} not found in the entity dataframe, but required by feature \
                         view {view}{why}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl HistoricalService {
    /// The views to join for `req`, in the order the request names them, and the on-demand
    /// views computed over the joined rows.
    pub fn plan(
        &self,
        catalog: &Catalog,
        req: &HistoricalRequest,
    ) -> Result<(Retrieval, Buckets, Vec<Step>, Vec<PythonStep>), ServiceError> {
        let project = self.config.project.as_str();
        let is_odfv = |label: &str| {
            catalog
                .view(label)
                .is_some_and(|v| v.kind == ViewKind::OnDemandFeatureView)
        };
        // On-demand references and projections: (view, label, features).
        let mut odfvs: Vec<(&FeatureView, String, Vec<String>)> = Vec::new();
        let mut take_odfv_refs = |refs: &[String]| -> Result<Vec<String>, ServiceError> {
            let mut rest = Vec::new();
            for r in refs {
                let super::FeatureRef {
                    view: label,
                    version,
                    feature,
                } = super::parse_feature_ref(r)?;
                if version.is_some() || !is_odfv(label) {
                    rest.push(r.clone());
                    continue;
                }
                let v = catalog.view(label).expect("checked");
                match odfvs.iter_mut().find(|(_, l, _)| l == label) {
                    Some((_, _, fs)) if fs.iter().any(|f| f == feature) => {}
                    Some((_, _, fs)) => fs.push(feature.to_owned()),
                    None => odfvs.push((v, label.to_owned(), vec![feature.to_owned()])),
                }
            }
            Ok(rest)
        };
        let view = |name: &str| -> Result<&FeatureView, ServiceError> {
            let v = catalog
                .view(name)
                .ok_or_else(|| super::view_not_found(name, project))?;
            match not_retrievable(v) {
                Some(e) => Err(e),
                None => Ok(v),
            }
        };
        let versioning = self.config.registry.enable_online_feature_view_versioning;
        let versioned = |name: &str, n: i32| -> Result<&FeatureView, ServiceError> {
            if !versioning {
                return Err(super::versioning_disabled(name, n));
            }
            catalog
                .versions
                .iter()
                .find(|r| r.number == n && r.view.name == name)
                .map(|r| &r.view)
                .ok_or_else(|| super::version_not_found(name, n, project))
        };
        let mut wanted: Vec<Wanted<'_>> = Vec::new();
        match &req.features {
            Features::Refs(refs) => {
                if refs.is_empty() {
                    return Err(ServiceError::bad_request(
                        "No features specified for retrieval",
                    ));
                }
                let refs = take_odfv_refs(refs)?;
                add_refs(&mut wanted, &refs, &view, &versioned)?;
            }
            Features::Remote { views, refs } => {
                let refs = take_odfv_refs(refs)?;
                for (name, alias) in views {
                    let projection = alias.as_deref().and_then(|a| {
                        catalog
                            .feature_services
                            .iter()
                            .flat_map(|s| &s.projections)
                            .rfind(|p| p.alias.as_deref() == Some(a))
                    });
                    let alias = projection.and_then(|p| p.alias.clone());
                    let label = alias.as_deref().unwrap_or(name);
                    if wanted.iter().any(|w| {
                        w.alias.as_deref().unwrap_or(&w.view.name) == label
                            && w.version_tag.is_none()
                    }) {
                        continue;
                    }
                    wanted.push(Wanted {
                        view: view(name)?,
                        alias,
                        features: Vec::new(),
                        join_key_map: projection
                            .map(|p| p.join_key_map.clone())
                            .unwrap_or_default(),
                        version_tag: None,
                    });
                }
                add_refs(&mut wanted, &refs, &view, &versioned)?;
                wanted.retain(|w| !w.features.is_empty());
                if wanted.is_empty() && odfvs.is_empty() {
                    return Err(ServiceError::bad_request(
                        "No features specified for retrieval",
                    ));
                }
            }
            Features::Service(name) => {
                let service = catalog
                    .service(name)
                    .ok_or_else(|| super::service_not_found(name, project))?;
                for p in &service.projections {
                    if is_odfv(&p.view) {
                        odfvs.push((
                            catalog.view(&p.view).expect("checked"),
                            p.alias.clone().unwrap_or_else(|| p.view.clone()),
                            p.features.iter().map(|f| f.name.clone()).collect(),
                        ));
                        continue;
                    }
                    // A pinned projection reads that version's definition (its source and
                    // schema) and names its columns `<view>@v<N>__<feature>` (Feast's
                    // `name_to_use()`).
                    wanted.push(Wanted {
                        view: match p.version {
                            None => view(&p.view)?,
                            Some(n) => versioned(&p.view, n)?,
                        },
                        alias: p.alias.clone(),
                        features: p.features.iter().map(|f| f.name.clone()).collect(),
                        join_key_map: p.join_key_map.clone(),
                        version_tag: p.version,
                    });
                }
            }
        }
        // The views an on-demand view reads are joined too (their columns are in the answer,
        // as Feast's).
        for (v, _, _) in &odfvs {
            let Some(odfv) = &v.odfv else { continue };
            for src in &odfv.sources {
                let refs: Vec<String> = super::ondemand::source_features(catalog, src)
                    .iter()
                    .map(|(f, _)| format!("{}:{f}", src.view))
                    .collect();
                add_refs(&mut wanted, &refs, &view, &versioned)?;
            }
        }
        let mut names = Vec::new();
        let mut views = Vec::new();
        let mut buckets = Vec::new();
        for w in &wanted {
            let v = w.view;
            let label = w.label();
            for f in &w.features {
                if !v.features.iter().any(|vf| vf.name == *f) {
                    return Err(ServiceError::new(
                        ErrorCode::NotFound,
                        format!("Feature {f} not found in projection {label}"),
                    ));
                }
            }
            let (uri, store) = super::file_source(&self.config, &self.env, v, "retrieves from")?;
            if let Some(store) = store {
                buckets.push((uri.clone(), store));
            }
            let source = v.batch_source.as_ref().expect("file_source checked it");
            let renamed = |c: &str| {
                source
                    .field_mapping
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| c.to_owned())
            };
            let features: Vec<(String, String)> = w
                .features
                .iter()
                .map(|f| {
                    let out = if req.full_feature_names {
                        format!("{label}__{f}")
                    } else {
                        f.clone()
                    };
                    (f.clone(), out)
                })
                .collect();
            names.extend(features.iter().map(|(_, out)| out.clone()));
            views.push(ViewJoin {
                view: v.name.clone(),
                uri,
                field_mapping: source.field_mapping.clone(),
                keys: catalog
                    .join_keys(v)
                    .into_iter()
                    .map(|(k, _)| {
                        let column = w.join_key_map.get(&k).cloned().unwrap_or_else(|| k.clone());
                        (k, column)
                    })
                    .collect(),
                features,
                timestamp_field: renamed(&source.timestamp_field),
                created_timestamp_column: (!source.created_timestamp_column.is_empty())
                    .then(|| renamed(&source.created_timestamp_column)),
                ttl_micros: v
                    .ttl
                    .map(|t| i64::try_from(t.as_micros()).unwrap_or(i64::MAX))
                    .filter(|&t| t > 0),
            });
        }
        let mut steps = Vec::new();
        let mut python = Vec::new();
        for (v, label, features) in &odfvs {
            use super::ondemand::Engine;
            let full = req.full_feature_names;
            let outputs = match super::ondemand::engine(catalog, v, &self.engines) {
                Engine::Native(program) => {
                    let s = self.step(v, program, label, features, &wanted, full)?;
                    let o = s.outputs.clone();
                    steps.push(s);
                    o
                }
                Engine::Python(engine, _) => {
                    let s = python_step(catalog, v, engine, label, features, &wanted, full)?;
                    let o = s.outputs.clone();
                    python.push(s);
                    o
                }
                Engine::Unavailable(why) => {
                    return Err(super::ondemand::unavailable(&v.name, &why));
                }
            };
            names.extend(outputs.into_iter().map(|(_, c, _)| c));
        }
        if !req.full_feature_names
            && let Some(dup) = super::first_repeat(&names)
        {
            return Err(super::collision_error(dup));
        }
        Ok((
            Retrieval {
                views,
                filter_by_created_timestamp: req.filter_by_created_timestamp,
            },
            buckets,
            steps,
            python,
        ))
    }

    /// How on-demand view `v` is computed over the answer: its program, which answer column
    /// feeds each input, and its requested outputs' column names.
    fn step(
        &self,
        v: &FeatureView,
        program: Arc<larder_offline::ondemand::Program>,
        label: &str,
        features: &[String],
        wanted: &[Wanted<'_>],
        full_feature_names: bool,
    ) -> Result<Step, ServiceError> {
        let inputs = program
            .inputs()
            .iter()
            .map(|input| answer_column(v, input, wanted, full_feature_names))
            .collect();
        Ok(Step {
            view: v.name.clone(),
            program,
            inputs,
            outputs: step_outputs(v, label, features, full_feature_names)?,
        })
    }

    /// Entity-less retrieval (no entity dataframe): every key with rows in the window, at
    /// `end` (default now); `start` defaults to `end` minus the largest ttl of the views, else
    /// 30 days — Feast's defaults.
    pub async fn get_historical_features_entityless(
        &self,
        req: &HistoricalRequest,
        start: Option<chrono::DateTime<chrono::Utc>>,
        end: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Retrieved, ServiceError> {
        let snapshot = self.registry.load().await?;
        let catalog = Catalog::new(&snapshot, self.config.project.as_str())?;
        let (retrieval, buckets, steps, python) = self.plan(&catalog, req)?;
        let end = end.unwrap_or_else(chrono::Utc::now).timestamp_micros();
        let start = match start {
            Some(s) => s.timestamp_micros(),
            None => {
                let ttl = retrieval.views.iter().filter_map(|v| v.ttl_micros).max();
                end.saturating_sub(ttl.unwrap_or(30 * 86_400 * 1_000_000))
            }
        };
        if start > end {
            return Err(ServiceError::bad_request(format!(
                "start_date must not be after end_date ({start} > {end} µs)"
            )));
        }
        request_data_present(&catalog, &steps, &python, None)?;
        let ctx = self.context(buckets)?;
        let plan = PointInTimeJoinExec::entityless(&ctx, retrieval, start, end).await?;
        Retrieved::new(plan, &ctx, steps, python)
    }

    fn context(
        &self,
        buckets: Buckets,
    ) -> Result<larder_offline::historical::Context, ServiceError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ctx = larder_offline::historical::session_reporting(
            self.memory_limit,
            cores,
            self.progress.clone(),
        )?;
        for (uri, store) in buckets {
            larder_offline::source::register_bucket(&ctx, &uri, store)?;
        }
        Ok(ctx)
    }

    /// The point-in-time join of `entity` (the whole entity table) with the request's views.
    pub async fn get_historical_features(
        &self,
        entity: RecordBatch,
        req: &HistoricalRequest,
    ) -> Result<Retrieved, ServiceError> {
        self.join(Entity::Table(entity), req).await
    }

    /// The point-in-time join of the rows of an entity SQL query (Feast's `entity_df` given as
    /// SQL) with the request's views. The query reads the repo's sources as tables: each file
    /// data source (a push source as its batch source) under its name, and each feature view's
    /// batch source under the view's name.
    pub async fn get_historical_features_sql(
        &self,
        sql: &str,
        req: &HistoricalRequest,
    ) -> Result<Retrieved, ServiceError> {
        self.join(Entity::Sql(sql), req).await
    }

    async fn join(
        &self,
        entity: Entity<'_>,
        req: &HistoricalRequest,
    ) -> Result<Retrieved, ServiceError> {
        use larder_offline::datafusion::{
            datasource::memory::MemorySourceConfig, physical_plan::ExecutionPlan,
        };
        let snapshot = self.registry.load().await?;
        let catalog = Catalog::new(&snapshot, self.config.project.as_str())?;
        let (retrieval, buckets, steps, python) = self.plan(&catalog, req)?;
        let ctx = self.context(buckets)?;
        let input: Arc<dyn ExecutionPlan> = match entity {
            Entity::Table(entity) => {
                let entity = larder_offline::historical::drop_pandas_index(entity);
                let schema = entity.schema();
                MemorySourceConfig::try_new_exec(&[vec![entity]], schema, None)
                    .map_err(larder_offline::OfflineError::DataFusion)?
            }
            Entity::Sql(sql) => {
                self.register_tables(&ctx, &catalog, sql).await?;
                larder_offline::source::sql_plan(&ctx, sql).await?
            }
        };
        request_data_present(&catalog, &steps, &python, Some(&input.schema()))?;
        let plan = PointInTimeJoinExec::try_new(&ctx, retrieval, input).await?;
        Retrieved::new(plan, &ctx, steps, python)
    }

    /// Registers the tables an entity SQL query names: data sources by name, then feature
    /// views (their batch sources) by name.
    async fn register_tables(
        &self,
        ctx: &larder_offline::historical::Context,
        catalog: &Catalog,
        sql: &str,
    ) -> Result<(), ServiceError> {
        use larder_registry::model::SourceKind;
        let project = self.config.project.as_str();
        for name in larder_offline::source::sql_table_names(ctx, sql)? {
            let source = catalog
                .data_sources
                .iter()
                .find(|d| d.name == name)
                .map(|d| match &d.kind {
                    SourceKind::Push { batch_source } => batch_source.as_ref(),
                    _ => d,
                })
                .or_else(|| catalog.view(&name).and_then(|v| v.batch_source.as_ref()))
                .ok_or_else(|| {
                    let mut known: Vec<&str> = catalog
                        .data_sources
                        .iter()
                        .map(|d| d.name.as_str())
                        .chain(catalog.feature_views.iter().map(|v| v.name.as_str()))
                        .collect();
                    known.sort_unstable();
                    known.dedup();
                    ServiceError::bad_request(format!(
                        "the entity SQL query reads table {name}, which is no data source or \
                         feature view of project {project} (those are: {known:?})"
                    ))
                })?;
            let owner = format!("the entity SQL query's table {name}");
            let (uri, store) =
                super::source_file(&self.config, &self.env, source, &owner, "reads")?;
            if let Some(store) = store {
                larder_offline::source::register_bucket(ctx, &uri, store)?;
            }
            larder_offline::source::register_table(ctx, &name, &uri, &source.field_mapping).await?;
        }
        Ok(())
    }
}

/// Where a retrieval's entity rows come from.
enum Entity<'a> {
    /// The whole entity table.
    Table(RecordBatch),
    /// Feast's `entity_df` as SQL over the repo's sources.
    Sql(&'a str),
}
