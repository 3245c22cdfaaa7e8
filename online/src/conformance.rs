//! The one conformance suite every [`OnlineStore`] backend runs (in-memory, SQLite, Redis
//! standalone, cluster and sentinel). Each check uses its own project name, so backends can
//! share a server between runs.

use larder_protos::feast::types::{Value, value::Val};
use prost_types::Timestamp;

use larder_types::entity_key::{EntityValue, KeyVersion, serialize_entity_key};

use crate::{
    layout::ViewLayout,
    store::{OlderWrites, OnlineStore, Record, ViewRead, WriteRow},
};

fn key(id: i64) -> Vec<u8> {
    serialize_entity_key(&[("driver_id", &EntityValue::Int64(id))], KeyVersion::V3)
}

fn f32v(x: f32) -> Value {
    Value {
        val: Some(Val::FloatVal(x)),
    }
}

fn i64v(x: i64) -> Value {
    Value {
        val: Some(Val::Int64Val(x)),
    }
}

fn strv(x: &str) -> Value {
    Value {
        val: Some(Val::StringVal(x.into())),
    }
}

fn ts(seconds: i64, micros: i32) -> Timestamp {
    Timestamp {
        seconds,
        nanos: micros * 1000,
    }
}

fn layout(project: &str, view: &str) -> ViewLayout {
    ViewLayout::new(
        project,
        view,
        vec!["conv_rate".into(), "trips".into(), "name".into()],
    )
}

fn row(id: i64, conv: f32, trips: i64, name: &str, at: Timestamp) -> WriteRow {
    WriteRow {
        key: key(id),
        values: vec![Some(f32v(conv)), Some(i64v(trips)), Some(strv(name))],
        event_ts: at,
        created_ts: Some(at),
    }
}

/// The event time a backend gives back for `t` (SQLite keeps whole seconds, as Feast does).
fn stored_ts(store: &dyn OnlineStore, t: Timestamp) -> Timestamp {
    if store.describe().starts_with("sqlite") {
        Timestamp {
            seconds: t.seconds,
            nanos: 0,
        }
    } else {
        t
    }
}

async fn read_one(
    store: &dyn OnlineStore,
    l: &ViewLayout,
    features: &[usize],
    keys: &[Vec<u8>],
) -> Vec<Option<Record>> {
    let mut out = store
        .read(&[ViewRead {
            layout: l,
            features,
            keys,
        }])
        .await
        .expect("read succeeds");
    assert_eq!(out.len(), 1);
    out.pop().unwrap()
}

/// Runs every check against `store`; `tag` makes the project names unique to this run.
pub async fn run_all(store: &dyn OnlineStore, tag: &str) {
    store.check().await.expect("check succeeds on a live store");
    missing_entities_read_as_none(store, tag).await;
    round_trip_with_alignment(store, tag).await;
    nulls_and_partial_rows(store, tag).await;
    not_newer_writes_follow_the_backend_rule(store, tag).await;
    views_and_projects_are_isolated(store, tag).await;
    drop_view_removes_only_that_view(store, tag).await;
    prepared_views_read_empty_and_keep_values(store, tag).await;
    many_keys_keep_alignment(store, tag).await;
}

pub async fn missing_entities_read_as_none(store: &dyn OnlineStore, tag: &str) {
    let l = layout(&format!("missing_{tag}"), "stats");
    let got = read_one(store, &l, &[0, 1], &[key(1), key(2)]).await;
    assert_eq!(
        got,
        vec![None, None],
        "{}: an unknown entity is None",
        store.describe()
    );
}

pub async fn round_trip_with_alignment(store: &dyn OnlineStore, tag: &str) {
    let l = layout(&format!("rt_{tag}"), "stats");
    let t1 = ts(1_618_225_182, 123_456);
    let t2 = ts(1_618_225_190, 0);
    let out = store
        .write(&l, &[row(1, 0.5, 146, "a", t1), row(2, 0.25, 7, "é", t2)])
        .await
        .unwrap();
    assert_eq!(out.written, 2);
    // Keys in another order than written, a missing one in the middle, features reordered.
    let got = read_one(store, &l, &[2, 0], &[key(2), key(99), key(1)]).await;
    assert_eq!(
        got,
        vec![
            Some(Record {
                event_ts: stored_ts(store, t2),
                values: vec![Some(strv("é")), Some(f32v(0.25))]
            }),
            None,
            Some(Record {
                event_ts: stored_ts(store, t1),
                values: vec![Some(strv("a")), Some(f32v(0.5))]
            }),
        ],
        "{}",
        store.describe()
    );
}

pub async fn nulls_and_partial_rows(store: &dyn OnlineStore, tag: &str) {
    let l = layout(&format!("nulls_{tag}"), "stats");
    let t = ts(1_700_000_000, 0);
    let w = WriteRow {
        key: key(5),
        values: vec![Some(Value::default()), Some(i64v(3)), None],
        event_ts: t,
        created_ts: None,
    };
    store.write(&l, &[w]).await.unwrap();
    let got = read_one(store, &l, &[0, 1, 2], &[key(5)]).await;
    assert_eq!(
        got,
        vec![Some(Record {
            event_ts: t,
            values: vec![Some(Value::default()), Some(i64v(3)), None],
        })],
        "{}: a stored null is an empty Value, a never-written feature is None",
        store.describe()
    );
}

