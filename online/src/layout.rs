//! Where one feature view's values live in each backend, computed once per registry load:
//! Redis hash field names (`mmh3` of `"<view>:<feature>"`, 4 bytes LE), the `_ts:<view>` field,
//! and the SQLite table `<project>_<view>`.

/// The storage layout of one feature view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewLayout {
    pub project: String,
    /// The view's storage name (`<view>` or `<view>_v<N>` with versioning).
    pub name: String,
    pub features: Vec<String>,
    /// Redis hash field of each feature, aligned with `features`.
    pub redis_fields: Vec<[u8; 4]>,
    /// `_ts:<name>`.
    pub redis_ts_field: Vec<u8>,
    /// `<project>_<name>`.
    pub sqlite_table: String,
}

impl ViewLayout {
    pub fn new(project: &str, name: &str, features: Vec<String>) -> Self {
        let redis_fields = features.iter().map(|f| redis_field(name, f)).collect();
        Self {
            project: project.to_owned(),
            name: name.to_owned(),
            redis_ts_field: format!("_ts:{name}").into_bytes(),
            sqlite_table: format!("{project}_{name}"),
            features,
            redis_fields,
        }
    }

    pub fn feature_index(&self, feature: &str) -> Option<usize> {
        self.features.iter().position(|f| f == feature)
    }
}

/// Feast's Redis hash field for a feature: unsigned MurmurHash3 x86 32-bit (seed 0) of
/// `"<view>:<feature>"`, as 4 little-endian bytes.
pub fn redis_field(view: &str, feature: &str) -> [u8; 4] {
    mur3::murmurhash3_x86_32(format!("{view}:{feature}").as_bytes(), 0).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_hashes_match_feast() {
        assert_eq!(
            redis_field("driver_hourly_stats", "conv_rate"),
            [0x61, 0x60, 0xe3, 0xda]
        );
        assert_eq!(
            redis_field("driver_hourly_stats", "acc_rate"),
            [0xfa, 0x5e, 0x58, 0xad]
        );
        assert_eq!(
            redis_field("driver_hourly_stats", "avg_daily_trips"),
            [0x18, 0xa5, 0xe5, 0xa3]
        );
        let l = ViewLayout::new("demo", "driver_hourly_stats", vec!["conv_rate".into()]);
        assert_eq!(l.redis_ts_field, b"_ts:driver_hourly_stats");
        assert_eq!(l.sqlite_table, "demo_driver_hourly_stats");
    }
}
