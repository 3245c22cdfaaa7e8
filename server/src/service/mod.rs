//! Transport-independent services; HTTP and gRPC adapters call these.

pub mod materialize;
pub mod online;

#[cfg(test)]
pub mod fixture;
