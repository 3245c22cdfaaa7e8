//! On-demand feature views: which engine runs each view, the columns its UDF sees (as Feast
//! builds the UDF's input frame), and Feast's rules for request data. Serving and the
//! `on-demand-feature-views list` command both decide through [`engine`].

use std::sync::Arc;

use larder_offline::ondemand::{Kind, Program};
use larder_protos::feast::types::value_type::Enum as ValueType;
use std::collections::BTreeMap;

use larder_registry::config::EngineChoice;
use larder_registry::model::{Catalog, FeatureView, OnDemand, SourceKind};

pub use super::python_engine::PythonEngine;

use crate::error::{ErrorCode, ServiceError};

/// How an on-demand view's UDF runs.
#[derive(Debug, Clone)]
pub enum Engine {
    /// Compiled from the UDF's source text (`body_text`).
    Native(Arc<Program>),
    /// In Feast's Python: why not native.
    Python(Arc<PythonEngine>, String),
    /// Neither: why.
    Unavailable(String),
}

impl Engine {
    /// What `on-demand-feature-views list` shows.
    pub fn describe(&self) -> String {
        match self {
            Engine::Native(_) => "native".into(),
            Engine::Python(_, why) => format!("python ({why})"),
            Engine::Unavailable(why) => {
                format!("none: the Python engine is not configured ({why})")
            }
        }
    }
}

/// What decides a view's engine: the Python engine, if configured, and the per-view choices of
/// `larder.on_demand.engines`.
#[derive(Debug, Clone, Default)]
pub struct Engines {
    pub python: Option<Arc<PythonEngine>>,
    pub choices: BTreeMap<String, EngineChoice>,
}

impl Engines {
    pub fn from_config(config: &larder_registry::config::RepoConfig) -> Self {
        Self {
            python: PythonEngine::from_config(config),
            choices: config.larder.on_demand.engines.clone(),
        }
    }
}

/// The kind of values a column of type `t` holds for the native engine.
fn kind(t: ValueType) -> Kind {
    match t {
        ValueType::Int32 | ValueType::Int64 | ValueType::Float | ValueType::Double => Kind::Num,
        ValueType::Bool => Kind::Bool,
        ValueType::String | ValueType::Uuid | ValueType::TimeUuid => Kind::Str,
        _ => Kind::Other,
    }
}

/// The features of `source` an on-demand view reads: the projection's, or all of the view's.
pub fn source_features<'a>(
    catalog: &'a Catalog,
    source: &'a larder_registry::model::OnDemandSource,
) -> Vec<(&'a str, ValueType)> {
    let view = catalog.view(&source.view);
    let all = || {
        view.map(|v| {
            v.features
                .iter()
                .map(|f| (f.name.as_str(), f.value_type))
                .collect()
        })
        .unwrap_or_default()
    };
    if source.features.is_empty() {
        return all();
    }
    source
        .features
        .iter()
        .map(|f| {
            let t = view
                .and_then(|v| v.features.iter().find(|x| x.name == *f))
                .map_or(ValueType::Invalid, |x| x.value_type);
            (f.as_str(), t)
        })
        .collect()
}

/// The request-data fields an on-demand view needs, with their declared types.
pub fn request_fields(odfv: &OnDemand) -> Vec<(String, ValueType)> {
    odfv.request_sources
        .iter()
        .flat_map(|s| match &s.kind {
            SourceKind::Request { schema } => schema.as_slice(),
            _ => &[],
        })
        .map(|f| (f.name.clone(), f.value_type))
        .collect()
}

/// The columns of the frame Feast hands the UDF: every source feature under its short and
/// its full name (`<projection>__<feature>`), the request data, and the join keys.
pub fn input_columns(catalog: &Catalog, v: &FeatureView, odfv: &OnDemand) -> Vec<(String, Kind)> {
    let mut cols: Vec<(String, Kind)> = Vec::new();
    let mut add = |name: String, k: Kind| {
        if !cols.iter().any(|(c, _)| *c == name) {
            cols.push((name, k));
        }
    };
    for s in &odfv.sources {
        for (f, t) in source_features(catalog, s) {
            add(f.to_owned(), kind(t));
            add(format!("{}__{f}", s.name_to_use()), kind(t));
        }
    }
    for (f, t) in request_fields(odfv) {
        add(f, kind(t));
    }
    for s in &odfv.sources {
        if let Some(view) = catalog.view(&s.view) {
            for (k, t) in catalog.join_keys(view) {
                add(k, kind(t));
            }
        }
    }
    for e in &v.entity_columns {
        add(e.name.clone(), kind(e.value_type));
    }
    cols
}

