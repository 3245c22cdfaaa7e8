//! Untyped (JSON) values as Feast `Value`s of a declared type — the rows of `/push` and
//! `/write-to-online-store` — and Feast's timestamp parsing.

use chrono::{DateTime, Utc};
use larder_protos::feast::types::{
    BoolList, DoubleList, FloatList, Int32List, Int64List, Map, RepeatedValue, StringList, Value,
    value::Val, value_type::Enum as T,
};
use prost_types::Timestamp;
use serde_json::Value as Json;

/// A JSON value as a Feast value of type `t` (null, and NaN for floats, → the empty value).
pub fn json_value(v: &Json, t: T) -> Result<Value, String> {
    let wrong = || format!("{v} is not a valid {} value", t.as_str_name());
    let int = |v: &Json| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let float = |v: &Json| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let list = |v: &Json| v.as_array().cloned().ok_or_else(wrong);
    if v.is_null() {
        return Ok(Value::default());
    }
    let val = match t {
        T::Int32 => Val::Int32Val(
            int(v)
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(wrong)?,
        ),
        T::Int64 => Val::Int64Val(int(v).ok_or_else(wrong)?),
        T::Float => match float(v).ok_or_else(wrong)? {
            f if f.is_nan() => return Ok(Value::default()),
            f => Val::FloatVal(f as f32),
        },
        T::Double => match float(v).ok_or_else(wrong)? {
            f if f.is_nan() => return Ok(Value::default()),
            f => Val::DoubleVal(f),
        },
        T::Bool => Val::BoolVal(v.as_bool().ok_or_else(wrong)?),
        T::String => Val::StringVal(
            v.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string()),
        ),
        T::Json => Val::JsonVal(
            v.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string()),
        ),
        T::UnixTimestamp => Val::UnixTimestampVal(match v.as_str() {
            Some(s) => parse_timestamp(s)?.timestamp(),
            None => int(v).ok_or_else(wrong)?,
        }),
        T::Int32List => Val::Int32ListVal(Int32List {
            val: list(v)?
                .iter()
                .map(|x| int(x).and_then(|i| i32::try_from(i).ok()).ok_or_else(wrong))
                .collect::<Result<_, _>>()?,
        }),
        T::Int64List => Val::Int64ListVal(Int64List {
            val: list(v)?
                .iter()
                .map(|x| int(x).ok_or_else(wrong))
                .collect::<Result<_, _>>()?,
        }),
        T::FloatList => Val::FloatListVal(FloatList {
            val: list(v)?
                .iter()
                .map(|x| float(x).map(|f| f as f32).ok_or_else(wrong))
                .collect::<Result<_, _>>()?,
        }),
        T::DoubleList => Val::DoubleListVal(DoubleList {
            val: list(v)?
                .iter()
                .map(|x| float(x).ok_or_else(wrong))
                .collect::<Result<_, _>>()?,
        }),
        T::BoolList => Val::BoolListVal(BoolList {
            val: list(v)?
                .iter()
                .map(|x| x.as_bool().ok_or_else(wrong))
                .collect::<Result<_, _>>()?,
        }),
        T::StringList => Val::StringListVal(StringList {
            val: list(v)?
                .iter()
                .map(|x| x.as_str().map(str::to_owned).ok_or_else(wrong))
                .collect::<Result<_, _>>()?,
        }),
        T::Map | T::Struct => {
            // An object, or a JSON text of one (the remote SDK sends maps as JSON strings).
            let parsed;
            let obj = match v {
                Json::String(s) => {
                    parsed = serde_json::from_str::<Json>(s).map_err(|_| wrong())?;
                    &parsed
                }
                v => v,
            };
            let Json::Object(m) = obj else {
                return Err(wrong());
            };
            let map = Map {
                val: m
                    .iter()
                    .map(|(k, v)| (k.clone(), inferred_json_value(v)))
                    .collect(),
            };
            if t == T::Map {
                Val::MapVal(map)
            } else {
                Val::StructVal(map)
            }
        }
        other => {
            return Err(format!(
                "pushing {} values is not supported yet",
                other.as_str_name()
            ));
        }
    };
    Ok(Value { val: Some(val) })
}

/// A JSON value typed as Feast infers a Python value's type (the members of a Map or Struct
/// value): integers → int64, other numbers → double, objects → maps, arrays → lists.
pub fn inferred_json_value(v: &Json) -> Value {
    let val = match v {
        Json::Null => None,
        Json::Bool(b) => Some(Val::BoolVal(*b)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Some(Val::Int64Val(i)),
            None => n.as_f64().map(Val::DoubleVal),
        },
        Json::String(s) => Some(Val::StringVal(s.clone())),
        Json::Object(m) => Some(Val::MapVal(Map {
            val: m
                .iter()
                .map(|(k, v)| (k.clone(), inferred_json_value(v)))
                .collect(),
        })),
        Json::Array(items) => Some(Val::ListVal(RepeatedValue {
            val: items.iter().map(inferred_json_value).collect(),
        })),
    };
    Value { val }
}

