//! Transport-independent services; HTTP and gRPC adapters call these.

pub mod batching;
pub mod definitions;
pub mod feature_log;
pub mod historical;
pub mod materialize;
pub mod offline_server;
pub mod ondemand;
pub mod online;
pub mod push;
pub mod python_engine;
pub mod registry_lineage;
pub mod registry_reads;
pub mod registry_views;
pub mod registry_writes;

use std::{collections::HashMap, sync::Arc};

use larder_registry::{
    config::RepoConfig,
    model::{DataSource, FeatureView, SourceKind},
};

use crate::error::{ErrorCode, ServiceError};

/// Where a view's values live in the online store: the one place a [`ViewLayout`] is made
/// from a view (serving, materialization and pushes read and write the same fields).
pub fn view_layout(
    project: &str,
    v: &FeatureView,
    versioning: bool,
) -> larder_online::layout::ViewLayout {
    larder_online::layout::ViewLayout::new(
        project,
        &v.storage_name(versioning),
        v.features.iter().map(|f| f.name.clone()).collect(),
    )
}

/// [`view_layout`] under the repo's settings (its project and online versioning).
pub fn repo_layout(config: &RepoConfig, v: &FeatureView) -> larder_online::layout::ViewLayout {
    view_layout(
        config.project.as_str(),
        v,
        config.registry.enable_online_feature_view_versioning,
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

/// A feature reference: `<view>:<feature>` or `<view>@v<N>:<feature>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureRef<'a> {
    pub view: &'a str,
    /// The pinned version (`@vN`); `None` for the view's current version (no `@`, `@latest`).
    pub version: Option<i32>,
    pub feature: &'a str,
}

/// Parses a feature reference as Feast's `_parse_feature_or_view_ref` does: the view part is
/// split at its first `@`; a suffix that is empty or `latest` (any case) is the current
/// version, `v<N>`/`V<N>` a pinned one, anything else part of the view's name.
pub fn parse_feature_ref(r: &str) -> Result<FeatureRef<'_>, ServiceError> {
    let (view, feature) = r
        .split_once(':')
        .filter(|(v, f)| !v.is_empty() && !f.is_empty() && !f.contains(':'))
        .ok_or_else(|| {
            ServiceError::bad_request(format!(
                "Invalid feature reference '{r}'. Expected format: '<feature_view>:<feature>' or '<feature_view>@<version>:<feature>'"
            ))
        })?;
    let (view, version) = match view.split_once('@') {
        None => (view, None),
        Some((name, tag)) if tag.is_empty() || tag.eq_ignore_ascii_case("latest") => (name, None),
        Some((name, tag)) => match tag
            .strip_prefix(['v', 'V'])
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<i32>().ok())
        {
            Some(n) => (name, Some(n)),
            None => (view, None),
        },
    };
    Ok(FeatureRef {
        view,
        version,
        feature,
    })
}

/// Feast's refusal of a version-pinned reference when online versioning is off.
pub fn versioning_disabled(view: &str, version: i32) -> ServiceError {
    ServiceError::bad_request(format!(
        "Version-qualified ref '{view}@v{version}' not supported: online versioning is disabled. \
         Set 'enable_online_feature_view_versioning: true' under 'registry' in feature_store.yaml."
    ))
}

/// Feast's `FeatureViewVersionNotFound`.
pub fn version_not_found(view: &str, version: i32, project: &str) -> ServiceError {
    ServiceError::feast(
        ErrorCode::NotFound,
        "FeatureViewVersionNotFound",
        format!("Version v{version} of feature view {view} does not exist in project {project}"),
    )
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

#[cfg(test)]
mod ref_tests {
    use super::*;

    #[test]
    fn feature_references_parse_as_feasts() {
        let r = |s| parse_feature_ref(s).map(|f| (f.view, f.version, f.feature));
        assert_eq!(r("fv:f").unwrap(), ("fv", None, "f"));
        assert_eq!(r("fv@v2:f").unwrap(), ("fv", Some(2), "f"));
        assert_eq!(r("fv@V12:f").unwrap(), ("fv", Some(12), "f"));
        assert_eq!(r("fv@latest:f").unwrap(), ("fv", None, "f"));
        assert_eq!(r("fv@LATEST:f").unwrap(), ("fv", None, "f"));
        assert_eq!(r("fv@:f").unwrap(), ("fv", None, "f"));
        // Anything else after `@` is part of the view's name (then: no such view).
        assert_eq!(r("fv@version1:f").unwrap(), ("fv@version1", None, "f"));
        assert_eq!(r("fv@v:f").unwrap(), ("fv@v", None, "f"));
        assert_eq!(
            r("fv@v99999999999:f").unwrap(),
            ("fv@v99999999999", None, "f")
        );
        for bad in ["fv", ":f", "fv:", "a:b:c"] {
            assert_eq!(
                parse_feature_ref(bad).unwrap_err().code,
                ErrorCode::BadRequest,
                "{bad}"
            );
        }
    }
}
