//! Columns as pandas holds them, the operations the native subset compiles to, and the
//! conversions from Feast values (as Feast's online path builds its input frame: Python values
//! → `pa.Table.from_pydict` → `to_pandas`) and to Feast values of a declared type.

use larder_protos::feast::types::{Value, value::Val, value_type::Enum as T};

use super::parse::{BinOp, CmpOp};

/// A pandas column.
#[derive(Debug, Clone, PartialEq)]
pub enum Col {
    /// int64 without missing values.
    Int(Vec<i64>),
    /// float64; NaN is missing.
    Float(Vec<f64>),
    /// bool without missing values.
    Bool(Vec<bool>),
    /// object: strings, booleans with `None`, all-missing columns.
    Obj(Vec<Obj>),
}

/// One object-column cell, or a Python scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    None,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Obj {
    fn is_null(&self) -> bool {
        match self {
            Obj::None => true,
            Obj::Float(f) => f.is_nan(),
            _ => false,
        }
    }
}

/// A UDF failed on its inputs (as pandas would raise).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError(msg.into()))
}

/// An operand: a column, or a Python scalar broadcast over the rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Col(Col),
    Scalar(Obj),
}

/// What an operand holds, for choosing an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Int,
    Float,
    Bool,
    /// booleans with missing values (object)
    BoolObj,
    Str,
    /// only missing values
    Null,
    Mixed,
}

