//! `registry-dump`: the JSON document `feast registry-dump` prints for one project — each
//! object kind as a list sorted by name, each object in proto3 JSON (Python `MessageToJson`
//! conventions), keys sorted, two-space indentation, non-ASCII escaped.
//!
//! Feast builds the document from its Python objects, not from the stored protos; the
//! systematic effects of that round trip are reproduced here (objects lose `spec.project`,
//! top-level data sources lose `project` and `dataSourceClassType`, infra objects appear as
//! their table messages).
//!
//! Deviations from Feast 0.67 (documented in the README): Feast crashes (`KeyError`) when a
//! project has a python-mode on-demand view or a stream view without a UDF; Larder dumps them,
//! putting the UDF source text in `body` as Feast does for pandas-mode views. Feast also
//! replaces the `meta` timestamps of request sources nested in on-demand views with the time
//! of the dump, and orders a stream view's `features` differently from run to run (entity
//! columns sometimes first); Larder prints the stored timestamps and the stored order.

use std::collections::BTreeMap;

use larder_protos::{
    feast::core::{
        DataSource, Entity, FeatureService, FeatureView, Infra, LabelView, OnDemandFeatureView,
        Permission, SavedDataset, StreamFeatureView, feature_transformation_v2::Transformation,
        infra_object::InfraObject as InfraKind,
    },
    json::{JsonError, to_json},
};
use prost::Name;
use serde_json::{Map, Value as Json};

use crate::store::RegistrySnapshot;

/// The registry-dump document of `project`; an error when an object holds a value proto3 JSON
/// cannot express (a timestamp outside years 1–9999).
pub fn registry_dump(snapshot: &RegistrySnapshot, project: &str) -> Result<Json, JsonError> {
    let r = &snapshot.proto;
    let mut doc: BTreeMap<&str, Json> = BTreeMap::new();
    doc.insert("project", Json::String(project.to_owned()));

    let metadata: Vec<Json> = r
        .project_metadata
        .iter()
        .filter(|m| m.project == project)
        .map(to_json)
        .collect::<Result<_, _>>()?;
    put(&mut doc, "projectMetadata", metadata);

    put(
        &mut doc,
        "dataSources",
        data_sources(r.data_sources.iter().filter(|d| d.project == project))?,
    );
    put(
        &mut doc,
        "entities",
        sorted(in_project(&r.entities, project, |e: &Entity| {
            e.spec.as_ref().map(|s| (&s.project, &s.name))
        }))?,
    );
    put(
        &mut doc,
        "featureViews",
        sorted(in_project(&r.feature_views, project, |v: &FeatureView| {
            v.spec.as_ref().map(|s| (&s.project, &s.name))
        }))?,
    );
    put(
        &mut doc,
        "featureServices",
        sorted(in_project(
            &r.feature_services,
            project,
            |v: &FeatureService| v.spec.as_ref().map(|s| (&s.project, &s.name)),
        ))?,
    );
    let odfvs: Vec<Json> = sorted_objects(in_project(
        &r.on_demand_feature_views,
        project,
        |v: &OnDemandFeatureView| v.spec.as_ref().map(|s| (&s.project, &s.name)),
    ))
    .into_iter()
    .map(|v| {
        let mut json = object_json(v)?;
        let spec = v.spec.as_ref();
        let udf = spec.and_then(|s| s.feature_transformation.as_ref()?.transformation.as_ref());
        if let Some(Transformation::UserDefinedFunction(f)) = udf {
            let body = Json::String(f.body_text.clone());
            set_path(
                &mut json,
                &["spec", "userDefinedFunction", "body"],
                body.clone(),
            );
            set_path(
                &mut json,
                &[
                    "spec",
                    "featureTransformation",
                    "userDefinedFunction",
                    "body",
                ],
                body,
            );
        }
        Ok(json)
    })
    .collect::<Result<_, JsonError>>()?;
    put(&mut doc, "onDemandFeatureViews", odfvs);
    let sfvs: Vec<Json> = sorted_objects(in_project(
        &r.stream_feature_views,
        project,
        |v: &StreamFeatureView| v.spec.as_ref().map(|s| (&s.project, &s.name)),
    ))
    .into_iter()
    .map(|v| {
        let mut json = object_json(v)?;
        if let Some(udf) = v
            .spec
            .as_ref()
            .and_then(|s| s.user_defined_function.as_ref())
        {
            set_path(
                &mut json,
                &["spec", "userDefinedFunction", "body"],
                Json::String(udf.body_text.clone()),
            );
        }
        Ok(json)
    })
    .collect::<Result<_, JsonError>>()?;
    put(&mut doc, "streamFeatureViews", sfvs);
    put(
        &mut doc,
        "labelViews",
        sorted(in_project(&r.label_views, project, |v: &LabelView| {
            v.spec.as_ref().map(|s| (&s.project, &s.name))
        }))?,
    );
    put(
        &mut doc,
        "savedDatasets",
        sorted(in_project(
            &r.saved_datasets,
            project,
            |v: &SavedDataset| v.spec.as_ref().map(|s| (&s.project, &s.name)),
        ))?,
    );
    put(&mut doc, "infra", infra_objects(&snapshot.infra(project))?);
    put(
        &mut doc,
        "permissions",
        sorted(in_project(&r.permissions, project, |v: &Permission| {
            v.spec.as_ref().map(|s| (&s.project, &s.name))
        }))?,
    );
    Ok(Json::Object(
        doc.into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<Map<_, _>>(),
    ))
}