/// The join keys an on-demand view's rows are keyed by in the online store: its own entities'
/// (when it names any), else those of the views it reads, in order of first appearance.
pub fn join_keys(catalog: &Catalog, v: &FeatureView) -> Vec<(String, ValueType)> {
    if !v.is_entityless() {
        return catalog.join_keys(v);
    }
    let mut keys: Vec<(String, ValueType)> = Vec::new();
    for s in v.odfv.iter().flat_map(|o| &o.sources) {
        if let Some(view) = catalog.view(&s.view) {
            for k in catalog.join_keys(view) {
                if !keys.iter().any(|(n, _)| *n == k.0) {
                    keys.push(k);
                }
            }
        }
    }
    keys
}

/// The engine that runs `v`: the one `larder.on_demand.engines` names, else native when its
/// UDF compiles, else Python when configured.
pub fn engine(catalog: &Catalog, v: &FeatureView, engines: &Engines) -> Engine {
    let Some(odfv) = &v.odfv else {
        return Engine::Unavailable("not an on-demand view".into());
    };
    let native = || -> Result<Program, String> {
        let columns = input_columns(catalog, v, odfv);
        let p = Program::compile(&odfv.udf_source, &odfv.mode, &columns).map_err(|u| u.0)?;
        match v.features.iter().find(|f| !p.produces(&f.name)) {
            Some(f) => Err(format!("the UDF returns no column {}", f.name)),
            None => Ok(p),
        }
    };
    let python = |why: String| match &engines.python {
        Some(py) => Engine::Python(py.clone(), why),
        None => Engine::Unavailable(why),
    };
    match engines.choices.get(&v.name) {
        Some(EngineChoice::Python) => python("chosen in larder.on_demand.engines".into()),
        Some(EngineChoice::Native) => match native() {
            Ok(p) => Engine::Native(Arc::new(p)),
            Err(why) => Engine::Unavailable(format!(
                "larder.on_demand.engines chooses native, but {why}"
            )),
        },
        None => match native() {
            Ok(p) => Engine::Native(Arc::new(p)),
            Err(why) => python(format!("outside the native subset: {why}")),
        },
    }
}

/// The columns of the input frame Feast hands a UDF run by the Python engine: the source views'
/// join keys, the source features under their short names, the request data (each once).
pub fn python_frame(catalog: &Catalog, odfv: &OnDemand) -> Vec<(String, ValueType)> {
    let mut frame: Vec<(String, ValueType)> = Vec::new();
    for src in &odfv.sources {
        if let Some(view) = catalog.view(&src.view) {
            frame.extend(catalog.join_keys(view));
        }
    }
    for src in &odfv.sources {
        frame.extend(
            source_features(catalog, src)
                .into_iter()
                .map(|(f, t)| (f.to_owned(), t)),
        );
    }
    frame.extend(request_fields(odfv));
    let mut seen = std::collections::HashSet::new();
    frame.retain(|(n, _)| seen.insert(n.clone()));
    frame
}

/// The error for an on-demand view no engine here can run.
pub fn unavailable(view: &str, why: &str) -> ServiceError {
    ServiceError::new(
        ErrorCode::NotImplemented,
        format!(
            "on demand feature view {view} needs the Python engine, which is not configured \
             (larder.on_demand.python): {why}"
        ),
    )
}

/// Feast's `RequestDataNotFoundInEntityRowsException` for `missing` request-data fields.
pub fn request_data_missing(missing: &[String]) -> ServiceError {
    let list = missing
        .iter()
        .map(|m| format!("'{m}'"))
        .collect::<Vec<_>>()
        .join(", ");
    ServiceError::feast(
        ErrorCode::NotFound,
        "RequestDataNotFoundInEntityRowsException",
        format!(
            "Required request data source features [{list}] not found in the entity rows, but \
             required by feature views"
        ),
    )
}

/// A UDF that failed on its inputs.
pub fn udf_failed(view: &str, e: larder_offline::ondemand::EvalError) -> ServiceError {
    ServiceError::bad_request(format!("on demand feature view {view}: {e}"))
}
