//! On-demand views over Arrow batches (historical retrieval): columns read as pandas reads an
//! Arrow table (`to_pandas`), outputs written as Arrow arrays of the declared types.

use std::sync::Arc;

use datafusion::arrow::{
    array::{
        Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array,
        RecordBatch, StringArray,
    },
    datatypes::{
        DataType, Field, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
        Schema, SchemaRef, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
    },
};
use larder_protos::feast::types::value_type::Enum as T;

use super::{Col, EvalError, Obj, Program};

/// One on-demand view applied to a retrieval's rows.
#[derive(Debug, Clone)]
pub struct Step {
    pub view: String,
    pub program: Arc<Program>,
    /// The answer's column for each of the program's inputs.
    pub inputs: Vec<String>,
    /// (feature, output column name, declared type) of each requested output.
    pub outputs: Vec<(String, String, T)>,
}

/// The Arrow type an output of declared type `t` is written as.
pub fn arrow_type(t: T) -> Result<DataType, EvalError> {
    Ok(match t {
        T::Double => DataType::Float64,
        T::Float => DataType::Float32,
        T::Int64 => DataType::Int64,
        T::Int32 => DataType::Int32,
        T::Bool => DataType::Boolean,
        T::String => DataType::Utf8,
        other => {
            return Err(EvalError(format!(
                "{} outputs of on-demand views are not written by the native engine",
                other.as_str_name()
            )));
        }
    })
}