impl Col {
    pub fn len(&self) -> usize {
        match self {
            Col::Int(v) => v.len(),
            Col::Float(v) => v.len(),
            Col::Bool(v) => v.len(),
            Col::Obj(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A column of Feast values as Feast's online path hands it to a pandas UDF.
    pub fn from_values(values: &[Value]) -> Result<Col, EvalError> {
        let Inferred {
            ints,
            floats,
            bools,
            strs,
            nulls,
            any,
        } = Inferred::of(values)?;
        if !any {
            return Ok(Col::Obj(vec![Obj::None; values.len()]));
        }
        let num = |v: &Value| -> Option<f64> {
            match v.val {
                Some(Val::Int32Val(i)) => Some(i as f64),
                Some(Val::Int64Val(i)) => Some(i as f64),
                Some(Val::FloatVal(f)) => Some(f as f64),
                Some(Val::DoubleVal(f)) => Some(f),
                _ => None,
            }
        };
        Ok(if ints && !nulls {
            Col::Int(
                values
                    .iter()
                    .map(|v| match v.val {
                        Some(Val::Int32Val(i)) => i as i64,
                        Some(Val::Int64Val(i)) => i,
                        _ => 0,
                    })
                    .collect(),
            )
        } else if ints || floats {
            Col::Float(values.iter().map(|v| num(v).unwrap_or(f64::NAN)).collect())
        } else if bools && !nulls {
            Col::Bool(
                values
                    .iter()
                    .map(|v| matches!(v.val, Some(Val::BoolVal(true))))
                    .collect(),
            )
        } else if bools {
            Col::Obj(
                values
                    .iter()
                    .map(|v| match v.val {
                        Some(Val::BoolVal(b)) => Obj::Bool(b),
                        _ => Obj::None,
                    })
                    .collect(),
            )
        } else if strs {
            Col::Obj(
                values
                    .iter()
                    .map(|v| match &v.val {
                        Some(
                            Val::StringVal(s)
                            | Val::UuidVal(s)
                            | Val::TimeUuidVal(s)
                            | Val::DecimalVal(s),
                        ) => Obj::Str(s.clone()),
                        _ => Obj::None,
                    })
                    .collect(),
            )
        } else {
            return fail("a column mixing numbers, booleans and strings");
        })
    }

    /// The column as Feast values of the declared type `t`
    /// (`python_values_to_proto_values`: NaN and `None` → the empty value).
    pub fn to_values(&self, t: T) -> Result<Vec<Value>, EvalError> {
        match self {
            Col::Int(v) => v.iter().map(|i| Self::to_value(Obj::Int(*i), t)).collect(),
            Col::Float(v) => v
                .iter()
                .map(|f| Self::to_value(Obj::Float(*f), t))
                .collect(),
            Col::Bool(v) => v.iter().map(|b| Self::to_value(Obj::Bool(*b), t)).collect(),
            Col::Obj(v) => v.iter().map(|o| Self::to_value(o.clone(), t)).collect(),
        }
    }

    /// One cell as a Feast value of type `t`.
    fn to_value(c: Obj, t: T) -> Result<Value, EvalError> {
        if c.is_null() {
            return Ok(Value::default());
        }
        let val = match (t, c) {
            (T::Double, Obj::Float(f)) => Val::DoubleVal(f),
            (T::Double, Obj::Int(i)) => Val::DoubleVal(i as f64),
            (T::Float, Obj::Float(f)) => Val::FloatVal(f as f32),
            (T::Float, Obj::Int(i)) => Val::FloatVal(i as f32),
            (T::Float, Obj::Bool(b)) => Val::FloatVal(b as u8 as f32),
            (T::Int64 | T::UnixTimestamp, Obj::Int(i)) => {
                if t == T::Int64 {
                    Val::Int64Val(i)
                } else {
                    Val::UnixTimestampVal(i)
                }
            }
            (T::Int64, Obj::Float(f)) => Val::Int64Val(py_int(f)?),
            (T::Int64, Obj::Bool(b)) => Val::Int64Val(b as i64),
            (T::Int32, Obj::Int(i)) => Val::Int32Val(
                i32::try_from(i)
                    .map_err(|_| EvalError(format!("{i} is out of range for Int32")))?,
            ),
            (T::Int32, Obj::Float(f)) => {
                let i = py_int(f)?;
                Val::Int32Val(
                    i32::try_from(i)
                        .map_err(|_| EvalError(format!("{i} is out of range for Int32")))?,
                )
            }
            (T::Int32, Obj::Bool(b)) => Val::Int32Val(b as i32),
            (T::Bool, Obj::Bool(b)) => Val::BoolVal(b),
            (T::Bool, Obj::Int(i)) => Val::BoolVal(i != 0),
            (T::String, Obj::Str(s)) => Val::StringVal(s),
            (T::String, Obj::Int(i)) => Val::StringVal(i.to_string()),
            (T::String, Obj::Float(f)) => Val::StringVal(py_float_repr(f)),
            (T::String, Obj::Bool(b)) => Val::StringVal(if b { "True" } else { "False" }.into()),
            (T::Json, Obj::Str(s)) => Val::JsonVal(s),
            (T::Uuid, Obj::Str(s)) => Val::UuidVal(s),
            (t, c) => {
                return fail(format!(
                    "a {} value cannot be a {} feature",
                    obj_type(&c),
                    t.as_str_name()
                ));
            }
        };
        Ok(Value { val: Some(val) })
    }

    fn class(&self) -> Class {
        match self {
            Col::Int(_) => Class::Int,
            Col::Float(_) => Class::Float,
            Col::Bool(_) => Class::Bool,
            Col::Obj(v) => obj_class(v.iter()),
        }
    }
}

/// What Python type a column of Feast values holds (as Python infers a list of values).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inferred {
    /// Every value present is an integer (and so on).
    pub ints: bool,
    pub floats: bool,
    pub bools: bool,
    pub strs: bool,
    pub nulls: bool,
    /// Some value is present.
    pub any: bool,
}

impl Inferred {
    pub(crate) fn of(values: &[Value]) -> Result<Self, EvalError> {
        let mut k = Inferred {
            ints: true,
            floats: true,
            bools: true,
            strs: true,
            nulls: false,
            any: false,
        };
        for v in values {
            match &v.val {
                None | Some(Val::NullVal(_)) => {
                    k.nulls = true;
                    continue;
                }
                Some(Val::Int32Val(_) | Val::Int64Val(_)) => (k.bools, k.strs) = (false, false),
                Some(Val::FloatVal(_) | Val::DoubleVal(_)) => {
                    (k.ints, k.bools, k.strs) = (false, false, false)
                }
                Some(Val::BoolVal(_)) => (k.ints, k.floats, k.strs) = (false, false, false),
                Some(
                    Val::StringVal(_) | Val::UuidVal(_) | Val::TimeUuidVal(_) | Val::DecimalVal(_),
                ) => (k.ints, k.floats, k.bools) = (false, false, false),
                Some(other) => {
                    return fail(format!(
                        "{} values are outside what on-demand views are given here",
                        val_name(other)
                    ));
                }
            }
            k.any = true;
        }
        Ok(k)
    }
}

fn obj_class<'a>(cells: impl Iterator<Item = &'a Obj>) -> Class {
    let mut class = Class::Null;
    for c in cells {
        let k = match c {
            Obj::None => continue,
            Obj::Str(_) => Class::Str,
            Obj::Bool(_) => Class::BoolObj,
            Obj::Int(_) | Obj::Float(_) => Class::Float,
        };
        if class == Class::Null {
            class = k;
        } else if class != k {
            return Class::Mixed;
        }
    }
    class
}

fn val_name(v: &Val) -> &'static str {
    match v {
        Val::BytesVal(_) => "bytes",
        Val::UnixTimestampVal(_) => "timestamp",
        Val::MapVal(_) => "map",
        Val::StructVal(_) => "struct",
        Val::JsonVal(_) => "json",
        _ => "list",
    }
}

fn obj_type(o: &Obj) -> &'static str {
    match o {
        Obj::None => "None",
        Obj::Str(_) => "str",
        Obj::Int(_) => "int",
        Obj::Float(_) => "float",
        Obj::Bool(_) => "bool",
    }
}

/// Python's `int(f)` of a finite float.
fn py_int(f: f64) -> Result<i64, EvalError> {
    if !f.is_finite() {
        return fail(format!(
            "cannot convert float {} to integer",
            py_float_repr(f)
        ));
    }
    let t = f.trunc();
    if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&t) {
        return fail(format!("{} is out of range for Int64", py_float_repr(f)));
    }
    Ok(t as i64)
}

