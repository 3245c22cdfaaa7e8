//! Registry write-back at the protobuf wire level: a materialization changes one view's
//! `meta` (state, `last_updated_timestamp`, one more `materialization_intervals` entry) and the
//! registry's `version_id`/`last_updated`; a commit ([`apply_changes`]) replaces, appends or
//! removes whole objects. Every other byte is copied as it was — other objects, field order and
//! fields this version of Larder does not know (written by newer Feast releases) included —
//! because the edit splices raw fields instead of re-encoding messages.

use prost::{
    Message,
    bytes::Buf,
    encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint},
};
use prost_types::Timestamp;

use larder_protos::feast::core::{FeatureViewState, MaterializationInterval};

use crate::store::{Change, ChangeSet, ObjectKey, ObjectKind, VersionKey};

/// Just the name and project of a view: fields 1 and 2 of the spec in both `FeatureView` and
/// `StreamFeatureView` (whose other spec fields differ). Everything else is skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct SpecName {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    project: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ViewName {
    #[prost(message, optional, tag = "1")]
    spec: Option<SpecName>,
}

/// Which repeated field of `feast.core.Registry` holds the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewField {
    /// `feature_views` (6).
    FeatureView,
    /// `stream_feature_views` (14).
    StreamFeatureView,
}

impl ViewField {
    fn number(self) -> u32 {
        match self {
            ViewField::FeatureView => 6,
            ViewField::StreamFeatureView => 14,
        }
    }
}

/// How one view's meta changes.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaEdit {
    pub state: FeatureViewState,
    pub last_updated: Timestamp,
    /// Appended to `materialization_intervals`.
    pub append_interval: Option<(Timestamp, Timestamp)>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WriteBackError {
    #[error("registry bytes are not a valid protobuf message: {0}")]
    Malformed(String),
    #[error("view {view} of project {project} is not in the registry")]
    ViewNotFound { project: String, view: String },
    #[error("{key} is not in the registry")]
    ObjectNotFound { key: ObjectKey },
    #[error("{key} is not in the registry")]
    VersionNotFound { key: VersionKey },
    #[error("view {view} of project {project} appears {count} times in the registry")]
    Ambiguous {
        project: String,
        view: String,
        count: usize,
    },
}

/// One field as it stands on the wire.
struct RawField<'a> {
    number: u32,
    /// The whole field: key and value.
    raw: &'a [u8],
    /// For length-delimited fields, the content.
    payload: &'a [u8],
}

fn malformed(e: impl std::fmt::Display) -> WriteBackError {
    WriteBackError::Malformed(e.to_string())
}

fn fields(buf: &[u8]) -> Result<Vec<RawField<'_>>, WriteBackError> {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let start = buf.len() - rest.len();
        let (number, wire_type) = decode_key(&mut rest).map_err(malformed)?;
        let mut payload: &[u8] = &[];
        match wire_type {
            WireType::Varint => {
                decode_varint(&mut rest).map_err(malformed)?;
            }
            WireType::SixtyFourBit => {
                if rest.len() < 8 {
                    return Err(malformed("truncated fixed64"));
                }
                rest.advance(8);
            }
            WireType::ThirtyTwoBit => {
                if rest.len() < 4 {
                    return Err(malformed("truncated fixed32"));
                }
                rest.advance(4);
            }
            WireType::LengthDelimited => {
                let len = decode_varint(&mut rest).map_err(malformed)? as usize;
                if rest.len() < len {
                    return Err(malformed("truncated length-delimited field"));
                }
                payload = &rest[..len];
                rest.advance(len);
            }
            WireType::StartGroup | WireType::EndGroup => {
                return Err(malformed("groups are not used by Feast's registry"));
            }
        }
        let end = buf.len() - rest.len();
        out.push(RawField {
            number,
            raw: &buf[start..end],
            payload,
        });
    }
    Ok(out)
}

fn put_message(out: &mut Vec<u8>, number: u32, body: &[u8]) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

fn edit_meta(meta: &[u8], edit: &MetaEdit) -> Result<Vec<u8>, WriteBackError> {
    let mut out = Vec::with_capacity(meta.len() + 64);
    for f in fields(meta)? {
        // Replaced below: last_updated_timestamp (2) and state (6).
        if f.number != 2 && f.number != 6 {
            out.extend_from_slice(f.raw);
        }
    }
    if let Some((start, end)) = edit.append_interval {
        let interval = MaterializationInterval {
            start_time: Some(start),
            end_time: Some(end),
        };
        put_message(&mut out, 3, &interval.encode_to_vec());
    }
    put_message(&mut out, 2, &edit.last_updated.encode_to_vec());
    if edit.state != FeatureViewState::StateUnspecified {
        encode_key(6, WireType::Varint, &mut out);
        encode_varint(edit.state as u64, &mut out);
    }
    Ok(out)
}

