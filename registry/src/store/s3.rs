use std::{collections::HashMap, sync::Arc, time::Duration};

use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, UpdateVersion,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    path::Path,
};

use super::{
    ChangeSet, CommitOptions, Fetched, RegistryStore, Revision, StoredObjects, blob_objects,
    check_expected, committed_bytes, content_revision, fetched,
};
use crate::{
    error::RegistryError,
    writeback::{MetaEdit, ViewField, edit_registry},
};

/// A registry stored as one object (`s3://bucket/key`, S3 or MinIO), read through `object_store`.
#[derive(Debug, Clone)]
pub struct ObjectRegistryStore {
    store: Arc<dyn ObjectStore>,
    url: String,
    bucket: String,
    path: Path,
}

impl ObjectRegistryStore {
    /// An S3 registry. Credentials, region and endpoint come from the usual AWS variables in
    /// `env` (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` /
    /// `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`); Feast's `FEAST_S3_ENDPOINT_URL` overrides the
    /// endpoint, so MinIO works as it does with Feast. Requests use path-style addressing.
    pub fn s3(url: &str, env: &HashMap<String, String>) -> Result<Self, RegistryError> {
        let bad = |message: &str| RegistryError::BadUrl {
            url: url.to_owned(),
            message: message.to_owned(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://bucket/key"))?;
        let (bucket, key) = rest
            .split_once('/')
            .ok_or_else(|| bad("expected s3://bucket/key"))?;
        if bucket.is_empty() || key.is_empty() {
            return Err(bad("expected s3://bucket/key"));
        }
        let store = s3_bucket(bucket, None, env).map_err(|source| RegistryError::ObjectStore {
            url: url.to_owned(),
            source,
        })?;
        Ok(Self {
            store,
            url: url.to_owned(),
            bucket: bucket.to_owned(),
            path: Path::from(key),
        })
    }

    /// The object's bytes and ETag (as a revision), or `None` when it still has the ETag of
    /// revision `seen`.
    async fn read(
        &self,
        seen: Option<&Revision>,
    ) -> Result<Option<(bytes::Bytes, Option<Revision>)>, RegistryError> {
        let err = |source| RegistryError::ObjectStore {
            url: self.url.clone(),
            source,
        };
        let options = object_store::GetOptions {
            if_none_match: seen
                .and_then(|r| r.0.strip_prefix("etag:"))
                .map(str::to_owned),
            ..Default::default()
        };
        match self.store.get_opts(&self.path, options).await {
            Ok(got) => {
                let etag = got
                    .meta
                    .e_tag
                    .as_ref()
                    .map(|e| Revision(format!("etag:{e}")));
                Ok(Some((got.bytes().await.map_err(err)?, etag)))
            }
            Err(object_store::Error::NotModified { .. }) => Ok(None),
            Err(object_store::Error::NotFound { .. }) => {
                // A missing bucket and a missing object look alike; tell them apart.
                Err(match self.store.list_with_delimiter(None).await {
                    Err(object_store::Error::NotFound { .. }) => RegistryError::BucketNotFound {
                        url: self.url.clone(),
                        bucket: self.bucket.clone(),
                    },
                    _ => RegistryError::ObjectNotFound {
                        url: self.url.clone(),
                    },
                })
            }
            Err(e) => Err(err(e)),
        }
    }

    /// The underlying object store and the registry object's path in it.
    pub fn object(&self) -> (Arc<dyn ObjectStore>, Path) {
        (self.store.clone(), self.path.clone())
    }
}

/// An S3 (or MinIO) bucket as an object store. Credentials, region and endpoint come from the
/// usual AWS variables in `env`; `endpoint` (a FileSource's `s3_endpoint_override`), else
/// Feast's `FEAST_S3_ENDPOINT_URL`, else `AWS_ENDPOINT_URL(_S3)` sets the endpoint; requests use
/// path-style addressing, plain HTTP is allowed for `http://` endpoints.
pub fn s3_bucket(
    bucket: &str,
    endpoint: Option<&str>,
    env: &HashMap<String, String>,
) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(15),
        })
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(60)),
        );
    let mut sorted: Vec<_> = env.iter().collect();
    sorted.sort();
    for (k, v) in sorted {
        if let Some(suffix) = k.strip_prefix("AWS_")
            && let Ok(key) =
                format!("aws_{}", suffix.to_ascii_lowercase()).parse::<AmazonS3ConfigKey>()
        {
            builder = builder.with_config(key, v.clone());
        }
    }
    let endpoint = endpoint
        .filter(|e| !e.is_empty())
        .or_else(|| env.get("FEAST_S3_ENDPOINT_URL").map(String::as_str))
        .or_else(|| env.get("AWS_ENDPOINT_URL_S3").map(String::as_str))
        .or_else(|| env.get("AWS_ENDPOINT_URL").map(String::as_str));
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    Ok(Arc::new(builder.build()?))
}

#[async_trait::async_trait]
impl RegistryStore for ObjectRegistryStore {
    fn location(&self) -> String {
        self.url.clone()
    }

    /// A conditional GET (`If-None-Match` on the ETag seen): an unchanged registry costs one
    /// request and no transfer or decoding.
    async fn load_if_changed(&self, seen: Option<&Revision>) -> Result<Fetched, RegistryError> {
        let Some((bytes, etag)) = self.read(seen).await? else {
            return Ok(Fetched::Unchanged);
        };
        let revision = etag.unwrap_or_else(|| content_revision(&bytes));
        fetched(&self.url, &bytes, revision, seen)
    }

