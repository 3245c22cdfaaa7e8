//! The registry server's derived reads (Feast 0.67's `registry_server.py` and
//! `lineage/registry_lineage.py`): the features of a project's views (`ListFeatures`,
//! `GetFeature`), the lineage between its objects (`GetRegistryLineage`,
//! `GetObjectRelationships`), and Feast's pagination and sorting of lists. Transport-free:
//! the gRPC and REST adapters call these.

use std::collections::BTreeMap;

use larder_protos::feast::{
    core as pb,
    registry::{
        EntityReference, EntityRelation, Feature, PaginationMetadata, PaginationParams,
        SortingParams,
    },
};
use serde_json::Value as Json;

use crate::error::{ErrorCode, ServiceError};

/// Feast's `FeastObjectType` values.
pub const OBJECT_TYPES: [&str; 7] = [
    "dataSource",
    "entity",
    "featureView",
    "labelView",
    "featureService",
    "feature",
    "savedDataset",
];

/// A feature type as Feast's `str(field.dtype)` prints it (`Int64`, `Array(Float32)`,
/// `Struct({name: String})`), the real type of structs and nested collections read from the
/// field's tags as Feast's `Field.from_proto` does.
pub fn type_name(field: &pb::FeatureSpecV2) -> String {
    use larder_protos::feast::types::value_type::Enum as V;
    let tag = |k: &str| field.tags.get(k).map(String::as_str);
    let v = V::try_from(field.value_type).unwrap_or(V::Invalid);
    match v {
        V::Struct => match tag("feast:struct_schema") {
            Some(schema) => struct_name(schema),
            None => "Struct({_value: String})".into(),
        },
        V::StructList => match tag("feast:struct_schema") {
            Some(schema) => format!("Array({})", struct_name(schema)),
            None => "Array(Struct({_value: String}))".into(),
        },
        V::ValueList | V::ValueSet => match tag("feast:nested_inner_type") {
            Some(t) => serialized_type_name(t),
            None if v == V::ValueList => "Array(Array(String))".into(),
            None => "Set(Array(String))".into(),
        },
        _ => {
            let name = v.as_str_name();
            let (outer, base) = match name.rsplit_once('_') {
                Some((base, "LIST")) => (Some("Array"), base),
                Some((base, "SET")) => (Some("Set"), base),
                _ => (None, name),
            };
            let base = match base {
                "DOUBLE" => "Float64".to_owned(),
                "FLOAT" => "Float32".to_owned(),
                other => primitive_name(other),
            };
            match outer {
                Some(o) => format!("{o}({base})"),
                None => base,
            }
        }
    }
}

/// A primitive's display name from its enum name (`UNIX_TIMESTAMP` → `UnixTimestamp`).
fn primitive_name(enum_name: &str) -> String {
    enum_name
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or(String::new(), |f| {
                f.to_string() + &c.as_str().to_ascii_lowercase()
            })
        })
        .collect()
}

/// A type as Feast serializes it in tags (`INT64`, `Array(STRING)`, `{"__struct__": {…}}`).
fn serialized_type_name(s: &str) -> String {
    for outer in ["Array", "Set"] {
        if let Some(inner) = s
            .strip_prefix(outer)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
        {
            return format!("{outer}({})", serialized_type_name(inner));
        }
    }
    if s.starts_with('{') {
        return match serde_json::from_str::<Schema>(s) {
            Ok(schema) => schema.render(),
            Err(_) => s.to_owned(),
        };
    }
    primitive_name(s)
}

/// A type in Feast's serialized struct schemas: a type string, or an object of fields (in
/// document order), possibly wrapped as `{"__struct__": {…}}`.
enum Schema {
    Name(String),
    Fields(Vec<(String, Schema)>),
}

impl Schema {
    fn render(&self) -> String {
        match self {
            Schema::Name(t) => serialized_type_name(t),
            Schema::Fields(f) => match f.as_slice() {
                [(k, inner @ Schema::Fields(_))] if k == "__struct__" => inner.render(),
                fields => {
                    let parts: Vec<String> = fields
                        .iter()
                        .map(|(name, t)| format!("{name}: {}", t.render()))
                        .collect();
                    format!("Struct({{{}}})", parts.join(", "))
                }
            },
        }
    }
}