/// Python's `repr` of a float: the shortest round-trip digits, exponent form when the
/// exponent is below -4 or at least 16.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    let (sign, mantissa) = mantissa
        .strip_prefix('-')
        .map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..16).contains(&exp) {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        return format!(
            "{sign}{m}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        );
    }
    let point = exp + 1;
    let body = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if point as usize >= digits.len() {
        format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    format!("{sign}{body}")
}

impl Operand {
    fn class(&self) -> Class {
        match self {
            Operand::Col(c) => c.class(),
            Operand::Scalar(o) => match o {
                Obj::None => Class::Null,
                Obj::Str(_) => Class::Str,
                Obj::Int(_) => Class::Int,
                Obj::Float(_) => Class::Float,
                Obj::Bool(_) => Class::Bool,
            },
        }
    }

    fn is_scalar(&self) -> bool {
        matches!(self, Operand::Scalar(_))
    }

    /// The operand as a column of `n` rows.
    pub fn into_col(self, n: usize) -> Col {
        match self {
            Operand::Col(c) => c,
            Operand::Scalar(o) => match o {
                Obj::Int(i) => Col::Int(vec![i; n]),
                Obj::Float(f) => Col::Float(vec![f; n]),
                Obj::Bool(b) => Col::Bool(vec![b; n]),
                o => Col::Obj(vec![o; n]),
            },
        }
    }

    fn ints(&self, n: usize) -> Vec<i64> {
        match self {
            Operand::Col(Col::Int(v)) => v.clone(),
            Operand::Col(Col::Bool(v)) => v.iter().map(|b| *b as i64).collect(),
            Operand::Scalar(Obj::Int(i)) => vec![*i; n],
            Operand::Scalar(Obj::Bool(b)) => vec![*b as i64; n],
            _ => vec![0; n],
        }
    }

    fn floats(&self, n: usize) -> Vec<f64> {
        let cell = |o: &Obj| match o {
            Obj::Int(i) => *i as f64,
            Obj::Float(f) => *f,
            Obj::Bool(b) => *b as u8 as f64,
            _ => f64::NAN,
        };
        match self {
            Operand::Col(Col::Int(v)) => v.iter().map(|i| *i as f64).collect(),
            Operand::Col(Col::Float(v)) => v.clone(),
            Operand::Col(Col::Bool(v)) => v.iter().map(|b| *b as u8 as f64).collect(),
            Operand::Col(Col::Obj(v)) => v.iter().map(cell).collect(),
            Operand::Scalar(o) => vec![cell(o); n],
        }
    }

    /// Booleans for logic and masks: missing → false (pandas' object logic).
    fn bools(&self, n: usize) -> Vec<bool> {
        let cell = |o: &Obj| matches!(o, Obj::Bool(true));
        match self {
            Operand::Col(Col::Bool(v)) => v.clone(),
            Operand::Col(Col::Obj(v)) => v.iter().map(cell).collect(),
            Operand::Scalar(o) => vec![cell(o); n],
            Operand::Col(Col::Int(v)) => v.iter().map(|i| *i != 0).collect(),
            Operand::Col(Col::Float(v)) => v.iter().map(|f| *f != 0.0 && !f.is_nan()).collect(),
        }
    }

    fn strs(&self, n: usize) -> Vec<Option<&str>> {
        match self {
            Operand::Col(Col::Obj(v)) => v
                .iter()
                .map(|o| match o {
                    Obj::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            Operand::Scalar(Obj::Str(s)) => vec![Some(s.as_str()); n],
            _ => vec![None; n],
        }
    }
}

fn is_numeric(c: Class) -> bool {
    matches!(c, Class::Int | Class::Float | Class::Null)
}

/// `a <op> b` with numpy/pandas semantics.
pub fn binary(op: BinOp, a: &Operand, b: &Operand, n: usize) -> Result<Operand, EvalError> {
    let (ca, cb) = (a.class(), b.class());
    let scalar = a.is_scalar() && b.is_scalar();
    let wrap = |c: Col| -> Operand {
        if scalar {
            let cell = match c {
                Col::Int(v) => Obj::Int(v[0]),
                Col::Float(v) => Obj::Float(v[0]),
                Col::Bool(v) => Obj::Bool(v[0]),
                Col::Obj(mut v) => v.swap_remove(0),
            };
            Operand::Scalar(cell)
        } else {
            Operand::Col(c)
        }
    };
    let n = if scalar { 1 } else { n };
    use BinOp::*;
    if matches!(op, BitAnd | BitOr | BitXor) {
        if ca == Class::Int && cb == Class::Int {
            let (x, y) = (a.ints(n), b.ints(n));
            let f = |p: i64, q: i64| match op {
                BitAnd => p & q,
                BitOr => p | q,
                _ => p ^ q,
            };
            return Ok(wrap(Col::Int(
                x.iter().zip(&y).map(|(p, q)| f(*p, *q)).collect(),
            )));
        }
        let logical = |c: Class| matches!(c, Class::Bool | Class::BoolObj | Class::Null);
        if logical(ca) && logical(cb) {
            let (x, y) = (a.bools(n), b.bools(n));
            let f = |p: bool, q: bool| match op {
                BitAnd => p & q,
                BitOr => p | q,
                _ => p ^ q,
            };
            return Ok(wrap(Col::Bool(
                x.iter().zip(&y).map(|(p, q)| f(*p, *q)).collect(),
            )));
        }
        return fail(format!(
            "unsupported operand types for {op:?}: {ca:?} and {cb:?}"
        ));
    }
    if ca == Class::Str || cb == Class::Str {
        if op == Add
            && matches!(ca, Class::Str | Class::Null)
            && matches!(cb, Class::Str | Class::Null)
        {
            let (x, y) = (a.strs(n), b.strs(n));
            return Ok(wrap(Col::Obj(
                x.iter()
                    .zip(&y)
                    .map(|(p, q)| match (p, q) {
                        (Some(p), Some(q)) => Obj::Str(format!("{p}{q}")),
                        _ => Obj::None,
                    })
                    .collect(),
            )));
        }
        return fail(format!(
            "unsupported operand types for {op:?}: {ca:?} and {cb:?}"
        ));
    }
    let num = |c: Class| is_numeric(c) || c == Class::Bool;
    if !num(ca) || !num(cb) || (ca == Class::Bool && cb == Class::Bool) {
        return fail(format!(
            "unsupported operand types for {op:?}: {ca:?} and {cb:?}"
        ));
    }
    let ints = matches!(ca, Class::Int | Class::Bool) && matches!(cb, Class::Int | Class::Bool);
    if ints && op != Div {
        let (x, y) = (a.ints(n), b.ints(n));
        let zero_div = matches!(op, FloorDiv | Mod) && y.contains(&0);
        if !zero_div {
            let mut out = Vec::with_capacity(n);
            for (p, q) in x.iter().zip(&y) {
                out.push(match op {
                    Add => p.wrapping_add(*q),
                    Sub => p.wrapping_sub(*q),
                    Mul => p.wrapping_mul(*q),
                    FloorDiv => {
                        let d = p.wrapping_div(*q);
                        if p.wrapping_rem(*q) != 0 && ((*p < 0) != (*q < 0)) {
                            d - 1
                        } else {
                            d
                        }
                    }
                    Mod => {
                        let m = p.wrapping_rem(*q);
                        if m != 0 && ((m < 0) != (*q < 0)) {
                            m + q
                        } else {
                            m
                        }
                    }
                    Pow => {
                        if *q < 0 {
                            return fail("Integers to negative integer powers are not allowed.");
                        }
                        p.wrapping_pow((*q).min(u32::MAX as i64) as u32)
                    }
                    _ => unreachable!("bitwise handled above"),
                });
            }
            return Ok(wrap(Col::Int(out)));
        }
    }
    let (x, y) = (a.floats(n), b.floats(n));
    let out = x
        .iter()
        .zip(&y)
        .map(|(p, q)| float_op(op, *p, *q))
        .collect();
    Ok(wrap(Col::Float(out)))
}

fn float_op(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::FloorDiv => {
            if b == 0.0 {
                return a / b;
            }
            let (div, _) = divmod(a, b);
            div
        }
        BinOp::Mod => {
            if b == 0.0 {
                return f64::NAN;
            }
            divmod(a, b).1
        }
        BinOp::Pow => a.powf(b),
        _ => f64::NAN,
    }
}

/// numpy's `npy_divmod` for floats.
fn divmod(a: f64, b: f64) -> (f64, f64) {
    let mut m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            m += b;
            div -= 1.0;
        }
    } else {
        m = 0.0_f64.copysign(b);
    }
    let floordiv = if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 { f + 1.0 } else { f }
    } else {
        0.0_f64.copysign(a / b)
    };
    (floordiv, m)
}

