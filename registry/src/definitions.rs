//! Feature definitions as YAML files beside `feature_store.yaml` (`larder plan` / `apply` /
//! `export-definitions`). The schema mirrors Feast's objects field for field: each entry of a
//! section is the object's spec message (a data source: its `DataSource` message) in proto3
//! JSON with the protos' own field names, written as YAML — so an exported registry applies
//! back unchanged, and every field Feast has can be written. Objects carry no `project` (the
//! repo's) and no metadata (times, intervals: the registry's state, not definitions).
//!
//! ```yaml
//! project: {name: demo, description: A project for driver statistics}
//! entities:
//! - name: driver
//!   join_key: driver_id
//! data_sources:
//! - name: driver_hourly_stats_source
//!   type: BATCH_FILE
//!   timestamp_field: event_timestamp
//!   file_options: {uri: data/driver_stats.parquet}
//! feature_views:
//! - name: driver_hourly_stats
//!   entities: [driver]
//!   ttl: 86400s
//!   features: [{name: conv_rate, value_type: FLOAT}]
//!   batch_source: {...}
//! ```
//!
//! Sections: `entities`, `data_sources`, `feature_views`, `stream_feature_views`,
//! `on_demand_feature_views`, `label_views`, `feature_services`, `permissions`. Definitions
//! may be split over several files; errors name the file, the line of the object and the
//! field.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use larder_protos::{
    feast::core as pb,
    json::{JsonError, from_json, to_json_proto_names},
};
use prost::Message;
use serde_json::{Map, Value as Json};

use crate::store::{ObjectKind, RegistrySnapshot};