pub async fn not_newer_writes_follow_the_backend_rule(store: &dyn OnlineStore, tag: &str) {
    let l = layout(&format!("older_{tag}"), "stats");
    let new = ts(1_700_000_100, 0);
    let old = ts(1_700_000_000, 0);
    store
        .write(&l, &[row(1, 0.9, 9, "new", new)])
        .await
        .unwrap();
    let out = store
        .write(
            &l,
            &[row(1, 0.1, 1, "old", old), row(1, 0.2, 2, "same", new)],
        )
        .await
        .unwrap();
    let got = read_one(store, &l, &[2], &[key(1)]).await;
    let name = got[0].as_ref().unwrap().values[0].clone();
    match store.older_writes() {
        OlderWrites::Skip => {
            assert_eq!(out.skipped_not_newer, 2, "{}", store.describe());
            assert_eq!(name, Some(strv("new")), "{}", store.describe());
            // Within one batch too: the second, older row for the same key is skipped.
            let l2 = layout(&format!("older_batch_{tag}"), "stats");
            let out = store
                .write(
                    &l2,
                    &[row(3, 0.1, 1, "first", new), row(3, 0.2, 2, "second", old)],
                )
                .await
                .unwrap();
            assert_eq!(
                (out.written, out.skipped_not_newer),
                (1, 1),
                "{}",
                store.describe()
            );
        }
        OlderWrites::Overwrite => {
            assert_eq!(out.skipped_not_newer, 0, "{}", store.describe());
            assert_eq!(name, Some(strv("same")), "{}", store.describe());
        }
    }
}

pub async fn views_and_projects_are_isolated(store: &dyn OnlineStore, tag: &str) {
    let a = layout(&format!("iso_a_{tag}"), "stats");
    let b = layout(&format!("iso_b_{tag}"), "stats");
    let other = ViewLayout::new(&format!("iso_a_{tag}"), "other", vec!["conv_rate".into()]);
    let t = ts(1_700_000_000, 0);
    store.write(&a, &[row(1, 0.5, 1, "a", t)]).await.unwrap();
    assert_eq!(
        read_one(store, &b, &[0], &[key(1)]).await,
        vec![None],
        "{}",
        store.describe()
    );
    assert_eq!(
        read_one(store, &other, &[0], &[key(1)]).await,
        vec![None],
        "{}",
        store.describe()
    );
    // Two views in one read.
    store
        .write(
            &other,
            &[WriteRow {
                key: key(1),
                values: vec![Some(f32v(7.0))],
                event_ts: t,
                created_ts: None,
            }],
        )
        .await
        .unwrap();
    let keys = [key(1)];
    let got = store
        .read(&[
            ViewRead {
                layout: &a,
                features: &[1],
                keys: &keys,
            },
            ViewRead {
                layout: &other,
                features: &[0],
                keys: &keys,
            },
        ])
        .await
        .unwrap();
    assert_eq!(got[0][0].as_ref().unwrap().values, vec![Some(i64v(1))]);
    assert_eq!(got[1][0].as_ref().unwrap().values, vec![Some(f32v(7.0))]);
}

/// A view prepared and never written reads as missing; preparing a written view again
/// keeps its values.
pub async fn prepared_views_read_empty_and_keep_values(store: &dyn OnlineStore, tag: &str) {
    let project = format!("prep_{tag}");
    let a = layout(&project, "stats");
    store.prepare_view(&a).await.unwrap();
    assert_eq!(
        read_one(store, &a, &[0], &[key(1)]).await,
        vec![None],
        "{}",
        store.describe()
    );
    let t = ts(1_700_000_000, 0);
    store.write(&a, &[row(1, 0.5, 1, "a", t)]).await.unwrap();
    store.prepare_view(&a).await.unwrap();
    assert!(
        read_one(store, &a, &[0], &[key(1)]).await[0].is_some(),
        "{}: prepare_view kept the values",
        store.describe()
    );
}

pub async fn drop_view_removes_only_that_view(store: &dyn OnlineStore, tag: &str) {
    let project = format!("drop_{tag}");
    let a = layout(&project, "stats");
    let b = ViewLayout::new(&project, "other", vec!["conv_rate".into()]);
    let t = ts(1_700_000_000, 0);
    store
        .write(&a, &[row(1, 0.5, 1, "a", t), row(2, 0.5, 1, "b", t)])
        .await
        .unwrap();
    store
        .write(
            &b,
            &[WriteRow {
                key: key(1),
                values: vec![Some(f32v(7.0))],
                event_ts: t,
                created_ts: None,
            }],
        )
        .await
        .unwrap();
    store.drop_view(&a).await.unwrap();
    assert_eq!(
        read_one(store, &a, &[0], &[key(1), key(2)]).await,
        vec![None, None],
        "{}",
        store.describe()
    );
    let got = read_one(store, &b, &[0], &[key(1)]).await;
    assert_eq!(
        got[0].as_ref().map(|r| r.values.clone()),
        Some(vec![Some(f32v(7.0))]),
        "{}",
        store.describe()
    );
}

pub async fn many_keys_keep_alignment(store: &dyn OnlineStore, tag: &str) {
    let l = layout(&format!("many_{tag}"), "stats");
    let t = ts(1_700_000_000, 0);
    let rows: Vec<WriteRow> = (0..1200)
        .map(|i| row(i, i as f32, i, &i.to_string(), t))
        .collect();
    store.write(&l, &rows).await.unwrap();
    let keys: Vec<Vec<u8>> = (0..1300).rev().map(key).collect();
    let got = read_one(store, &l, &[1], &keys).await;
    for (i, rec) in (0..1300i64).rev().zip(&got) {
        if i >= 1200 {
            assert!(rec.is_none(), "{}: key {i}", store.describe());
        } else {
            assert_eq!(
                rec.as_ref().unwrap().values,
                vec![Some(i64v(i))],
                "{}: key {i}",
                store.describe()
            );
        }
    }
}
