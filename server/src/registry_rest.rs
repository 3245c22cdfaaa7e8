//! The REST adapter of the registry server (`serve-registry --rest-api`): the `/api/v1` read
//! routes of Feast 0.67's REST registry server that the Feast UI calls — projects, entities,
//! data sources, feature views (of every kind), feature services, saved datasets,
//! permissions, features, label views, lineage — each decoding its query, calling
//! [`crate::service::registry_reads`] / [`crate::service::registry_lineage`], and encoding
//! the objects as Feast's `MessageToDict` does (camelCase, defaults omitted). Routes answer
//! under `/api/v1` and at the root, as Feast's do. Errors are Feast's
//! `{"status_code", "detail", "error_type"}`.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Router,
    extract::{Path, RawQuery, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use larder_protos::{
    feast::{
        core as pb,
        registry::{AnyFeatureView, any_feature_view::AnyFeatureView as Any},
    },
    json::to_json,
};
use serde_json::{Map, Value as Json, json};

use crate::{
    error::{ErrorCode, ServiceError},
    service::{
        registry_lineage::{self as lineage, FeatureFilter, paginate},
        registry_reads::{self as reads, Named, RegistryReads},
    },
};

/// The query string, as pairs (tags repeat).
type Params = Pairs;

/// A query string's `key=value` pairs, percent-decoded (`+` is a space).
struct Pairs(Vec<(String, String)>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Pairs {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let RawQuery(q) = RawQuery::from_request_parts(parts, state).await?;
        Ok(Pairs(q.as_deref().map(parse_query).unwrap_or_default()))
    }
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(kv), String::new()),
        })
        .collect()
}

/// A JSON answer.
struct AxumJson(Json);

impl IntoResponse for AxumJson {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}

/// A request's query, parsed.
struct Q {
    pairs: Vec<(String, String)>,
}