#[derive(Debug, thiserror::Error)]
pub enum DefinitionsError {
    #[error("{file}: {message}")]
    File { file: PathBuf, message: String },
    #[error("{file}:{line}: {section} {name:?}: {message}")]
    Object {
        file: PathBuf,
        line: usize,
        section: &'static str,
        name: String,
        message: String,
    },
    #[error("{0}")]
    Repo(String),
    #[error("cannot render {0}")]
    Json(#[from] JsonError),
}

/// The sections of a definitions file, in the order they are written.
pub const SECTIONS: [(&str, ObjectKind); 8] = [
    ("entities", ObjectKind::Entity),
    ("data_sources", ObjectKind::DataSource),
    ("feature_views", ObjectKind::FeatureView),
    ("stream_feature_views", ObjectKind::StreamFeatureView),
    ("on_demand_feature_views", ObjectKind::OnDemandFeatureView),
    ("label_views", ObjectKind::LabelView),
    ("feature_services", ObjectKind::FeatureService),
    ("permissions", ObjectKind::Permission),
];

/// One object defined: its kind, name, the serialized object (no metadata, the repo's
/// project) and where it was defined (`file:line`).
#[derive(Debug, Clone)]
pub struct Definition {
    pub kind: ObjectKind,
    pub name: String,
    pub bytes: Vec<u8>,
    pub origin: String,
}

/// A repo's definitions.
#[derive(Debug, Clone)]
pub struct Definitions {
    /// The project object (`project:`; its name is the repo's project).
    pub project: pb::Project,
    pub objects: Vec<Definition>,
}

/// The definition files of a repo: `*.yaml` / `*.yml` beside `feature_store.yaml` (that one
/// excepted), by name; [`load`] skips those with no definition section (other tools' YAML).
pub fn files(repo: &Path) -> Result<Vec<PathBuf>, DefinitionsError> {
    let entries = std::fs::read_dir(repo)
        .map_err(|e| DefinitionsError::Repo(format!("cannot list {}: {e}", repo.display())))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            (name.ends_with(".yaml") || name.ends_with(".yml"))
                && !name.starts_with("feature_store")
                && p.is_file()
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Reads the definitions of `repo` for `project`.
pub fn load(repo: &Path, project: &str) -> Result<Definitions, DefinitionsError> {
    let files = files(repo)?;
    if files.is_empty() {
        return Err(no_definitions(repo));
    }
    let mut read_any = false;
    let mut project_spec = pb::ProjectSpec {
        name: project.to_owned(),
        ..Default::default()
    };
    let mut objects: Vec<Definition> = Vec::new();
    let mut raw: Vec<Raw> = Vec::new();
    let mut seen: BTreeSet<(&'static str, String)> = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| DefinitionsError::File {
            file: file.clone(),
            message: e.to_string(),
        })?;
        let file_err = |message: String| DefinitionsError::File {
            file: file.clone(),
            message,
        };
        let doc: serde_norway::Value =
            serde_norway::from_str(&text).map_err(|e| file_err(e.to_string()))?;
        let doc: Json = serde_json::to_value(doc).map_err(|e| file_err(e.to_string()))?;
        let doc = match doc {
            Json::Null => continue,
            Json::Object(m) => m,
            // Not a definitions file (a list, a scalar): some other tool's YAML.
            _ => {
                tracing::info!(file = %file.display(), "not a definitions file: skipped");
                continue;
            }
        };
        // A file with none of the sections is some other tool's YAML beside the repo's
        // (a compose file, a kustomization): skipped. One with a section is definitions, and
        // any other key in it is an error (a misspelt section must not be ignored).
        let is_definitions = doc
            .keys()
            .any(|k| k == "project" || SECTIONS.iter().any(|(s, _)| s == k));
        if !is_definitions {
            tracing::info!(file = %file.display(), "no definition sections: skipped");
            continue;
        }
        read_any = true;
        for (key, value) in doc {
            if key == "project" {
                project_spec = project_of(value, project).map_err(|m| DefinitionsError::File {
                    file: file.clone(),
                    message: format!("line {}: project: {m}", line_of(&text, "project:", 0)),
                })?;
                continue;
            }
            let Some((section, kind)) = SECTIONS.iter().find(|(s, _)| *s == key) else {
                return Err(file_err(format!(
                    "line {}: unknown section {key:?} (expected project or one of {})",
                    line_of(&text, &format!("{key}:"), 0),
                    SECTIONS.map(|(s, _)| s).join(", ")
                )));
            };
            let section_line = line_of(&text, &format!("{key}:"), 0);
            let items = match value {
                Json::Null => Vec::new(),
                Json::Array(items) => items,
                _ => {
                    return Err(file_err(format!(
                        "line {section_line}: {key} must be a list of objects"
                    )));
                }
            };
            for (index, item) in items.into_iter().enumerate() {
                let name = item
                    .get("name")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let line = line_of(&text, &format!("name: {name}"), section_line);
                let err = |message: String| DefinitionsError::Object {
                    file: file.clone(),
                    line,
                    section,
                    name: if name.is_empty() {
                        format!("#{}", index + 1)
                    } else {
                        name.clone()
                    },
                    message,
                };
                if name.is_empty() {
                    return Err(err("the object has no name".into()));
                }
                if !seen.insert((section, name.clone())) {
                    return Err(err(format!("{name} is defined twice")));
                }
                raw.push(Raw {
                    kind: *kind,
                    section,
                    name,
                    item,
                    file: file.clone(),
                    line,
                });
            }
        }
    }
    if !read_any {
        // Never an empty set of definitions: applying one would delete every object.
        return Err(no_definitions(repo));
    }
    let index = Index::of(&raw);
    for r in &raw {
        let err = |message: String| DefinitionsError::Object {
            file: r.file.clone(),
            line: r.line,
            section: r.section,
            name: r.name.clone(),
            message,
        };
        let item = desugar(r.kind, r.item.clone(), &index).map_err(err)?;
        let bytes = object_bytes(r.kind, item, project).map_err(err)?;
        objects.push(Definition {
            kind: r.kind,
            name: r.name.clone(),
            bytes,
            origin: format!("{}:{}", r.file.display(), r.line),
        });
    }
    Ok(Definitions {
        project: pb::Project {
            spec: Some(project_spec),
            meta: None,
        },
        objects,
    })
}

/// A section entry as read, before its shorthand is expanded.
struct Raw {
    kind: ObjectKind,
    section: &'static str,
    name: String,
    item: Json,
    file: PathBuf,
    line: usize,
}

/// What shorthand refers to: the defined data sources, entities and feature views by name.
struct Index {
    sources: BTreeMap<String, Json>,
    entities: BTreeMap<String, Json>,
    views: BTreeMap<String, Json>,
    labels: BTreeSet<String>,
}

impl Index {
    fn of(raw: &[Raw]) -> Self {
        let by = |kind: ObjectKind| -> BTreeMap<String, Json> {
            raw.iter()
                .filter(|r| r.kind == kind)
                .map(|r| (r.name.clone(), r.item.clone()))
                .collect()
        };
        let mut index = Self {
            sources: BTreeMap::new(),
            entities: by(ObjectKind::Entity),
            views: BTreeMap::new(),
            labels: by(ObjectKind::LabelView).into_keys().collect(),
        };
        // Sources first (views embed them), then views (services project them).
        let sources = by(ObjectKind::DataSource);
        for (name, item) in &sources {
            if let Ok(d) = desugar_source(item.clone(), &sources) {
                index.sources.insert(name.clone(), d);
            }
        }
        for kind in [ObjectKind::FeatureView, ObjectKind::StreamFeatureView] {
            for (name, item) in by(kind) {
                if let Ok(v) = desugar(kind, item, &index) {
                    index.views.insert(name, v);
                }
            }
        }
        for (name, item) in by(ObjectKind::OnDemandFeatureView)
            .into_iter()
            .chain(by(ObjectKind::LabelView))
        {
            index.views.insert(name, item);
        }
        index
    }
}

