//! Feast-wire-compatible protobuf messages (packages `feast.core`, `feast.types`,
//! `feast.serving`, `feast.registry`, `feast.storage`) and the gRPC services
//! `feast.serving.ServingService`, `feast.registry.RegistryServer` and `GrpcFeatureServer`.
//!
//! The `.proto` files under `proto/` were written for Larder from the Feast 0.67 compatibility
//! specification: package names, message names, field numbers and enum values equal Feast's,
//! so bytes written by either side decode on the other.
//!
//! [`json`] gives the proto3 JSON mapping (camelCase names, enums by name, 64-bit integers as
//! strings, RFC 3339 timestamps, `"86400s"` durations, default fields omitted) — the same
//! document Python's `MessageToDict` produces — through prost-reflect and the descriptor set
//! compiled alongside the code.

#![expect(clippy::large_enum_variant, reason = "generated code")]

mod generated {
    include!(concat!(env!("OUT_DIR"), "/feast_protos.rs"));
}

pub use generated::feast;

/// Feast's `feast listen` service (`feast/serving/GrpcServer.proto`), which has no proto package.
pub mod listen {
    pub use crate::generated::{
        PushRequest, PushResponse, WriteToOnlineStoreRequest, WriteToOnlineStoreResponse,
        grpc_feature_server_client, grpc_feature_server_server,
    };
}
pub use prost;
pub use prost_types;

pub mod json;
