//! The `get-online-features` JSON document, written directly (no intermediate tree) in the
//! form Feast's Python server produces: compact, column-oriented, float32 widened and printed
//! with Python's repr, NaN/Infinity as strings, bytes as base64, `json_val` as a string, maps
//! and structs as objects, timestamps RFC 3339 with 0, 3, 6 or 9 fraction digits.

use std::fmt::Write;

use base64::Engine;
use larder_online::pyrepr::write_float_repr;
use larder_protos::feast::types::{Map, Value, value::Val};
use prost_types::Timestamp;

use crate::service::online::OnlineResponse;

pub fn online_response(resp: &OnlineResponse) -> String {
    let rows = resp.columns.first().map_or(0, |c| c.values.len());
    // A cell is ~55 bytes when its value is a float (value, status and timestamp).
    let mut out = String::with_capacity(64 + resp.columns.len() * (48 + rows * 64));
    out.push_str("{\"results\":[");
    let mut last_ts: Option<Timestamp> = None;
    let mut last_text = String::new();
    for (i, col) in resp.columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"values\":[");
        for (j, v) in col.values.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            value(&mut out, v);
        }
        out.push_str("],\"statuses\":[");
        for (j, s) in col.statuses.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(s.as_str_name());
            out.push('"');
        }
        out.push_str("],\"event_timestamps\":[");
        for (j, t) in col.event_timestamps.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            // Neighbouring cells mostly share a timestamp: format each distinct one once.
            if last_ts.as_ref() != Some(t) {
                last_text.clear();
                timestamp(&mut last_text, t);
                last_ts = Some(*t);
            }
            out.push('"');
            out.push_str(&last_text);
            out.push('"');
        }
        out.push_str("]}");
    }
    out.push_str("],\"metadata\":{\"feature_names\":[");
    for (i, n) in resp.feature_names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, n);
    }
    out.push(']');
    if let Some(meta) = &resp.view_metadata {
        out.push_str(",\"feature_view_metadata\":[");
        for (i, (name, version)) in meta.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            string(&mut out, name);
            if *version != 0 {
                let _ = write!(out, ",\"version\":{version}");
            }
            out.push('}');
        }
        out.push(']');
    }
    out.push_str("}}");
    out
}

fn string(out: &mut String, s: &str) {
    // Most names and values need no escape; then serde_json's output is the text in quotes.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("a string serializes"));
    }
}

fn int(out: &mut String, i: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(i));
}

fn float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("\"NaN\"");
    } else if x.is_infinite() {
        out.push_str(if x > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        write_float_repr(out, x);
    }
}

fn bytes(out: &mut String, b: &[u8]) {
    out.push('"');
    out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
    out.push('"');
}

fn list<T>(out: &mut String, items: &[T], mut each: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(out, item);
    }
    out.push(']');
}

fn map(out: &mut String, m: &Map) {
    out.push('{');
    for (i, (k, v)) in m.val.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, k);
        out.push(':');
        value(out, v);
    }
    out.push('}');
}

