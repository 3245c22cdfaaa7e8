//! Feast's entity-key bytes (`serialize_entity_key`, spec §3.1): the join keys sorted by name,
//! then — v3 — `u32 count`, every key as `u32 2, u32 len, utf8`, every value as
//! `u32 type, u32 len, bytes`; v2 drops the count and the key lengths; v1 also writes INT64 as
//! 4 bytes. All integers little-endian.

use std::fmt;

use larder_protos::feast::types::value_type::Enum as ValueType;

/// A value allowed in an entity key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityValue {
    String(String),
    Bytes(Vec<u8>),
    Int32(i32),
    Int64(i64),
    /// Seconds since the epoch.
    UnixTimestamp(i64),
}

impl EntityValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            EntityValue::String(_) => ValueType::String,
            EntityValue::Bytes(_) => ValueType::Bytes,
            EntityValue::Int32(_) => ValueType::Int32,
            EntityValue::Int64(_) => ValueType::Int64,
            EntityValue::UnixTimestamp(_) => ValueType::UnixTimestamp,
        }
    }

    /// The `feast.types.Value` holding this value.
    pub fn to_proto(&self) -> larder_protos::feast::types::Value {
        use larder_protos::feast::types::value::Val;
        let val = match self {
            EntityValue::String(s) => Val::StringVal(s.clone()),
            EntityValue::Bytes(b) => Val::BytesVal(b.clone()),
            EntityValue::Int32(i) => Val::Int32Val(*i),
            EntityValue::Int64(i) => Val::Int64Val(*i),
            EntityValue::UnixTimestamp(i) => Val::UnixTimestampVal(*i),
        };
        larder_protos::feast::types::Value { val: Some(val) }
    }
}

impl fmt::Display for EntityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityValue::String(s) => write!(f, "{s:?}"),
            EntityValue::Bytes(b) => write!(f, "{b:?}"),
            EntityValue::Int32(i) => write!(f, "{i}"),
            EntityValue::Int64(i) | EntityValue::UnixTimestamp(i) => write!(f, "{i}"),
        }
    }
}

/// `entity_key_serialization_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyVersion {
    V1,
    V2,
    V3,
}

impl KeyVersion {
    pub fn from_config(v: u32) -> Option<Self> {
        match v {
            1 => Some(KeyVersion::V1),
            2 => Some(KeyVersion::V2),
            3 => Some(KeyVersion::V3),
            _ => None,
        }
    }
}

/// The key of an entity-less view's one row: Feast's `__dummy_id` join key with value "".
pub fn entityless_key(version: KeyVersion) -> Vec<u8> {
    serialize_entity_key(
        &[("__dummy_id", &EntityValue::String(String::new()))],
        version,
    )
}

/// Serializes `(join key, value)` pairs. The pairs need not be sorted.
pub fn serialize_entity_key(pairs: &[(&str, &EntityValue)], version: KeyVersion) -> Vec<u8> {
    let mut sorted: Vec<&(&str, &EntityValue)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(16 + pairs.len() * 32);
    if version == KeyVersion::V3 {
        push_u32(&mut out, sorted.len() as u32);
    }
    for (key, _) in &sorted {
        push_u32(&mut out, ValueType::String as u32);
        if version == KeyVersion::V3 {
            push_u32(&mut out, key.len() as u32);
        }
        out.extend_from_slice(key.as_bytes());
    }
    for (_, value) in &sorted {
        push_u32(&mut out, value.value_type() as u32);
        match value {
            EntityValue::String(s) => push_bytes(&mut out, s.as_bytes()),
            EntityValue::Bytes(b) => push_bytes(&mut out, b),
            EntityValue::Int32(i) => push_bytes(&mut out, &i.to_le_bytes()),
            EntityValue::Int64(i) if version == KeyVersion::V1 => {
                push_bytes(&mut out, &(*i as i32).to_le_bytes())
            }
            EntityValue::Int64(i) | EntityValue::UnixTimestamp(i) => {
                push_bytes(&mut out, &i.to_le_bytes())
            }
        }
    }
    out
}

/// The prefix shared by every key with these join keys (for deletion scans), v3 layout.
pub fn entity_key_prefix(join_keys: &[&str], version: KeyVersion) -> Vec<u8> {
    let mut sorted = join_keys.to_vec();
    sorted.sort();
    let mut out = Vec::new();
    if version == KeyVersion::V3 {
        push_u32(&mut out, sorted.len() as u32);
    }
    for key in sorted {
        push_u32(&mut out, ValueType::String as u32);
        if version == KeyVersion::V3 {
            push_u32(&mut out, key.len() as u32);
        }
        out.extend_from_slice(key.as_bytes());
    }
    out
}

/// Why entity-key bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid entity key: {}", self.0)
    }
}

impl std::error::Error for KeyError {}

