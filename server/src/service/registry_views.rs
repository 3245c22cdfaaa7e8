//! Feast's rules for applying a feature view of any kind (`Registry.apply_feature_view`,
//! Feast 0.67), at the proto level: which changes are "schema" changes (a new version in the
//! view's history) and which are metadata updated in place, and how a view's version fields
//! are read. [`super::registry_writes`] runs the apply itself.

use std::collections::BTreeMap;

use larder_protos::feast::core as pb;
use larder_registry::store::ObjectKind;
use prost::Message;
use prost_types::Timestamp;

use crate::error::{ErrorCode, ServiceError};

/// A feature view of one of the four kinds, as its proto.
pub trait ViewProto: Message + Default + Clone + PartialEq {
    const KIND: ObjectKind;
    /// `feature_view_type` of its version records.
    const TYPE: &'static str;
    fn name(&self) -> &str;
    fn set_project(&mut self, project: &str);
    /// `spec.version` ("" for label views, which have none).
    fn version(&self) -> &str;
    fn set_version(&mut self, version: &str);
    fn set_current_version_number(&mut self, n: i32);
    /// Its meta replaced by `other`'s (the registry's state of a view, not its definition).
    fn take_meta_from(&mut self, other: &Self);
    /// The `(created, last_updated)` slots of its meta.
    fn times(&mut self) -> (&mut Option<Timestamp>, &mut Option<Timestamp>);
    /// Its materialization intervals (none for kinds without them).
    fn intervals(&self) -> &[pb::MaterializationInterval] {
        &[]
    }
    fn set_intervals(&mut self, _: Vec<pb::MaterializationInterval>) {}
    /// What Feast's `_schema_or_udf_changed` compares, as bytes: equal keys, same schema.
    fn schema_key(&self) -> Vec<u8>;
    /// Feast's `_update_metadata_fields`: the fields of `user` that change in place, without
    /// a new version (the last-updated time is the caller's).
    fn update_metadata(&mut self, user: &Self);
}

/// Feast's `parse_version` of a view's `spec.version`: `None` for the latest ("" or
/// `latest`, any case), `Some(N)` for `vN` / `versionN` (any case).
pub fn parse_view_version(version: &str) -> Result<Option<i32>, ServiceError> {
    if version.is_empty() || version.eq_ignore_ascii_case("latest") {
        return Ok(None);
    }
    let lower = version.to_ascii_lowercase();
    let digits = lower
        .strip_prefix("version")
        .or_else(|| lower.strip_prefix('v'))
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    digits
        .and_then(|d| d.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ServiceError::bad_request(format!(
                "Invalid version string '{version}'. Expected 'latest', 'vN', or 'versionN' (e.g. \
             'v2', 'version3')."
            ))
        })
}

/// Feast's `ensure_valid` of a view's name.
pub fn check_view_name(kind: ObjectKind, name: &str) -> Result<(), ServiceError> {
    if name.is_empty() {
        return Err(ServiceError::bad_request(format!(
            "{} has no name",
            kind.label()
        )));
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '@' | ':')) {
        return Err(ServiceError::bad_request(format!(
            "Feature view name '{name}' must not contain '{c}': it is reserved for version and \
             feature references."
        )));
    }
    Ok(())
}

/// Feast's `ConflictingFeatureViewNames` for a name used by a view of another kind.
pub fn conflicting_names(name: &str, existing: ObjectKind, new: ObjectKind) -> ServiceError {
    let class_name = |k: ObjectKind| match k {
        ObjectKind::StreamFeatureView => "StreamFeatureView",
        ObjectKind::OnDemandFeatureView => "OnDemandFeatureView",
        ObjectKind::LabelView => "LabelView",
        _ => "FeatureView",
    };
    ServiceError::feast(
        ErrorCode::Conflict,
        "ConflictingFeatureViewNames",
        format!(
            "Feature view name '{name}' is already used by a {}. Cannot register a {} with the \
             same name. Feature view names must be unique across FeatureView, \
             StreamFeatureView, and OnDemandFeatureView.",
            class_name(existing),
            class_name(new)
        ),
    )
}

/// Feast's `FeatureViewPinConflict`.
pub fn pin_conflict(name: &str, version: i32) -> ServiceError {
    ServiceError::feast(
        ErrorCode::Conflict,
        "FeatureViewPinConflict",
        format!(
            "Cannot pin feature view '{name}' to v{version} because the definition has also been \
             modified. To pin to an older version, only change the 'version' parameter — do not \
             modify other fields. To apply a new definition, use version='latest' or omit the \
             version parameter."
        ),
    )
}