/// Writes one feature value.
pub fn value(out: &mut String, v: &Value) {
    let Some(val) = &v.val else {
        out.push_str("null");
        return;
    };
    match val {
        Val::NullVal(_) | Val::ScalarMapVal(_) => out.push_str("null"),
        Val::Int32Val(i) => int(out, *i),
        Val::Int64Val(i) | Val::UnixTimestampVal(i) => int(out, *i),
        Val::FloatVal(f) => float(out, *f as f64),
        Val::DoubleVal(d) => float(out, *d),
        Val::BoolVal(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::StringVal(s)
        | Val::UuidVal(s)
        | Val::TimeUuidVal(s)
        | Val::DecimalVal(s)
        | Val::JsonVal(s) => string(out, s),
        Val::BytesVal(b) => bytes(out, b),
        Val::BytesListVal(l) => list(out, &l.val, |o, b| bytes(o, b)),
        Val::BytesSetVal(l) => list(out, &l.val, |o, b| bytes(o, b)),
        Val::StringListVal(l)
        | Val::JsonListVal(l)
        | Val::UuidListVal(l)
        | Val::TimeUuidListVal(l)
        | Val::DecimalListVal(l) => list(out, &l.val, |o, s| string(o, s)),
        Val::StringSetVal(l)
        | Val::UuidSetVal(l)
        | Val::TimeUuidSetVal(l)
        | Val::DecimalSetVal(l) => list(out, &l.val, |o, s| string(o, s)),
        Val::Int32ListVal(l) => list(out, &l.val, |o, i| int(o, *i)),
        Val::Int32SetVal(l) => list(out, &l.val, |o, i| int(o, *i)),
        Val::Int64ListVal(l) | Val::UnixTimestampListVal(l) => list(out, &l.val, |o, i| int(o, *i)),
        Val::Int64SetVal(l) | Val::UnixTimestampSetVal(l) => list(out, &l.val, |o, i| int(o, *i)),
        Val::DoubleListVal(l) => list(out, &l.val, |o, d| float(o, *d)),
        Val::DoubleSetVal(l) => list(out, &l.val, |o, d| float(o, *d)),
        Val::FloatListVal(l) => list(out, &l.val, |o, f| float(o, *f as f64)),
        Val::FloatSetVal(l) => list(out, &l.val, |o, f| float(o, *f as f64)),
        Val::BoolListVal(l) => list(out, &l.val, |o, b| {
            o.push_str(if *b { "true" } else { "false" })
        }),
        Val::BoolSetVal(l) => list(out, &l.val, |o, b| {
            o.push_str(if *b { "true" } else { "false" })
        }),
        Val::MapVal(m) | Val::StructVal(m) => map(out, m),
        Val::MapListVal(l) | Val::StructListVal(l) => list(out, &l.val, map),
        Val::ListVal(l) | Val::SetVal(l) => list(out, &l.val, value),
        Val::ZonedTimestampVal(z) => {
            // Rendered in UTC: larder carries no time-zone database (documented deviation).
            out.push('"');
            if let Some(dt) = chrono::DateTime::from_timestamp(z.unix_timestamp, 0) {
                let _ = write!(out, "{}", dt.format("%Y-%m-%dT%H:%M:%S+00:00"));
            }
            out.push('"');
        }
    }
}

/// RFC 3339 UTC with `Z`; 0, 3, 6 or 9 fraction digits as Feast prints them.
pub fn timestamp(out: &mut String, t: &Timestamp) {
    let days = t.seconds.div_euclid(86_400);
    let secs = t.seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        digits(out, y as u64, 4);
    } else {
        let _ = write!(out, "{y:04}");
    }
    out.push('-');
    digits(out, m.into(), 2);
    out.push('-');
    digits(out, d.into(), 2);
    out.push('T');
    let secs = secs as u64;
    digits(out, secs / 3600, 2);
    out.push(':');
    digits(out, secs / 60 % 60, 2);
    out.push(':');
    digits(out, secs % 60, 2);
    let n = t.nanos.max(0) as u64;
    if n == 0 {
    } else if n.is_multiple_of(1_000_000) {
        out.push('.');
        digits(out, n / 1_000_000, 3);
    } else if n.is_multiple_of(1_000) {
        out.push('.');
        digits(out, n / 1_000, 6);
    } else if n < 1_000_000_000 {
        out.push('.');
        digits(out, n, 9);
    } else {
        let _ = write!(out, ".{n:09}");
    }
    out.push('Z');
}

