//! Proto3 JSON mapping for every Feast message, equal to Python's
//! `google.protobuf.json_format.MessageToDict` with its default options.

use std::sync::OnceLock;

use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

static POOL: OnceLock<DescriptorPool> = OnceLock::new();

/// The descriptors of every message this crate defines (plus the well-known types they use).
pub fn descriptor_pool() -> &'static DescriptorPool {
    POOL.get_or_init(|| {
        DescriptorPool::decode(
            &include_bytes!(concat!(env!("OUT_DIR"), "/feast_descriptor.bin"))[..],
        )
        .expect("the descriptor set compiled by build.rs decodes")
    })
}

/// Errors of the JSON mapping.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("unknown protobuf message {0}")]
    UnknownMessage(String),
    #[error("invalid {message} JSON: {source}")]
    Parse {
        message: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid {message} bytes: {source}")]
    Decode {
        message: String,
        #[source]
        source: prost::DecodeError,
    },
}

fn descriptor(full_name: &str) -> Result<MessageDescriptor, JsonError> {
    descriptor_pool()
        .get_message_by_name(full_name)
        .ok_or_else(|| JsonError::UnknownMessage(full_name.to_owned()))
}

/// Python `MessageToDict(msg)`: camelCase names, enum names, int64 as strings, defaults omitted.
/// Fails only for values proto3 JSON cannot express (a `Timestamp` outside years 1–9999).
pub fn to_json<M: Message + Name>(msg: &M) -> Result<serde_json::Value, JsonError> {
    bytes_to_json(&M::full_name(), &msg.encode_to_vec())
}

/// Like [`to_json`] for an already encoded message named by its full proto name. Unknown
/// fields in `bytes` are ignored, as Python does.
pub fn bytes_to_json(full_name: &str, bytes: &[u8]) -> Result<serde_json::Value, JsonError> {
    let desc = descriptor(full_name)?;
    let dynamic = DynamicMessage::decode(desc, bytes).map_err(|source| JsonError::Decode {
        message: full_name.to_owned(),
        source,
    })?;
    let options = SerializeOptions::new();
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|source| JsonError::Parse {
            message: full_name.to_owned(),
            source,
        })
}

/// Like [`to_json`] with the fields under their proto names (`join_key`, not `joinKey`).
pub fn to_json_proto_names<M: Message + Name>(msg: &M) -> Result<serde_json::Value, JsonError> {
    let name = M::full_name();
    let desc = descriptor(&name)?;
    let dynamic =
        DynamicMessage::decode(desc, msg.encode_to_vec().as_slice()).map_err(|source| {
            JsonError::Decode {
                message: name.clone(),
                source,
            }
        })?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|source| JsonError::Parse {
            message: name,
            source,
        })
}

/// Parses proto3 JSON (either camelCase or original field names) into a message.
pub fn from_json<M: Message + Name + Default>(json: &str) -> Result<M, JsonError> {
    let name = M::full_name();
    let desc = descriptor(&name)?;
    let mut de = serde_json::Deserializer::from_str(json);
    let dynamic =
        DynamicMessage::deserialize(desc, &mut de).map_err(|source| JsonError::Parse {
            message: name.clone(),
            source,
        })?;
    de.end().map_err(|source| JsonError::Parse {
        message: name.clone(),
        source,
    })?;
    M::decode(dynamic.encode_to_vec().as_slice()).map_err(|source| JsonError::Decode {
        message: name,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feast::core::{
        FeatureSpecV2, FeatureView, FeatureViewSpec, MaterializationInterval,
    };
    use crate::feast::types::value_type;

    #[test]
    fn json_mapping_matches_message_to_dict_conventions() {
        let fv = FeatureView {
            spec: Some(FeatureViewSpec {
                name: "driver_hourly_stats".into(),
                features: vec![FeatureSpecV2 {
                    name: "conv_rate".into(),
                    value_type: value_type::Enum::Float as i32,
                    ..Default::default()
                }],
                ttl: Some(prost_types::Duration {
                    seconds: 86400,
                    nanos: 0,
                }),
                online: true,
                ..Default::default()
            }),
            meta: Some(crate::feast::core::FeatureViewMeta {
                materialization_intervals: vec![MaterializationInterval {
                    start_time: Some(prost_types::Timestamp {
                        seconds: 1_618_225_182,
                        nanos: 123_456_000,
                    }),
                    end_time: None,
                }],
                current_version_number: 0,
                ..Default::default()
            }),
        };
        let json = to_json(&fv).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "spec": {
                    "name": "driver_hourly_stats",
                    "features": [{"name": "conv_rate", "valueType": "FLOAT"}],
                    "ttl": "86400s",
                    "online": true
                },
                "meta": {
                    "materializationIntervals": [{"startTime": "2021-04-12T10:59:42.123456Z"}]
                }
            })
        );
        let back: FeatureView = from_json(&json.to_string()).unwrap();
        assert_eq!(back, fv);
    }

    #[test]
    fn int64_is_a_string_like_python() {
        let v = crate::feast::types::Value {
            val: Some(crate::feast::types::value::Val::Int64Val(
                9_007_199_254_740_993,
            )),
        };
        assert_eq!(
            to_json(&v).unwrap(),
            serde_json::json!({"int64Val": "9007199254740993"})
        );
    }

    #[test]
    fn bad_bytes_are_an_error_not_a_panic() {
        let err = bytes_to_json("feast.core.Registry", &[0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(err, JsonError::Decode { .. }), "{err}");
    }
}