/// A Feast type name (`Float32`, `Array(Int64)`, `Set(String)`) as its `ValueType` name.
fn value_type_of(dtype: &str) -> Result<String, String> {
    let (outer, inner) = match dtype.strip_suffix(')').and_then(|d| d.split_once('(')) {
        Some(("Array", inner)) => (Some("LIST"), inner),
        Some(("Set", inner)) => (Some("SET"), inner),
        _ => (None, dtype),
    };
    let base = match inner {
        "String" => "STRING",
        "Bytes" => "BYTES",
        "Bool" => "BOOL",
        "Int32" => "INT32",
        "Int64" => "INT64",
        "Float32" => "FLOAT",
        "Float64" => "DOUBLE",
        "UnixTimestamp" => "UNIX_TIMESTAMP",
        "Json" => "JSON",
        "Map" => "MAP",
        "Uuid" => "UUID",
        "TimeUuid" => "TIME_UUID",
        "Decimal" => "DECIMAL",
        "ScalarMap" if outer.is_none() => "SCALAR_MAP",
        "ZonedTimestamp" if outer.is_none() => "ZONED_TIMESTAMP",
        _ => {
            return Err(format!(
                "dtype {dtype:?}: expected a Feast type such as Float32, Int64, String, Bool, \
                 UnixTimestamp, Json, Map or Array(…)/Set(…) of one (structs: give value_type \
                 and tags as Feast stores them)"
            ));
        }
    };
    Ok(match outer {
        Some(o) => format!("{base}_{o}"),
        None => base.to_owned(),
    })
}

/// A field entry: `dtype: Float32` becomes `value_type: FLOAT`.
fn desugar_field(f: Json) -> Result<Json, String> {
    let Json::Object(mut m) = f else {
        return Err("a field must be a mapping with a name".into());
    };
    if let Some(d) = m.remove("dtype") {
        let d = d.as_str().ok_or("dtype must be a type name")?;
        m.insert("value_type".into(), Json::String(value_type_of(d)?));
    }
    Ok(Json::Object(m))
}

fn desugar_fields(v: Json) -> Result<Vec<Json>, String> {
    match v {
        Json::Array(a) => a.into_iter().map(desugar_field).collect(),
        _ => Err("expected a list of fields".into()),
    }
}