/// `a <cmp> b`: numbers compare as floats (NaN compares false, `!=` true), strings
/// lexicographically (a missing value compares false, `!=` true).
pub fn compare(op: CmpOp, a: &Operand, b: &Operand, n: usize) -> Result<Operand, EvalError> {
    let (ca, cb) = (a.class(), b.class());
    let scalar = a.is_scalar() && b.is_scalar();
    let n = if scalar { 1 } else { n };
    let test = |o: std::cmp::Ordering| match op {
        CmpOp::Lt => o.is_lt(),
        CmpOp::Le => o.is_le(),
        CmpOp::Gt => o.is_gt(),
        CmpOp::Ge => o.is_ge(),
        CmpOp::Eq => o.is_eq(),
        CmpOp::Ne => o.is_ne(),
    };
    let out: Vec<bool> = if (ca == Class::Str || cb == Class::Str)
        && matches!(ca, Class::Str | Class::Null)
        && matches!(cb, Class::Str | Class::Null)
    {
        let (x, y) = (a.strs(n), b.strs(n));
        x.iter()
            .zip(&y)
            .map(|(p, q)| match (p, q) {
                (Some(p), Some(q)) => test(p.cmp(q)),
                _ => op == CmpOp::Ne,
            })
            .collect()
    } else if (is_numeric(ca) || ca == Class::Bool) && (is_numeric(cb) || cb == Class::Bool) {
        if ca == Class::Int && cb == Class::Int {
            let (x, y) = (a.ints(n), b.ints(n));
            x.iter().zip(&y).map(|(p, q)| test(p.cmp(q))).collect()
        } else {
            let (x, y) = (a.floats(n), b.floats(n));
            x.iter()
                .zip(&y)
                .map(|(p, q)| match p.partial_cmp(q) {
                    Some(o) => test(o),
                    None => op == CmpOp::Ne,
                })
                .collect()
        }
    } else if matches!(op, CmpOp::Eq | CmpOp::Ne) {
        // Different kinds are never equal.
        vec![op == CmpOp::Ne; n]
    } else {
        return fail(format!("'{op:?}' not supported between {ca:?} and {cb:?}"));
    };
    Ok(if scalar {
        Operand::Scalar(Obj::Bool(out[0]))
    } else {
        Operand::Col(Col::Bool(out))
    })
}

