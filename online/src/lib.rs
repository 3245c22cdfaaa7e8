//! Online stores in Feast's byte layout, behind one object-safe trait ([`store::OnlineStore`]):
//! Redis (standalone, cluster, sentinel), SQLite (the embedded default) and in-memory.
//! Per-view layouts ([`layout`]; entity keys are `larder_types::entity_key`) are computed once per
//! registry load, so the read path only assembles bytes.

#[cfg(feature = "testkit")]
pub mod conformance;
pub mod layout;
pub mod memory;
pub mod pyrepr;
pub mod redis;
pub mod resp;
pub mod sqlite;
pub mod store;
#[cfg(feature = "testkit")]
#[path = "testkit_servers.rs"]
pub mod testkit;