/// `ttl: 1d` / `12h` / `30m` / `45s` / seconds as a number → proto3 JSON `"86400s"`.
fn desugar_ttl(v: &Json) -> Result<Json, String> {
    let bad = || format!("ttl {v}: expected seconds or a duration such as 1d, 12h, 30m, 45s");
    let seconds = match v {
        Json::Number(n) => n.as_u64().ok_or_else(bad)?,
        Json::String(s) => {
            let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let n: u64 = n.parse().map_err(|_| bad())?;
            n * match unit {
                "" | "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                "w" => 604_800,
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    };
    Ok(Json::String(format!("{seconds}s")))
}

/// Feast's class of a source type, as `feast apply` stores it with the source.
fn source_class(source_type: &str) -> Option<&'static str> {
    Some(match source_type {
        "BATCH_FILE" => "feast.infra.offline_stores.file_source.FileSource",
        "PUSH_SOURCE" => "feast.data_source.PushSource",
        "REQUEST_SOURCE" => "feast.data_source.RequestSource",
        _ => return None,
    })
}

/// A data source's shorthand: `type: file|push|request`, `path:` (file), `batch_source:
/// NAME` (push), `schema:` (request).
fn desugar_source(item: Json, sources: &BTreeMap<String, Json>) -> Result<Json, String> {
    let Json::Object(mut m) = item else {
        return Err("expected a mapping".into());
    };
    if let Some(Json::String(t)) = m.get("type") {
        let full = match t.as_str() {
            "file" => "BATCH_FILE",
            "push" => "PUSH_SOURCE",
            "request" => "REQUEST_SOURCE",
            other => other,
        };
        m.insert("type".into(), Json::String(full.into()));
    }
    if let Some(path) = m.remove("path") {
        m.insert("file_options".into(), serde_json::json!({ "uri": path }));
    }
    if let Some(schema) = m.remove("schema") {
        m.insert(
            "request_data_options".into(),
            serde_json::json!({ "schema": desugar_fields(schema)? }),
        );
    }
    if let Some(Json::String(batch)) = m.get("batch_source").cloned() {
        let b = sources
            .get(&batch)
            .ok_or_else(|| format!("batch_source {batch:?}: no data source of that name"))?;
        let b = desugar_source(b.clone(), sources)?;
        // A push source takes its batch source's time columns, as Feast's PushSource does.
        for key in ["timestamp_field", "created_timestamp_column"] {
            if let Some(v) = b.get(key).filter(|_| !m.contains_key(key)) {
                m.insert(key.into(), v.clone());
            }
        }
        m.insert("batch_source".into(), b);
    }
    Ok(Json::Object(m))
}

/// A source as embedded in another object: with Feast's class, as `to_proto` writes it.
fn embedded(mut source: Json) -> Json {
    if let Json::Object(m) = &mut source
        && !m.contains_key("data_source_class_type")
        && let Some(class) = m.get("type").and_then(Json::as_str).and_then(source_class)
    {
        m.insert("data_source_class_type".into(), Json::String(class.into()));
    }
    source
}

/// Expands an entry's shorthand (full entries, as exported, are left as they are):
/// - entity: `join_keys: [k]` → `join_key`, `value_type: Int64` → `INT64`;
/// - data source: see [`desugar_source`];
/// - feature or stream view: `ttl: 1d`, `dtype:` in fields, `schema:` (fields; the entities'
///   join keys become entity columns), `source: NAME` (a push source: it is the stream
///   source and its batch source the batch source), `batch_source: NAME`, entity columns
///   from the entities when not given, `version: latest` by default;
/// - feature service: `features: [VIEW, {view: VIEW, features: [F, …]}]`.
fn desugar(kind: ObjectKind, item: Json, index: &Index) -> Result<Json, String> {
    let Json::Object(mut m) = item else {
        return Err("expected a mapping".into());
    };
    match kind {
        ObjectKind::Entity => {
            if let Some(keys) = m.remove("join_keys") {
                let keys: Vec<String> = serde_json::from_value(keys)
                    .map_err(|_| "join_keys must be a list of names")?;
                match keys.as_slice() {
                    [k] => {
                        m.insert("join_key".into(), Json::String(k.clone()));
                    }
                    _ => return Err("join_keys: Feast entities have exactly one join key".into()),
                }
            }
            if let Some(Json::String(t)) = m.get("value_type")
                && t.chars().any(|c| c.is_ascii_lowercase())
            {
                let t = value_type_of(t)?;
                m.insert("value_type".into(), Json::String(t));
            }
            Ok(Json::Object(m))
        }
        ObjectKind::DataSource => desugar_source(Json::Object(m), &index.sources),
        ObjectKind::FeatureView | ObjectKind::StreamFeatureView => {
            if let Some(ttl) = m.get("ttl").cloned() {
                m.insert("ttl".into(), desugar_ttl(&ttl)?);
            }
            let entities: Vec<String> = m
                .get("entities")
                .map(|e| {
                    serde_json::from_value(e.clone())
                        .map_err(|_| "entities must be a list of names")
                })
                .transpose()?
                .unwrap_or_default();
            let needs_keys = m.contains_key("schema") || !m.contains_key("entity_columns");
            let join_keys: Vec<(String, Json)> = entities
                .iter()
                .filter(|_| needs_keys)
                .map(|e| {
                    let entity = index
                        .entities
                        .get(e)
                        .ok_or_else(|| format!("entity {e:?}: no entity of that name"))?;
                    let key = entity
                        .get("join_key")
                        .or_else(|| entity.get("join_keys").and_then(|k| k.get(0)))
                        .and_then(Json::as_str)
                        .unwrap_or(e)
                        .to_owned();
                    let vt = match entity.get("value_type").and_then(Json::as_str) {
                        Some(t) if t.chars().any(|c| c.is_ascii_lowercase()) => value_type_of(t)?,
                        Some(t) => t.to_owned(),
                        None => "STRING".to_owned(),
                    };
                    Ok((key, Json::String(vt)))
                })
                .collect::<Result<_, String>>()?;
            if let Some(schema) = m.remove("schema") {
                let (cols, feats): (Vec<Json>, Vec<Json>) =
                    desugar_fields(schema)?.into_iter().partition(|f| {
                        let n = f.get("name").and_then(Json::as_str).unwrap_or_default();
                        join_keys.iter().any(|(k, _)| k == n)
                    });
                m.insert("features".into(), Json::Array(feats));
                if !cols.is_empty() {
                    m.insert("entity_columns".into(), Json::Array(cols));
                }
            } else if let Some(f) = m.remove("features") {
                m.insert("features".into(), Json::Array(desugar_fields(f)?));
            }
            if let Some(c) = m.remove("entity_columns") {
                m.insert("entity_columns".into(), Json::Array(desugar_fields(c)?));
            } else if !join_keys.is_empty() {
                let cols = join_keys
                    .iter()
                    .map(|(k, vt)| serde_json::json!({"name": k, "value_type": vt}))
                    .collect();
                m.insert("entity_columns".into(), Json::Array(cols));
            }
            let named = |key: &str, m: &Map<String, Json>| -> Result<Option<Json>, String> {
                match m.get(key) {
                    Some(Json::String(n)) => index
                        .sources
                        .get(n)
                        .cloned()
                        .map(Some)
                        .ok_or_else(|| format!("{key} {n:?}: no data source of that name")),
                    _ => Ok(None),
                }
            };
            if let Some(src) = named("source", &m)? {
                m.remove("source");
                if src.get("type").and_then(Json::as_str) == Some("PUSH_SOURCE") {
                    if let Some(b) = src.get("batch_source").cloned() {
                        m.insert("batch_source".into(), embedded(b));
                    }
                    m.insert("stream_source".into(), embedded(src));
                } else {
                    m.insert("batch_source".into(), embedded(src));
                }
            }
            for key in ["batch_source", "stream_source"] {
                if let Some(src) = named(key, &m)? {
                    m.insert(key.into(), embedded(src));
                }
            }
            m.entry("version")
                .or_insert_with(|| Json::String("latest".into()));
            // Feast's `FeatureView(online=True)` default.
            m.entry("online").or_insert(Json::Bool(true));
            Ok(Json::Object(m))
        }
        ObjectKind::FeatureService => {
            if let Some(Json::Array(items)) = m.get("features").cloned() {
                let projections = items
                    .into_iter()
                    .map(|p| {
                        let (view, only): (String, Option<Vec<String>>) = match &p {
                            Json::String(v) => (v.clone(), None),
                            Json::Object(o) if o.contains_key("view") => (
                                o["view"].as_str().unwrap_or_default().to_owned(),
                                o.get("features")
                                    .map(|f| serde_json::from_value(f.clone()))
                                    .transpose()
                                    .map_err(|_| "features must be a list of names")?,
                            ),
                            _ => return Ok(p),
                        };
                        let v = index.views.get(&view).ok_or_else(|| {
                            format!("view {view:?}: no feature view of that name")
                        })?;
                        let all: Vec<Json> = v
                            .get("features")
                            .and_then(Json::as_array)
                            .cloned()
                            .unwrap_or_default();
                        let columns: Vec<Json> = match &only {
                            None => all,
                            Some(names) => names
                                .iter()
                                .map(|n| {
                                    all.iter()
                                        .find(|f| f.get("name").and_then(Json::as_str) == Some(n))
                                        .cloned()
                                        .ok_or_else(|| {
                                            format!("view {view:?} has no feature {n:?}")
                                        })
                                })
                                .collect::<Result<_, String>>()?,
                        };
                        // What Feast's `FeatureViewProjection.from_definition` adds: the view's
                        // batch source, with its created column also as the timestamp field.
                        let view_type = if index.labels.contains(&view) {
                            "labelView"
                        } else {
                            "featureView"
                        };
                        let mut p = serde_json::json!({
                            "feature_view_name": view,
                            "feature_columns": columns,
                            "view_type": view_type,
                        });
                        if let Some(Json::Object(b)) = v.get("batch_source") {
                            let mut b = b.clone();
                            b.remove("data_source_class_type");
                            for (key, from) in [
                                ("timestamp_field", "created_timestamp_column"),
                                ("created_timestamp_column", "created_timestamp_column"),
                                ("date_partition_column", "date_partition_column"),
                            ] {
                                if let Some(x) = b.get(from).filter(|x| x.as_str() != Some("")) {
                                    p[key] = x.clone();
                                }
                            }
                            p["batch_source"] = Json::Object(b);
                        }
                        Ok(p)
                    })
                    .collect::<Result<Vec<Json>, String>>()?;
                m.insert("features".into(), Json::Array(projections));
            }
            Ok(Json::Object(m))
        }
        _ => Ok(Json::Object(m)),
    }
}

fn no_definitions(repo: &Path) -> DefinitionsError {
    DefinitionsError::Repo(format!(
        "{} has no definition files (*.yaml beside feature_store.yaml with a section such as \
         entities or feature_views; `larder export-definitions` writes one from a registry)",
        repo.display()
    ))
}

/// The 1-based line of the first line at or after `from` (0-based) whose text, trimmed of
/// indentation and a list dash, starts with `needle` (quotes around the value allowed); the
/// line of `from` if none.
fn line_of(text: &str, needle: &str, from: usize) -> usize {
    let bare = |l: &str| -> String {
        l.trim_start()
            .trim_start_matches("- ")
            .replace(['"', '\''], "")
    };
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| bare(l).starts_with(needle))
        .map_or(from.max(1), |(i, _)| i + 1)
}