/// Reads entity-key bytes back into `(join key, value)` pairs (in the key's order: sorted by
/// name), the inverse of [`serialize_entity_key`] for V3 keys (V1 keys lose INT64 values'
/// upper bits, V2 keys the names' lengths). Any byte string is either a key or an
/// error, never a panic, and nothing is allocated beyond the bytes given.
pub fn deserialize_entity_key(
    bytes: &[u8],
    version: KeyVersion,
) -> Result<Vec<(String, EntityValue)>, KeyError> {
    let bad = |m: &str| KeyError(m.to_owned());
    let mut r = Reader { bytes, pos: 0 };
    let mut names = Vec::new();
    match version {
        KeyVersion::V1 => {
            return Err(bad(
                "version 1 keys keep 4 bytes of INT64 values and cannot be read back",
            ));
        }
        KeyVersion::V3 => {
            let n = r.u32()? as usize;
            // Each key takes at least 8 bytes of names and 8 of values.
            if n > bytes.len() / 16 {
                return Err(bad("more join keys than the bytes can hold"));
            }
            for _ in 0..n {
                if r.u32()? != ValueType::String as u32 {
                    return Err(bad("a join key name is not a string"));
                }
                let len = r.u32()? as usize;
                names.push(r.utf8(len)?);
            }
        }
        // No name lengths: a name cannot be told from the value after it.
        KeyVersion::V2 => {
            return Err(bad(
                "version 2 keys carry no name lengths and cannot be read back",
            ));
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let t = r.u32()?;
        let len = r.u32()? as usize;
        let raw = r.take(len)?;
        let fixed = |n: usize| -> Result<&[u8], KeyError> {
            if raw.len() == n {
                Ok(raw)
            } else {
                Err(KeyError(format!(
                    "a value of type {t} has {} bytes, not {n}",
                    raw.len()
                )))
            }
        };
        let value = match t {
            t if t == ValueType::String as u32 => EntityValue::String(
                String::from_utf8(raw.to_vec()).map_err(|_| bad("a string value is not UTF-8"))?,
            ),
            t if t == ValueType::Bytes as u32 => EntityValue::Bytes(raw.to_vec()),
            t if t == ValueType::Int32 as u32 => {
                EntityValue::Int32(i32::from_le_bytes(fixed(4)?.try_into().expect("4 bytes")))
            }
            t if t == ValueType::Int64 as u32 => {
                EntityValue::Int64(i64::from_le_bytes(fixed(8)?.try_into().expect("8 bytes")))
            }
            t if t == ValueType::UnixTimestamp as u32 => EntityValue::UnixTimestamp(
                i64::from_le_bytes(fixed(8)?.try_into().expect("8 bytes")),
            ),
            other => return Err(KeyError(format!("value type {other} is not a key type"))),
        };
        out.push((name, value));
    }
    if r.pos != bytes.len() {
        return Err(bad("bytes after the last value"));
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KeyError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| KeyError("truncated".into()))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, KeyError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn utf8(&mut self, n: usize) -> Result<String, KeyError> {
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| KeyError("a join key name is not UTF-8".into()))
    }
}