/// Feature specs sorted by name (Feast compares `sorted(features)`), encoded.
fn sorted_fields(fields: &[pb::FeatureSpecV2]) -> Vec<Vec<u8>> {
    let mut f: Vec<&pb::FeatureSpecV2> = fields.iter().collect();
    f.sort_by(|a, b| a.name.cmp(&b.name));
    f.into_iter().map(Message::encode_to_vec).collect()
}

fn sorted_strings(s: &[String]) -> Vec<String> {
    let mut s = s.to_vec();
    s.sort();
    s
}

/// A UDF as Feast compares it: by its code, which the proto carries as source text
/// (`body_text`) beside the pickled function; the pickle (which also holds line numbers and
/// file names) only when there is no text.
fn udf_key(name: &str, body: &[u8], body_text: &str) -> (String, Vec<u8>) {
    if body_text.is_empty() {
        (name.to_owned(), body.to_vec())
    } else {
        (name.to_owned(), body_text.as_bytes().to_vec())
    }
}

fn transformation_key(t: &Option<pb::FeatureTransformationV2>) -> Vec<u8> {
    use pb::feature_transformation_v2::Transformation;
    match t.as_ref().and_then(|t| t.transformation.as_ref()) {
        None => Vec::new(),
        Some(Transformation::UserDefinedFunction(u)) => {
            let (name, code) = udf_key(&u.name, &u.body, &u.body_text);
            format!("udf:{name}:{}:", u.mode)
                .into_bytes()
                .into_iter()
                .chain(code)
                .collect()
        }
        Some(other) => {
            let t = pb::FeatureTransformationV2 {
                transformation: Some(other.clone()),
            };
            [b"other:".as_slice(), &t.encode_to_vec()].concat()
        }
    }
}

