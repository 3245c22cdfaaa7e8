//! Transport-independent services; HTTP and gRPC adapters call these.

pub mod feature_log;
pub mod historical;
pub mod materialize;
pub mod offline_server;
pub mod ondemand;
pub mod online;
pub mod push;
pub mod python_engine;

use std::{collections::HashMap, sync::Arc};

use larder_registry::{
    config::RepoConfig,
    model::{DataSource, FeatureView, SourceKind},
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
    source_file(
        config,
        env,
        source,
        &format!("feature view {}", v.name),
        doing,
    )
}

/// [`file_source`] of a data source itself; `owner` names it in errors.
pub fn source_file(
    config: &RepoConfig,
    env: &HashMap<String, String>,
    source: &DataSource,
    owner: &str,
    doing: &str,
) -> Result<(String, Option<Arc<dyn larder_registry::store::ObjectStore>>), ServiceError> {
    let SourceKind::File {
        uri,
        s3_endpoint_override,
    } = &source.kind
    else {
        return Err(ServiceError::new(
            ErrorCode::NotImplemented,
            format!("{owner}: larder {doing} file sources only (yet)"),
        ));
    };
    let uri = config.resolve(uri);
    let store = match larder_offline::source::s3_bucket_of(&uri) {
        Some(bucket) => Some(
            larder_registry::store::s3_bucket(bucket, Some(s3_endpoint_override.as_str()), env)
                .map_err(|e| ServiceError::bad_request(format!("{owner}: {uri}: {e}")))?,
        ),
        None => None,
    };
    Ok((uri, store))
}

/// A `"<view>:<feature>"` reference's view and feature (Feast's rule); version-pinned
/// references (`view@v2:feature`) are refused as not built yet.
pub fn parse_feature_ref(r: &str) -> Result<(&str, &str), ServiceError> {
    let (view, feature) = r
        .split_once(':')
        .filter(|(v, f)| !v.is_empty() && !f.is_empty() && !f.contains(':'))
        .ok_or_else(|| {
            ServiceError::bad_request(format!(
                "Invalid feature reference '{r}'. Expected format: '<feature_view>:<feature>' or '<feature_view>@<version>:<feature>'"
            ))
        })?;
    if view.contains('@') {
        return Err(ServiceError::new(
            ErrorCode::NotImplemented,
            format!("version-pinned feature reference '{r}' is not supported by larder yet"),
        ));
    }
    Ok((view, feature))
}

/// Feast's `FeatureViewNotFoundException`.
pub fn view_not_found(name: &str, project: &str) -> ServiceError {
    ServiceError::feast(
        ErrorCode::NotFound,
        "FeatureViewNotFoundException",
        format!("Feature view {name} does not exist in project {project}"),
    )
}

/// Feast's `FeatureServiceNotFoundException`.
pub fn service_not_found(name: &str, project: &str) -> ServiceError {
    ServiceError::feast(
        ErrorCode::NotFound,
        "FeatureServiceNotFoundException",
        format!("Feature service {name} does not exist in project {project}"),
    )
}

/// Feast's `FeatureNameCollisionError` for the output name `dup`.
pub fn collision_error(dup: &str) -> ServiceError {
    ServiceError::feast(
        ErrorCode::BadRequest,
        "FeatureNameCollisionError",
        format!(
            "Duplicate features named {dup} found.\nTo resolve this collision, either use the full feature name by setting 'full_feature_names=True', or ensure that the features in question have different names."
        ),
    )
}

/// The first name equal to an earlier one (Feast names that one in its collision error).
pub fn first_repeat(names: &[String]) -> Option<&String> {
    // A request names a few dozen features at most: comparing beats hashing every name.
    if names.len() <= 64 {
        return (1..names.len())
            .find(|&i| names[..i].contains(&names[i]))
            .map(|i| &names[i]);
    }
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    names.iter().find(|n| !seen.insert(n.as_str()))
}

#[cfg(test)]
pub mod fixture;
