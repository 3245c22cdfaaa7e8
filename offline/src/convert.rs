//! Arrow columns to Feast values, column by column, as Feast's
//! `python_values_to_proto_values` converts a pandas column for a declared feature type:
//! nulls (and float NaN) become the empty `Value`, timestamps become whole seconds, JSON text
//! becomes `map_val`/`struct_val` for Map and Struct features.

use datafusion::arrow::{
    array::{Array, ArrayRef, AsArray},
    datatypes::{
        DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
    },
};
use larder_protos::feast::types::{
    BoolList, BoolSet, BytesList, BytesSet, DoubleList, DoubleSet, FloatList, FloatSet, Int32List,
    Int32Set, Int64List, Int64Set, Map, StringList, StringSet, Value, value::Val,
    value_type::Enum as T,
};
use larder_types::entity_key::EntityValue;

/// Why a column could not be converted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ConvertError {
    pub column: String,
    pub message: String,
}

/// A column whose Arrow type cannot hold values of the declared feature type.
fn mismatch(column: &str, arr: &dyn Array, t: T) -> ConvertError {
    err(
        column,
        format!(
            "a {} column cannot hold {} values",
            arr.data_type(),
            t.as_str_name()
        ),
    )
}

fn err(column: &str, message: impl Into<String>) -> ConvertError {
    ConvertError {
        column: column.to_owned(),
        message: message.into(),
    }
}

/// Integer value `i` of an integer-typed array, `None` when null or not an integer array.
fn int_at(a: &dyn Array, i: usize) -> Option<i64> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Int8 => a.as_primitive::<Int8Type>().value(i) as i64,
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i) as i64,
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i) as i64,
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().value(i) as i64,
        DataType::UInt16 => a.as_primitive::<UInt16Type>().value(i) as i64,
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i) as i64,
        DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i) as i64,
        DataType::Timestamp(unit, _) => seconds(a, unit, i),
        _ => return None,
    })
}

fn seconds(a: &dyn Array, unit: &TimeUnit, i: usize) -> i64 {
    match unit {
        TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(i),
        TimeUnit::Millisecond => a
            .as_primitive::<TimestampMillisecondType>()
            .value(i)
            .div_euclid(1_000),
        TimeUnit::Microsecond => a
            .as_primitive::<TimestampMicrosecondType>()
            .value(i)
            .div_euclid(1_000_000),
        TimeUnit::Nanosecond => a
            .as_primitive::<TimestampNanosecondType>()
            .value(i)
            .div_euclid(1_000_000_000),
    }
}

/// `(seconds, nanos)` of a timestamp array element, naive values taken as UTC.
pub fn timestamp_at(a: &dyn Array, i: usize) -> Option<prost_types::Timestamp> {
    if a.is_null(i) {
        return None;
    }
    let (secs, nanos) = match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            (a.as_primitive::<TimestampSecondType>().value(i), 0)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let v = a.as_primitive::<TimestampMillisecondType>().value(i);
            (v.div_euclid(1_000), v.rem_euclid(1_000) * 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let v = a.as_primitive::<TimestampMicrosecondType>().value(i);
            (v.div_euclid(1_000_000), v.rem_euclid(1_000_000) * 1_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            let v = a.as_primitive::<TimestampNanosecondType>().value(i);
            // Feast (Python datetimes) keeps microseconds.
            (
                v.div_euclid(1_000_000_000),
                v.rem_euclid(1_000_000_000) / 1_000 * 1_000,
            )
        }
        _ => return None,
    };
    Some(prost_types::Timestamp {
        seconds: secs,
        nanos: nanos as i32,
    })
}

fn str_at(a: &dyn Array, i: usize) -> Option<&str> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Some(a.as_string::<i64>().value(i)),
        DataType::Utf8View => Some(a.as_string_view().value(i)),
        _ => None,
    }
}

