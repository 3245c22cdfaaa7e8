use std::sync::Arc;

use larder_registry::{
    conformance::{Blob, Fixture},
    store::{InMemoryRegistryStore, RegistryStore},
};

struct Memory(Arc<InMemoryRegistryStore>);

impl Fixture for Memory {
    /// Handles are the one store: it has no state outside the process.
    fn handle(&self) -> Arc<dyn RegistryStore> {
        self.0.clone()
    }

    fn blob(&self) -> Option<&dyn Blob> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl Blob for Memory {
    async fn read(&self) -> Vec<u8> {
        self.0.bytes().to_vec()
    }

    async fn write(&self, bytes: Vec<u8>) {
        self.0.set_bytes(bytes).expect("a valid registry");
    }
}

async fn fixture() -> Box<dyn Fixture> {
    Box::new(Memory(Arc::new(InMemoryRegistryStore::default())))
}

larder_registry::registry_store_suite!(fixture);