fn project_of(value: Json, project: &str) -> Result<pb::ProjectSpec, String> {
    let mut m = match value {
        Json::String(name) => {
            let mut m = Map::new();
            m.insert("name".into(), Json::String(name));
            m
        }
        Json::Object(m) => m,
        _ => return Err("expected a name or a mapping".into()),
    };
    match m.get("name").and_then(Json::as_str) {
        Some(name) if name != project => {
            return Err(format!(
                "the definitions are of project {name:?}; feature_store.yaml's is {project:?}"
            ));
        }
        _ => {}
    }
    m.insert("name".into(), Json::String(project.into()));
    from_json::<pb::ProjectSpec>(&Json::Object(m).to_string()).map_err(|e| field_message(&e))
}

/// The object of a section entry, stored under `project`.
fn object_bytes(kind: ObjectKind, item: Json, project: &str) -> Result<Vec<u8>, String> {
    let Json::Object(mut m) = item else {
        return Err("expected a mapping".into());
    };
    if m.contains_key("project") {
        return Err("field project: objects belong to the repo's project; remove it".into());
    }
    m.insert("project".into(), Json::String(project.into()));
    let json = Json::Object(m).to_string();
    let spec_err = |e: JsonError| field_message(&e);
    macro_rules! with_spec {
        ($t:ident) => {
            pb::$t {
                spec: Some(from_json(&json).map_err(spec_err)?),
                meta: None,
            }
            .encode_to_vec()
        };
    }
    Ok(match kind {
        ObjectKind::Entity => with_spec!(Entity),
        ObjectKind::DataSource => from_json::<pb::DataSource>(&json)
            .map_err(spec_err)?
            .encode_to_vec(),
        ObjectKind::FeatureView => with_spec!(FeatureView),
        ObjectKind::StreamFeatureView => with_spec!(StreamFeatureView),
        ObjectKind::OnDemandFeatureView => with_spec!(OnDemandFeatureView),
        ObjectKind::LabelView => with_spec!(LabelView),
        ObjectKind::FeatureService => with_spec!(FeatureService),
        ObjectKind::Permission => with_spec!(Permission),
        other => return Err(format!("{} objects are not definitions", other.label())),
    })
}