/// `schema` with the steps' output columns appended.
pub fn schema_with(schema: &SchemaRef, steps: &[Step]) -> Result<SchemaRef, EvalError> {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for s in steps {
        for (_, column, t) in &s.outputs {
            fields.push(Field::new(column, arrow_type(*t)?, true));
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// `batch` with the outputs of `steps` appended (their schema: [`schema_with`]).
pub fn apply(
    batch: &RecordBatch,
    steps: &[Step],
    schema: SchemaRef,
) -> Result<RecordBatch, EvalError> {
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    let rows = batch.num_rows();
    for s in steps {
        let inputs = s
            .inputs
            .iter()
            .map(|name| {
                let a = batch.column_by_name(name).ok_or_else(|| {
                    EvalError(format!("{}: the retrieval has no column {name}", s.view))
                })?;
                from_arrow(a.as_ref())
                    .map_err(|e| EvalError(format!("{}: column {name}: {e}", s.view)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let wanted: Vec<&str> = s.outputs.iter().map(|(f, ..)| f.as_str()).collect();
        let out = s
            .program
            .evaluate(&inputs, rows, &wanted)
            .map_err(|e| EvalError(format!("{}: {e}", s.view)))?;
        for (col, (f, _, t)) in out.iter().zip(&s.outputs) {
            cols.push(to_arrow(col, *t).map_err(|e| EvalError(format!("{}: {f}: {e}", s.view)))?);
        }
    }
    RecordBatch::try_new(schema, cols).map_err(|e| EvalError(e.to_string()))
}

macro_rules! ints {
    ($a:expr, $t:ty) => {{
        let p = $a.as_primitive::<$t>();
        if p.null_count() == 0 {
            Col::Int(p.values().iter().map(|v| *v as i64).collect())
        } else {
            Col::Float(p.iter().map(|v| v.map_or(f64::NAN, |v| v as f64)).collect())
        }
    }};
}

/// A column as `pa.Table.to_pandas()` gives it to a UDF: integers with a null become float64
/// with NaN, booleans with a null and strings become object columns.
pub fn from_arrow(a: &dyn Array) -> Result<Col, EvalError> {
    Ok(match a.data_type() {
        DataType::Int8 => ints!(a, Int8Type),
        DataType::Int16 => ints!(a, Int16Type),
        DataType::Int32 => ints!(a, Int32Type),
        DataType::Int64 => ints!(a, Int64Type),
        DataType::UInt8 => ints!(a, UInt8Type),
        DataType::UInt16 => ints!(a, UInt16Type),
        DataType::UInt32 => ints!(a, UInt32Type),
        DataType::UInt64 => ints!(a, UInt64Type),
        DataType::Float32 => Col::Float(
            a.as_primitive::<Float32Type>()
                .iter()
                .map(|v| v.map_or(f64::NAN, |v| v as f64))
                .collect(),
        ),
        DataType::Float64 => Col::Float(
            a.as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.unwrap_or(f64::NAN))
                .collect(),
        ),
        DataType::Boolean => {
            let b = a.as_boolean();
            if b.null_count() == 0 {
                Col::Bool(b.values().iter().collect())
            } else {
                Col::Obj(b.iter().map(|v| v.map_or(Obj::None, Obj::Bool)).collect())
            }
        }
        DataType::Utf8 => strs(a.as_string::<i32>().iter()),
        DataType::LargeUtf8 => strs(a.as_string::<i64>().iter()),
        DataType::Utf8View => strs(a.as_string_view().iter()),
        DataType::Null => Col::Obj(vec![Obj::None; a.len()]),
        other => {
            return Err(EvalError(format!(
                "{other} columns are outside the native on-demand subset"
            )));
        }
    })
}

fn strs<'a>(it: impl Iterator<Item = Option<&'a str>>) -> Col {
    Col::Obj(
        it.map(|v| v.map_or(Obj::None, |s| Obj::Str(s.to_owned())))
            .collect(),
    )
}

/// A computed column as an Arrow array of the declared type (NaN and `None` → null).
pub fn to_arrow(col: &Col, t: T) -> Result<ArrayRef, EvalError> {
    use larder_protos::feast::types::value::Val;
    let values = col.to_values(t)?;
    Ok(match t {
        T::Double => Arc::new(Float64Array::from_iter(values.iter().map(
            |v| match v.val {
                Some(Val::DoubleVal(f)) => Some(f),
                _ => None,
            },
        ))),
        T::Float => Arc::new(Float32Array::from_iter(values.iter().map(
            |v| match v.val {
                Some(Val::FloatVal(f)) => Some(f),
                _ => None,
            },
        ))),
        T::Int64 => Arc::new(Int64Array::from_iter(values.iter().map(|v| match v.val {
            Some(Val::Int64Val(i)) => Some(i),
            _ => None,
        }))),
        T::Int32 => Arc::new(Int32Array::from_iter(values.iter().map(|v| match v.val {
            Some(Val::Int32Val(i)) => Some(i),
            _ => None,
        }))),
        T::Bool => Arc::new(BooleanArray::from_iter(values.iter().map(
            |v| match v.val {
                Some(Val::BoolVal(b)) => Some(b),
                _ => None,
            },
        ))),
        T::String => Arc::new(StringArray::from_iter(values.iter().map(
            |v| match &v.val {
                Some(Val::StringVal(s)) => Some(s.as_str()),
                _ => None,
            },
        ))),
        other => {
            return Err(EvalError(format!(
                "cannot write {} outputs",
                other.as_str_name()
            )));
        }
    })
}

/// Feast values as the Arrow table Feast's online path builds from them
/// (`pa.Table.from_pydict` of the Python values): integers int64 (nulls kept), floats float64,
/// booleans, strings; a column of nulls only is of the null type.
pub fn inferred_batch(
    names: &[String],
    columns: &[&[larder_protos::feast::types::Value]],
    rows: usize,
) -> Result<RecordBatch, EvalError> {
    use larder_protos::feast::types::value::Val;
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, values) in names.iter().zip(columns) {
        let super::column::Inferred {
            ints,
            floats,
            bools,
            strs,
            any,
            ..
        } = super::column::Inferred::of(values)
            .map_err(|e| EvalError(format!("column {name}: {e}")))?;
        let array: ArrayRef = if !any {
            Arc::new(datafusion::arrow::array::NullArray::new(rows))
        } else if ints {
            Arc::new(Int64Array::from_iter(values.iter().map(|v| match v.val {
                Some(Val::Int32Val(i)) => Some(i as i64),
                Some(Val::Int64Val(i)) => Some(i),
                _ => None,
            })))
        } else if floats {
            Arc::new(Float64Array::from_iter(values.iter().map(
                |v| match v.val {
                    Some(Val::Int32Val(i)) => Some(i as f64),
                    Some(Val::Int64Val(i)) => Some(i as f64),
                    Some(Val::FloatVal(f)) => Some(f as f64),
                    Some(Val::DoubleVal(f)) => Some(f),
                    _ => None,
                },
            )))
        } else if bools {
            Arc::new(BooleanArray::from_iter(values.iter().map(
                |v| match v.val {
                    Some(Val::BoolVal(b)) => Some(b),
                    _ => None,
                },
            )))
        } else if strs {
            Arc::new(StringArray::from_iter(values.iter().map(
                |v| match &v.val {
                    Some(
                        Val::StringVal(s)
                        | Val::UuidVal(s)
                        | Val::TimeUuidVal(s)
                        | Val::DecimalVal(s),
                    ) => Some(s.as_str()),
                    _ => None,
                },
            )))
        } else {
            return Err(EvalError(format!(
                "column {name} mixes numbers, booleans and strings"
            )));
        };
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| EvalError(e.to_string()))
}