fn bytes_at(a: &dyn Array, i: usize) -> Option<&[u8]> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Binary => Some(a.as_binary::<i32>().value(i)),
        DataType::LargeBinary => Some(a.as_binary::<i64>().value(i)),
        DataType::BinaryView => Some(a.as_binary_view().value(i)),
        _ => str_at(a, i).map(str::as_bytes),
    }
}

fn float_at(a: &dyn Array, i: usize) -> Option<f64> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Float32 => Some(a.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => Some(a.as_primitive::<Float64Type>().value(i)),
        _ => int_at(a, i).map(|v| v as f64),
    }
}

fn bool_at(a: &dyn Array, i: usize) -> Option<bool> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Boolean => Some(a.as_boolean().value(i)),
        _ => int_at(a, i).map(|v| v != 0),
    }
}

/// Join-key values of one column for the key type `t`.
pub fn entity_values(column: &str, a: &ArrayRef, t: T) -> Result<Vec<EntityValue>, ConvertError> {
    (0..a.len())
        .map(|i| {
            if a.is_null(i) {
                return Err(err(column, format!("row {i} has a null join key")));
            }
            let v = match t {
                T::Int64 => int_at(a.as_ref(), i).map(EntityValue::Int64),
                T::Int32 => int_at(a.as_ref(), i)
                    .and_then(|v| i32::try_from(v).ok())
                    .map(EntityValue::Int32),
                T::UnixTimestamp => int_at(a.as_ref(), i).map(EntityValue::UnixTimestamp),
                T::String => str_at(a.as_ref(), i)
                    .map(|s| EntityValue::String(s.to_owned()))
                    .or_else(|| int_at(a.as_ref(), i).map(|v| EntityValue::String(v.to_string()))),
                T::Bytes => bytes_at(a.as_ref(), i).map(|b| EntityValue::Bytes(b.to_vec())),
                other => {
                    return Err(err(
                        column,
                        format!(
                            "join keys of type {} are not supported",
                            other.as_str_name()
                        ),
                    ));
                }
            };
            v.ok_or_else(|| {
                err(
                    column,
                    format!(
                        "a {} column cannot hold {} join keys",
                        a.data_type(),
                        t.as_str_name()
                    ),
                )
            })
        })
        .collect()
}

fn struct_or_map(a: &dyn Array) -> bool {
    matches!(a.data_type(), DataType::Struct(_) | DataType::Map(..))
}

/// Row `i` of a struct or map column as a Feast `Map`, its members typed as Feast infers the
/// values of a Python dict (pandas reads a Parquet struct or map as dicts).
fn dict_at(a: &dyn Array, i: usize) -> Option<Map> {
    if a.is_null(i) {
        return None;
    }
    let mut val = std::collections::HashMap::new();
    match a.data_type() {
        DataType::Struct(fields) => {
            let st = a.as_struct();
            for (f, child) in fields.iter().zip(st.columns()) {
                val.insert(f.name().clone(), inferred_value(child.as_ref(), i));
            }
        }
        DataType::Map(..) => {
            let entries = a.as_map().value(i);
            let (keys, values) = (entries.column(0), entries.column(1));
            for j in 0..entries.len() {
                let key = str_at(keys.as_ref(), j)
                    .map(str::to_owned)
                    .or_else(|| int_at(keys.as_ref(), j).map(|k| k.to_string()))
                    .unwrap_or_default();
                val.insert(key, inferred_value(values.as_ref(), j));
            }
        }
        _ => return None,
    }
    Some(Map {
        val: val.into_iter().collect(),
    })
}