/// A JSON event or created timestamp: an ISO 8601 string or whole seconds since the epoch
/// (microsecond precision, as Python datetimes).
pub fn json_timestamp(v: &Json) -> Result<Timestamp, String> {
    let t = match v {
        Json::String(s) => parse_timestamp(s)?,
        Json::Number(n) => {
            let t = n
                .as_i64()
                .and_then(|secs| DateTime::from_timestamp(secs, 0))
                .ok_or_else(|| format!("{n} is not a timestamp"))?;
            in_range(t, &n.to_string())?
        }
        other => return Err(format!("{other} is not a timestamp")),
    };
    Ok(Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_micros() as i32 * 1000,
    })
}

/// The times a `google.protobuf.Timestamp` holds (0001-01-01 to 9999-12-31, as Python's
/// datetime): a time outside them could be stored but never rendered or read back by Feast.
fn in_range(t: DateTime<Utc>, text: &str) -> Result<DateTime<Utc>, String> {
    use chrono::Datelike;
    if (1..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err(format!(
            "{text} is outside the timestamps Feast can store (years 1 to 9999)"
        ))
    }
}

/// Parses a CLI/HTTP timestamp as Feast does: ISO 8601, naive values are UTC; years 1 to
/// 9999 only.
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    parse_any_timestamp(s).and_then(|t| in_range(t, &format!("{:?}", s.trim())))
}

fn parse_any_timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(t.with_timezone(&Utc));
    }
    Err(format!(
        "{s:?} is not an ISO 8601 timestamp (e.g. 2021-07-16T19:20:01)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_floats_are_the_values_sent() {
        // Numbers Feast renders (17 significant digits) and Python parses exactly.
        for text in [
            "0.8121682405471802",
            "400.07322928310884",
            "2.2250738585072014e-308",
        ] {
            let body = format!("{{\"v\": [{text}]}}");
            let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
            let v = json_value(&parsed["v"][0], T::Double).unwrap();
            assert_eq!(v.val, Some(Val::DoubleVal(text.parse().unwrap())), "{text}");
        }
    }

    #[test]
    fn timestamps_parse_like_feast() {
        let want = DateTime::parse_from_rfc3339("2021-07-16T19:20:01Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_timestamp("2021-07-16T19:20:01").unwrap(), want);
        assert_eq!(parse_timestamp("2021-07-16 19:20:01").unwrap(), want);
        assert_eq!(parse_timestamp("2021-07-16T21:20:01+02:00").unwrap(), want);
        assert_eq!(parse_timestamp("2021-07-16T19:20:01.000Z").unwrap(), want);
        assert!(parse_timestamp("2021-07-16").is_ok());
        assert!(
            parse_timestamp("yesterday")
                .unwrap_err()
                .contains("ISO 8601")
        );
        assert_eq!(
            json_timestamp(&json!(1626463201)).unwrap().seconds,
            want.timestamp()
        );
        // Beyond what a protobuf Timestamp (and Python) can hold.
        for bad in [
            "+262142-01-01T00:00:00",
            "0000-01-01",
            "-0001-06-01T00:00:00",
        ] {
            let e = parse_timestamp(bad).unwrap_err();
            assert!(e.contains("years 1 to 9999"), "{bad}: {e}");
        }
        assert!(json_timestamp(&json!(253402300800i64)).is_err());
        assert!(json_timestamp(&json!(253402300799i64)).is_ok());
        assert!(parse_timestamp("9999-12-31T23:59:59.999999").is_ok());
        assert!(parse_timestamp("0001-01-01").is_ok());
    }

    #[test]
    fn json_values_take_the_declared_type() {
        assert_eq!(
            json_value(&json!("7"), T::Int64).unwrap().val,
            Some(Val::Int64Val(7))
        );
        assert_eq!(
            json_value(&json!(null), T::Int64).unwrap(),
            Value::default()
        );
        assert_eq!(
            json_value(&json!("NaN"), T::Double).unwrap(),
            Value::default()
        );
        assert!(json_value(&json!(1i64 << 40), T::Int32).is_err());
        assert!(json_value(&json!([1i64 << 40]), T::Int32List).is_err());
        assert!(json_value(&json!("x"), T::Bool).is_err());
        assert_eq!(
            json_value(&json!({"a": 1}), T::Json).unwrap().val,
            Some(Val::JsonVal("{\"a\":1}".into()))
        );
    }
}
