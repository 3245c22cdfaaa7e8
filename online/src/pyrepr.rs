//! Python's text forms of scalars, where Feast's bytes or JSON depend on them:
//! `repr(float)` (shortest round-trip digits; scientific below 1e-4 and from 1e16, with a
//! signed two-digit exponent) and `str()` of feature values for SQLite's `value_text`.

use larder_protos::feast::types::{Value, value::Val};

/// `repr(x)` of a Python float. NaN and infinities as Python writes them (`nan`, `inf`, `-inf`).
pub fn float_repr(x: f64) -> String {
    let mut out = String::with_capacity(24);
    write_float_repr(&mut out, x);
    out
}

/// Appends `repr(x)` to `out` without allocating: the shortest round-trip digits (zmij, as
/// Python's repr), laid out by Python's rule — positional for decimal exponents -4..=15,
/// otherwise `d.ddde±XX` with at least two exponent digits.
pub fn write_float_repr(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("nan");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "inf" } else { "-inf" });
        return;
    }
    if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    let mut buf = zmij::Buffer::new();
    let formatted = buf.format_finite(x);
    // Fast path: zmij's positional form is Python's for decimal exponents -4..=15.
    if !formatted.contains('e') && !formatted.trim_start_matches('-').starts_with("0.0000") {
        out.push_str(formatted);
        return;
    }
    let text = formatted.trim_start_matches('-').as_bytes();
    // Split zmij's output (`123.45`, `0.001`, `1.5e-7`, `1e16`) into significant digits and
    // the decimal exponent of the first digit.
    let (mantissa, exp_part) = match text.iter().position(|&c| c == b'e') {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let mut digits = [0u8; 24];
    let mut n = 0;
    let mut point: i32 = -1; // digits before the decimal point in `mantissa`
    let mut leading = true;
    let mut skipped_zeros_after_point = 0;
    for (i, &c) in mantissa.iter().enumerate() {
        if c == b'.' {
            point = i as i32;
            continue;
        }
        if leading && c == b'0' {
            if point >= 0 {
                skipped_zeros_after_point += 1;
            }
            continue;
        }
        leading = false;
        digits[n] = c;
        n += 1;
    }
    if point < 0 {
        point = mantissa.len() as i32;
    }
    while n > 1 && digits[n - 1] == b'0' {
        n -= 1;
    }
    let int_digits_nonzero = mantissa[..point as usize].iter().any(|&c| c != b'0');
    let mut exp = if int_digits_nonzero {
        let first_nonzero = mantissa.iter().position(|&c| c != b'0').unwrap_or(0) as i32;
        point - first_nonzero - 1
    } else {
        -(skipped_zeros_after_point + 1)
    };
    if let Some(e) = exp_part {
        let e = std::str::from_utf8(e)
            .ok()
            .and_then(|e| e.parse::<i32>().ok())
            .unwrap_or(0);
        exp += e;
    }
    let digits = &digits[..n];
    if x < 0.0 {
        out.push('-');
    }
    let push = |out: &mut String, d: &[u8]| {
        for &c in d {
            out.push(c as char);
        }
    };
    if !(-4..16).contains(&exp) {
        push(out, &digits[..1]);
        if n > 1 {
            out.push('.');
            push(out, &digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        let _ = std::fmt::Write::write_fmt(out, format_args!("{e}"));
        return;
    }
    let before = exp + 1; // digits before the decimal point
    if before <= 0 {
        out.push_str("0.");
        for _ in 0..(-before) {
            out.push('0');
        }
        push(out, digits);
    } else if before as usize >= n {
        push(out, digits);
        for _ in 0..(before as usize - n) {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        push(out, &digits[..before as usize]);
        out.push('.');
        push(out, &digits[before as usize..]);
    }
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
            (0.00012, "0.00012"),
            (1.5e-7, "1.5e-07"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (9999999999999998.0, "9999999999999998.0"),
            (-1e100, "-1e+100"),
            (2.5e-300, "2.5e-300"),
            // An exact tie between two shortest candidates: Python (and zmij) round half to
            // even, where Rust's own `{:e}` rounds half up to ...797.3.
            (-1.1496366673247973e15, "-1149636667324797.2"),
        ] {
            assert_eq!(float_repr(x), want, "{x:e}");
        }
    }

    /// Round-trips, and lays out like the formula on Rust's own shortest digits (same length
    /// and notation; the last digit may differ on exact ties, where Rust rounds half up).
    #[test]
    fn agrees_with_the_reference_layout() {
        fn reference(x: f64) -> String {
            let sci = format!("{:e}", x.abs());
            let (m, e) = sci.split_once('e').unwrap();
            let e: i32 = e.parse().unwrap();
            let d: String = m.chars().filter(|c| *c != '.').collect();
            let sign = if x < 0.0 { "-" } else { "" };
            if !(-4..16).contains(&e) {
                let (f, r) = d.split_at(1);
                let r = if r.is_empty() {
                    String::new()
                } else {
                    format!(".{r}")
                };
                return format!(
                    "{sign}{f}{r}e{}{:02}",
                    if e < 0 { '-' } else { '+' },
                    e.abs()
                );
            }
            let p = e + 1;
            if p <= 0 {
                format!("{sign}0.{}{d}", "0".repeat((-p) as usize))
            } else if p as usize >= d.len() {
                format!("{sign}{d}{}.0", "0".repeat(p as usize - d.len()))
            } else {
                format!("{sign}{}.{}", &d[..p as usize], &d[p as usize..])
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let x = f64::from_bits(seed);
            if !x.is_finite() || x == 0.0 {
                continue;
            }
            let check = |x: f64| {
                let (ours, theirs) = (float_repr(x), reference(x));
                assert_eq!(
                    ours.parse::<f64>().unwrap(),
                    x,
                    "{ours} does not round-trip"
                );
                assert_eq!(ours.len(), theirs.len(), "{ours} vs {theirs}");
                assert_eq!(
                    ours.contains('e'),
                    theirs.contains('e'),
                    "{ours} vs {theirs}"
                );
            };
            check(x);
            let y = (seed % 1_000_000) as f64 / 10f64.powi((seed % 23) as i32 - 4);
            if y != 0.0 {
                check(y);
            }
            let z = f32::from_bits(seed as u32);
            if z.is_finite() && z != 0.0 {
                check(z as f64);
            }
        }
    }
}
