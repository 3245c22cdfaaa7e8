//! The one conformance suite every [`RegistryStore`] runs (in-memory, local file, S3, Feast's
//! SQL registry on PostgreSQL): the contract written on the trait. Each check is a public
//! async function taking a [`Fixture`] — a fresh, empty store — and
//! [`registry_store_suite!`](crate::registry_store_suite) turns them into one `#[tokio::test]`
//! per check for a fixture factory.

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;
use larder_protos::feast::core::{
    self as core, DataSource, Entity, EntitySpecV2, FeatureService, FeatureServiceSpec,
    FeatureView, FeatureViewSpec, FeatureViewState, LabelView, LabelViewSpec, OnDemandFeatureView,
    OnDemandFeatureViewSpec, Permission, PermissionSpec, Project, ProjectSpec, SavedDataset,
    SavedDatasetSpec, StreamFeatureView, StreamFeatureViewSpec, ValidationReference,
};
use prost::Message;
use prost_types::Timestamp;

use crate::{
    error::RegistryError,
    store::{
        ChangeSet, CommitOptions, Fetched, ObjectKey, ObjectKind, RegistrySnapshot, RegistryStore,
        Revision, VersionKey,
    },
    writeback::{MetaEdit, ViewField, edit_view},
};

/// A fresh, empty registry store for one check.
pub trait Fixture: Send + Sync {
    /// A new handle onto the fixture's store: handles share the stored registry (two file
    /// stores on one path, two S3 stores on one object, ...).
    fn handle(&self) -> Arc<dyn RegistryStore>;

    /// Raw access to the stored `feast.core.Registry` bytes, for stores that keep one (file,
    /// S3, in-memory); `None` for the SQL store.
    fn blob(&self) -> Option<&dyn Blob>;
}

/// The whole stored registry of a file-style store.
#[async_trait::async_trait]
pub trait Blob: Send + Sync {
    /// The stored bytes (panics if there are none).
    async fn read(&self) -> Vec<u8>;
    /// Replaces the stored bytes.
    async fn write(&self, bytes: Vec<u8>);
}

/// One `#[tokio::test]` per conformance check, each with a fresh store from `$fixture`, an
/// `async fn() -> Box<dyn Fixture>`. Use it inside a module per backend.
#[macro_export]
macro_rules! registry_store_suite {
    ($fixture:path) => {
        $crate::registry_store_suite!(@checks $fixture;
            fresh_store_is_missing_or_empty,
            first_commit_round_trips_every_kind,
            load_if_changed_follows_commits,
            stale_revision_is_refused_and_changes_nothing,
            expected_none_on_a_non_empty_store_is_refused,
            expected_none_accepts_a_store_without_objects,
            untouched_objects_keep_their_bytes,
            unknown_registry_fields_survive_commits,
            commits_set_version_and_last_updated,
            deletes_remove_exactly_the_named_object,
            concurrent_commits_from_one_revision_one_wins,
            update_view_meta_appends_the_interval_and_keeps_other_bytes,
            version_records_round_trip_and_delete_exactly,
            infra_is_set_per_project,
        );
    };
    (@checks $fixture:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let fixture = $fixture().await;
                $crate::conformance::$check(&*fixture).await;
            }
        )*
    };
}

pub use crate::store::FEAST_SQL_SCHEMA;

// --- objects ---------------------------------------------------------------------------------

/// Appends field 999 (unknown to every Feast message) to a serialized message, as a newer
/// Feast release might write one.
pub fn with_unknown_field(mut bytes: Vec<u8>, payload: &[u8]) -> Vec<u8> {
    use prost::encoding::{WireType, encode_key, encode_varint};
    encode_key(999, WireType::LengthDelimited, &mut bytes);
    encode_varint(payload.len() as u64, &mut bytes);
    bytes.extend_from_slice(payload);
    bytes
}

pub fn project(name: &str) -> Vec<u8> {
    Project {
        spec: Some(ProjectSpec {
            name: name.into(),
            description: format!("project {name}"),
            ..Default::default()
        }),
        meta: None,
    }
    .encode_to_vec()
}

