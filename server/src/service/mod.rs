//! Transport-independent services; HTTP and gRPC adapters call these.

pub mod materialize;
pub mod online;
pub mod push;

#[cfg(test)]
pub mod fixture;
