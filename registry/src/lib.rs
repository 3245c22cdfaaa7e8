//! Larder's view of a Feast repo: `feature_store.yaml` ([`config`]), the registry stores that
//! hold the serialized `feast.core.Registry` ([`store`]: local file, S3/MinIO, Feast's SQL
//! registry on PostgreSQL), the refreshing cache every server path reads from ([`cache`]),
//! the typed model of one project's objects ([`model`]) and `registry-dump` ([`dump`]).

pub mod cache;
pub mod clock;
pub mod config;
pub mod dump;
pub mod envexpand;
pub mod error;
pub mod model;
pub mod store;
pub mod writeback;