/// Encodes the parts of a schema key in order (length-prefixed, so parts cannot run into each
/// other).
fn key_of(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn joined(parts: Vec<Vec<u8>>) -> Vec<u8> {
    key_of(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

fn strings(s: Vec<String>) -> Vec<u8> {
    joined(s.into_iter().map(String::into_bytes).collect())
}

/// The accessors every view kind shares: `spec.name`, `spec.project`, the meta's times.
macro_rules! view_accessors {
    () => {
        fn name(&self) -> &str {
            self.spec.as_ref().map_or("", |s| s.name.as_str())
        }
        fn set_project(&mut self, project: &str) {
            self.spec.get_or_insert_with(Default::default).project = project.into();
        }
        fn take_meta_from(&mut self, other: &Self) {
            self.meta = other.meta.clone();
        }
        fn times(&mut self) -> (&mut Option<Timestamp>, &mut Option<Timestamp>) {
            let m = self.meta.get_or_insert_with(Default::default);
            (&mut m.created_timestamp, &mut m.last_updated_timestamp)
        }
    };
}

/// The version accessors of the kinds that have versions (all but label views).
macro_rules! version_accessors {
    () => {
        fn version(&self) -> &str {
            self.spec.as_ref().map_or("", |s| s.version.as_str())
        }
        fn set_version(&mut self, version: &str) {
            self.spec.get_or_insert_with(Default::default).version = version.into();
        }
        fn set_current_version_number(&mut self, n: i32) {
            self.meta
                .get_or_insert_with(Default::default)
                .current_version_number = n;
        }
    };
}

/// The materialization intervals of feature and stream views.
macro_rules! interval_accessors {
    () => {
        fn intervals(&self) -> &[pb::MaterializationInterval] {
            self.meta
                .as_ref()
                .map_or(&[], |m| m.materialization_intervals.as_slice())
        }
        fn set_intervals(&mut self, intervals: Vec<pb::MaterializationInterval>) {
            self.meta
                .get_or_insert_with(Default::default)
                .materialization_intervals = intervals;
        }
    };
}

/// `_update_metadata_fields` of what every kind has: description, tags, owner; then the
/// listed spec fields copied as they are.
macro_rules! update_spec {
    ($existing:expr, $user:expr; $($field:ident),*) => {{
        let mut u = $user.spec.clone().unwrap_or_default();
        let s = $existing.spec.get_or_insert_with(Default::default);
        s.description = std::mem::take(&mut u.description);
        s.tags = std::mem::take(&mut u.tags);
        s.owner = std::mem::take(&mut u.owner);
        $(s.$field = std::mem::take(&mut u.$field);)*
        (s, u)
    }};
}

/// `_update_metadata_fields` of a versioned view's meta: the state (unless unspecified) and
/// the version number (0 when unpinned).
macro_rules! update_version_meta {
    ($existing:expr, $user:expr) => {{
        let um = $user.meta.clone().unwrap_or_default();
        let m = $existing.meta.get_or_insert_with(Default::default);
        if um.state != pb::FeatureViewState::StateUnspecified as i32 {
            m.state = um.state;
        }
        m.current_version_number = um.current_version_number;
    }};
}

/// A feature or stream view's ttl (always set, zero for none) and sources (when given).
macro_rules! update_ttl_and_sources {
    ($s:expr, $u:expr) => {{
        $s.ttl = Some($u.ttl.unwrap_or_default());
        if $u.batch_source.is_some() {
            $s.batch_source = $u.batch_source;
        }
        if $u.stream_source.is_some() {
            $s.stream_source = $u.stream_source;
        }
    }};
}

fn udf_v1_key(u: &Option<pb::UserDefinedFunction>) -> Vec<u8> {
    u.as_ref()
        .map(|u| {
            let (name, code) = udf_key(&u.name, &u.body, &u.body_text);
            [name.into_bytes(), code].concat()
        })
        .unwrap_or_default()
}

/// What feature and stream views (a subclass in Feast) both compare: sorted features,
/// entities and entity columns.
fn feature_view_key(
    features: &[pb::FeatureSpecV2],
    entities: &[String],
    entity_columns: &[pb::FeatureSpecV2],
) -> Vec<u8> {
    key_of(&[
        &joined(sorted_fields(features)),
        &strings(sorted_strings(entities)),
        &joined(sorted_fields(entity_columns)),
    ])
}

impl ViewProto for pb::FeatureView {
    const KIND: ObjectKind = ObjectKind::FeatureView;
    const TYPE: &'static str = "feature_view";
    view_accessors!();
    version_accessors!();
    interval_accessors!();
    /// Features, entities, entity columns, source views.
    fn schema_key(&self) -> Vec<u8> {
        let s = self.spec.clone().unwrap_or_default();
        key_of(&[
            &feature_view_key(&s.features, &s.entities, &s.entity_columns),
            &joined(s.source_views.iter().map(Message::encode_to_vec).collect()),
        ])
    }
    fn update_metadata(&mut self, user: &Self) {
        let (s, u) =
            update_spec!(self, user; version, online, offline, enable_validation, disabled);
        update_ttl_and_sources!(s, u);
        update_version_meta!(self, user);
    }
}

impl ViewProto for pb::StreamFeatureView {
    const KIND: ObjectKind = ObjectKind::StreamFeatureView;
    const TYPE: &'static str = "stream_feature_view";
    view_accessors!();
    version_accessors!();
    interval_accessors!();
    /// A feature view's key, and the UDF, aggregations, timestamp field and mode.
    fn schema_key(&self) -> Vec<u8> {
        let s = self.spec.clone().unwrap_or_default();
        key_of(&[
            &feature_view_key(&s.features, &s.entities, &s.entity_columns),
            &udf_v1_key(&s.user_defined_function),
            &transformation_key(&s.feature_transformation),
            &joined(s.aggregations.iter().map(Message::encode_to_vec).collect()),
            s.timestamp_field.as_bytes(),
            s.mode.as_bytes(),
        ])
    }
    fn update_metadata(&mut self, user: &Self) {
        let (s, u) = update_spec!(self, user; version, online, enable_validation, disabled);
        update_ttl_and_sources!(s, u);
        update_version_meta!(self, user);
    }
}

impl ViewProto for pb::OnDemandFeatureView {
    const KIND: ObjectKind = ObjectKind::OnDemandFeatureView;
    const TYPE: &'static str = "on_demand_feature_view";
    view_accessors!();
    version_accessors!();
    /// Features, the transformation, mode, sources, entity columns, aggregations.
    fn schema_key(&self) -> Vec<u8> {
        let s = self.spec.clone().unwrap_or_default();
        let sources: BTreeMap<&String, Vec<u8>> = s
            .sources
            .iter()
            .map(|(k, v)| (k, v.encode_to_vec()))
            .collect();
        let transformation = if s.feature_transformation.is_some() {
            transformation_key(&s.feature_transformation)
        } else {
            udf_v1_key(&s.user_defined_function)
        };
        key_of(&[
            &joined(sorted_fields(&s.features)),
            &transformation,
            s.mode.as_bytes(),
            &joined(
                sources
                    .into_iter()
                    .flat_map(|(k, v)| [k.clone().into_bytes(), v])
                    .collect(),
            ),
            &joined(sorted_fields(&s.entity_columns)),
            &joined(s.aggregations.iter().map(Message::encode_to_vec).collect()),
        ])
    }
    fn update_metadata(&mut self, user: &Self) {
        update_spec!(self, user; version, disabled, write_to_online_store, singleton);
        update_version_meta!(self, user);
    }
}

impl ViewProto for pb::LabelView {
    const KIND: ObjectKind = ObjectKind::LabelView;
    const TYPE: &'static str = "label_view";
    view_accessors!();
    /// Label views have no version: always the latest.
    fn version(&self) -> &str {
        ""
    }
    fn set_version(&mut self, _: &str) {}
    fn set_current_version_number(&mut self, _: i32) {}
    /// Features only (a label view has no override of the base rule).
    fn schema_key(&self) -> Vec<u8> {
        let s = self.spec.clone().unwrap_or_default();
        joined(sorted_fields(&s.features))
    }
    fn update_metadata(&mut self, user: &Self) {
        let (s, u) = update_spec!(self, user;
            online, labeler_field, conflict_policy, reference_feature_view);
        s.ttl = Some(u.ttl.unwrap_or_default());
        if u.source.is_some() {
            s.source = u.source;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_versions_parse_as_feast_parses_them() {
        assert_eq!(parse_view_version("").unwrap(), None);
        assert_eq!(parse_view_version("LATEST").unwrap(), None);
        assert_eq!(parse_view_version("v3").unwrap(), Some(3));
        assert_eq!(parse_view_version("Version12").unwrap(), Some(12));
        for bad in ["v", "3", "v-1", "vx", "ver2", "v 2"] {
            let e = parse_view_version(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{bad}");
            assert!(e.message.contains(bad), "{e:?}");
        }
        assert!(check_view_name(ObjectKind::FeatureView, "a@b").is_err());
        assert!(check_view_name(ObjectKind::FeatureView, "a:b").is_err());
        assert!(check_view_name(ObjectKind::FeatureView, "").is_err());
        check_view_name(ObjectKind::FeatureView, "driver_stats").unwrap();
    }

    fn fv(features: &[&str], description: &str) -> pb::FeatureView {
        pb::FeatureView {
            spec: Some(pb::FeatureViewSpec {
                name: "v".into(),
                entities: vec!["b".into(), "a".into()],
                features: features
                    .iter()
                    .map(|f| pb::FeatureSpecV2 {
                        name: (*f).into(),
                        value_type: 4,
                        ..Default::default()
                    })
                    .collect(),
                description: description.into(),
                ..Default::default()
            }),
            meta: None,
        }
    }

    /// Order of features and entities, descriptions and other metadata are not schema; a
    /// feature added or retyped is.
    #[test]
    fn schema_keys_follow_feasts_rule() {
        let a = fv(&["x", "y"], "one");
        assert_eq!(a.schema_key(), fv(&["y", "x"], "two").schema_key());
        let mut swapped = a.clone();
        swapped.spec.as_mut().unwrap().entities.reverse();
        assert_eq!(a.schema_key(), swapped.schema_key());
        assert_ne!(a.schema_key(), fv(&["x", "y", "z"], "one").schema_key());
        let mut retyped = a.clone();
        retyped.spec.as_mut().unwrap().features[0].value_type = 5;
        assert_ne!(a.schema_key(), retyped.schema_key());

        let mut existing = fv(&["x", "y"], "old");
        existing.meta = Some(pb::FeatureViewMeta {
            state: pb::FeatureViewState::AvailableOnline as i32,
            current_version_number: 2,
            ..Default::default()
        });
        existing.update_metadata(&fv(&["y", "x"], "new"));
        let s = existing.spec.as_ref().unwrap();
        assert_eq!(s.description, "new");
        assert_eq!(s.features[0].name, "x", "the stored schema is kept");
        assert_eq!(s.ttl, Some(Default::default()));
        let m = existing.meta.as_ref().unwrap();
        assert_eq!(m.state, pb::FeatureViewState::AvailableOnline as i32);
        assert_eq!(m.current_version_number, 0, "unpinned");
    }
}