/// Renders like Python's `json.dumps(doc, indent=2, sort_keys=True)` (ASCII-only output).
pub fn render(doc: &Json) -> String {
    ascii_escaped(&serde_json::to_string_pretty(doc).expect("a JSON value renders"))
}

/// JSON text with every non-ASCII character written as `\uXXXX` (UTF-16 units), as Python's
/// `json.dumps` does by default (`ensure_ascii=True`). Valid because JSON text can hold
/// non-ASCII characters only inside strings.
pub fn ascii_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

fn put(doc: &mut BTreeMap<&'static str, Json>, key: &'static str, items: Vec<Json>) {
    if !items.is_empty() {
        doc.insert(key, Json::Array(items));
    }
}

/// Objects of `project` paired with their names.
fn in_project<'a, T>(
    items: &'a [T],
    project: &str,
    key: impl Fn(&'a T) -> Option<(&'a String, &'a String)>,
) -> Vec<(&'a str, &'a T)> {
    items
        .iter()
        .filter_map(|item| {
            let (p, name) = key(item)?;
            (p == project).then_some((name.as_str(), item))
        })
        .collect()
}

fn sorted_objects<'a, T>(mut items: Vec<(&'a str, &'a T)>) -> Vec<&'a T> {
    items.sort_by(|a, b| a.0.cmp(b.0));
    items.into_iter().map(|(_, item)| item).collect()
}

/// Sorted by name, each rendered as Feast's Python objects render it: the objects do not
/// carry their project, so `spec.project` is not in the document.
fn sorted<T: prost::Message + Name>(items: Vec<(&str, &T)>) -> Result<Vec<Json>, JsonError> {
    sorted_objects(items).into_iter().map(object_json).collect()
}

/// An object's proto3 JSON as Feast renders its Python object (`to_proto()` of what it read):
/// without `spec.project`. (What the REST registry API and `registry-dump` show.)
pub fn object_json<T: prost::Message + Name>(item: &T) -> Result<Json, JsonError> {
    let mut json = to_json(item)?;
    if let Some(Json::Object(spec)) = json.get_mut("spec") {
        spec.remove("project");
    }
    Ok(json)
}

/// Top-level data sources, as Python's `DataSource.to_proto()` renders them, sorted by name.
fn data_sources<'a>(items: impl Iterator<Item = &'a DataSource>) -> Result<Vec<Json>, JsonError> {
    let mut v: Vec<&DataSource> = items.collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v.into_iter().map(data_source_json).collect()
}

/// A top-level data source as Python's `DataSource.to_proto()` renders it: without `project`
/// and without `dataSourceClassType`.
pub fn data_source_json(d: &DataSource) -> Result<Json, JsonError> {
    let mut json = to_json(d)?;
    if let Json::Object(m) = &mut json {
        m.remove("project");
        m.remove("dataSourceClassType");
    }
    Ok(json)
}

/// Python's `InfraObject.to_proto()` returns the table message itself (`SqliteTable`,
/// `DatastoreTable`), so the dump lists those, sorted by name.
fn infra_objects(infra: &Infra) -> Result<Vec<Json>, JsonError> {
    let mut items: Vec<(String, Json)> = infra
        .infra_objects
        .iter()
        .map(|o| {
            Ok(match &o.infra_object {
                Some(InfraKind::SqliteTable(t)) => (t.name.clone(), to_json(t)?),
                Some(InfraKind::DatastoreTable(t)) => (t.name.clone(), to_json(t)?),
                Some(InfraKind::CustomInfra(_)) | None => (String::new(), to_json(o)?),
            })
        })
        .collect::<Result<_, JsonError>>()?;
    items.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(items.into_iter().map(|(_, j)| j).collect())
}

fn set_path(json: &mut Json, path: &[&str], value: Json) {
    let mut cur = json;
    for key in &path[..path.len() - 1] {
        let Json::Object(map) = cur else { return };
        cur = map
            .entry((*key).to_owned())
            .or_insert_with(|| Json::Object(Map::new()));
    }
    if let Json::Object(map) = cur {
        map.insert(path[path.len() - 1].to_owned(), value);
    }
}