/// `-a`, `+a`, `~a`.
pub fn unary(op: super::parse::UnOp, a: &Operand, n: usize) -> Result<Operand, EvalError> {
    use super::parse::UnOp;
    let scalar = a.is_scalar();
    let n = if scalar { 1 } else { n };
    let col = match (op, a.class()) {
        (UnOp::Pos, Class::Int | Class::Float) => return Ok(a.clone()),
        (UnOp::Neg, Class::Int) => Col::Int(a.ints(n).iter().map(|i| i.wrapping_neg()).collect()),
        (UnOp::Neg, Class::Float | Class::Null) => {
            Col::Float(a.floats(n).iter().map(|f| -f).collect())
        }
        (UnOp::Invert, Class::Bool) => Col::Bool(a.bools(n).iter().map(|b| !b).collect()),
        (UnOp::Invert, Class::Int) => Col::Int(a.ints(n).iter().map(|i| !i).collect()),
        (op, c) => return fail(format!("bad operand type for unary {op:?}: {c:?}")),
    };
    Ok(if scalar {
        Operand::Col(col).first()
    } else {
        Operand::Col(col)
    })
}

impl Operand {
    fn first(self) -> Operand {
        match self {
            Operand::Col(Col::Int(v)) => Operand::Scalar(Obj::Int(v[0])),
            Operand::Col(Col::Float(v)) => Operand::Scalar(Obj::Float(v[0])),
            Operand::Col(Col::Bool(v)) => Operand::Scalar(Obj::Bool(v[0])),
            Operand::Col(Col::Obj(mut v)) => Operand::Scalar(v.swap_remove(0)),
            s => s,
        }
    }
}

/// Elementwise numpy functions of one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathFn {
    Sqrt,
    Log,
    Log10,
    Log2,
    Log1p,
    Exp,
    Expm1,
    Abs,
    Floor,
    Ceil,
    Trunc,
    Sign,
    Sin,
    Cos,
    Tan,
    Tanh,
    Arctan,
    Square,
}

impl MathFn {
    pub fn by_name(name: &str) -> Option<MathFn> {
        Some(match name {
            "sqrt" => MathFn::Sqrt,
            "log" => MathFn::Log,
            "log10" => MathFn::Log10,
            "log2" => MathFn::Log2,
            "log1p" => MathFn::Log1p,
            "exp" => MathFn::Exp,
            "expm1" => MathFn::Expm1,
            "abs" | "absolute" | "fabs" => MathFn::Abs,
            "floor" => MathFn::Floor,
            "ceil" => MathFn::Ceil,
            "trunc" => MathFn::Trunc,
            "sign" => MathFn::Sign,
            "sin" => MathFn::Sin,
            "cos" => MathFn::Cos,
            "tan" => MathFn::Tan,
            "tanh" => MathFn::Tanh,
            "arctan" => MathFn::Arctan,
            "square" => MathFn::Square,
            _ => return None,
        })
    }

    fn keeps_ints(self) -> bool {
        matches!(self, MathFn::Abs | MathFn::Sign | MathFn::Square)
    }
}

