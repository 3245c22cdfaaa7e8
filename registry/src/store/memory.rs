use std::sync::Mutex;

use super::{RegistrySnapshot, RegistryStore};
use crate::error::RegistryError;

/// An in-memory registry for tests: `set` replaces what the next `load` returns.
#[derive(Debug, Default)]
pub struct InMemoryRegistryStore {
    snapshot: Mutex<RegistrySnapshot>,
}

impl InMemoryRegistryStore {
    pub fn new(snapshot: RegistrySnapshot) -> Self {
        Self {
            snapshot: Mutex::new(snapshot),
        }
    }

    pub fn set(&self, snapshot: RegistrySnapshot) {
        *self.snapshot.lock().expect("not poisoned") = snapshot;
    }
}

#[async_trait::async_trait]
impl RegistryStore for InMemoryRegistryStore {
    fn location(&self) -> String {
        "memory".to_owned()
    }

    async fn load(&self) -> Result<RegistrySnapshot, RegistryError> {
        Ok(self.snapshot.lock().expect("not poisoned").clone())
    }
}
