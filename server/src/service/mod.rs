//! Transport-independent services; HTTP and gRPC adapters call these.

pub mod materialize;
pub mod online;
pub mod push;

use std::{collections::HashMap, sync::Arc};

use larder_registry::{
    config::RepoConfig,
    model::{FeatureView, SourceKind},
};

use crate::error::{ErrorCode, ServiceError};

/// Where a view's values live in the online store: the one place a [`ViewLayout`] is made
/// from a view (serving, materialization and pushes read and write the same fields).
pub fn view_layout(project: &str, v: &FeatureView) -> larder_online::layout::ViewLayout {
    larder_online::layout::ViewLayout::new(
        project,
        &v.name,
        v.features.iter().map(|f| f.name.clone()).collect(),
    )
}

/// The entity key of `(join key, value)` pairs; the entity-less key (Feast's `__dummy_id`)
/// when there are none.
pub fn entity_key(
    pairs: &[(&str, &larder_types::entity_key::EntityValue)],
    version: larder_types::entity_key::KeyVersion,
) -> Vec<u8> {
    if pairs.is_empty() {
        larder_types::entity_key::entityless_key(version)
    } else {
        larder_types::entity_key::serialize_entity_key(pairs, version)
    }
}

/// The repo's `entity_key_serialization_version`.
pub fn key_version(
    config: &RepoConfig,
) -> Result<larder_types::entity_key::KeyVersion, ServiceError> {
    larder_types::entity_key::KeyVersion::from_config(config.entity_key_serialization_version)
        .ok_or_else(|| {
            ServiceError::internal(format!(
                "entity_key_serialization_version must be 1, 2 or 3, not {}",
                config.entity_key_serialization_version
            ))
        })
}

/// A view's batch FileSource as the offline store needs it: the resolved path (absolute or
/// `s3://`) and, for S3 paths, the bucket's object store (credentials from `env`, the source's
/// endpoint override). `doing` names the operation in the error for other source kinds.
pub fn file_source(
    config: &RepoConfig,
    env: &HashMap<String, String>,
    v: &FeatureView,
    doing: &str,
) -> Result<(String, Option<Arc<dyn larder_registry::store::ObjectStore>>), ServiceError> {
    let source = v.batch_source.as_ref().ok_or_else(|| {
        ServiceError::bad_request(format!("feature view {} has no batch source", v.name))
    })?;
    let SourceKind::File {
        uri,
        s3_endpoint_override,
    } = &source.kind
    else {
        return Err(ServiceError::new(
            ErrorCode::NotImplemented,
            format!(
                "feature view {}: larder {doing} file sources only (yet)",
                v.name
            ),
        ));
    };
    let uri = config.resolve(uri);
    let store = match larder_offline::source::s3_bucket_of(&uri) {
        Some(bucket) => Some(
            larder_registry::store::s3_bucket(bucket, Some(s3_endpoint_override.as_str()), env)
                .map_err(|e| {
                    ServiceError::bad_request(format!("feature view {}: {uri}: {e}", v.name))
                })?,
        ),
        None => None,
    };
    Ok((uri, store))
}

#[cfg(test)]
pub mod fixture;
