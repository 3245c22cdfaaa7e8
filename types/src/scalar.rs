//! A request's untyped values (from JSON or from a gRPC `Value`) and their conversion to a
//! join key's type, as Feast converts entity values given in a request.

use larder_protos::feast::types::{Value, value::Val, value_type::Enum as ValueType};

use crate::entity_key::EntityValue;

/// A request scalar, from JSON or from a gRPC `Value`.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// Anything else (lists, maps): never a valid join-key value.
    Other(String),
}

impl Scalar {
    /// A JSON value: numbers that fit an i64 are integers, other numbers floats; arrays and
    /// objects are kept as their JSON text.
    pub fn from_json(v: &serde_json::Value) -> Self {
        use serde_json::Value as J;
        match v {
            J::Null => Scalar::Null,
            J::Bool(b) => Scalar::Bool(*b),
            J::Number(n) => n.as_i64().map_or_else(
                || Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
                Scalar::Int,
            ),
            J::String(s) => Scalar::Str(s.clone()),
            other => Scalar::Other(other.to_string()),
        }
    }

    /// A gRPC request's `Value`.
    pub fn from_proto(v: Value) -> Self {
        match v.val {
            None | Some(Val::NullVal(_)) => Scalar::Null,
            Some(Val::Int64Val(i)) | Some(Val::UnixTimestampVal(i)) => Scalar::Int(i),
            Some(Val::Int32Val(i)) => Scalar::Int(i as i64),
            Some(Val::StringVal(s)) => Scalar::Str(s),
            Some(Val::BytesVal(b)) => Scalar::Bytes(b),
            Some(Val::BoolVal(b)) => Scalar::Bool(b),
            Some(Val::DoubleVal(d)) => Scalar::Float(d),
            Some(Val::FloatVal(f)) => Scalar::Float(f as f64),
            Some(other) => Scalar::Other(format!("{other:?}")),
        }
    }

    /// Converts the value to the join key's type, as Feast converts request entity values (a
    /// numeric string or an integral float is accepted for an integer key).
    pub fn to_entity_value(&self, t: ValueType) -> Result<EntityValue, String> {
        let int = |v: &Scalar| -> Result<i64, String> {
            match v {
                Scalar::Int(i) => Ok(*i),
                Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(*f as i64),
                Scalar::Str(s) => s
                    .trim()
                    .parse()
                    .map_err(|_| format!("{s:?} is not an integer")),
                Scalar::Bool(b) => Ok(*b as i64),
                Scalar::Null => Err("null is not a valid join key value".into()),
                other => Err(format!("{} is not an integer", other.describe())),
            }
        };
        match t {
            ValueType::Int64 => int(self).map(EntityValue::Int64),
            ValueType::UnixTimestamp => int(self).map(EntityValue::UnixTimestamp),
            ValueType::Int32 => {
                let i = int(self)?;
                i32::try_from(i)
                    .map(EntityValue::Int32)
                    .map_err(|_| format!("{i} does not fit in INT32"))
            }
            ValueType::String => match self {
                Scalar::Str(s) => Ok(EntityValue::String(s.clone())),
                Scalar::Int(i) => Ok(EntityValue::String(i.to_string())),
                Scalar::Null => Err("null is not a valid join key value".into()),
                other => Err(format!("{} is not a string", other.describe())),
            },
            ValueType::Bytes => match self {
                Scalar::Bytes(b) => Ok(EntityValue::Bytes(b.clone())),
                Scalar::Str(s) => Ok(EntityValue::Bytes(s.as_bytes().to_vec())),
                other => Err(format!("{} is not bytes", other.describe())),
            },
            other => Err(format!(
                "join keys of type {} are not supported",
                other.as_str_name()
            )),
        }
    }

    /// The `Value` Feast infers for a request value it has no type for.
    pub fn to_inferred_value(&self) -> Value {
        let val = match self {
            Scalar::Null | Scalar::Other(_) => None,
            Scalar::Bool(b) => Some(Val::BoolVal(*b)),
            Scalar::Int(i) => Some(Val::Int64Val(*i)),
            Scalar::Float(f) => Some(Val::DoubleVal(*f)),
            Scalar::Str(s) => Some(Val::StringVal(s.clone())),
            Scalar::Bytes(b) => Some(Val::BytesVal(b.clone())),
        };
        Value { val }
    }

    /// The value as a `Value` of declared type `t` (request data, as logged): numbers of any
    /// numeric type, booleans, text of the text types, bytes; anything else is missing.
    pub fn to_value(&self, t: ValueType) -> Value {
        let val = match (self, t) {
            (Scalar::Int(i), ValueType::Int64) => Some(Val::Int64Val(*i)),
            (Scalar::Int(i), ValueType::Int32) => i32::try_from(*i).ok().map(Val::Int32Val),
            (Scalar::Int(i), ValueType::UnixTimestamp) => Some(Val::UnixTimestampVal(*i)),
            (Scalar::Int(i), ValueType::Double) => Some(Val::DoubleVal(*i as f64)),
            (Scalar::Int(i), ValueType::Float) => Some(Val::FloatVal(*i as f32)),
            (Scalar::Float(f), ValueType::Double) => Some(Val::DoubleVal(*f)),
            (Scalar::Float(f), ValueType::Float) => Some(Val::FloatVal(*f as f32)),
            (Scalar::Bool(b), ValueType::Bool) => Some(Val::BoolVal(*b)),
            (Scalar::Str(s), ValueType::String) => Some(Val::StringVal(s.clone())),
            (Scalar::Str(s), ValueType::Json) => Some(Val::JsonVal(s.clone())),
            (Scalar::Str(s), ValueType::Uuid) => Some(Val::UuidVal(s.clone())),
            (Scalar::Str(s), ValueType::TimeUuid) => Some(Val::TimeUuidVal(s.clone())),
            (Scalar::Str(s), ValueType::Decimal) => Some(Val::DecimalVal(s.clone())),
            (Scalar::Bytes(b), ValueType::Bytes) => Some(Val::BytesVal(b.clone())),
            _ => None,
        };
        Value { val }
    }

    /// The value as error messages show it.
    pub fn describe(&self) -> String {
        match self {
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Bytes(_) => "bytes".into(),
            Scalar::Other(s) => s.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_values_take_the_join_keys_type() {
        use ValueType::*;
        let s = |x: &str| Scalar::Str(x.into());
        assert_eq!(
            s("1001").to_entity_value(Int64),
            Ok(EntityValue::Int64(1001))
        );
        assert_eq!(
            Scalar::Float(7.0).to_entity_value(Int64),
            Ok(EntityValue::Int64(7))
        );
        assert!(Scalar::Float(7.5).to_entity_value(Int64).is_err());
        assert!(Scalar::Int(1 << 40).to_entity_value(Int32).is_err());
        assert_eq!(
            Scalar::Int(5).to_entity_value(String),
            Ok(EntityValue::String("5".into()))
        );
        assert!(Scalar::Null.to_entity_value(String).is_err());
        assert_eq!(
            s("ab").to_entity_value(Bytes),
            Ok(EntityValue::Bytes(b"ab".to_vec()))
        );
        assert!(s("x").to_entity_value(Double).is_err());
        assert_eq!(
            Scalar::from_json(&serde_json::json!(3)),
            Scalar::Int(3),
            "JSON integers stay integers"
        );
        assert_eq!(
            Scalar::from_json(&serde_json::json!([1])),
            Scalar::Other("[1]".into())
        );
        assert_eq!(
            Scalar::from_proto(Value {
                val: Some(Val::Int32Val(4))
            }),
            Scalar::Int(4)
        );
    }
}
