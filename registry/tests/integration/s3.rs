//! The S3 store against the S3 endpoint `scripts/test` starts (moto) and exports as
//! `LARDER_S3_ENDPOINT`: one fresh bucket per test. Without the variable these tests fail
//! (they never skip): run them with `scripts/test`, or start moto yourself and export it.

use std::{
    collections::HashMap,
    io::{Read, Write},
    sync::Arc,
};

use larder_registry::{
    conformance::{Blob, Fixture},
    store::{ObjectRegistryStore, ObjectStoreExt, RegistryStore},
};

fn endpoint() -> String {
    std::env::var("LARDER_S3_ENDPOINT")
        .expect("LARDER_S3_ENDPOINT is not set: run the tests with scripts/test")
}

/// Creates a bucket with a plain unsigned `PUT /{bucket}` (moto accepts it; object_store cannot
/// create buckets).
fn create_bucket(endpoint: &str, bucket: &str) {
    let url = url::Url::parse(endpoint).expect("LARDER_S3_ENDPOINT is a URL");
    let host = url.host_str().expect("a host");
    let port = url.port_or_known_default().expect("a port");
    let mut stream = std::net::TcpStream::connect((host, port))
        .unwrap_or_else(|e| panic!("cannot reach the S3 endpoint {endpoint}: {e}"));
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default();
    assert!(
        status.split_whitespace().nth(1) == Some("200"),
        "creating bucket {bucket}: {response}"
    );
}

struct S3 {
    url: String,
    env: HashMap<String, String>,
    store: ObjectRegistryStore,
}

impl Fixture for S3 {
    fn handle(&self) -> Arc<dyn RegistryStore> {
        Arc::new(ObjectRegistryStore::s3(&self.url, &self.env).unwrap())
    }

    fn blob(&self) -> Option<&dyn Blob> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl Blob for S3 {
    async fn read(&self) -> Vec<u8> {
        let (store, path) = self.store.object();
        store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    async fn write(&self, bytes: Vec<u8>) {
        let (store, path) = self.store.object();
        store.put(&path, bytes.into()).await.unwrap();
    }
}

async fn fixture() -> Box<dyn Fixture> {
    let endpoint = endpoint();
    let bucket = format!("larder-conf-{}", uuid::Uuid::new_v4().simple());
    create_bucket(&endpoint, &bucket);
    let env: HashMap<String, String> = [
        ("FEAST_S3_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "larder"),
        ("AWS_SECRET_ACCESS_KEY", "larder-secret"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let url = format!("s3://{bucket}/feast/registry.pb");
    let store = ObjectRegistryStore::s3(&url, &env).unwrap();
    Box::new(S3 { url, env, store })
}

larder_registry::registry_store_suite!(fixture);
