use std::sync::Mutex;

use super::{Fetched, RegistrySnapshot, RegistryStore, Revision};
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

    async fn load_if_changed(&self, _seen: Option<&Revision>) -> Result<Fetched, RegistryError> {
        Ok(Fetched::Changed {
            snapshot: Box::new(self.snapshot.lock().expect("not poisoned").clone()),
            revision: None,
        })
    }
}