/// `v` in exactly `width` decimal digits (`v < 10^width`), zero-padded.
fn digits(out: &mut String, mut v: u64, width: usize) {
    let mut buf = [b'0'; 9];
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.push_str(std::str::from_utf8(&buf[..width]).expect("ASCII digits"));
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::types::{FloatList, RepeatedValue, StringList};

    fn render(v: Val) -> String {
        let mut s = String::new();
        value(&mut s, &Value { val: Some(v) });
        s
    }

    #[test]
    fn values_render_like_feast() {
        assert_eq!(render(Val::FloatVal(0.1)), "0.10000000149011612");
        assert_eq!(render(Val::DoubleVal(1e-5)), "1e-05");
        assert_eq!(render(Val::DoubleVal(f64::NAN)), "\"NaN\"");
        assert_eq!(render(Val::FloatVal(f32::NEG_INFINITY)), "\"-Infinity\"");
        assert_eq!(
            render(Val::Int64Val(9_007_199_254_740_993)),
            "9007199254740993"
        );
        assert_eq!(render(Val::BytesVal(vec![1, 254])), "\"Af4=\"");
        assert_eq!(
            render(Val::JsonVal("{\"j\": [1]}".into())),
            "\"{\\\"j\\\": [1]}\""
        );
        assert_eq!(render(Val::StringVal("é".into())), "\"é\"");
        assert_eq!(
            render(Val::FloatListVal(FloatList {
                val: vec![0.5, 0.25]
            })),
            "[0.5,0.25]"
        );
        assert_eq!(
            render(Val::StringSetVal(
                StringList {
                    val: vec!["x".into()]
                }
                .into_set()
            )),
            "[\"x\"]"
        );
        let nested = RepeatedValue {
            val: vec![
                Value {
                    val: Some(Val::Int64Val(1)),
                },
                Value { val: None },
            ],
        };
        assert_eq!(render(Val::ListVal(nested)), "[1,null]");
        let mut m = Map::default();
        m.val.insert(
            "b".into(),
            Value {
                val: Some(Val::StringVal("v".into())),
            },
        );
        m.val.insert(
            "a".into(),
            Value {
                val: Some(Val::Int64Val(1)),
            },
        );
        assert_eq!(render(Val::StructVal(m)), "{\"a\":1,\"b\":\"v\"}");
    }

    trait IntoSet {
        fn into_set(self) -> larder_protos::feast::types::StringSet;
    }
    impl IntoSet for StringList {
        fn into_set(self) -> larder_protos::feast::types::StringSet {
            larder_protos::feast::types::StringSet { val: self.val }
        }
    }

    #[test]
    fn timestamps_use_feast_fraction_rules() {
        let t = |seconds, nanos| {
            let mut s = String::new();
            timestamp(&mut s, &Timestamp { seconds, nanos });
            s
        };
        assert_eq!(t(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(t(1_618_225_182, 0), "2021-04-12T10:59:42Z");
        assert_eq!(t(1_618_225_182, 123_000_000), "2021-04-12T10:59:42.123Z");
        assert_eq!(t(1_618_225_182, 123_456_000), "2021-04-12T10:59:42.123456Z");
        assert_eq!(
            t(1_618_225_182, 123_456_789),
            "2021-04-12T10:59:42.123456789Z"
        );
    }

    #[test]
    fn timestamps_agree_with_chrono_across_the_calendar() {
        // Seconds from year 1 to 9999 in uneven steps, each with every fraction rule.
        let mut seconds = -62_135_596_800i64;
        while seconds < 253_402_300_799 {
            for nanos in [0, 7_000_000, 120_000, 5] {
                let mut s = String::new();
                timestamp(&mut s, &Timestamp { seconds, nanos });
                let dt = chrono::DateTime::from_timestamp(seconds, nanos as u32).expect("in range");
                let fraction = match nanos {
                    0 => "",
                    n if n % 1_000_000 == 0 => "%.3f",
                    n if n % 1_000 == 0 => "%.6f",
                    _ => "%.9f",
                };
                let want = dt
                    .format(&format!("%Y-%m-%dT%H:%M:%S{fraction}Z"))
                    .to_string();
                assert_eq!(s, want, "{seconds} {nanos}");
            }
            seconds += 86_400 * 97 + 3_671;
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "plain",
            "",
            "q\"uote",
            "back\\slash",
            "tab\there",
            "\u{1}",
            "ünïcödé ✓",
            "del\u{7f}",
        ] {
            let mut out = String::new();
            string(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }
}