fn push_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
    push_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Byte strings computed with Feast 0.67 (spec §3.1).
    #[test]
    fn single_int64_key_v3_and_v2() {
        let v = EntityValue::Int64(1001);
        assert_eq!(
            serialize_entity_key(&[("driver_id", &v)], KeyVersion::V3),
            hex("01000000 02000000 09000000 6472697665725f6964 04000000 08000000 e903000000000000")
        );
        assert_eq!(
            serialize_entity_key(&[("driver_id", &v)], KeyVersion::V2),
            hex("02000000 6472697665725f6964 04000000 08000000 e903000000000000")
        );
    }

    #[test]
    fn multi_key_sorts_keys_then_values() {
        let d = EntityValue::Int64(1001);
        let c = EntityValue::String("abc".into());
        let v3 = serialize_entity_key(&[("driver_id", &d), ("customer_id", &c)], KeyVersion::V3);
        let mut want = hex("02000000 02000000 0b000000");
        want.extend_from_slice(b"customer_id");
        want.extend(hex("02000000 09000000"));
        want.extend_from_slice(b"driver_id");
        want.extend(hex("02000000 03000000"));
        want.extend_from_slice(b"abc");
        want.extend(hex("04000000 08000000 e903000000000000"));
        assert_eq!(v3, want);
        let v2 = serialize_entity_key(&[("driver_id", &d), ("customer_id", &c)], KeyVersion::V2);
        let mut want = hex("02000000");
        want.extend_from_slice(b"customer_id");
        want.extend(hex("02000000"));
        want.extend_from_slice(b"driver_id");
        want.extend(hex("02000000 03000000"));
        want.extend_from_slice(b"abc");
        want.extend(hex("04000000 08000000 e903000000000000"));
        assert_eq!(v2, want);
    }

    #[test]
    fn other_value_types() {
        let k = |v: EntityValue| serialize_entity_key(&[("k", &v)], KeyVersion::V3);
        assert_eq!(
            k(EntityValue::Int32(-5)),
            hex("01000000 02000000 01000000 6b 03000000 04000000 fbffffff")
        );
        assert_eq!(
            k(EntityValue::UnixTimestamp(1_700_000_000)),
            hex("01000000 02000000 01000000 6b 08000000 08000000 00f1536500000000")
        );
        assert_eq!(
            k(EntityValue::Bytes(vec![1, 2])),
            hex("01000000 02000000 01000000 6b 01000000 02000000 0102")
        );
        let mut dummy = hex("01000000 02000000 0a000000");
        dummy.extend_from_slice(b"__dummy_id");
        dummy.extend(hex("02000000 00000000"));
        assert_eq!(entityless_key(KeyVersion::V3), dummy);
    }

    #[test]
    fn keys_read_back_into_their_pairs() {
        let d = EntityValue::Int64(1001);
        let c = EntityValue::String("abc".into());
        let t = EntityValue::UnixTimestamp(-5);
        let key = serialize_entity_key(
            &[("driver_id", &d), ("customer_id", &c), ("at", &t)],
            KeyVersion::V3,
        );
        assert_eq!(
            deserialize_entity_key(&key, KeyVersion::V3).unwrap(),
            vec![
                ("at".to_owned(), t.clone()),
                ("customer_id".to_owned(), c.clone()),
                ("driver_id".to_owned(), d.clone()),
            ]
        );
        let v2 = serialize_entity_key(&[("driver_id", &d)], KeyVersion::V2);
        assert!(deserialize_entity_key(&v2, KeyVersion::V2).is_err());
        for cut in 0..key.len() {
            assert!(deserialize_entity_key(&key[..cut], KeyVersion::V3).is_err());
        }
        let mut long = key.clone();
        long.push(0);
        assert!(deserialize_entity_key(&long, KeyVersion::V3).is_err());
        // A count far beyond the bytes is refused before anything is allocated.
        assert!(deserialize_entity_key(&[0xff; 8], KeyVersion::V3).is_err());
    }

    /// Fuzz target (`cargo bolero test -p larder-types entity_key::tests::fuzz_entity_key_bytes`
    /// for a coverage-guided run; plain `cargo test` runs it on random inputs for a second):
    /// any bytes read as a key or an error, never a panic; a key that reads, written again,
    /// is the same bytes when its names were in order.
    #[test]
    fn fuzz_entity_key_bytes() {
        bolero::check!().for_each(|bytes: &[u8]| {
            for version in [KeyVersion::V1, KeyVersion::V2, KeyVersion::V3] {
                let Ok(pairs) = deserialize_entity_key(bytes, version) else {
                    continue;
                };
                let refs: Vec<(&str, &EntityValue)> =
                    pairs.iter().map(|(k, v)| (k.as_str(), v)).collect();
                if pairs.windows(2).all(|w| w[0].0 <= w[1].0) {
                    assert_eq!(serialize_entity_key(&refs, version), bytes);
                }
            }
        });
    }

    /// Fuzz target: any pairs written as a V3 key read back as the same pairs, sorted.
    #[test]
    fn fuzz_entity_keys_round_trip() {
        bolero::check!()
            .with_type::<Vec<(String, u8, i64, Vec<u8>)>>()
            .for_each(|pairs| {
                let values: Vec<(String, EntityValue)> = pairs
                    .iter()
                    .map(|(k, tag, i, b)| {
                        let v = match tag % 5 {
                            0 => EntityValue::Int64(*i),
                            1 => EntityValue::Int32(*i as i32),
                            2 => EntityValue::UnixTimestamp(*i),
                            3 => EntityValue::Bytes(b.clone()),
                            _ => EntityValue::String(String::from_utf8_lossy(b).into_owned()),
                        };
                        (k.clone(), v)
                    })
                    .collect();
                let refs: Vec<(&str, &EntityValue)> =
                    values.iter().map(|(k, v)| (k.as_str(), v)).collect();
                let key = serialize_entity_key(&refs, KeyVersion::V3);
                let mut sorted = values.clone();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                assert_eq!(
                    deserialize_entity_key(&key, KeyVersion::V3).unwrap(),
                    sorted
                );
            });
    }

    #[test]
    fn prefix_is_the_start_of_every_key() {
        let d = EntityValue::Int64(7);
        let c = EntityValue::String("x".into());
        let key = serialize_entity_key(&[("driver_id", &d), ("customer_id", &c)], KeyVersion::V3);
        let prefix = entity_key_prefix(&["driver_id", "customer_id"], KeyVersion::V3);
        assert!(key.starts_with(&prefix));
    }
}