pub fn math(f: MathFn, a: &Operand, n: usize) -> Result<Operand, EvalError> {
    let class = a.class();
    if !(is_numeric(class) || class == Class::Bool) {
        return fail(format!("{f:?} of a {class:?} column"));
    }
    let scalar = a.is_scalar();
    let n = if scalar { 1 } else { n };
    let col = if class == Class::Int && f.keeps_ints() {
        Col::Int(
            a.ints(n)
                .iter()
                .map(|i| match f {
                    MathFn::Abs => i.wrapping_abs(),
                    MathFn::Sign => i.signum(),
                    _ => i.wrapping_mul(*i),
                })
                .collect(),
        )
    } else {
        Col::Float(
            a.floats(n)
                .iter()
                .map(|x| match f {
                    MathFn::Sqrt => x.sqrt(),
                    MathFn::Log => x.ln(),
                    MathFn::Log10 => x.log10(),
                    MathFn::Log2 => x.log2(),
                    MathFn::Log1p => x.ln_1p(),
                    MathFn::Exp => x.exp(),
                    MathFn::Expm1 => x.exp_m1(),
                    MathFn::Abs => x.abs(),
                    MathFn::Floor => x.floor(),
                    MathFn::Ceil => x.ceil(),
                    MathFn::Trunc => x.trunc(),
                    MathFn::Sign => {
                        if x.is_nan() || *x == 0.0 {
                            *x
                        } else {
                            x.signum()
                        }
                    }
                    MathFn::Sin => x.sin(),
                    MathFn::Cos => x.cos(),
                    MathFn::Tan => x.tan(),
                    MathFn::Tanh => x.tanh(),
                    MathFn::Arctan => x.atan(),
                    MathFn::Square => x * x,
                })
                .collect(),
        )
    };
    Ok(if scalar {
        Operand::Col(col).first()
    } else {
        Operand::Col(col)
    })
}

/// `np.maximum`/`np.minimum` (NaN propagates).
pub fn extreme(max: bool, a: &Operand, b: &Operand, n: usize) -> Result<Operand, EvalError> {
    let (ca, cb) = (a.class(), b.class());
    if !(is_numeric(ca) && is_numeric(cb)) {
        return fail(format!("maximum/minimum of {ca:?} and {cb:?}"));
    }
    Ok(Operand::Col(if ca == Class::Int && cb == Class::Int {
        let (x, y) = (a.ints(n), b.ints(n));
        Col::Int(
            x.iter()
                .zip(&y)
                .map(|(p, q)| if max { *p.max(q) } else { *p.min(q) })
                .collect(),
        )
    } else {
        let (x, y) = (a.floats(n), b.floats(n));
        Col::Float(
            x.iter()
                .zip(&y)
                .map(|(p, q)| {
                    if p.is_nan() || q.is_nan() {
                        f64::NAN
                    } else if max {
                        p.max(*q)
                    } else {
                        p.min(*q)
                    }
                })
                .collect(),
        )
    }))
}

/// `np.where(cond, a, b)` / `a.where(cond, b)`: the result's dtype is numpy's promotion of
/// `a` and `b`.
pub fn select(cond: &Operand, a: &Operand, b: &Operand, n: usize) -> Result<Operand, EvalError> {
    let c = cond.bools(n);
    let (ca, cb) = (a.class(), b.class());
    Ok(Operand::Col(
        if matches!(ca, Class::Int | Class::Bool) && ca == cb {
            if ca == Class::Int {
                let (x, y) = (a.ints(n), b.ints(n));
                Col::Int((0..n).map(|i| if c[i] { x[i] } else { y[i] }).collect())
            } else {
                let (x, y) = (a.bools(n), b.bools(n));
                Col::Bool((0..n).map(|i| if c[i] { x[i] } else { y[i] }).collect())
            }
        } else if is_numeric(ca) && is_numeric(cb) && !(ca == Class::Null && cb == Class::Null) {
            let (x, y) = (a.floats(n), b.floats(n));
            Col::Float((0..n).map(|i| if c[i] { x[i] } else { y[i] }).collect())
        } else {
            let (x, y) = (a.clone().into_col(n), b.clone().into_col(n));
            let cell = |col: &Col, i: usize| -> Obj {
                match col {
                    Col::Int(v) => Obj::Int(v[i]),
                    Col::Float(v) => Obj::Float(v[i]),
                    Col::Bool(v) => Obj::Bool(v[i]),
                    Col::Obj(v) => v[i].clone(),
                }
            };
            Col::Obj(
                (0..n)
                    .map(|i| if c[i] { cell(&x, i) } else { cell(&y, i) })
                    .collect(),
            )
        },
    ))
}

/// `a.fillna(v)`.
pub fn fillna(a: &Operand, v: &Operand, n: usize) -> Result<Operand, EvalError> {
    let Operand::Scalar(fill) = v else {
        return fill_from(a, v, n);
    };
    Ok(match a {
        Operand::Col(Col::Float(x)) => match fill {
            Obj::Int(_) | Obj::Float(_) | Obj::Bool(_) => {
                let f = Operand::Scalar(fill.clone()).floats(1)[0];
                Operand::Col(Col::Float(
                    x.iter().map(|p| if p.is_nan() { f } else { *p }).collect(),
                ))
            }
            _ => fill_from(a, v, n)?,
        },
        Operand::Col(Col::Obj(x)) => Operand::Col(Col::Obj(
            x.iter()
                .map(|p| if p.is_null() { fill.clone() } else { p.clone() })
                .collect(),
        )),
        Operand::Scalar(o) if o.is_null() => v.clone(),
        other => other.clone(),
    })
}

fn fill_from(a: &Operand, v: &Operand, n: usize) -> Result<Operand, EvalError> {
    let missing = match a {
        Operand::Col(Col::Float(x)) => x.iter().map(|f| f.is_nan()).collect(),
        Operand::Col(Col::Obj(x)) => x.iter().map(Obj::is_null).collect(),
        Operand::Scalar(o) => vec![o.is_null(); n],
        _ => return Ok(a.clone()),
    };
    select(&Operand::Col(Col::Bool(missing)), v, a, n)
}

