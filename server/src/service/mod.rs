//! Transport-independent services; HTTP and gRPC adapters call these.

pub mod online;

#[cfg(test)]
pub mod fixture;
