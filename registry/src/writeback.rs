//! Registry write-back at the protobuf wire level: a materialization changes one view's
//! `meta` (state, `last_updated_timestamp`, one more `materialization_intervals` entry) and the
//! registry's `version_id`/`last_updated`. Every other byte is copied as it was — other objects,
//! field order and fields this version of Larder does not know (written by newer Feast
//! releases) included — because the edit splices raw fields instead of re-encoding messages.

use prost::{
    Message,
    bytes::Buf,
    encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint},
};
use prost_types::Timestamp;

use larder_protos::feast::core::{FeatureViewState, MaterializationInterval};

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
}