/// Applies `edit` to one serialized `FeatureView`/`StreamFeatureView` (the SQL registry keeps
/// one per row), keeping every other byte.
pub fn edit_view(view: &[u8], edit: &MetaEdit) -> Result<Vec<u8>, WriteBackError> {
    let mut out = Vec::with_capacity(view.len() + 64);
    let mut had_meta = false;
    for f in fields(view)? {
        if f.number == 2 && !had_meta {
            had_meta = true;
            put_message(&mut out, 2, &edit_meta(f.payload, edit)?);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    if !had_meta {
        put_message(&mut out, 2, &edit_meta(&[], edit)?);
    }
    Ok(out)
}

/// Applies `edit` to the view `project`/`view` in a serialized `feast.core.Registry`, and
/// sets the registry's `version_id` and `last_updated` as Feast's commit does.
pub fn edit_registry(
    registry: &[u8],
    which: ViewField,
    project: &str,
    view: &str,
    edit: &MetaEdit,
    version_id: &str,
) -> Result<Vec<u8>, WriteBackError> {
    let mut out = Vec::with_capacity(registry.len() + 128);
    let mut matches = 0;
    for f in fields(registry)? {
        match f.number {
            // version_id (4) and last_updated (5) are rewritten at the end.
            4 | 5 => {}
            n if n == which.number() => {
                // Both view messages keep name and project in spec fields 1 and 2.
                let decoded = ViewName::decode(f.payload).map_err(malformed)?;
                let is_it = decoded
                    .spec
                    .as_ref()
                    .is_some_and(|s| s.name == view && s.project == project);
                if is_it {
                    matches += 1;
                    put_message(&mut out, n, &edit_view(f.payload, edit)?);
                } else {
                    out.extend_from_slice(f.raw);
                }
            }
            _ => out.extend_from_slice(f.raw),
        }
    }
    match matches {
        0 => {
            return Err(WriteBackError::ViewNotFound {
                project: project.to_owned(),
                view: view.to_owned(),
            });
        }
        1 => {}
        count => {
            return Err(WriteBackError::Ambiguous {
                project: project.to_owned(),
                view: view.to_owned(),
                count,
            });
        }
    }
    put_message(&mut out, 4, version_id.as_bytes());
    put_message(&mut out, 5, &edit.last_updated.encode_to_vec());
    Ok(out)
}

/// The fields of a serialized `feast.core.Registry` holding objects, each with its key.
fn keyed_fields(registry: &[u8]) -> Result<Vec<(RawField<'_>, Option<ObjectKey>)>, WriteBackError> {
    fields(registry)?
        .into_iter()
        .map(|f| {
            let key = match ObjectKind::from_registry_field(f.number) {
                Some(kind) => Some(
                    kind.key_of(f.payload)
                        .map_err(|e| malformed(format!("a {kind} in the registry: {e}")))?,
                ),
                None => None,
            };
            Ok((f, key))
        })
        .collect()
}

/// Every object of a serialized `feast.core.Registry`: its key and its bytes as stored.
pub fn registry_objects(registry: &[u8]) -> Result<Vec<(ObjectKey, &[u8])>, WriteBackError> {
    Ok(keyed_fields(registry)?
        .into_iter()
        .filter_map(|(f, key)| key.map(|k| (k, f.payload)))
        .collect())
}

/// The `feature_view_version_history` field (18) of a registry, and its `records` (1).
const HISTORY: u32 = 18;
const RECORDS: u32 = 1;
/// The `infra` field (10) of a registry.
const INFRA: u32 = 10;

/// Every version-history record of a serialized `feast.core.Registry` (field 18 may occur
/// more than once on the wire; protobuf merges the occurrences): its key and its bytes.
pub fn registry_versions(registry: &[u8]) -> Result<Vec<(VersionKey, &[u8])>, WriteBackError> {
    let mut out = Vec::new();
    for f in fields(registry)?
        .into_iter()
        .filter(|f| f.number == HISTORY)
    {
        for r in fields(f.payload)?
            .into_iter()
            .filter(|r| r.number == RECORDS)
        {
            let key = VersionKey::of_record(r.payload)
                .map_err(|e| malformed(format!("a version record in the registry: {e}")))?;
            out.push((key, r.payload));
        }
    }
    Ok(out)
}

/// The history message after the version changes of `changes`: a record upserted replaces
/// the one of its key where it stands (further ones of that key dropped) or, if new, is
/// appended; a deleted record is removed (deleting one that is not there is an error); every
/// other field of the history messages is kept. `histories`: the payloads of field 18.
fn edited_history(histories: &[&[u8]], changes: &ChangeSet) -> Result<Vec<u8>, WriteBackError> {
    use std::collections::BTreeSet;
    let mut present: BTreeSet<VersionKey> = BTreeSet::new();
    let mut written: BTreeSet<VersionKey> = BTreeSet::new();
    let mut out = Vec::new();
    for payload in histories {
        for f in fields(payload)? {
            if f.number != RECORDS {
                out.extend_from_slice(f.raw);
                continue;
            }
            let key = VersionKey::of_record(f.payload)
                .map_err(|e| malformed(format!("a version record in the registry: {e}")))?;
            match changes.version(&key) {
                None => out.extend_from_slice(f.raw),
                Some(Change::Delete) => {}
                Some(Change::Upsert(bytes)) => {
                    if !written.contains(&key) {
                        put_message(&mut out, RECORDS, bytes);
                        written.insert(key.clone());
                    }
                }
            }
            present.insert(key);
        }
    }
    for (key, change) in changes.versions() {
        match change {
            Change::Upsert(bytes) if !present.contains(key) => {
                put_message(&mut out, RECORDS, bytes)
            }
            Change::Delete if !present.contains(key) => {
                return Err(WriteBackError::VersionNotFound { key: key.clone() });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Whether a serialized `feast.core.Registry` holds any object (of any [`ObjectKind`]); other
/// fields (infra, metadata, fields unknown to Larder) do not count.
pub fn has_objects(registry: &[u8]) -> Result<bool, WriteBackError> {
    Ok(fields(registry)?
        .iter()
        .any(|f| ObjectKind::from_registry_field(f.number).is_some()))
}

/// Applies a change set to a serialized `feast.core.Registry` (empty bytes: a new registry):
/// an upserted object replaces the entry of the same key where it stands (further entries of
/// that key are dropped) or, if new, follows the last entry of its field (or goes at the end);
/// a deleted object's entries are removed, and deleting an object that is not there is an
/// error. Sets `version_id` and `last_updated` as Feast's commit does, and
/// `registry_schema_version` "1" if the registry has none. Every other field is copied as it
/// was.
pub fn apply_changes(
    registry: &[u8],
    changes: &ChangeSet,
    version_id: &str,
    last_updated: &Timestamp,
) -> Result<Vec<u8>, WriteBackError> {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    let fs = keyed_fields(registry)?;
    let present: BTreeSet<&ObjectKey> = fs.iter().filter_map(|(_, k)| k.as_ref()).collect();
    let mut pending: BTreeMap<u32, Vec<&[u8]>> = BTreeMap::new();
    for (key, change) in changes.iter() {
        match change {
            Change::Upsert(bytes) if !present.contains(key) => pending
                .entry(key.kind().registry_field())
                .or_default()
                .push(bytes),
            Change::Delete if !present.contains(key) => {
                return Err(WriteBackError::ObjectNotFound { key: key.clone() });
            }
            _ => {}
        }
    }
    let mut last_of: HashMap<u32, usize> = HashMap::new();
    for (i, (f, key)) in fs.iter().enumerate() {
        if key.is_some() {
            last_of.insert(f.number, i);
        }
    }
    let added: usize = changes
        .iter()
        .map(|(_, c)| match c {
            Change::Upsert(b) => b.len() + 8,
            Change::Delete => 0,
        })
        .sum();
    let added = added
        + changes
            .versions()
            .map(|(_, c)| match c {
                Change::Upsert(b) => b.len() + 8,
                Change::Delete => 0,
            })
            .sum::<usize>()
        + changes.infra().map(|(_, b)| b.len() + 8).sum::<usize>();
    // The version history, when the set changes it, goes where its first occurrence stood
    // (or at the end); the infra likewise (the last project's, as Feast's file registry holds
    // one infra for all projects).
    let mut history = if changes.versions().next().is_some() {
        let payloads: Vec<&[u8]> = fs
            .iter()
            .filter(|(f, _)| f.number == HISTORY)
            .map(|(f, _)| f.payload)
            .collect();
        Some(edited_history(&payloads, changes)?)
    } else {
        None
    };
    let mut infra = changes.infra().last().map(|(_, b)| b.as_ref());
    let mut out = Vec::with_capacity(registry.len() + added + 64);
    let mut written: BTreeSet<&ObjectKey> = BTreeSet::new();
    let mut has_schema_version = false;
    for (i, (f, key)) in fs.iter().enumerate() {
        match (f.number, key) {
            // version_id (4) and last_updated (5) are rewritten at the end.
            (4 | 5, _) => {}
            (HISTORY, _) if changes.versions().next().is_some() => {
                if let Some(h) = history.take() {
                    put_message(&mut out, HISTORY, &h);
                }
            }
            (INFRA, _) if changes.infra().next().is_some() => {
                if let Some(b) = infra.take() {
                    put_message(&mut out, INFRA, b);
                }
            }
            (3, _) => {
                has_schema_version = true;
                out.extend_from_slice(f.raw);
            }
            (n, Some(key)) => match changes.get(key) {
                None => out.extend_from_slice(f.raw),
                Some(Change::Delete) => {}
                Some(Change::Upsert(bytes)) => {
                    if written.insert(key) {
                        put_message(&mut out, n, bytes);
                    }
                }
            },
            _ => out.extend_from_slice(f.raw),
        }
        if key.is_some() && last_of.get(&f.number) == Some(&i) {
            for bytes in pending.remove(&f.number).unwrap_or_default() {
                put_message(&mut out, f.number, bytes);
            }
        }
    }
    for (number, objects) in pending {
        for bytes in objects {
            put_message(&mut out, number, bytes);
        }
    }
    if let Some(b) = infra {
        put_message(&mut out, INFRA, b);
    }
    if let Some(h) = history {
        put_message(&mut out, HISTORY, &h);
    }
    if !has_schema_version {
        put_message(&mut out, 3, b"1");
    }
    put_message(&mut out, 4, version_id.as_bytes());
    put_message(&mut out, 5, &last_updated.encode_to_vec());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::core::{FeatureView, FeatureViewMeta, FeatureViewSpec, Registry};

    fn ts(s: i64) -> Timestamp {
        Timestamp {
            seconds: s,
            nanos: 0,
        }
    }

    fn fv(name: &str, project: &str) -> FeatureView {
        FeatureView {
            spec: Some(FeatureViewSpec {
                name: name.into(),
                project: project.into(),
                ..Default::default()
            }),
            meta: Some(FeatureViewMeta {
                last_updated_timestamp: Some(Timestamp {
                    seconds: 5,
                    nanos: 123,
                }),
                materialization_intervals: vec![MaterializationInterval {
                    start_time: Some(ts(1)),
                    end_time: Some(ts(2)),
                }],
                ..Default::default()
            }),
        }
    }

    /// An unknown field (number 99, as a newer Feast might write) inside the view's meta and at
    /// the top level.
    fn with_unknown(mut bytes: Vec<u8>) -> Vec<u8> {
        put_message(&mut bytes, 99, b"future");
        bytes
    }

    #[test]
    fn edits_one_view_and_keeps_every_other_byte() {
        let target = fv("a", "p");
        let mut target_bytes = target.encode_to_vec();
        // Put an unknown field inside the target's meta.
        let meta = with_unknown(target.meta.clone().unwrap().encode_to_vec());
        let mut spec_only = FeatureView {
            spec: target.spec.clone(),
            meta: None,
        }
        .encode_to_vec();
        put_message(&mut spec_only, 2, &meta);
        target_bytes.clear();
        target_bytes.extend_from_slice(&spec_only);
        let other = fv("a", "other_project").encode_to_vec();
        let mut registry = Vec::new();
        put_message(&mut registry, 6, &other);
        put_message(&mut registry, 6, &target_bytes);
        put_message(&mut registry, 4, b"old-version");
        let registry = with_unknown(registry);

        let edit = MetaEdit {
            state: FeatureViewState::AvailableOnline,
            last_updated: ts(100),
            append_interval: Some((ts(2), ts(3))),
        };
        let out = edit_registry(
            &registry,
            ViewField::FeatureView,
            "p",
            "a",
            &edit,
            "new-version",
        )
        .unwrap();

        // The other view's bytes and the unknown top-level field are untouched.
        let fs = fields(&out).unwrap();
        assert_eq!(fs[0].raw, fields(&registry).unwrap()[0].raw);
        assert!(fs.iter().any(|f| f.number == 99 && f.payload == b"future"));
        // The edited view kept its unknown meta field and gained the interval and state.
        let edited_meta = fields(fs[1].payload)
            .unwrap()
            .into_iter()
            .find(|f| f.number == 2)
            .unwrap()
            .payload;
        assert!(
            fields(edited_meta)
                .unwrap()
                .iter()
                .any(|f| f.number == 99 && f.payload == b"future")
        );
        let r = Registry::decode(out.as_slice()).unwrap();
        assert_eq!(r.version_id, "new-version");
        assert_eq!(r.last_updated, Some(ts(100)));
        let m = r.feature_views[1].meta.as_ref().unwrap();
        assert_eq!(m.state, FeatureViewState::AvailableOnline as i32);
        assert_eq!(
            m.last_updated_timestamp,
            Some(ts(100)),
            "old nanos must not survive a merge"
        );
        assert_eq!(m.materialization_intervals.len(), 2);
        assert_eq!(m.materialization_intervals[1].end_time, Some(ts(3)));
        assert_eq!(r.feature_views[0], fv("a", "other_project"));
    }

    #[test]
    fn missing_and_corrupt() {
        let mut registry = Vec::new();
        put_message(&mut registry, 6, &fv("a", "p").encode_to_vec());
        let edit = MetaEdit {
            state: FeatureViewState::Materializing,
            last_updated: ts(1),
            append_interval: None,
        };
        assert!(matches!(
            edit_registry(&registry, ViewField::FeatureView, "p", "b", &edit, "v"),
            Err(WriteBackError::ViewNotFound { .. })
        ));
        assert!(matches!(
            edit_registry(
                &registry,
                ViewField::StreamFeatureView,
                "p",
                "a",
                &edit,
                "v"
            ),
            Err(WriteBackError::ViewNotFound { .. })
        ));
        assert!(matches!(
            edit_registry(
                &[0x32, 0x05, 1],
                ViewField::FeatureView,
                "p",
                "a",
                &edit,
                "v"
            ),
            Err(WriteBackError::Malformed(_))
        ));
    }

    fn entity(name: &str, project: &str, description: &str) -> Vec<u8> {
        use larder_protos::feast::core::{Entity, EntitySpecV2};
        Entity {
            spec: Some(EntitySpecV2 {
                name: name.into(),
                project: project.into(),
                description: description.into(),
                ..Default::default()
            }),
            meta: None,
        }
        .encode_to_vec()
    }

    #[test]
    fn changes_replace_append_and_remove_whole_entries() {
        let mut registry = Vec::new();
        put_message(&mut registry, 1, &with_unknown(entity("a", "p", "old")));
        put_message(&mut registry, 6, &fv("v", "p").encode_to_vec());
        put_message(&mut registry, 1, &entity("b", "p", ""));
        put_message(&mut registry, 3, b"1");
        put_message(&mut registry, 4, b"old-version");
        let registry = with_unknown(registry);
        let before = fields(&registry).unwrap();

        let mut changes = ChangeSet::new();
        changes
            .upsert(ObjectKind::Entity, entity("a", "p", "new"))
            .unwrap();
        changes
            .upsert(ObjectKind::Entity, entity("c", "p", ""))
            .unwrap();
        changes.delete(ObjectKey::new(ObjectKind::FeatureView, "p", "v").unwrap());
        let out = apply_changes(&registry, &changes, "new-version", &ts(7)).unwrap();
        let after = fields(&out).unwrap();
        let numbers: Vec<u32> = after.iter().map(|f| f.number).collect();
        // a replaced in place, b kept, c after the last entity, the view gone, the unknown
        // field kept, version and time at the end.
        assert_eq!(numbers, [1, 1, 1, 3, 99, 4, 5]);
        assert_eq!(after[0].payload, entity("a", "p", "new"));
        assert_eq!(after[1].raw, before[2].raw);
        assert_eq!(after[2].payload, entity("c", "p", ""));
        assert_eq!(after[4].raw, before[5].raw);
        let r = Registry::decode(out.as_slice()).unwrap();
        assert_eq!(r.version_id, "new-version");
        assert_eq!(r.last_updated, Some(ts(7)));
        assert_eq!(r.registry_schema_version, "1");
    }

    #[test]
    fn a_new_registry_gets_a_schema_version_and_a_missing_delete_fails() {
        let mut changes = ChangeSet::new();
        changes
            .upsert(ObjectKind::Entity, entity("a", "p", ""))
            .unwrap();
        let out = apply_changes(&[], &changes, "v1", &ts(1)).unwrap();
        let r = Registry::decode(out.as_slice()).unwrap();
        assert_eq!(r.registry_schema_version, "1");
        assert_eq!(r.entities.len(), 1);
        assert!(has_objects(&out).unwrap());
        assert!(!has_objects(&[]).unwrap());
        assert_eq!(registry_objects(&out).unwrap().len(), 1);

        let mut delete = ChangeSet::new();
        let key = ObjectKey::new(ObjectKind::Entity, "other", "a").unwrap();
        delete.delete(key.clone());
        assert_eq!(
            apply_changes(&out, &delete, "v2", &ts(2)),
            Err(WriteBackError::ObjectNotFound { key })
        );
    }
}