impl<'de> serde::Deserialize<'de> for Schema {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Schema;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a type string or an object of fields")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Schema, E> {
                Ok(Schema::Name(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Schema, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = m.next_entry::<String, Schema>()? {
                    out.push(kv);
                }
                Ok(Schema::Fields(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn struct_name(schema: &str) -> String {
    match serde_json::from_str::<Schema>(schema) {
        Ok(s @ Schema::Fields(_)) => s.render(),
        _ => "Struct({_value: String})".into(),
    }
}

/// Which features `ListFeatures` lists.
#[derive(Debug, Default, Clone)]
pub struct FeatureFilter {
    pub feature_view: String,
    pub name: String,
    /// `feature` (any view but label views), `label` (label views), or "" for both.
    pub kind: String,
}

/// The schema fields of every view of `project` (feature, stream, on-demand, then label
/// views, each in registry order), as Feast's `ListFeatures` gives them: owner and times are
/// empty (Feast reads attributes its view objects do not have), the internal type tags
/// dropped.
pub fn features(r: &pb::Registry, project: &str, filter: &FeatureFilter) -> Vec<Feature> {
    let mut out = Vec::new();
    let mut add = |view: &str, fields: &[pb::FeatureSpecV2], kind: &str| {
        if !filter.kind.is_empty() && filter.kind != kind {
            return;
        }
        if !filter.feature_view.is_empty() && filter.feature_view != view {
            return;
        }
        for f in fields {
            if !filter.name.is_empty() && filter.name != f.name {
                continue;
            }
            out.push(Feature {
                name: f.name.clone(),
                feature_view: view.to_owned(),
                r#type: type_name(f),
                description: f.description.clone(),
                tags: f
                    .tags
                    .iter()
                    .filter(|(k, _)| *k != "feast:struct_schema" && *k != "feast:nested_inner_type")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                kind: kind.to_owned(),
                ..Default::default()
            });
        }
    };
    macro_rules! views {
        ($list:expr, $kind:literal) => {
            for v in $list.iter() {
                if let Some(s) = v.spec.as_ref().filter(|s| s.project == project) {
                    add(&s.name, &s.features, $kind);
                }
            }
        };
    }
    views!(r.feature_views, "feature");
    views!(r.stream_feature_views, "feature");
    views!(r.on_demand_feature_views, "feature");
    views!(r.label_views, "label");
    out
}

/// One feature of one view (`GetFeature`); Feast's `FeastObjectNotFoundException` if none.
pub fn feature(
    r: &pb::Registry,
    project: &str,
    view: &str,
    name: &str,
) -> Result<Feature, ServiceError> {
    let filter = FeatureFilter {
        feature_view: view.to_owned(),
        name: name.to_owned(),
        kind: String::new(),
    };
    features(r, project, &filter)
        .into_iter()
        .next()
        .ok_or_else(|| {
            ServiceError::feast(
                ErrorCode::NotFound,
                "FeastObjectNotFoundException",
                format!("Feature {name} not found in feature view {view} in project {project}"),
            )
        })
}

fn relation(source: (&str, &str), target: (&str, &str)) -> EntityRelation {
    let reference = |(t, n): (&str, &str)| EntityReference {
        r#type: t.to_owned(),
        name: n.to_owned(),
    };
    EntityRelation {
        source: Some(reference(source)),
        target: Some(reference(target)),
    }
}

/// A project's lineage: the direct relationships and the indirect ones, in Feast's order
/// (no duplicates removed, as in Feast).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Lineage {
    pub direct: Vec<EntityRelation>,
    pub indirect: Vec<EntityRelation>,
}

/// Feast's `generate_lineage` over a project's entities, sources, views and services (saved
/// datasets are not part of it: Feast's server never loads them for lineage).
pub fn lineage(r: &pb::Registry, project: &str) -> Lineage {
    let in_project = |p: &str| p == project;
    let label_names: Vec<&str> = r
        .label_views
        .iter()
        .filter_map(|v| v.spec.as_ref())
        .filter(|s| in_project(&s.project))
        .map(|s| s.name.as_str())
        .collect();
    let mut direct = Vec::new();
    let services: Vec<&pb::FeatureServiceSpec> = r
        .feature_services
        .iter()
        .filter_map(|s| s.spec.as_ref())
        .filter(|s| in_project(&s.project))
        .collect();
    for fs in &services {
        for p in &fs.features {
            let kind = if p.view_type == "labelView"
                || label_names.contains(&p.feature_view_name.as_str())
            {
                "labelView"
            } else {
                "featureView"
            };
            direct.push(relation(
                (kind, &p.feature_view_name),
                ("featureService", &fs.name),
            ));
        }
    }
    for s in r.feature_views.iter().filter_map(|v| v.spec.as_ref()) {
        if !in_project(&s.project) {
            continue;
        }
        for e in &s.entities {
            direct.push(relation(("entity", e), ("featureView", &s.name)));
        }
        for f in &s.features {
            direct.push(relation(("feature", &f.name), ("featureView", &s.name)));
        }
        if let Some(b) = &s.batch_source {
            let name = if b.name.is_empty() {
                format!("unnamed_source_{}", b.r#type)
            } else {
                b.name.clone()
            };
            direct.push(relation(("dataSource", &name), ("featureView", &s.name)));
        }
    }
    let odfvs: Vec<&pb::OnDemandFeatureViewSpec> = r
        .on_demand_feature_views
        .iter()
        .filter_map(|v| v.spec.as_ref())
        .filter(|s| in_project(&s.project))
        .collect();
    for s in &odfvs {
        for e in &s.entities {
            direct.push(relation(("entity", e), ("featureView", &s.name)));
        }
        for f in &s.features {
            direct.push(relation(("feature", &f.name), ("featureView", &s.name)));
        }
    }
    for s in &odfvs {
        use pb::on_demand_source::Source;
        // By name: Feast follows its protobuf map's iteration order, which is not the
        // definition's.
        let sources: BTreeMap<&String, &pb::OnDemandSource> = s.sources.iter().collect();
        for source in sources.values() {
            match &source.source {
                Some(Source::RequestDataSource(d)) => {
                    direct.push(relation(("dataSource", &d.name), ("featureView", &s.name)))
                }
                Some(Source::FeatureViewProjection(p)) => direct.push(relation(
                    ("featureView", &p.feature_view_name),
                    ("featureView", &s.name),
                )),
                _ => {}
            }
        }
    }
    for s in r
        .stream_feature_views
        .iter()
        .filter_map(|v| v.spec.as_ref())
    {
        if !in_project(&s.project) {
            continue;
        }
        for d in [&s.stream_source, &s.batch_source].into_iter().flatten() {
            if !d.name.is_empty() {
                direct.push(relation(("dataSource", &d.name), ("featureView", &s.name)));
            }
        }
    }
    for s in r.label_views.iter().filter_map(|v| v.spec.as_ref()) {
        if !in_project(&s.project) {
            continue;
        }
        for e in &s.entities {
            direct.push(relation(("entity", e), ("labelView", &s.name)));
        }
        if let Some(src) = &s.source {
            if !src.name.is_empty() {
                direct.push(relation(("dataSource", &src.name), ("labelView", &s.name)));
            }
            if let Some(b) = src.batch_source.as_ref().filter(|b| !b.name.is_empty()) {
                direct.push(relation(("dataSource", &b.name), ("labelView", &s.name)));
            }
        }
    }

    let mut indirect = Vec::new();
    let target_of = |r: &EntityRelation| r.target.clone().unwrap_or_default();
    let source_of = |r: &EntityRelation| r.source.clone().unwrap_or_default();
    for fs in &services {
        for p in &fs.features {
            for d in &direct {
                let t = target_of(d);
                if t.name == p.feature_view_name
                    && (t.r#type == "featureView" || t.r#type == "labelView")
                {
                    let s = source_of(d);
                    indirect.push(relation((&s.r#type, &s.name), ("featureService", &fs.name)));
                }
            }
        }
    }
    let mut view_sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut view_order: Vec<String> = Vec::new();
    for d in &direct {
        let (s, t) = (source_of(d), target_of(d));
        if s.r#type == "dataSource" && (t.r#type == "featureView" || t.r#type == "labelView") {
            if !view_sources.contains_key(&t.name) {
                view_order.push(t.name.clone());
            }
            view_sources.entry(t.name).or_default().push(s.name);
        }
    }
    for d in &direct {
        let (s, t) = (source_of(d), target_of(d));
        if s.r#type == "entity" && (t.r#type == "featureView" || t.r#type == "labelView") {
            for ds in view_sources.get(&t.name).into_iter().flatten() {
                indirect.push(relation(("entity", &s.name), ("dataSource", ds)));
            }
        }
    }
    Lineage { direct, indirect }
}

/// Whether a relation has `(type, name)` at either end.
pub fn touches(r: &EntityRelation, object_type: &str, name: &str) -> bool {
    [&r.source, &r.target]
        .into_iter()
        .flatten()
        .any(|e| e.r#type == object_type && e.name == name)
}

/// `GetRegistryLineage`'s filter: both given, or none.
pub fn filtered(mut l: Lineage, object_type: &str, name: &str) -> Lineage {
    if !object_type.is_empty() && !name.is_empty() {
        l.direct.retain(|r| touches(r, object_type, name));
        l.indirect.retain(|r| touches(r, object_type, name));
    }
    l
}

/// `GetObjectRelationships`: the relations of one object (indirect ones too on request);
/// an unknown type is refused as Feast refuses it.
pub fn object_relationships(
    r: &pb::Registry,
    project: &str,
    object_type: &str,
    name: &str,
    include_indirect: bool,
) -> Result<Vec<EntityRelation>, ServiceError> {
    if !OBJECT_TYPES.contains(&object_type) {
        return Err(ServiceError::bad_request(format!(
            "'{object_type}' is not a valid FeastObjectType"
        )));
    }
    let l = lineage(r, project);
    let mut all = l.direct;
    if include_indirect {
        all.extend(l.indirect);
    }
    all.retain(|rel| touches(rel, object_type, name));
    Ok(all)
}

/// Feast's `apply_pagination_and_sorting` over items given with their JSON (what `sort_by`,
/// a dot path, is looked up in: at the top, else under `spec`, else under `meta`; snake_case
/// steps match camelCase keys). No page or limit: every item. Sorting is stable; a path
/// missing from an item sorts it first; strings compare case-insensitively.
pub fn paginate<T>(
    mut items: Vec<(T, Json)>,
    page: i32,
    limit: i32,
    sort_by: &str,
    sort_order: &str,
) -> (Vec<T>, PaginationMetadata) {
    if items.is_empty() {
        return (Vec::new(), PaginationMetadata::default());
    }
    if !sort_by.trim().is_empty() {
        // A stable sort; descending reverses the comparison, so equal keys keep their
        // order, as Python's `sorted(reverse=True)` keeps it.
        let desc = sort_order.eq_ignore_ascii_case("desc");
        let path = sort_by.trim();
        let mut keyed: Vec<(SortKey, (T, Json))> = items
            .into_iter()
            .map(|i| (sort_key(&i.1, path), i))
            .collect();
        keyed.sort_by(|a, b| {
            let o = a.0.cmp(&b.0);
            if desc { o.reverse() } else { o }
        });
        items = keyed.into_iter().map(|(_, i)| i).collect();
    }
    let total = items.len() as i32;
    if page > 0 && limit > 0 {
        let pages = (total + limit - 1) / limit;
        let start = ((page - 1) as usize).saturating_mul(limit as usize);
        let page_items = items
            .into_iter()
            .skip(start)
            .take(limit as usize)
            .map(|(t, _)| t)
            .collect();
        let meta = PaginationMetadata {
            page,
            limit,
            total_count: total,
            total_pages: pages,
            has_next: page < pages,
            has_previous: page > 1,
        };
        return (page_items, meta);
    }
    let meta = PaginationMetadata {
        total_count: total,
        total_pages: 1,
        ..Default::default()
    };
    (items.into_iter().map(|(t, _)| t).collect(), meta)
}

/// [`paginate`] over protos, each sorted by its proto3 JSON (`MessageToDict`).
pub fn paginate_protos<T: prost::Message + prost::Name>(
    items: Vec<T>,
    pagination: Option<&PaginationParams>,
    sorting: Option<&SortingParams>,
) -> Result<(Vec<T>, PaginationMetadata), ServiceError> {
    let sort_by = sorting.map_or("", |s| s.sort_by.as_str());
    let with_json = items
        .into_iter()
        .map(|t| {
            let json = if sort_by.trim().is_empty() {
                Json::Null
            } else {
                larder_protos::json::to_json(&t).map_err(ServiceError::internal)?
            };
            Ok((t, json))
        })
        .collect::<Result<Vec<_>, ServiceError>>()?;
    Ok(paginate(
        with_json,
        pagination.map_or(0, |p| p.page),
        pagination.map_or(0, |p| p.limit),
        sort_by,
        sorting.map_or("", |s| s.sort_order.as_str()),
    ))
}

/// A sortable key: (present, lowercase text, number).
#[derive(Debug)]
struct SortKey(u8, String, f64);

impl SortKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, &self.1)
            .cmp(&(other.0, &other.1))
            .then(self.2.total_cmp(&other.2))
    }
}

fn camel(step: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in step.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn sort_key(item: &Json, path: &str) -> SortKey {
    let lookup = |root: &Json| -> Option<Json> {
        let mut cur = root;
        for step in path.split('.') {
            cur = cur.get(step).or_else(|| cur.get(camel(step)))?;
        }
        Some(cur.clone())
    };
    let found = lookup(item)
        .or_else(|| item.get("spec").and_then(lookup))
        .or_else(|| item.get("meta").and_then(lookup));
    match found {
        None | Some(Json::Null) => SortKey(0, String::new(), 0.0),
        Some(Json::String(s)) => SortKey(1, s.to_lowercase(), 0.0),
        Some(Json::Number(n)) => SortKey(1, String::new(), n.as_f64().unwrap_or(0.0)),
        Some(other) => SortKey(1, other.to_string().to_lowercase(), 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(value_type: i32, tags: &[(&str, &str)]) -> pb::FeatureSpecV2 {
        pb::FeatureSpecV2 {
            name: "f".into(),
            value_type,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn type_names_are_feasts() {
        assert_eq!(type_name(&field(4, &[])), "Int64");
        assert_eq!(type_name(&field(6, &[])), "Float32");
        assert_eq!(type_name(&field(5, &[])), "Float64");
        assert_eq!(type_name(&field(8, &[])), "UnixTimestamp");
        assert_eq!(type_name(&field(16, &[])), "Array(Float32)");
        assert_eq!(type_name(&field(23, &[])), "Set(String)");
        assert_eq!(type_name(&field(20, &[])), "Map");
        assert_eq!(type_name(&field(32, &[])), "Json");
        assert_eq!(
            type_name(&field(
                34,
                &[(
                    "feast:struct_schema",
                    r#"{"name": "STRING", "age": "INT64"}"#
                )]
            )),
            "Struct({name: String, age: Int64})"
        );
        assert_eq!(
            type_name(&field(
                42,
                &[("feast:nested_inner_type", "Array(Array(INT64))")]
            )),
            "Array(Array(Int64))"
        );
    }

    #[test]
    fn pages_and_sorts_as_feast() {
        let items: Vec<(i32, Json)> = ["b", "A", "c"]
            .iter()
            .enumerate()
            .map(|(i, n)| (i as i32, serde_json::json!({"spec": {"name": n}})))
            .collect();
        let (sorted, meta) = paginate(items.clone(), 0, 0, "name", "asc");
        assert_eq!(sorted, [1, 0, 2]);
        assert_eq!((meta.total_count, meta.total_pages), (3, 1));
        let (page, meta) = paginate(items.clone(), 2, 2, "name", "desc");
        assert_eq!(page, [1]);
        assert!(meta.has_previous && !meta.has_next);
        assert_eq!(meta.total_pages, 2);
        let (none, meta) = paginate(Vec::<(i32, Json)>::new(), 1, 1, "", "");
        assert!(none.is_empty());
        assert_eq!(meta, PaginationMetadata::default());
    }
}
