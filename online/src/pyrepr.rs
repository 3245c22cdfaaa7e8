//! Python's text forms of scalars, where Feast's bytes or JSON depend on them:
//! `repr(float)` (shortest round-trip digits; scientific below 1e-4 and from 1e16, with a
//! signed two-digit exponent) and `str()` of feature values for SQLite's `value_text`.

use larder_protos::feast::types::{Value, value::Val};

/// `repr(x)` of a Python float. NaN and infinities as Python writes them (`nan`, `inf`, `-inf`).
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, like Python's repr.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x < 0.0 { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let body = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if point as usize >= digits.len() {
        format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

/// Feast's SQLite `value_text`: `str(value)` for string, int32, int64, float, double and bool
/// values, `None` for every other kind.
pub fn value_text(v: &Value) -> Option<String> {
    match v.val.as_ref()? {
        Val::StringVal(s) => Some(s.clone()),
        Val::Int32Val(i) => Some(i.to_string()),
        Val::Int64Val(i) => Some(i.to_string()),
        Val::FloatVal(f) => Some(float_repr(*f as f64)),
        Val::DoubleVal(d) => Some(float_repr(*d)),
        Val::BoolVal(b) => Some(if *b { "True" } else { "False" }.to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_repr() {
        for (x, want) in [
            (0.1, "0.1"),
            (0.1f32 as f64, "0.10000000149011612"),
            (0.7753124833106995, "0.7753124833106995"),
            (1e-5, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123.0, "123.0"),
            (-2.5, "-2.5"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-0.0, "-0.0"),
            (146.0, "146.0"),
            (12345.678, "12345.678"),
        ] {
            assert_eq!(float_repr(x), want, "{x:e}");
        }
    }
}
