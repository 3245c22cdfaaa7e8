//! Larder's view of a Feast repo: `feature_store.yaml` ([`config`]), the registry stores that
//! hold the serialized `feast.core.Registry` ([`store`]: local file, S3/MinIO, Feast's SQL
//! registry on PostgreSQL), the refreshing cache every server path reads from ([`cache`]),
//! the typed model of one project's objects ([`model`]) and `registry-dump` ([`dump`]).
//! Writers commit change sets against the revision they read ([`store::RegistryStore::commit`]);
//! feature `testkit` adds the conformance suite every store runs (`conformance`).

pub mod cache;
pub mod clock;
pub mod config;
#[cfg(feature = "testkit")]
pub mod conformance;
pub mod definitions;
pub mod dump;
pub mod envexpand;
pub mod error;
pub mod model;
pub mod store;
pub mod writeback;