/// Element `i` of `a` typed as Feast infers a Python value's type.
fn inferred_value(a: &dyn Array, i: usize) -> Value {
    if a.is_null(i) {
        return Value::default();
    }
    let val = match a.data_type() {
        DataType::Boolean => bool_at(a, i).map(Val::BoolVal),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            float_at(a, i).map(Val::DoubleVal)
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            str_at(a, i).map(|s| Val::StringVal(s.to_owned()))
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            bytes_at(a, i).map(|b| Val::BytesVal(b.to_vec()))
        }
        DataType::Struct(_) | DataType::Map(..) => dict_at(a, i).map(Val::MapVal),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            list_items(a, i).map(|items| {
                let items = items.as_ref();
                match items.data_type() {
                    DataType::Boolean => Val::BoolListVal(BoolList {
                        val: (0..items.len()).filter_map(|j| bool_at(items, j)).collect(),
                    }),
                    DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                        Val::DoubleListVal(DoubleList {
                            val: (0..items.len())
                                .filter_map(|j| float_at(items, j))
                                .collect(),
                        })
                    }
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                        Val::StringListVal(StringList {
                            val: (0..items.len())
                                .filter_map(|j| string_at(items, j))
                                .collect(),
                        })
                    }
                    _ if int_at(items, 0).is_some() || items.is_empty() => {
                        Val::Int64ListVal(Int64List {
                            val: (0..items.len()).filter_map(|j| int_at(items, j)).collect(),
                        })
                    }
                    _ => Val::ListVal(larder_protos::feast::types::RepeatedValue {
                        val: (0..items.len()).map(|j| inferred_value(items, j)).collect(),
                    }),
                }
            })
        }
        _ => int_at(a, i).map(Val::Int64Val),
    };
    Value { val }
}

fn list_items(a: &dyn Array, i: usize) -> Option<ArrayRef> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::List(_) => Some(a.as_list::<i32>().value(i)),
        DataType::LargeList(_) => Some(a.as_list::<i64>().value(i)),
        DataType::FixedSizeList(_, _) => Some(a.as_fixed_size_list().value(i)),
        _ => None,
    }
}

fn i32_at(a: &dyn Array, i: usize) -> Option<i32> {
    int_at(a, i).map(|v| v as i32)
}

fn f32_at(a: &dyn Array, i: usize) -> Option<f32> {
    float_at(a, i).map(|f| f as f32)
}

fn string_at(a: &dyn Array, i: usize) -> Option<String> {
    str_at(a, i).map(str::to_owned)
}

fn bytes_vec_at(a: &dyn Array, i: usize) -> Option<Vec<u8>> {
    bytes_at(a, i).map(<[u8]>::to_vec)
}

fn collect<X>(items: &ArrayRef, each: impl Fn(&dyn Array, usize) -> Option<X>) -> Vec<X> {
    (0..items.len())
        .filter_map(|j| each(items.as_ref(), j))
        .collect()
}