/// The JSON mapping's message for a bad field, without the message name noise.
fn field_message(e: &JsonError) -> String {
    match e {
        JsonError::Parse { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// An object as a definition: its spec (a data source: itself) without the project and
/// the registry's metadata, in proto JSON with proto field names.
pub fn definition_json(kind: ObjectKind, bytes: &[u8]) -> Result<Json, DefinitionsError> {
    let decode_err = |e: prost::DecodeError| {
        DefinitionsError::Repo(format!("a stored object does not decode: {e}"))
    };
    macro_rules! spec_of {
        ($t:ident) => {
            spec_json(pb::$t::decode(bytes).map_err(decode_err)?.spec)?
        };
    }
    let mut json = match kind {
        ObjectKind::Entity => spec_of!(Entity),
        ObjectKind::FeatureView => spec_of!(FeatureView),
        ObjectKind::StreamFeatureView => spec_of!(StreamFeatureView),
        ObjectKind::OnDemandFeatureView => spec_of!(OnDemandFeatureView),
        ObjectKind::LabelView => spec_of!(LabelView),
        ObjectKind::FeatureService => spec_of!(FeatureService),
        ObjectKind::Permission => spec_of!(Permission),
        ObjectKind::DataSource => {
            let mut d = pb::DataSource::decode(bytes).map_err(decode_err)?;
            d.meta = None;
            d.data_source_class_type.clear();
            to_json_proto_names(&d)?
        }
        other => {
            return Err(DefinitionsError::Repo(format!(
                "{} objects are not definitions",
                other.label()
            )));
        }
    };
    if let Json::Object(m) = &mut json {
        m.remove("project");
        // Written even when false: an entry without it is shorthand, online by default.
        if matches!(
            kind,
            ObjectKind::FeatureView | ObjectKind::StreamFeatureView
        ) {
            m.entry("online").or_insert(Json::Bool(false));
        }
    }
    Ok(json)
}

fn spec_json<S: Message + prost::Name + Default>(
    spec: Option<S>,
) -> Result<Json, DefinitionsError> {
    Ok(to_json_proto_names(&spec.unwrap_or_default())?)
}

/// The YAML of `project`'s definitions in `snapshot` (`larder export-definitions`): the
/// project, then each section's objects by name, each object's `name` first.
pub fn export(snapshot: &RegistrySnapshot, project: &str) -> Result<String, DefinitionsError> {
    let r = &snapshot.proto;
    let mut out = format!(
        "# Feast definitions of project {project}, written by `larder export-definitions`.\n\
         # Each entry is the object's spec in Feast's protos (field names as there); `larder\n\
         # plan` shows what applying these files changes, `larder apply` applies them.\n"
    );
    let spec = r
        .projects
        .iter()
        .filter_map(|p| p.spec.clone())
        .find(|s| s.name == project)
        .unwrap_or_else(|| pb::ProjectSpec {
            name: project.into(),
            ..Default::default()
        });
    out.push_str(&section_yaml(
        "project",
        &ordered(&to_json_proto_names(&spec)?),
    ));
    for (section, kind) in SECTIONS {
        let mut items: Vec<(String, Json)> = Vec::new();
        for (key, bytes) in objects_of(r, kind, project) {
            items.push((key, definition_json(kind, &bytes)?));
        }
        if items.is_empty() {
            continue;
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let list = serde_norway::Value::Sequence(items.iter().map(|(_, j)| ordered(j)).collect());
        out.push_str(&section_yaml(section, &list));
    }
    Ok(out)
}

fn section_yaml(key: &str, value: &serde_norway::Value) -> String {
    let mut m = serde_norway::Mapping::new();
    m.insert(serde_norway::Value::String(key.into()), value.clone());
    serde_norway::to_string(&serde_norway::Value::Mapping(m)).expect("a YAML value renders")
}

/// JSON as YAML with each mapping's `name` first (the rest as JSON orders it).
fn ordered(j: &Json) -> serde_norway::Value {
    use serde_norway::Value as Y;
    match j {
        Json::Null => Y::Null,
        Json::Bool(b) => Y::Bool(*b),
        Json::Number(n) => serde_norway::to_value(n).unwrap_or(Y::Null),
        Json::String(s) => Y::String(s.clone()),
        Json::Array(a) => Y::Sequence(a.iter().map(ordered).collect()),
        Json::Object(m) => {
            let mut out = serde_norway::Mapping::new();
            if let Some(name) = m.get("name") {
                out.insert(Y::String("name".into()), ordered(name));
            }
            for (k, v) in m.iter().filter(|(k, _)| *k != "name") {
                out.insert(Y::String(k.clone()), ordered(v));
            }
            Y::Mapping(out)
        }
    }
}

/// The stored objects of one kind in `project`: name and bytes.
pub fn objects_of(r: &pb::Registry, kind: ObjectKind, project: &str) -> Vec<(String, Vec<u8>)> {
    macro_rules! by_spec {
        ($list:expr) => {
            $list
                .iter()
                .filter_map(|o| {
                    let s = o.spec.as_ref()?;
                    (s.project == project).then(|| (s.name.clone(), o.encode_to_vec()))
                })
                .collect()
        };
    }
    match kind {
        ObjectKind::Entity => by_spec!(r.entities),
        ObjectKind::FeatureView => by_spec!(r.feature_views),
        ObjectKind::StreamFeatureView => by_spec!(r.stream_feature_views),
        ObjectKind::OnDemandFeatureView => by_spec!(r.on_demand_feature_views),
        ObjectKind::LabelView => by_spec!(r.label_views),
        ObjectKind::FeatureService => by_spec!(r.feature_services),
        ObjectKind::Permission => by_spec!(r.permissions),
        ObjectKind::DataSource => r
            .data_sources
            .iter()
            .filter(|d| d.project == project)
            .map(|d| (d.name.clone(), d.encode_to_vec()))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("feature_store.yaml"), "project: p\n").unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn definitions_load_and_errors_name_file_line_and_field() {
        let dir = repo(&[(
            "defs.yaml",
            "project: {name: p, description: demo}\nentities:\n- name: driver\n  join_key: driver_id\nfeature_views:\n- name: stats\n  entities: [driver]\n  ttl: 86400s\n  features:\n  - {name: x, value_type: FLOAT}\n",
        )]);
        let d = load(dir.path(), "p").unwrap();
        assert_eq!(d.project.spec.as_ref().unwrap().description, "demo");
        assert_eq!(d.objects.len(), 2);
        let fv = pb::FeatureView::decode(d.objects[1].bytes.as_slice()).unwrap();
        let spec = fv.spec.unwrap();
        assert_eq!(
            (spec.project.as_str(), spec.ttl.unwrap().seconds),
            ("p", 86400)
        );
        assert_eq!(spec.features[0].value_type, 6);
        assert!(
            d.objects[1].origin.ends_with("defs.yaml:6"),
            "{}",
            d.objects[1].origin
        );

        let dir = repo(&[(
            "bad.yaml",
            "entities:\n- name: driver\n  join_key: driver_id\n- name: rider\n  joinkey: rider_id\n",
        )]);
        let e = load(dir.path(), "p").unwrap_err().to_string();
        assert!(
            e.contains("bad.yaml:4") && e.contains("rider") && e.contains("joinkey"),
            "{e}"
        );
        let dir = repo(&[("bad.yaml", "entities: []\nentity:\n- name: x\n")]);
        let e = load(dir.path(), "p").unwrap_err().to_string();
        assert!(
            e.contains("bad.yaml") && e.contains("unknown section \"entity\""),
            "{e}"
        );
        // Other tools' YAML beside the definitions is skipped.
        let dir = repo(&[
            ("defs.yaml", "entities:\n- name: x\n"),
            ("compose.yaml", "services:\n  redis: {image: redis}\n"),
            ("list.yaml", "- a\n- b\n"),
        ]);
        assert_eq!(load(dir.path(), "p").unwrap().objects.len(), 1);
        // Only other tools' YAML: no definitions, never an empty set (which would delete all).
        let dir = repo(&[("compose.yaml", "services: {}\n")]);
        let e = load(dir.path(), "p").unwrap_err().to_string();
        assert!(e.contains("no definition files"), "{e}");
        let dir = repo(&[("bad.yaml", "project: q\n")]);
        let e = load(dir.path(), "p").unwrap_err().to_string();
        assert!(e.contains("\"q\"") && e.contains("\"p\""), "{e}");
        let dir = repo(&[
            ("a.yaml", "entities:\n- name: x\n"),
            ("b.yaml", "entities:\n- name: x\n"),
        ]);
        let e = load(dir.path(), "p").unwrap_err().to_string();
        assert!(e.contains("b.yaml") && e.contains("twice"), "{e}");
        let dir = repo(&[("bad.yaml", "entities: [\n")]);
        assert!(
            load(dir.path(), "p")
                .unwrap_err()
                .to_string()
                .contains("bad.yaml")
        );
        let dir = repo(&[]);
        assert!(
            load(dir.path(), "p")
                .unwrap_err()
                .to_string()
                .contains("no definition files")
        );
    }

    #[test]
    fn an_export_loads_back_to_the_same_objects() {
        let entity = pb::Entity {
            spec: Some(pb::EntitySpecV2 {
                name: "driver".into(),
                project: "p".into(),
                join_key: "driver_id".into(),
                value_type: 4,
                tags: [("team".to_owned(), "a".to_owned())].into(),
                ..Default::default()
            }),
            meta: Some(pb::EntityMeta::default()),
        };
        let source = pb::DataSource {
            name: "src".into(),
            project: "p".into(),
            r#type: pb::data_source::SourceType::BatchFile as i32,
            timestamp_field: "ts".into(),
            ..Default::default()
        };
        let snapshot = RegistrySnapshot::from_proto(pb::Registry {
            entities: vec![entity.clone()],
            data_sources: vec![source.clone()],
            ..Default::default()
        });
        let yaml = export(&snapshot, "p").unwrap();
        assert!(yaml.contains("entities:\n- name: driver\n"), "{yaml}");
        let dir = repo(&[("defs.yaml", &yaml)]);
        let d = load(dir.path(), "p").unwrap();
        let mut want = entity;
        want.meta = None;
        let of = |kind| {
            d.objects
                .iter()
                .find(|o| o.kind == kind)
                .map(|o| o.bytes.clone())
                .unwrap()
        };
        assert_eq!(of(ObjectKind::Entity), want.encode_to_vec());
        assert_eq!(of(ObjectKind::DataSource), source.encode_to_vec());
    }
}