/// `a.clip(lower, upper)` (missing bounds are no bound; NaN stays NaN).
pub fn clip(
    a: &Operand,
    lower: Option<&Operand>,
    upper: Option<&Operand>,
    n: usize,
) -> Result<Operand, EvalError> {
    let class = a.class();
    if !is_numeric(class) {
        return fail(format!("clip of a {class:?} column"));
    }
    let bound_ints = [lower, upper]
        .iter()
        .flatten()
        .all(|b| b.class() == Class::Int);
    if class == Class::Int && bound_ints {
        let lo = lower.map(|b| b.ints(n));
        let hi = upper.map(|b| b.ints(n));
        let x = a.ints(n);
        return Ok(Operand::Col(Col::Int(
            (0..n)
                .map(|i| {
                    let mut v = x[i];
                    if let Some(lo) = &lo {
                        v = v.max(lo[i]);
                    }
                    if let Some(hi) = &hi {
                        v = v.min(hi[i]);
                    }
                    v
                })
                .collect(),
        )));
    }
    let lo = lower.map(|b| b.floats(n));
    let hi = upper.map(|b| b.floats(n));
    let x = a.floats(n);
    Ok(Operand::Col(Col::Float(
        (0..n)
            .map(|i| {
                let mut v = x[i];
                if v.is_nan() {
                    return v;
                }
                if let Some(lo) = &lo
                    && !lo[i].is_nan()
                {
                    v = v.max(lo[i]);
                }
                if let Some(hi) = &hi
                    && !hi[i].is_nan()
                {
                    v = v.min(hi[i]);
                }
                v
            })
            .collect(),
    )))
}

/// `a.round(digits)`: numpy's round half to even.
pub fn round(a: &Operand, digits: i32, n: usize) -> Result<Operand, EvalError> {
    match a.class() {
        Class::Int if digits >= 0 => Ok(a.clone()),
        Class::Int | Class::Float | Class::Null => {
            let scale = 10f64.powi(digits);
            let x = a.floats(n);
            Ok(Operand::Col(Col::Float(
                x.iter()
                    .map(|v| {
                        if digits >= 0 {
                            (v * scale).round_ties_even() / scale
                        } else {
                            (v / 10f64.powi(-digits)).round_ties_even() * 10f64.powi(-digits)
                        }
                    })
                    .collect(),
            )))
        }
        c => fail(format!("round of a {c:?} column")),
    }
}

/// `a.isna()` (`negate`: `notna`).
pub fn isna(a: &Operand, negate: bool, n: usize) -> Operand {
    let m: Vec<bool> = match a {
        Operand::Col(Col::Float(x)) => x.iter().map(|f| f.is_nan()).collect(),
        Operand::Col(Col::Obj(x)) => x.iter().map(Obj::is_null).collect(),
        Operand::Col(_) => vec![false; n],
        Operand::Scalar(o) => vec![o.is_null(); n],
    };
    Operand::Col(Col::Bool(m.into_iter().map(|b| b != negate).collect()))
}

/// Target dtypes of `astype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    Float64,
    Float32,
    Int64,
    Int32,
    Bool,
    Str,
}

