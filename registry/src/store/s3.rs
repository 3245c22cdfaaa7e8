use std::{collections::HashMap, sync::Arc, time::Duration};

use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    path::Path,
};

use super::{RegistrySnapshot, RegistryStore, decode};
use crate::error::RegistryError;

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
        let endpoint = env
            .get("FEAST_S3_ENDPOINT_URL")
            .or_else(|| env.get("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env.get("AWS_ENDPOINT_URL"));
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_endpoint(endpoint.clone())
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let store = builder
            .build()
            .map_err(|source| RegistryError::ObjectStore {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self {
            store: Arc::new(store),
            url: url.to_owned(),
            bucket: bucket.to_owned(),
            path: Path::from(key),
        })
    }

    /// The underlying object store and the registry object's path in it.
    pub fn object(&self) -> (Arc<dyn ObjectStore>, Path) {
        (self.store.clone(), self.path.clone())
    }
}

#[async_trait::async_trait]
impl RegistryStore for ObjectRegistryStore {
    fn location(&self) -> String {
        self.url.clone()
    }

    async fn load(&self) -> Result<RegistrySnapshot, RegistryError> {
        let err = |source| RegistryError::ObjectStore {
            url: self.url.clone(),
            source,
        };
        let bytes = match self.store.get(&self.path).await {
            Ok(got) => got.bytes().await.map_err(err)?,
            Err(object_store::Error::NotFound { .. }) => {
                // A missing bucket and a missing object look alike; tell them apart.
                return Err(match self.store.list_with_delimiter(None).await {
                    Err(object_store::Error::NotFound { .. }) => RegistryError::BucketNotFound {
                        url: self.url.clone(),
                        bucket: self.bucket.clone(),
                    },
                    _ => RegistryError::ObjectNotFound {
                        url: self.url.clone(),
                    },
                });
            }
            Err(e) => return Err(err(e)),
        };
        Ok(RegistrySnapshot::from_proto(decode(&self.url, &bytes)?))
    }
}
