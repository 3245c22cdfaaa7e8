//! The registry cache: one decoded snapshot shared by every reader, swapped atomically on
//! refresh. A failed refresh (unreachable store, corrupt bytes) keeps the last good snapshot
//! and records the error, so serving never sees a half-loaded or missing registry.

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use crate::{
    clock::Clock,
    error::RegistryError,
    store::{Fetched, RegistrySnapshot, RegistryStore, Revision},
};

/// A snapshot with the time it was read.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: Arc<RegistrySnapshot>,
    pub loaded_at: DateTime<Utc>,
    /// Increases by one every time a refresh produced a different registry.
    pub generation: u64,
}

/// Caches the registry read from a [`RegistryStore`] for `cache_ttl_seconds`.
#[derive(Debug)]
pub struct RegistryCache {
    store: Arc<dyn RegistryStore>,
    /// `None`: never expires (`cache_ttl_seconds: 0`).
    ttl: Option<Duration>,
    clock: Arc<dyn Clock>,
    current: ArcSwap<Loaded>,
    /// A registry not written yet reads as an empty one ([`Self::open_allowing_missing`]).
    missing_is_empty: bool,
    last_error: std::sync::Mutex<Option<(DateTime<Utc>, String)>>,
    /// The revision of the current snapshot, when the store tells revisions; held while a
    /// refresh runs, so refreshes do not overlap.
    refreshing: tokio::sync::Mutex<Option<Revision>>,
}

impl RegistryCache {
    /// Reads the registry once; fails if that first read fails.
    pub async fn open(
        store: Arc<dyn RegistryStore>,
        ttl_seconds: u64,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RegistryError> {
        Self::open_with(store, ttl_seconds, clock, false).await
    }

    /// As [`Self::open`], but a registry not written yet (no file, no object) reads as an
    /// empty one, on opening and on every refresh until it is written — as the registry
    /// server sees it, for which the first apply creates the registry, as in Feast.
    pub async fn open_allowing_missing(
        store: Arc<dyn RegistryStore>,
        ttl_seconds: u64,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RegistryError> {
        Self::open_with(store, ttl_seconds, clock, true).await
    }

    async fn open_with(
        store: Arc<dyn RegistryStore>,
        ttl_seconds: u64,
        clock: Arc<dyn Clock>,
        missing_is_empty: bool,
    ) -> Result<Self, RegistryError> {
        let (snapshot, revision) = match store.load_revised().await {
            Err(e) if missing_is_empty && e.is_missing_registry() => (empty_registry(), None),
            other => other?,
        };
        let loaded = Loaded {
            snapshot: Arc::new(snapshot),
            loaded_at: clock.now(),
            generation: 0,
        };
        Ok(Self {
            store,
            ttl: (ttl_seconds > 0).then(|| Duration::from_secs(ttl_seconds)),
            clock,
            current: ArcSwap::from_pointee(loaded),
            missing_is_empty,
            last_error: std::sync::Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(revision),
        })
    }

    /// The current snapshot, without any I/O.
    pub fn current(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    /// The current snapshot, refreshed first if the TTL has expired (Feast's `sync` mode).
    /// A failed refresh is logged and the last good snapshot returned.
    pub async fn get(&self) -> Arc<Loaded> {
        if self.is_expired()
            && let Err(error) = self.refresh().await
        {
            tracing::warn!(%error, location = %self.store.location(), "registry refresh failed; keeping the last good registry");
        }
        self.current()
    }

    fn is_expired(&self) -> bool {
        let Some(ttl) = self.ttl else { return false };
        let age = self.clock.now() - self.current.load().loaded_at;
        age.to_std().is_ok_and(|age| age >= ttl)
    }

    /// Re-reads the store now. On success the new snapshot replaces the old one atomically;
    /// on failure the old one stays and the error is returned (and kept for [`Self::last_error`]).
    pub async fn refresh(&self) -> Result<Arc<Loaded>, RegistryError> {
        let mut revision = self.refreshing.lock().await;
        let fetched = match self.store.load_if_changed(revision.as_ref()).await {
            Err(e) if self.missing_is_empty && e.is_missing_registry() => {
                let unchanged =
                    revision.is_none() && *self.current.load().snapshot == empty_registry();
                Ok(if unchanged {
                    Fetched::Unchanged
                } else {
                    Fetched::Changed {
                        snapshot: Box::new(empty_registry()),
                        revision: None,
                    }
                })
            }
            other => other,
        };
        match fetched {
            Ok(fetched) => {
                let old = self.current.load_full();
                let (snapshot, generation) = match fetched {
                    // Same bytes as the current snapshot: only the check time moves on.
                    Fetched::Unchanged => (old.snapshot.clone(), old.generation),
                    Fetched::Changed {
                        snapshot,
                        revision: new_revision,
                    } => {
                        *revision = new_revision;
                        let generation = if *old.snapshot == *snapshot {
                            old.generation
                        } else {
                            old.generation + 1
                        };
                        (Arc::from(snapshot), generation)
                    }
                };
                let loaded = Arc::new(Loaded {
                    snapshot,
                    loaded_at: self.clock.now(),
                    generation,
                });
                self.current.store(loaded.clone());
                *self.last_error.lock().expect("not poisoned") = None;
                Ok(loaded)
            }
            Err(e) => {
                *self.last_error.lock().expect("not poisoned") =
                    Some((self.clock.now(), e.to_string()));
                Err(e)
            }
        }
    }

    /// The error of the most recent refresh, if it failed.
    pub fn last_error(&self) -> Option<(DateTime<Utc>, String)> {
        self.last_error.lock().expect("not poisoned").clone()
    }

    /// Refreshes every `every` in the background (Feast's `thread` mode and `feast serve`'s
    /// registry timer) until the returned handle is aborted.
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(cache) = this.upgrade() else { return };
                if let Err(error) = cache.refresh().await {
                    tracing::warn!(%error, location = %cache.store.location(), "registry refresh failed; keeping the last good registry");
                }
            }
        })
    }
}