pub fn astype(a: &Operand, t: Dtype, n: usize) -> Result<Operand, EvalError> {
    let class = a.class();
    let col = a.clone().into_col(n);
    Ok(Operand::Col(match t {
        Dtype::Float64 | Dtype::Float32 => {
            if !(is_numeric(class) || class == Class::Bool) {
                return fail(format!("cannot convert a {class:?} column to float"));
            }
            let x = a.floats(n);
            Col::Float(if t == Dtype::Float32 {
                x.iter().map(|f| *f as f32 as f64).collect()
            } else {
                x
            })
        }
        Dtype::Int64 | Dtype::Int32 => {
            if !(is_numeric(class) || class == Class::Bool) {
                return fail(format!("cannot convert a {class:?} column to int"));
            }
            let v: Vec<i64> = match class {
                Class::Int | Class::Bool => a.ints(n),
                _ => {
                    let x = a.floats(n);
                    if x.iter().any(|f| !f.is_finite()) {
                        return fail("Cannot convert non-finite values (NA or inf) to integer");
                    }
                    x.iter().map(|f| *f as i64).collect()
                }
            };
            Col::Int(if t == Dtype::Int32 {
                v.iter().map(|i| *i as i32 as i64).collect()
            } else {
                v
            })
        }
        Dtype::Bool => match class {
            Class::Bool | Class::Int | Class::Float => Col::Bool(
                a.floats(n)
                    .iter()
                    .map(|f| *f != 0.0) // NaN is truthy in numpy
                    .collect(),
            ),
            _ => return fail(format!("cannot convert a {class:?} column to bool")),
        },
        Dtype::Str => Col::Obj(match col {
            Col::Int(v) => v.iter().map(|i| Obj::Str(i.to_string())).collect(),
            Col::Float(v) => v.iter().map(|f| Obj::Str(py_float_repr(*f))).collect(),
            Col::Bool(v) => v
                .iter()
                .map(|b| Obj::Str(if *b { "True" } else { "False" }.into()))
                .collect(),
            Col::Obj(v) => v
                .into_iter()
                .map(|o| match o {
                    Obj::None => Obj::Str("None".into()),
                    Obj::Str(s) => Obj::Str(s),
                    Obj::Int(i) => Obj::Str(i.to_string()),
                    Obj::Float(f) => Obj::Str(py_float_repr(f)),
                    Obj::Bool(b) => Obj::Str(if b { "True" } else { "False" }.into()),
                })
                .collect(),
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(val: Val) -> Value {
        Value { val: Some(val) }
    }

    #[test]
    fn python_float_repr() {
        for (f, s) in [
            (0.1, "0.1"),
            (1.0, "1.0"),
            (1e-5, "1e-05"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (0.0001, "0.0001"),
            (-2.5e-7, "-2.5e-07"),
            (1.5e300, "1.5e+300"),
            (0.7753124833106995, "0.7753124833106995"),
        ] {
            assert_eq!(py_float_repr(f), s);
        }
    }

    #[test]
    fn inputs_take_pandas_dtypes() {
        assert_eq!(
            Col::from_values(&[v(Val::Int64Val(1)), v(Val::Int64Val(2))]).unwrap(),
            Col::Int(vec![1, 2])
        );
        let Col::Float(f) = Col::from_values(&[v(Val::Int64Val(1)), Value::default()]).unwrap()
        else {
            panic!()
        };
        assert!(f[0] == 1.0 && f[1].is_nan());
        assert_eq!(
            Col::from_values(&[v(Val::FloatVal(0.1))]).unwrap(),
            Col::Float(vec![0.1f32 as f64])
        );
        assert_eq!(
            Col::from_values(&[v(Val::BoolVal(true)), Value::default()]).unwrap(),
            Col::Obj(vec![Obj::Bool(true), Obj::None])
        );
        assert_eq!(
            Col::from_values(&[Value::default()]).unwrap(),
            Col::Obj(vec![Obj::None])
        );
    }

    #[test]
    fn arithmetic_follows_numpy() {
        let ints = Operand::Col(Col::Int(vec![7, -7, 0]));
        let two = Operand::Scalar(Obj::Int(2));
        assert_eq!(
            binary(BinOp::FloorDiv, &ints, &two, 3).unwrap(),
            Operand::Col(Col::Int(vec![3, -4, 0]))
        );
        assert_eq!(
            binary(BinOp::Mod, &ints, &Operand::Scalar(Obj::Int(-3)), 3).unwrap(),
            Operand::Col(Col::Int(vec![-2, -1, 0]))
        );
        let Operand::Col(Col::Float(f)) =
            binary(BinOp::FloorDiv, &ints, &Operand::Scalar(Obj::Int(0)), 3).unwrap()
        else {
            panic!()
        };
        assert_eq!(f[0], f64::INFINITY);
        assert_eq!(f[1], f64::NEG_INFINITY);
        assert!(f[2].is_nan());
        assert_eq!(
            binary(BinOp::Div, &ints, &two, 3).unwrap(),
            Operand::Col(Col::Float(vec![3.5, -3.5, 0.0]))
        );
        assert_eq!(
            binary(
                BinOp::Mod,
                &Operand::Scalar(Obj::Float(-7.5)),
                &Operand::Scalar(Obj::Float(2.0)),
                1
            )
            .unwrap(),
            Operand::Scalar(Obj::Float(0.5))
        );
    }

    #[test]
    fn missing_values() {
        let f = Operand::Col(Col::Float(vec![1.0, f64::NAN]));
        let Operand::Col(Col::Bool(b)) =
            compare(CmpOp::Gt, &f, &Operand::Scalar(Obj::Int(0)), 2).unwrap()
        else {
            panic!()
        };
        assert_eq!(b, vec![true, false]);
        let s = Operand::Col(Col::Obj(vec![Obj::Str("a".into()), Obj::None]));
        assert_eq!(
            binary(BinOp::Add, &s, &Operand::Scalar(Obj::Str("x".into())), 2).unwrap(),
            Operand::Col(Col::Obj(vec![Obj::Str("ax".into()), Obj::None]))
        );
        assert_eq!(
            fillna(&f, &Operand::Scalar(Obj::Int(0)), 2).unwrap(),
            Operand::Col(Col::Float(vec![1.0, 0.0]))
        );
        let out = Col::Float(vec![1.5, f64::NAN])
            .to_values(T::Double)
            .unwrap();
        assert_eq!(out, vec![v(Val::DoubleVal(1.5)), Value::default()]);
        let out = Col::Float(vec![2.9]).to_values(T::Int64).unwrap();
        assert_eq!(out, vec![v(Val::Int64Val(2))]);
        assert!(
            Col::Obj(vec![Obj::Str("a".into())])
                .to_values(T::Double)
                .is_err()
        );
    }
}