pub fn entity(project: &str, name: &str, description: &str) -> Vec<u8> {
    Entity {
        spec: Some(EntitySpecV2 {
            name: name.into(),
            project: project.into(),
            join_key: format!("{name}_id"),
            description: description.into(),
            ..Default::default()
        }),
        meta: None,
    }
    .encode_to_vec()
}

pub fn feature_view(project: &str, name: &str) -> Vec<u8> {
    FeatureView {
        spec: Some(FeatureViewSpec {
            name: name.into(),
            project: project.into(),
            entities: vec!["driver".into()],
            online: true,
            ..Default::default()
        }),
        meta: Some(core::FeatureViewMeta {
            created_timestamp: Some(ts(100)),
            ..Default::default()
        }),
    }
    .encode_to_vec()
}

pub fn stream_feature_view(project: &str, name: &str) -> Vec<u8> {
    StreamFeatureView {
        spec: Some(StreamFeatureViewSpec {
            name: name.into(),
            project: project.into(),
            ..Default::default()
        }),
        meta: None,
    }
    .encode_to_vec()
}

pub fn data_source(project: &str, name: &str) -> Vec<u8> {
    DataSource {
        name: name.into(),
        project: project.into(),
        timestamp_field: "event_timestamp".into(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A version record of a feature view, holding `view_bytes` (created at whole seconds, as
/// Feast's SQL table keeps them).
pub fn version_record(project: &str, view: &str, number: i32, view_bytes: &[u8]) -> Vec<u8> {
    core::FeatureViewVersionRecord {
        feature_view_name: view.into(),
        project_id: project.into(),
        version_number: number,
        feature_view_type: "feature_view".into(),
        feature_view_proto: view_bytes.to_vec(),
        created_timestamp: Some(ts(1_700_000_000 + i64::from(number))),
        description: String::new(),
        version_id: format!("00000000-0000-4000-8000-{number:012}"),
    }
    .encode_to_vec()
}

/// One object of every kind in `project` (the project itself first), each carrying an unknown
/// field.
pub fn one_of_every_kind(project_name: &str) -> Vec<(ObjectKind, Vec<u8>)> {
    let p = project_name;
    let spec_objects = vec![
        (ObjectKind::Project, project(p)),
        (ObjectKind::Entity, entity(p, "driver", "a driver")),
        (ObjectKind::DataSource, data_source(p, "stats_source")),
        (ObjectKind::FeatureView, feature_view(p, "stats")),
        (
            ObjectKind::StreamFeatureView,
            stream_feature_view(p, "stream_stats"),
        ),
        (
            ObjectKind::OnDemandFeatureView,
            OnDemandFeatureView {
                spec: Some(OnDemandFeatureViewSpec {
                    name: "transformed".into(),
                    project: p.into(),
                    ..Default::default()
                }),
                meta: None,
            }
            .encode_to_vec(),
        ),
        (
            ObjectKind::LabelView,
            LabelView {
                spec: Some(LabelViewSpec {
                    name: "labels".into(),
                    project: p.into(),
                    ..Default::default()
                }),
                meta: None,
            }
            .encode_to_vec(),
        ),
        (
            ObjectKind::FeatureService,
            FeatureService {
                spec: Some(FeatureServiceSpec {
                    name: "service".into(),
                    project: p.into(),
                    ..Default::default()
                }),
                meta: None,
            }
            .encode_to_vec(),
        ),
        (
            ObjectKind::SavedDataset,
            SavedDataset {
                spec: Some(SavedDatasetSpec {
                    name: "saved".into(),
                    project: p.into(),
                    ..Default::default()
                }),
                meta: None,
            }
            .encode_to_vec(),
        ),
        (
            ObjectKind::ValidationReference,
            ValidationReference {
                name: "reference".into(),
                project: p.into(),
                reference_dataset_name: "saved".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            ObjectKind::Permission,
            Permission {
                spec: Some(PermissionSpec {
                    name: "readers".into(),
                    project: p.into(),
                    ..Default::default()
                }),
                meta: None,
            }
            .encode_to_vec(),
        ),
    ];
    spec_objects
        .into_iter()
        .map(|(kind, bytes)| (kind, with_unknown_field(bytes, b"from a newer feast")))
        .collect()
}

fn ts(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

fn key(kind: ObjectKind, project: &str, name: &str) -> ObjectKey {
    ObjectKey::new(kind, project, name).expect("a valid key")
}

fn changes(objects: &[(ObjectKind, Vec<u8>)]) -> ChangeSet {
    let mut set = ChangeSet::new();
    for (kind, bytes) in objects {
        set.upsert(*kind, bytes.clone()).expect("a valid object");
    }
    set
}

async fn commit(
    store: &dyn RegistryStore,
    expected: Option<&Revision>,
    set: &ChangeSet,
) -> Result<Revision, RegistryError> {
    store.commit(expected, set, &CommitOptions::default()).await
}

async fn objects(store: &dyn RegistryStore) -> (BTreeMap<ObjectKey, Bytes>, Option<Revision>) {
    let stored = store.load_objects().await.expect("load_objects succeeds");
    (stored.objects, stored.revision)
}

fn expected_objects(objects: &[(ObjectKind, Vec<u8>)]) -> BTreeMap<ObjectKey, Bytes> {
    objects
        .iter()
        .map(|(kind, bytes)| {
            (
                kind.key_of(bytes).expect("a valid object"),
                Bytes::from(bytes.clone()),
            )
        })
        .collect()
}

fn count(snapshot: &RegistrySnapshot, kind: ObjectKind) -> usize {
    let r = &snapshot.proto;
    match kind {
        ObjectKind::Project => r.projects.len(),
        ObjectKind::Entity => r.entities.len(),
        ObjectKind::DataSource => r.data_sources.len(),
        ObjectKind::FeatureView => r.feature_views.len(),
        ObjectKind::StreamFeatureView => r.stream_feature_views.len(),
        ObjectKind::OnDemandFeatureView => r.on_demand_feature_views.len(),
        ObjectKind::LabelView => r.label_views.len(),
        ObjectKind::FeatureService => r.feature_services.len(),
        ObjectKind::SavedDataset => r.saved_datasets.len(),
        ObjectKind::ValidationReference => r.validation_references.len(),
        ObjectKind::Permission => r.permissions.len(),
    }
}

fn assert_conflict<T: std::fmt::Debug>(store: &dyn RegistryStore, got: Result<T, RegistryError>) {
    match got {
        Err(RegistryError::Conflict { location, .. }) => {
            assert_eq!(location, store.location(), "the conflict names the store")
        }
        other => panic!("{}: expected a conflict, got {other:?}", store.location()),
    }
}

/// A store's state, to show that a refused commit changed nothing.
async fn state(store: &dyn RegistryStore) -> (BTreeMap<ObjectKey, Bytes>, Option<Revision>) {
    objects(store).await
}

// --- checks ----------------------------------------------------------------------------------

/// A fresh store's load fails as "no registry" or returns an empty registry.
pub async fn fresh_store_is_missing_or_empty(f: &dyn Fixture) {
    let store = f.handle();
    match store.load().await {
        Ok(snapshot) => {
            for kind in ObjectKind::ALL {
                assert_eq!(count(&snapshot, kind), 0, "{}: no {kind}", store.location());
            }
            assert!(objects(&*store).await.0.is_empty());
        }
        Err(RegistryError::FileNotFound { .. } | RegistryError::ObjectNotFound { .. }) => {
            assert!(store.load_objects().await.is_err());
        }
        Err(e) => panic!("{}: a fresh store fails with {e}", store.location()),
    }
}

/// A commit into an empty store (expected `None`) stores every kind byte for byte, and a load
/// right after tells the revision the commit returned.
pub async fn first_commit_round_trips_every_kind(f: &dyn Fixture) {
    let store = f.handle();
    let all = one_of_every_kind("conf");
    let revision = commit(&*store, None, &changes(&all))
        .await
        .expect("a first commit succeeds");
    let (stored, read_revision) = objects(&*store).await;
    assert_eq!(stored, expected_objects(&all), "{}", store.location());
    assert_eq!(read_revision.as_ref(), Some(&revision));

    let (snapshot, load_revision) = store.load_revised().await.unwrap();
    assert_eq!(load_revision.as_ref(), Some(&revision));
    for kind in ObjectKind::ALL {
        assert_eq!(
            count(&snapshot, kind),
            1,
            "{}: one {kind}",
            store.location()
        );
    }
    let entity_bytes = &all[1].1;
    assert_eq!(
        snapshot.proto.entities[0],
        Entity::decode(entity_bytes.as_slice()).unwrap()
    );
    let view_bytes = &all[3].1;
    assert_eq!(
        snapshot.proto.feature_views[0],
        FeatureView::decode(view_bytes.as_slice()).unwrap()
    );
    assert_eq!(snapshot.proto.data_sources[0].name, "stats_source");
}

/// `load_if_changed` answers `Unchanged` at the revision of the last commit and `Changed`
/// after another one.
pub async fn load_if_changed_follows_commits(f: &dyn Fixture) {
    let store = f.handle();
    let r1 = commit(
        &*store,
        None,
        &changes(&[(ObjectKind::Project, project("conf"))]),
    )
    .await
    .unwrap();
    assert!(matches!(
        store.load_if_changed(Some(&r1)).await.unwrap(),
        Fetched::Unchanged
    ));
    let r2 = commit(
        &*store,
        Some(&r1),
        &changes(&[(ObjectKind::Entity, entity("conf", "driver", ""))]),
    )
    .await
    .unwrap();
    assert_ne!(r1, r2);
    match store.load_if_changed(Some(&r1)).await.unwrap() {
        Fetched::Changed { snapshot, revision } => {
            assert_eq!(revision, Some(r2.clone()));
            assert_eq!(snapshot.proto.entities.len(), 1);
        }
        Fetched::Unchanged => panic!("{}: a commit went unnoticed", store.location()),
    }
    assert!(matches!(
        store.load_if_changed(Some(&r2)).await.unwrap(),
        Fetched::Unchanged
    ));
}

/// A commit from a revision that is no longer current is a conflict and changes nothing.
pub async fn stale_revision_is_refused_and_changes_nothing(f: &dyn Fixture) {
    let store = f.handle();
    let r1 = commit(
        &*store,
        None,
        &changes(&[(ObjectKind::Project, project("conf"))]),
    )
    .await
    .unwrap();
    let r2 = commit(
        &*store,
        Some(&r1),
        &changes(&[(ObjectKind::Entity, entity("conf", "a", ""))]),
    )
    .await
    .unwrap();
    let before = state(&*store).await;
    assert_eq!(before.1.as_ref(), Some(&r2));
    let mut stale = changes(&[(ObjectKind::Entity, entity("conf", "b", ""))]);
    stale.delete(key(ObjectKind::Entity, "conf", "a"));
    assert_conflict(&*store, commit(&*store, Some(&r1), &stale).await);
    assert_eq!(
        state(&*store).await,
        before,
        "a refused commit changed the store"
    );
    assert!(matches!(
        store.load_if_changed(Some(&r2)).await.unwrap(),
        Fetched::Unchanged
    ));
}

/// Expected `None` ("I saw no registry") on a store that has objects is a conflict.
pub async fn expected_none_on_a_non_empty_store_is_refused(f: &dyn Fixture) {
    let store = f.handle();
    commit(
        &*store,
        None,
        &changes(&[(ObjectKind::Project, project("conf"))]),
    )
    .await
    .unwrap();
    let before = state(&*store).await;
    assert_conflict(
        &*store,
        commit(
            &*store,
            None,
            &changes(&[(ObjectKind::Project, project("other"))]),
        )
        .await,
    );
    assert_eq!(state(&*store).await, before);
}

/// Expected `None` is accepted by a registry that exists but holds no objects.
pub async fn expected_none_accepts_a_store_without_objects(f: &dyn Fixture) {
    let store = f.handle();
    let r1 = commit(
        &*store,
        None,
        &changes(&[(ObjectKind::Project, project("conf"))]),
    )
    .await
    .unwrap();
    let mut delete = ChangeSet::new();
    delete.delete(ObjectKey::project("conf").unwrap());
    commit(&*store, Some(&r1), &delete).await.unwrap();
    assert!(objects(&*store).await.0.is_empty());
    commit(
        &*store,
        None,
        &changes(&[(ObjectKind::Project, project("again"))]),
    )
    .await
    .expect("an empty registry accepts expected None");
    assert_eq!(
        objects(&*store).await.0.into_keys().collect::<Vec<_>>(),
        [ObjectKey::project("again").unwrap()]
    );
}

/// Objects a change set does not name keep their bytes (unknown fields included); upserted
/// ones are replaced, not duplicated.
pub async fn untouched_objects_keep_their_bytes(f: &dyn Fixture) {
    let store = f.handle();
    let kept_entity = with_unknown_field(entity("conf", "kept", "untouched"), b"keep me");
    let kept_view = with_unknown_field(feature_view("conf", "stats"), b"keep me too");
    let first = [
        (ObjectKind::Project, project("conf")),
        (ObjectKind::Entity, kept_entity.clone()),
        (ObjectKind::Entity, entity("conf", "changed", "before")),
        (ObjectKind::FeatureView, kept_view.clone()),
    ];
    let r1 = commit(&*store, None, &changes(&first)).await.unwrap();
    let second = [
        (
            ObjectKind::Entity,
            with_unknown_field(entity("conf", "changed", "after"), b"new"),
        ),
        (ObjectKind::Entity, entity("conf", "added", "")),
    ];
    commit(&*store, Some(&r1), &changes(&second)).await.unwrap();
    let (stored, _) = objects(&*store).await;
    let mut want = expected_objects(&first);
    want.extend(expected_objects(&second));
    assert_eq!(stored, want, "{}", store.location());
    assert_eq!(store.load().await.unwrap().proto.entities.len(), 3);
}

/// A file-style registry's own fields unknown to Larder survive commits.
pub async fn unknown_registry_fields_survive_commits(f: &dyn Fixture) {
    let Some(blob) = f.blob() else { return };
    let store = f.handle();
    let mut registry = larder_protos::feast::core::Registry {
        registry_schema_version: "1".into(),
        version_id: "written-by-feast".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let entity_with_unknown = with_unknown_field(entity("conf", "driver", ""), b"inner");
    {
        use prost::encoding::{WireType, encode_key, encode_varint};
        for (number, bytes) in [(17, project("conf")), (1, entity_with_unknown.clone())] {
            encode_key(number, WireType::LengthDelimited, &mut registry);
            encode_varint(bytes.len() as u64, &mut registry);
            registry.extend_from_slice(&bytes);
        }
    }
    let unknown = with_unknown_field(Vec::new(), b"a registry field of a newer feast");
    registry.extend_from_slice(&unknown);
    blob.write(registry).await;

    let (_, revision) = store.load_revised().await.unwrap();
    commit(
        &*store,
        revision.as_ref(),
        &changes(&[(ObjectKind::FeatureView, feature_view("conf", "stats"))]),
    )
    .await
    .unwrap();
    let after = blob.read().await;
    assert!(
        after.windows(unknown.len()).any(|w| w == unknown),
        "{}: the unknown registry field was lost",
        store.location()
    );
    let (stored, _) = objects(&*store).await;
    assert_eq!(
        stored[&key(ObjectKind::Entity, "conf", "driver")],
        entity_with_unknown
    );
    assert_eq!(stored.len(), 3);
}

/// Commits of file-style registries set `version_id` and `last_updated` as Feast's commit does.
pub async fn commits_set_version_and_last_updated(f: &dyn Fixture) {
    if f.blob().is_none() {
        return;
    }
    let store = f.handle();
    let at = |s| CommitOptions {
        last_updated: Some(ts(s)),
    };
    let r1 = store
        .commit(
            None,
            &changes(&[(ObjectKind::Project, project("conf"))]),
            &at(1_700_000_000),
        )
        .await
        .unwrap();
    let first = store.load().await.unwrap().proto;
    assert_eq!(first.last_updated, Some(ts(1_700_000_000)));
    assert_eq!(first.registry_schema_version, "1");
    assert!(uuid::Uuid::parse_str(&first.version_id).is_ok());
    store
        .commit(
            Some(&r1),
            &changes(&[(ObjectKind::Entity, entity("conf", "driver", ""))]),
            &at(1_700_000_060),
        )
        .await
        .unwrap();
    let second = store.load().await.unwrap().proto;
    assert_eq!(second.last_updated, Some(ts(1_700_000_060)));
    assert_ne!(second.version_id, first.version_id);
}

/// A delete removes exactly the named object — not its namesakes in other projects or of other
/// kinds — and deleting a missing object fails and changes nothing.
pub async fn deletes_remove_exactly_the_named_object(f: &dyn Fixture) {
    let store = f.handle();
    let all = [
        (ObjectKind::Project, project("conf")),
        (ObjectKind::Project, project("other")),
        (ObjectKind::Entity, entity("conf", "x", "")),
        (ObjectKind::Entity, entity("other", "x", "")),
        (ObjectKind::FeatureView, feature_view("conf", "x")),
        (ObjectKind::DataSource, data_source("conf", "x")),
    ];
    let r1 = commit(&*store, None, &changes(&all)).await.unwrap();
    let mut delete = ChangeSet::new();
    delete.delete(key(ObjectKind::Entity, "conf", "x"));
    let r2 = commit(&*store, Some(&r1), &delete).await.unwrap();
    let (stored, _) = objects(&*store).await;
    let mut want = expected_objects(&all);
    want.remove(&key(ObjectKind::Entity, "conf", "x"));
    assert_eq!(stored, want, "{}", store.location());

    let before = state(&*store).await;
    let mut missing = changes(&[(ObjectKind::Entity, entity("conf", "y", ""))]);
    missing.delete(key(ObjectKind::Entity, "conf", "x"));
    match commit(&*store, Some(&r2), &missing).await {
        Err(RegistryError::ObjectMissing {
            kind,
            name,
            project,
        }) => assert_eq!((kind, &*name, &*project), ("entity", "x", "conf")),
        other => panic!("{}: deleting a missing object: {other:?}", store.location()),
    }
    assert_eq!(state(&*store).await, before);
}

/// Of two commits from the same revision, run at once through two handles, exactly one wins;
/// the other is a conflict.
pub async fn concurrent_commits_from_one_revision_one_wins(f: &dyn Fixture) {
    let (a, b) = (f.handle(), f.handle());
    let mut revision = commit(
        &*a,
        None,
        &changes(&[(ObjectKind::Project, project("conf"))]),
    )
    .await
    .unwrap();
    for round in 0..4 {
        let (name_a, name_b) = (format!("a{round}"), format!("b{round}"));
        let set_a = changes(&[(ObjectKind::Entity, entity("conf", &name_a, ""))]);
        let set_b = changes(&[(ObjectKind::Entity, entity("conf", &name_b, ""))]);
        let (got_a, got_b) = tokio::join!(
            commit(&*a, Some(&revision), &set_a),
            commit(&*b, Some(&revision), &set_b)
        );
        let (winner, loser, won, lost) = match (got_a, got_b) {
            (Ok(r), Err(e)) => (r, Err::<Revision, _>(e), name_a, name_b),
            (Err(e), Ok(r)) => (r, Err(e), name_b, name_a),
            (a_result, b_result) => panic!(
                "{}: round {round}: exactly one commit must win, got {a_result:?} and {b_result:?}",
                a.location()
            ),
        };
        assert_conflict(&*a, loser);
        let (stored, now) = objects(&*a).await;
        assert_eq!(now.as_ref(), Some(&winner));
        assert!(stored.contains_key(&key(ObjectKind::Entity, "conf", &won)));
        assert!(!stored.contains_key(&key(ObjectKind::Entity, "conf", &lost)));
        revision = winner;
    }
}

/// `update_view_meta` appends the interval and sets state and last update of exactly one view,
/// leaving the rest of its bytes (unknown fields included) and every other object as they were.
pub async fn update_view_meta_appends_the_interval_and_keeps_other_bytes(f: &dyn Fixture) {
    let store = f.handle();
    let view = with_unknown_field(feature_view("conf", "stats"), b"view extension");
    let stream = stream_feature_view("conf", "stream_stats");
    let all = [
        (ObjectKind::Project, project("conf")),
        (ObjectKind::Entity, entity("conf", "driver", "")),
        (ObjectKind::FeatureView, view.clone()),
        (ObjectKind::FeatureView, feature_view("conf", "other")),
        (ObjectKind::StreamFeatureView, stream.clone()),
    ];
    let r1 = commit(&*store, None, &changes(&all)).await.unwrap();
    let edit = MetaEdit {
        state: FeatureViewState::AvailableOnline,
        last_updated: ts(1_700_000_500),
        append_interval: Some((ts(1_700_000_000), ts(1_700_000_400))),
    };
    store
        .update_view_meta("conf", ViewField::FeatureView, "stats", &edit)
        .await
        .expect("update_view_meta succeeds");
    let stream_edit = MetaEdit {
        append_interval: Some((ts(1), ts(2))),
        ..edit.clone()
    };
    store
        .update_view_meta(
            "conf",
            ViewField::StreamFeatureView,
            "stream_stats",
            &stream_edit,
        )
        .await
        .expect("update_view_meta of a stream feature view succeeds");

    let (stored, revision) = objects(&*store).await;
    let mut want = expected_objects(&all);
    want.insert(
        key(ObjectKind::FeatureView, "conf", "stats"),
        edit_view(&view, &edit).unwrap().into(),
    );
    want.insert(
        key(ObjectKind::StreamFeatureView, "conf", "stream_stats"),
        edit_view(&stream, &stream_edit).unwrap().into(),
    );
    assert_eq!(stored, want, "{}", store.location());
    assert_ne!(revision, Some(r1.clone()));
    assert!(matches!(
        store.load_if_changed(Some(&r1)).await.unwrap(),
        Fetched::Changed { .. }
    ));
    let snapshot = store.load().await.unwrap();
    let meta = snapshot
        .proto
        .feature_views
        .iter()
        .find(|v| v.spec.as_ref().unwrap().name == "stats")
        .and_then(|v| v.meta.clone())
        .unwrap();
    assert_eq!(meta.materialization_intervals.len(), 1);
    assert_eq!(meta.state, FeatureViewState::AvailableOnline as i32);
    assert_eq!(meta.created_timestamp, Some(ts(100)));
    // A commit from the revision read before the meta edit is now stale.
    assert_conflict(
        &*store,
        commit(
            &*store,
            Some(&r1),
            &changes(&[(ObjectKind::Entity, entity("conf", "late", ""))]),
        )
        .await,
    );
}

/// Version records committed with their views come back from `load_objects` byte for byte and
/// from `load` as the registry's version history; a commit deletes exactly the record named,
/// refuses a missing one, and leaves the other records as they were.
pub async fn version_records_round_trip_and_delete_exactly(f: &dyn Fixture) {
    let store = f.handle();
    let view = feature_view("conf", "stats");
    let other = feature_view("other", "stats");
    let records = [
        version_record("conf", "stats", 0, &view),
        version_record("conf", "stats", 1, &view),
        version_record("other", "stats", 0, &other),
    ];
    let mut set = changes(&[
        (ObjectKind::Project, project("conf")),
        (ObjectKind::Project, project("other")),
        (ObjectKind::FeatureView, view.clone()),
        (ObjectKind::FeatureView, other.clone()),
    ]);
    for r in &records {
        set.upsert_version(r.clone()).expect("a valid record");
    }
    assert_eq!(set.projects().len(), 2);
    let r1 = commit(&*store, None, &set).await.unwrap();
    let stored = store.load_objects().await.unwrap();
    let vkey = |p: &str, n| VersionKey::new(p, "stats", n).unwrap();
    let want: BTreeMap<VersionKey, Bytes> = [
        (vkey("conf", 0), &records[0]),
        (vkey("conf", 1), &records[1]),
        (vkey("other", 0), &records[2]),
    ]
    .into_iter()
    .map(|(k, b)| (k, Bytes::from(b.clone())))
    .collect();
    assert_eq!(stored.versions, want, "{}", store.location());
    assert_eq!(stored.objects.len(), 4);
    let history = store
        .load()
        .await
        .unwrap()
        .proto
        .feature_view_version_history;
    let mut got: Vec<Vec<u8>> = history
        .expect("a version history")
        .records
        .iter()
        .map(|r| r.encode_to_vec())
        .collect();
    got.sort();
    let mut want_records = records.to_vec();
    want_records.sort();
    assert_eq!(got, want_records, "{}", store.location());

    let mut delete = ChangeSet::new();
    delete.delete_version(vkey("conf", 0));
    let r2 = commit(&*store, Some(&r1), &delete).await.unwrap();
    let after = store.load_objects().await.unwrap();
    let mut want_after = want.clone();
    want_after.remove(&vkey("conf", 0));
    assert_eq!(after.versions, want_after, "{}", store.location());
    assert_eq!(after.objects, stored.objects, "objects untouched");

    let before = state(&*store).await;
    let mut missing = ChangeSet::new();
    missing.delete_version(vkey("conf", 0));
    match commit(&*store, Some(&r2), &missing).await {
        Err(RegistryError::ObjectMissing {
            kind,
            name,
            project,
        }) => assert_eq!(
            (kind, &*name, &*project),
            ("feature view version", "stats@v0", "conf")
        ),
        other => panic!("{}: deleting a missing record: {other:?}", store.location()),
    }
    assert_eq!(state(&*store).await, before);
    assert_eq!(store.load_objects().await.unwrap().versions, want_after);
}

/// A commit's infra is what the project's `infra` reads afterwards; objects stay as they were.
pub async fn infra_is_set_per_project(f: &dyn Fixture) {
    let store = f.handle();
    let r1 = commit(
        &*store,
        None,
        &changes(&[
            (ObjectKind::Project, project("conf")),
            (ObjectKind::FeatureView, feature_view("conf", "stats")),
        ]),
    )
    .await
    .unwrap();
    let before = objects(&*store).await.0;
    let infra = core::Infra {
        infra_objects: vec![core::InfraObject {
            infra_object_class_type: "feast.infra.online_stores.sqlite.SqliteTable".into(),
            infra_object: Some(core::infra_object::InfraObject::SqliteTable(
                core::SqliteTable {
                    path: "/data/online.db".into(),
                    name: "conf_stats".into(),
                },
            )),
        }],
    };
    let mut set = ChangeSet::new();
    set.set_infra("conf", infra.encode_to_vec()).unwrap();
    assert!(!set.is_empty());
    let r2 = commit(&*store, Some(&r1), &set).await.unwrap();
    assert_ne!(r1, r2, "setting infra moves the revision on");
    assert_eq!(
        store.load().await.unwrap().infra("conf"),
        infra,
        "{}",
        store.location()
    );
    assert_eq!(objects(&*store).await.0, before);
    // Setting it again replaces it.
    let mut empty = ChangeSet::new();
    empty
        .set_infra("conf", core::Infra::default().encode_to_vec())
        .unwrap();
    commit(&*store, Some(&r2), &empty).await.unwrap();
    assert_eq!(
        store.load().await.unwrap().infra("conf"),
        core::Infra::default()
    );
}