/// The registry Feast's `Registry` starts from when there is none: no objects, schema "1".
fn empty_registry() -> RegistrySnapshot {
    RegistrySnapshot::from_proto(larder_protos::feast::core::Registry {
        registry_schema_version: "1".into(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock::ManualClock, store::FileRegistryStore};
    use larder_protos::feast::core::{Entity, EntitySpecV2, Registry};
    use prost::Message;

    fn registry_with(entity: &str) -> Vec<u8> {
        Registry {
            entities: vec![Entity {
                spec: Some(EntitySpecV2 {
                    name: entity.into(),
                    project: "p".into(),
                    ..Default::default()
                }),
                meta: None,
            }],
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn entity_name(l: &Arc<Loaded>) -> String {
        l.snapshot.proto.entities[0]
            .spec
            .as_ref()
            .unwrap()
            .name
            .clone()
    }

    /// A cache over a registry file holding entity "first", with a manual clock.
    async fn file_cache(
        ttl_seconds: u64,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        ManualClock,
        RegistryCache,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        std::fs::write(&path, registry_with("first")).unwrap();
        let clock = ManualClock::new(Utc::now());
        let cache = RegistryCache::open(
            Arc::new(FileRegistryStore::new(path.clone())),
            ttl_seconds,
            Arc::new(clock.clone()),
        )
        .await
        .unwrap();
        (dir, path, clock, cache)
    }

    #[tokio::test]
    async fn picks_up_changes_after_ttl_and_keeps_last_good_on_corruption() {
        let (_dir, path, clock, cache) = file_cache(60).await;
        assert_eq!(entity_name(&cache.get().await), "first");

        std::fs::write(&path, registry_with("second")).unwrap();
        clock.advance(Duration::from_secs(30));
        assert_eq!(entity_name(&cache.get().await), "first", "within the ttl");
        clock.advance(Duration::from_secs(30));
        let got = cache.get().await;
        assert_eq!(entity_name(&got), "second", "after the ttl");
        assert_eq!(got.generation, 1);

        std::fs::write(&path, b"\xff\xff\xff not a registry").unwrap();
        clock.advance(Duration::from_secs(61));
        let got = cache.get().await;
        assert_eq!(entity_name(&got), "second", "last good kept");
        let (_, err) = cache.last_error().expect("error recorded");
        assert!(
            err.contains("registry.db") && err.contains("not a valid"),
            "{err}"
        );

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            cache.refresh().await,
            Err(RegistryError::FileNotFound { .. })
        ));
        assert_eq!(entity_name(&cache.current()), "second");

        std::fs::write(&path, registry_with("third")).unwrap();
        clock.advance(Duration::from_secs(61));
        assert_eq!(entity_name(&cache.get().await), "third");
        assert!(cache.last_error().is_none());
    }

    #[tokio::test]
    async fn an_unchanged_file_is_not_decoded_again() {
        let (_dir, path, clock, cache) = file_cache(60).await;
        let first = cache.current();
        // Rewritten with the same bytes (a new modification time): the same decoded snapshot
        // stays, its check time moves on, so the ttl counts from the check.
        std::fs::write(&path, registry_with("first")).unwrap();
        clock.advance(Duration::from_secs(61));
        let again = cache.get().await;
        assert!(
            Arc::ptr_eq(&first.snapshot, &again.snapshot),
            "decoded again"
        );
        assert_eq!(again.generation, 0);
        assert_eq!(again.loaded_at, clock.now());
        // Different bytes of the same length are a change.
        std::fs::write(&path, registry_with("fresh")).unwrap();
        let changed = cache.refresh().await.unwrap();
        assert_eq!(entity_name(&changed), "fresh");
        assert_eq!(changed.generation, 1);
    }

    #[tokio::test]
    async fn ttl_zero_never_expires() {
        let (_dir, path, clock, cache) = file_cache(0).await;
        std::fs::write(&path, registry_with("second")).unwrap();
        clock.advance(Duration::from_secs(86_400 * 365));
        assert_eq!(entity_name(&cache.get().await), "first");
        assert_eq!(entity_name(&cache.refresh().await.unwrap()), "second");
    }

    #[tokio::test(start_paused = true)]
    async fn background_refresher_swaps_in_new_registry() {
        let store = Arc::new(crate::store::InMemoryRegistryStore::default());
        let cache = Arc::new(
            RegistryCache::open(store.clone(), 0, Arc::new(crate::clock::SystemClock))
                .await
                .unwrap(),
        );
        let handle = cache.spawn_refresher(Duration::from_secs(5));
        let proto = Registry::decode(registry_with("bg").as_slice()).unwrap();
        store.set(RegistrySnapshot::from_proto(proto));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(entity_name(&cache.current()), "bg");
        handle.abort();
    }

    /// The registry server's cache: a registry file not written yet is an empty registry,
    /// and stays one (no error) until the file appears; the plain cache refuses to open.
    #[tokio::test]
    async fn a_missing_registry_reads_as_empty_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let store = || Arc::new(FileRegistryStore::new(path.clone()));
        let clock = ManualClock::new(Utc::now());
        let e = RegistryCache::open(store(), 0, Arc::new(clock.clone()))
            .await
            .unwrap_err();
        assert!(e.is_missing_registry(), "{e}");
        let cache = RegistryCache::open_allowing_missing(store(), 0, Arc::new(clock.clone()))
            .await
            .unwrap();
        assert!(cache.current().snapshot.proto.entities.is_empty());
        assert_eq!(cache.refresh().await.unwrap().generation, 0);
        assert!(cache.last_error().is_none());
        std::fs::write(&path, registry_with("first")).unwrap();
        let loaded = cache.refresh().await.unwrap();
        assert_eq!(entity_name(&loaded), "first");
        assert_eq!(loaded.generation, 1);
    }
}