    async fn load_objects(&self) -> Result<StoredObjects, RegistryError> {
        let (bytes, etag) = self
            .read(None)
            .await?
            .expect("a read that names no revision returns the object");
        let revision = etag.unwrap_or_else(|| content_revision(&bytes));
        blob_objects(&self.url, &bytes, revision)
    }

    /// Reads the object and its ETag, compares its revision with `expected`, applies the change
    /// set at the wire level and puts the result only if the object is still the one read
    /// (`If-Match` on its ETag; `If-None-Match: *` when there was none): a commit that lost a
    /// race is refused by the store itself, and reported as a conflict.
    async fn commit(
        &self,
        expected: Option<&Revision>,
        changes: &ChangeSet,
        options: &CommitOptions,
    ) -> Result<Revision, RegistryError> {
        // A missing object is for `check_expected` to judge: fine for `None`, a conflict for a
        // revision (the object was removed since it was read).
        self.rewrite(true, |current| {
            check_expected(&self.url, current, expected)?;
            committed_bytes(
                &self.url,
                current.map(|(b, _)| b).unwrap_or_default(),
                changes,
                options,
            )
        })
        .await
    }

    /// Read, edit, and put back only if the object is still the one read (`If-Match` on its
    /// ETag): a concurrent writer's commit is never overwritten silently.
    async fn update_view_meta(
        &self,
        project: &str,
        which: ViewField,
        view: &str,
        edit: &MetaEdit,
    ) -> Result<(), RegistryError> {
        self.rewrite(false, |current| {
            let (bytes, _) = current.expect("rewrite reads an existing object");
            let version_id = uuid::Uuid::new_v4().to_string();
            edit_registry(bytes, which, project, view, edit, &version_id).map_err(|source| {
                RegistryError::WriteBack {
                    location: self.url.clone(),
                    source,
                }
            })
        })
        .await?;
        Ok(())
    }
}

impl ObjectRegistryStore {
    /// The one read-edit-conditional-put path of commits and meta edits. `edit` gets the
    /// object's bytes and revision (`None`: there is no object, which only `missing_ok`
    /// allows; otherwise a missing object is the store's error) and returns the new bytes,
    /// which are put only if the object is still the one read. Returns the new revision.
    async fn rewrite<F>(&self, missing_ok: bool, edit: F) -> Result<Revision, RegistryError>
    where
        F: FnOnce(Option<(&[u8], &Revision)>) -> Result<Vec<u8>, RegistryError>,
    {
        let err = |source| RegistryError::ObjectStore {
            url: self.url.clone(),
            source,
        };
        let (current, mode) = match self.store.get(&self.path).await {
            Ok(got) => {
                let version = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let etag = got.meta.e_tag.clone();
                let bytes = got.bytes().await.map_err(err)?;
                let revision = etag
                    .map(|e| Revision(format!("etag:{e}")))
                    .unwrap_or_else(|| content_revision(&bytes));
                (Some((bytes, revision)), PutMode::Update(version))
            }
            Err(object_store::Error::NotFound { .. }) if missing_ok => (None, PutMode::Create),
            Err(e) => return Err(err(e)),
        };
        let edited = bytes::Bytes::from(edit(current.as_ref().map(|(b, r)| (&b[..], r)))?);
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.path, PutPayload::from(edited.clone()), opts)
            .await
        {
            Ok(put) => Ok(put
                .e_tag
                .map(|e| Revision(format!("etag:{e}")))
                .unwrap_or_else(|| content_revision(&edited))),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => Err(RegistryError::Conflict {
                location: self.url.clone(),
                expected: current.map(|(_, r)| r),
            }),
            Err(e) => Err(err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::core::{Project, ProjectSpec, Registry};
    use object_store::{ObjectStoreExt, memory::InMemory};
    use prost::Message;

    fn registry_bytes(project: &str) -> Vec<u8> {
        Registry {
            projects: vec![Project {
                spec: Some(ProjectSpec {
                    name: project.into(),
                    ..Default::default()
                }),
                meta: None,
            }],
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[tokio::test]
    async fn an_unchanged_object_is_answered_by_its_etag() {
        let object = Arc::new(InMemory::new());
        let path = Path::from("feast/registry.pb");
        object
            .put(&path, registry_bytes("one").into())
            .await
            .unwrap();
        let store = ObjectRegistryStore {
            store: object.clone(),
            url: "s3://b/feast/registry.pb".into(),
            bucket: "b".into(),
            path: path.clone(),
        };
        let Fetched::Changed { snapshot, revision } = store.load_if_changed(None).await.unwrap()
        else {
            panic!("a first read returns the registry");
        };
        assert_eq!(snapshot.proto.projects.len(), 1);
        let revision = revision.expect("an ETag");
        assert!(matches!(
            store.load_if_changed(Some(&revision)).await.unwrap(),
            Fetched::Unchanged
        ));
        object
            .put(&path, registry_bytes("two").into())
            .await
            .unwrap();
        let Fetched::Changed {
            revision: Some(next),
            ..
        } = store.load_if_changed(Some(&revision)).await.unwrap()
        else {
            panic!("a rewritten object is read again");
        };
        assert_ne!(next, revision);
    }
}