/// Feature values of one column for the declared feature type `t`, one per row.
pub fn feature_values(column: &str, a: &ArrayRef, t: T) -> Result<Vec<Value>, ConvertError> {
    let mut out = Vec::with_capacity(a.len());
    for i in 0..a.len() {
        let arr = a.as_ref();
        let val = match t {
            T::Int32 => int_at(arr, i).map(|v| Val::Int32Val(v as i32)),
            T::Int64 => int_at(arr, i).map(Val::Int64Val),
            T::Float => float_at(arr, i)
                .filter(|f| !f.is_nan())
                .map(|f| Val::FloatVal(f as f32)),
            T::Double => float_at(arr, i).filter(|f| !f.is_nan()).map(Val::DoubleVal),
            T::Bool => bool_at(arr, i).map(Val::BoolVal),
            T::String => str_at(arr, i).map(|s| Val::StringVal(s.to_owned())),
            T::Bytes => bytes_at(arr, i).map(|b| Val::BytesVal(b.to_vec())),
            T::UnixTimestamp => int_at(arr, i).map(Val::UnixTimestampVal),
            T::Json => str_at(arr, i).map(|s| Val::JsonVal(s.to_owned())),
            T::Uuid => str_at(arr, i).map(|s| Val::UuidVal(s.to_owned())),
            T::Map | T::Struct if struct_or_map(arr) => dict_at(arr, i).map(|map| {
                if t == T::Map {
                    Val::MapVal(map)
                } else {
                    Val::StructVal(map)
                }
            }),
            T::Map | T::Struct => match str_at(arr, i) {
                Some(s) => {
                    let parsed: serde_json::Value = serde_json::from_str(s)
                        .map_err(|e| err(column, format!("row {i} is not a JSON object: {e}")))?;
                    let serde_json::Value::Object(m) = parsed else {
                        return Err(err(column, format!("row {i} is not a JSON object")));
                    };
                    let map = Map {
                        val: m
                            .iter()
                            .map(|(k, v)| (k.clone(), larder_types::value::inferred_json_value(v)))
                            .collect(),
                    };
                    Some(if t == T::Map {
                        Val::MapVal(map)
                    } else {
                        Val::StructVal(map)
                    })
                }
                None if arr.is_null(i) => None,
                None => {
                    return Err(mismatch(column, arr, t));
                }
            },
            T::Int32List
            | T::Int64List
            | T::FloatList
            | T::DoubleList
            | T::BoolList
            | T::StringList
            | T::BytesList
            | T::UnixTimestampList
            | T::Int32Set
            | T::Int64Set
            | T::FloatSet
            | T::DoubleSet
            | T::BoolSet
            | T::StringSet
            | T::BytesSet
            | T::UnixTimestampSet => match list_items(arr, i) {
                None if arr.is_null(i) => None,
                None => {
                    return Err(mismatch(column, arr, t));
                }
                Some(items) => Some(match t {
                    T::Int32List => Val::Int32ListVal(Int32List {
                        val: collect(&items, i32_at),
                    }),
                    T::Int64List => Val::Int64ListVal(Int64List {
                        val: collect(&items, int_at),
                    }),
                    T::FloatList => Val::FloatListVal(FloatList {
                        val: collect(&items, f32_at),
                    }),
                    T::DoubleList => Val::DoubleListVal(DoubleList {
                        val: collect(&items, float_at),
                    }),
                    T::BoolList => Val::BoolListVal(BoolList {
                        val: collect(&items, bool_at),
                    }),
                    T::StringList => Val::StringListVal(StringList {
                        val: collect(&items, string_at),
                    }),
                    T::BytesList => Val::BytesListVal(BytesList {
                        val: collect(&items, bytes_vec_at),
                    }),
                    T::UnixTimestampList => Val::UnixTimestampListVal(Int64List {
                        val: collect(&items, int_at),
                    }),
                    T::Int32Set => Val::Int32SetVal(Int32Set {
                        val: collect(&items, i32_at),
                    }),
                    T::Int64Set => Val::Int64SetVal(Int64Set {
                        val: collect(&items, int_at),
                    }),
                    T::FloatSet => Val::FloatSetVal(FloatSet {
                        val: collect(&items, f32_at),
                    }),
                    T::DoubleSet => Val::DoubleSetVal(DoubleSet {
                        val: collect(&items, float_at),
                    }),
                    T::BoolSet => Val::BoolSetVal(BoolSet {
                        val: collect(&items, bool_at),
                    }),
                    T::StringSet => Val::StringSetVal(StringSet {
                        val: collect(&items, string_at),
                    }),
                    T::BytesSet => Val::BytesSetVal(BytesSet {
                        val: collect(&items, bytes_vec_at),
                    }),
                    _ => Val::UnixTimestampSetVal(Int64Set {
                        val: collect(&items, int_at),
                    }),
                }),
            },
            other => {
                return Err(err(
                    column,
                    format!(
                        "feature type {} is not supported for materialization yet",
                        other.as_str_name()
                    ),
                ));
            }
        };
        let nan = matches!(t, T::Float | T::Double) && float_at(arr, i).is_some_and(f64::is_nan);
        if val.is_none() && !arr.is_null(i) && !nan {
            return Err(mismatch(column, arr, t));
        }
        out.push(Value { val });
    }
    Ok(out)
}
