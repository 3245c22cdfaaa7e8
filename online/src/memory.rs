//! An in-memory [`OnlineStore`] for unit tests.

use std::{collections::HashMap, sync::Mutex};

use larder_protos::feast::types::Value;
use prost_types::Timestamp;

use crate::{
    layout::ViewLayout,
    store::{
        OlderWrites, OnlineError, OnlineStore, Record, ViewRead, WriteOutcome, WriteRow, ts_nanos,
    },
};

type Rows = HashMap<Vec<u8>, (Timestamp, HashMap<String, Value>)>;

/// Holds `(project, view) → key → (event time, feature → value)`.
#[derive(Debug)]
pub struct InMemoryOnlineStore {
    older: OlderWrites,
    data: Mutex<HashMap<(String, String), Rows>>,
}

impl InMemoryOnlineStore {
    pub fn new(older: OlderWrites) -> Self {
        Self {
            older,
            data: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for InMemoryOnlineStore {
    fn default() -> Self {
        Self::new(OlderWrites::Skip)
    }
}

#[async_trait::async_trait]
impl OnlineStore for InMemoryOnlineStore {
    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn older_writes(&self) -> OlderWrites {
        self.older
    }

    async fn read(&self, reads: &[ViewRead<'_>]) -> Result<Vec<Vec<Option<Record>>>, OnlineError> {
        let data = self.data.lock().expect("not poisoned");
        Ok(reads
            .iter()
            .map(|r| {
                let rows = data.get(&(r.layout.project.clone(), r.layout.name.clone()));
                r.keys
                    .iter()
                    .map(|k| {
                        let (ts, values) = rows?.get(k)?;
                        Some(Record {
                            event_ts: *ts,
                            values: r
                                .features
                                .iter()
                                .map(|&i| values.get(&r.layout.features[i]).cloned())
                                .collect(),
                        })
                    })
                    .collect()
            })
            .collect())
    }

    async fn write(
        &self,
        layout: &ViewLayout,
        rows: &[WriteRow],
    ) -> Result<WriteOutcome, OnlineError> {
        let mut data = self.data.lock().expect("not poisoned");
        let view = data
            .entry((layout.project.clone(), layout.name.clone()))
            .or_default();
        let mut out = WriteOutcome::default();
        for row in rows {
            let entry = view.entry(row.key.clone()).or_default();
            if self.older == OlderWrites::Skip
                && ts_nanos(&entry.0) != 0
                && ts_nanos(&row.event_ts) <= ts_nanos(&entry.0)
            {
                out.skipped_not_newer += 1;
                continue;
            }
            entry.0 = row.event_ts;
            for (name, value) in layout.features.iter().zip(&row.values) {
                if let Some(v) = value {
                    entry.1.insert(name.clone(), v.clone());
                }
            }
            out.written += 1;
        }
        Ok(out)
    }

    async fn drop_view(&self, layout: &ViewLayout) -> Result<(), OnlineError> {
        self.data
            .lock()
            .expect("not poisoned")
            .remove(&(layout.project.clone(), layout.name.clone()));
        Ok(())
    }

    async fn check(&self) -> Result<(), OnlineError> {
        Ok(())
    }
}
