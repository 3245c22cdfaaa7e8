//! Feast's shared types and rules, written once and used by every crate that needs them
//! (`online/`, `offline/`, `registry/`, `server/`); it depends on nothing but the protos, so
//! the DataFusion crate does not build the online stores to get an entity key.
//!
//! - [`entity_key`]: the values an entity key holds and Feast's key bytes;
//! - [`scalar`]: a request's untyped values and their conversion to a join key's type;
//! - [`value`]: untyped (JSON) values as Feast `Value`s of a declared type, and Feast's
//!   timestamp parsing;
//! - [`join_key`]: which type a view's join key has;
//! - [`error`]: the kinds of failure and their HTTP status and gRPC code — the one table.

pub mod entity_key;
pub mod error;
pub mod join_key;
pub mod scalar;
pub mod value;