impl Q {
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn project(&self) -> Result<String, ServiceError> {
        self.get("project").map(str::to_owned).ok_or_else(|| {
            ServiceError::new(
                ErrorCode::Unprocessable,
                "query parameter project is required",
            )
        })
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, ServiceError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ServiceError::new(
                    ErrorCode::Unprocessable,
                    format!("query parameter {key} must be a boolean, not {v:?}"),
                )),
            },
        }
    }

    /// `page` (≥ 1) and `limit` (1..=100), 0 when absent (`default` for the `/all` routes).
    fn paging(&self, default: (i32, i32)) -> Result<(i32, i32), ServiceError> {
        let int = |key: &str, min: i32, max: i32, default: i32| -> Result<i32, ServiceError> {
            match self.get(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<i32>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        ServiceError::new(
                            ErrorCode::Unprocessable,
                            format!("query parameter {key} must be an integer in {min}..={max}"),
                        )
                    }),
            }
        };
        Ok((
            int("page", 1, i32::MAX, default.0)?,
            int("limit", 1, 100, default.1)?,
        ))
    }

    fn sorting(&self) -> Result<(String, String), ServiceError> {
        let order = self.get("sort_order").unwrap_or("asc").to_owned();
        if order != "asc" && order != "desc" {
            return Err(ServiceError::new(
                ErrorCode::Unprocessable,
                "query parameter sort_order must be asc or desc",
            ));
        }
        Ok((self.get("sort_by").unwrap_or("").to_owned(), order))
    }

    /// `tags=k:v` (repeated); items without `:` are ignored, as Feast ignores them.
    fn tags(&self) -> BTreeMap<String, String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == "tags")
            .filter_map(|(_, v)| v.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// Feast's REST error body.
struct RestError(ServiceError);

impl From<ServiceError> for RestError {
    fn from(e: ServiceError) -> Self {
        Self(e)
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let e = self.0;
        let (status, error_type, detail) = match e.code {
            ErrorCode::NotFound => (
                404,
                "FeastObjectNotFoundException",
                e.client_message().into_owned(),
            ),
            // A query parameter missing or malformed (FastAPI's validation) …
            ErrorCode::Unprocessable => (
                422,
                "RequestValidationError",
                e.client_message().into_owned(),
            ),
            // … or a value the handler refuses (Feast's `ValueError`).
            ErrorCode::BadRequest => (422, "ValueError", e.client_message().into_owned()),
            ErrorCode::Forbidden => (403, "FeastPermissionError", e.client_message().into_owned()),
            _ => (
                500,
                "InternalServerError",
                format!("Internal server error: {}", e.client_message()),
            ),
        };
        if status == 500 {
            tracing::error!(error = %e.message, "registry REST request failed");
        }
        let body = json!({"status_code": status, "detail": detail, "error_type": error_type});
        (
            StatusCode::from_u16(status).expect("a status"),
            AxumJson(body),
        )
            .into_response()
    }
}

type Answer = Result<AxumJson, RestError>;

/// A message's proto3 JSON (`MessageToDict`).
fn object<M: prost::Message + prost::Name>(m: &M) -> Result<Json, ServiceError> {
    to_json(m).map_err(ServiceError::internal)
}

/// A registry object as Feast's REST API renders it: its Python object's `to_proto()`, which
/// does not carry `spec.project`.
fn sdk_object<M: prost::Message + prost::Name>(m: &M) -> Result<Json, ServiceError> {
    larder_registry::dump::object_json(m).map_err(ServiceError::internal)
}

fn sdk_source(d: &pb::DataSource) -> Result<Json, ServiceError> {
    larder_registry::dump::data_source_json(d).map_err(ServiceError::internal)
}

/// Objects listed: each one's name and JSON.
type Listed = Result<Vec<(String, Json)>, ServiceError>;

/// One kind of object the REST API lists and gets.
struct Kind {
    /// The list's key in the answer (`entities`, `dataSources`, …).
    key: &'static str,
    /// Its `FeastObjectType` in lineage.
    object_type: &'static str,
    /// The project's objects (with the tags): name and JSON, in registry order.
    list: fn(&pb::Registry, &str, &BTreeMap<String, String>) -> Listed,
    get: fn(&pb::Registry, &str, &str) -> Result<Json, ServiceError>,
}

fn named_list<T: Named + Clone + prost::Message + prost::Name>(
    items: &[T],
    project: &str,
    tags: &BTreeMap<String, String>,
) -> Listed {
    reads::list(items, project, tags)
        .iter()
        .map(|o| Ok((o.name().to_owned(), sdk_object(o)?)))
        .collect()
}

/// A kind whose objects are listed and got as they are (in their Python rendering).
macro_rules! spec_kind {
    ($const:ident, $key:literal, $object_type:literal, $field:ident) => {
        const $const: Kind = Kind {
            key: $key,
            object_type: $object_type,
            list: |r, p, t| named_list(&r.$field, p, t),
            get: |r, p, n| sdk_object(&reads::get(&r.$field, n, p)?),
        };
    };
}

/// A view of any kind as Feast's REST API shows it: `{"type": <kind>, …the view}`.
fn flattened(any: &AnyFeatureView) -> Result<Json, ServiceError> {
    let (kind, mut json) = match any.any_feature_view.as_ref() {
        Some(Any::FeatureView(v)) => ("featureView", sdk_object(v)?),
        Some(Any::StreamFeatureView(v)) => ("streamFeatureView", sdk_object(v)?),
        Some(Any::OnDemandFeatureView(v)) => ("onDemandFeatureView", sdk_object(v)?),
        Some(Any::LabelView(v)) => ("labelView", sdk_object(v)?),
        None => return Ok(json!({})),
    };
    let mut out = Map::new();
    out.insert("type".into(), Json::String(kind.into()));
    if let Json::Object(m) = &mut json {
        out.append(m);
    }
    Ok(Json::Object(out))
}

fn view_name(any: &AnyFeatureView) -> String {
    match any.any_feature_view.as_ref() {
        Some(Any::FeatureView(v)) => v.name().to_owned(),
        Some(Any::StreamFeatureView(v)) => v.name().to_owned(),
        Some(Any::OnDemandFeatureView(v)) => v.name().to_owned(),
        Some(Any::LabelView(v)) => v.name().to_owned(),
        None => String::new(),
    }
}

spec_kind!(ENTITIES, "entities", "entity", entities);
const DATA_SOURCES: Kind = Kind {
    key: "dataSources",
    object_type: "dataSource",
    list: |r, p, t| {
        reads::list(&r.data_sources, p, t)
            .iter()
            .map(|d| Ok((d.name.clone(), sdk_source(d)?)))
            .collect()
    },
    get: |r, p, n| sdk_source(&reads::get(&r.data_sources, n, p)?),
};
spec_kind!(
    FEATURE_SERVICES,
    "featureServices",
    "featureService",
    feature_services
);
spec_kind!(
    SAVED_DATASETS,
    "savedDatasets",
    "savedDataset",
    saved_datasets
);
spec_kind!(PERMISSIONS, "permissions", "permission", permissions);
const FEATURE_VIEWS: Kind = Kind {
    key: "featureViews",
    object_type: "featureView",
    list: |r, p, t| {
        reads::all_feature_views(r, p, t)
            .iter()
            .map(|v| Ok((view_name(v), flattened(v)?)))
            .collect()
    },
    get: |r, p, n| flattened(&reads::any_feature_view(r, n, p)?),
};
const LABEL_VIEWS: Kind = Kind {
    key: "featureViews",
    object_type: "featureView",
    list: |r, p, t| {
        reads::list(&r.label_views, p, t)
            .into_iter()
            .map(|v| {
                let any = AnyFeatureView {
                    any_feature_view: Some(Any::LabelView(v)),
                };
                Ok((view_name(&any), flattened(&any)?))
            })
            .collect()
    },
    get: |r, p, n| {
        flattened(&AnyFeatureView {
            any_feature_view: Some(Any::LabelView(reads::get(&r.label_views, n, p)?)),
        })
    },
};

/// The relations of one object, direct and indirect (what `include_relationships` adds);
/// none for a type lineage does not know.
fn relationships(r: &pb::Registry, project: &str, object_type: &str, name: &str) -> Json {
    let relations =
        lineage::object_relationships(r, project, object_type, name, true).unwrap_or_default();
    Json::Array(relations.iter().filter_map(|x| object(x).ok()).collect())
}

/// A paginated answer: the items (with their names) under `key`, Feast's `pagination`, and
/// with `include_relationships` each item's relations by name.
fn page_answer(
    r: &pb::Registry,
    project_of: impl Fn(&Json) -> String,
    key: &str,
    object_type: &str,
    items: Vec<(String, Json)>,
    q: &Q,
    all: bool,
) -> Answer {
    let (sort_by, order) = q.sorting()?;
    let (page, limit) = q.paging(if all { (1, 50) } else { (0, 0) })?;
    let include = q.flag("include_relationships", false)?;
    let keyed: Vec<((String, Json), Json)> = items
        .into_iter()
        .map(|(n, j)| ((n, j.clone()), j))
        .collect();
    let (items, meta) = paginate(keyed, page, limit, &sort_by, &order);
    let mut out = Map::new();
    if include {
        let mut rel = Map::new();
        for (name, j) in &items {
            rel.insert(
                name.clone(),
                relationships(r, &project_of(j), object_type, name),
            );
        }
        out.insert("relationships".into(), Json::Object(rel));
    }
    out.insert(
        key.to_owned(),
        Json::Array(items.into_iter().map(|(_, j)| j).collect()),
    );
    out.insert("pagination".into(), object(&meta)?);
    Ok(AxumJson(Json::Object(out)))
}

async fn list_kind(reads: &RegistryReads, kind: &Kind, q: Q) -> Answer {
    let project = q.project()?;
    let snapshot = reads.snapshot(q.flag("allow_cache", true)?).await?;
    let items = (kind.list)(&snapshot.proto, &project, &q.tags())?;
    page_answer(
        &snapshot.proto,
        |_| project.clone(),
        kind.key,
        kind.object_type,
        items,
        &q,
        false,
    )
}

/// `/…/all`: the objects of every (unprotected) project, each with its `project`.
async fn list_all(reads: &RegistryReads, kind: &Kind, q: Q) -> Answer {
    let snapshot = reads.snapshot(q.flag("allow_cache", true)?).await?;
    let r = &snapshot.proto;
    let mut items = Vec::new();
    for p in reads::projects(r, &BTreeMap::new()) {
        let project = p.spec.map(|s| s.name).unwrap_or_default();
        for (name, mut j) in (kind.list)(r, &project, &q.tags())? {
            if let Json::Object(m) = &mut j {
                m.insert("project".into(), Json::String(project.clone()));
            }
            items.push((name, j));
        }
    }
    page_answer(
        r,
        |j| j["project"].as_str().unwrap_or_default().to_owned(),
        kind.key,
        kind.object_type,
        items,
        &q,
        true,
    )
}

async fn get_kind(reads: &RegistryReads, kind: &Kind, name: &str, q: Q) -> Answer {
    let project = q.project()?;
    let snapshot = reads.snapshot(q.flag("allow_cache", true)?).await?;
    let mut j = (kind.get)(&snapshot.proto, &project, name)?;
    if kind.object_type == "entity"
        && let Json::Object(m) = &mut j
    {
        // Feast adds the data sources the entity's views read (its indirect relations).
        let mut names: Vec<String> = Vec::new();
        for rel in lineage::lineage(&snapshot.proto, &project).indirect {
            let (Some(src), Some(dst)) = (rel.source, rel.target) else {
                continue;
            };
            if src.r#type == "entity"
                && src.name == name
                && dst.r#type == "dataSource"
                && !names.contains(&dst.name)
            {
                names.push(dst.name);
            }
        }
        let sources = names
            .iter()
            .filter_map(|n| reads::get(&snapshot.proto.data_sources, n, &project).ok())
            .map(|d| sdk_source(&d))
            .collect::<Result<Vec<_>, ServiceError>>()?;
        m.insert("dataSources".into(), Json::Array(sources));
    }
    if q.flag("include_relationships", false)?
        && let Json::Object(m) = &mut j
    {
        let rel = if kind.object_type == "permission" {
            Json::Array(Vec::new())
        } else {
            relationships(&snapshot.proto, &project, kind.object_type, name)
        };
        m.insert("relationships".into(), rel);
    }
    Ok(AxumJson(j))
}

type St = State<Arc<RegistryReads>>;

macro_rules! kind_routes {
    ($router:expr, $path:literal, $kind:expr) => {
        $router
            .route(
                $path,
                get(|State(r): St, Pairs(p): Params| async move {
                    list_kind(&r, &$kind, Q { pairs: p }).await
                }),
            )
            .route(
                concat!($path, "/all"),
                get(|State(r): St, Pairs(p): Params| async move {
                    list_all(&r, &$kind, Q { pairs: p }).await
                }),
            )
            .route(
                concat!($path, "/{name}"),
                get(
                    |State(r): St, Path(name): Path<String>, Pairs(p): Params| async move {
                        get_kind(&r, &$kind, &name, Q { pairs: p }).await
                    },
                ),
            )
    };
}

async fn version() -> AxumJson {
    AxumJson(json!({"version": env!("CARGO_PKG_VERSION")}))
}

async fn list_projects(State(r): St, Pairs(p): Params) -> Answer {
    let q = Q { pairs: p };
    let snapshot = r.snapshot(q.flag("allow_cache", true)?).await?;
    let items = reads::projects(&snapshot.proto, &BTreeMap::new())
        .iter()
        .map(|p| {
            Ok((
                p.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                object(p)?,
            ))
        })
        .collect::<Result<Vec<_>, ServiceError>>()?;
    let (sort_by, order) = q.sorting()?;
    let (page, limit) = q.paging((0, 0))?;
    let keyed = items.into_iter().map(|(_, j)| (j.clone(), j)).collect();
    let (items, meta) = paginate(keyed, page, limit, &sort_by, &order);
    Ok(AxumJson(
        json!({"projects": items, "pagination": object(&meta)?}),
    ))
}

async fn get_project(State(r): St, Path(name): Path<String>, Pairs(p): Params) -> Answer {
    let q = Q { pairs: p };
    let snapshot = r.snapshot(q.flag("allow_cache", true)?).await?;
    Ok(AxumJson(object(&reads::project(&snapshot.proto, &name)?)?))
}

fn feature_json(
    f: &larder_protos::feast::registry::Feature,
) -> Result<(String, Json), ServiceError> {
    Ok((f.name.clone(), object(f)?))
}

async fn features(reads: &RegistryReads, q: Q, kind: &str, key: &str, all: bool) -> Answer {
    let snapshot = reads.snapshot(q.flag("allow_cache", true)?).await?;
    let r = &snapshot.proto;
    let filter = FeatureFilter {
        feature_view: q.get("feature_view").unwrap_or("").to_owned(),
        name: q.get("name").unwrap_or("").to_owned(),
        kind: kind.to_owned(),
    };
    let mut items = Vec::new();
    let projects: Vec<String> = if all {
        reads::projects(r, &BTreeMap::new())
            .into_iter()
            .filter_map(|p| p.spec.map(|s| s.name))
            .collect()
    } else {
        vec![q.project()?]
    };
    for project in &projects {
        for f in lineage::features(r, project, &filter) {
            let (name, mut j) = feature_json(&f)?;
            if all && let Json::Object(m) = &mut j {
                m.insert("project".into(), Json::String(project.clone()));
            }
            items.push((name, j));
        }
    }
    let single = projects.first().cloned().unwrap_or_default();
    page_answer(
        r,
        |j| j["project"].as_str().map_or(single.clone(), str::to_owned),
        key,
        "feature",
        items,
        &q,
        all,
    )
}

async fn get_feature(
    State(r): St,
    Path((view, name)): Path<(String, String)>,
    Pairs(p): Params,
) -> Answer {
    let q = Q { pairs: p };
    let project = q.project()?;
    let snapshot = r.snapshot(q.flag("allow_cache", true)?).await?;
    let f = lineage::feature(&snapshot.proto, &project, &view, &name)?;
    let mut j = object(&f)?;
    if q.flag("include_relationships", false)?
        && let Json::Object(m) = &mut j
    {
        m.insert(
            "relationships".into(),
            relationships(&snapshot.proto, &project, "feature", &name),
        );
    }
    Ok(AxumJson(j))
}

async fn registry_lineage(State(r): St, Pairs(p): Params) -> Answer {
    let q = Q { pairs: p };
    let project = q.project()?;
    let snapshot = r.snapshot(q.flag("allow_cache", true)?).await?;
    let l = lineage::filtered(
        lineage::lineage(&snapshot.proto, &project),
        q.get("filter_object_type").unwrap_or(""),
        q.get("filter_object_name").unwrap_or(""),
    );
    let (sort_by, order) = q.sorting()?;
    let (page, limit) = q.paging((0, 0))?;
    let mut out = Map::new();
    for (key, list) in [
        ("relationships", l.direct),
        ("indirect_relationships", l.indirect),
    ] {
        let keyed = list
            .iter()
            .map(|x| Ok((object(x)?, object(x)?)))
            .collect::<Result<Vec<_>, ServiceError>>()?;
        let (items, meta) = paginate(keyed, page, limit, &sort_by, &order);
        out.insert(key.into(), Json::Array(items));
        out.insert(format!("{key}_pagination"), object(&meta)?);
    }
    Ok(AxumJson(Json::Object(out)))
}

async fn object_lineage(
    State(r): St,
    Path((object_type, name)): Path<(String, String)>,
    Pairs(p): Params,
) -> Answer {
    let q = Q { pairs: p };
    let project = q.project()?;
    const ALLOWED: [&str; 6] = [
        "dataSource",
        "entity",
        "featureView",
        "featureService",
        "feature",
        "savedDataset",
    ];
    if !ALLOWED.contains(&object_type.as_str()) {
        return Err(ServiceError::new(
            ErrorCode::BadRequest,
            "Invalid object_type. Must be one of: dataSource, entity, featureView, featureService, feature, savedDataset",
        )
        .into());
    }
    let snapshot = r.snapshot(q.flag("allow_cache", true)?).await?;
    let all = lineage::object_relationships(
        &snapshot.proto,
        &project,
        &object_type,
        &name,
        q.flag("include_indirect", false)?,
    )?;
    let (sort_by, order) = q.sorting()?;
    let (page, limit) = q.paging((0, 0))?;
    let keyed = all
        .iter()
        .map(|x| Ok((object(x)?, object(x)?)))
        .collect::<Result<Vec<_>, ServiceError>>()?;
    let (items, meta) = paginate(keyed, page, limit, &sort_by, &order);
    let mut out = Map::new();
    if !items.is_empty() {
        out.insert("relationships".into(), Json::Array(items));
    }
    out.insert("pagination".into(), object(&meta)?);
    Ok(AxumJson(Json::Object(out)))
}

/// The routes, at the root; [`router`] mounts them under `/api/v1` too.
fn routes() -> Router<Arc<RegistryReads>> {
    let r = Router::new()
        .route("/version", get(version))
        .route("/projects", get(list_projects))
        .route("/projects/{name}", get(get_project))
        .route(
            "/features",
            get(|State(r): St, Pairs(p): Params| async move {
                features(&r, Q { pairs: p }, "feature", "features", false).await
            }),
        )
        .route(
            "/features/all",
            get(|State(r): St, Pairs(p): Params| async move {
                features(&r, Q { pairs: p }, "feature", "features", true).await
            }),
        )
        .route("/features/{view}/{name}", get(get_feature))
        .route(
            "/labels",
            get(|State(r): St, Pairs(p): Params| async move {
                features(&r, Q { pairs: p }, "label", "labels", false).await
            }),
        )
        .route("/lineage/registry", get(registry_lineage))
        .route("/lineage/objects/{object_type}/{name}", get(object_lineage));
    let r = kind_routes!(r, "/entities", ENTITIES);
    let r = kind_routes!(r, "/data_sources", DATA_SOURCES);
    let r = kind_routes!(r, "/feature_views", FEATURE_VIEWS);
    let r = kind_routes!(r, "/label_views", LABEL_VIEWS);
    let r = kind_routes!(r, "/feature_services", FEATURE_SERVICES);
    let r = kind_routes!(r, "/saved_datasets", SAVED_DATASETS);
    kind_routes!(r, "/permissions", PERMISSIONS)
}

/// The REST API over `reads`, at `/api/v1/…` and at the root.
pub fn router(reads: Arc<RegistryReads>) -> Router {
    Router::new()
        .nest("/api/v1", routes())
        .merge(routes())
        .with_state(reads)
}
