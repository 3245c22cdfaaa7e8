//! Golden tests of the point-in-time join on small hand-made data: every rule of spec §9.2,
//! the table of §9.3 and the cases of the Feast issues it answers.

use std::{path::Path, sync::Arc};

use datafusion::{
    arrow::{
        array::{
            ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
            TimestampMicrosecondArray, TimestampNanosecondArray,
        },
        datatypes::{DataType, Float64Type, TimeUnit},
    },
    parquet::arrow::ArrowWriter,
};

use super::*;
use datafusion::arrow::compute::concat_batches;

const H: i64 = 3_600_000_000;
/// 2021-04-12 00:00 UTC, in µs.
const DAY: i64 = 1_618_185_600_000_000;

fn at(hours: f64) -> i64 {
    DAY + (hours * H as f64) as i64
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

fn ts_col(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v))
}

/// A source batch: driver_id, conv, event_timestamp, created.
fn source(rows: &[(i64, f64, f64, f64)]) -> RecordBatch {
    RecordBatch::try_from_iter(vec![
        (
            "driver_id",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
        ),
        (
            "conv",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1))),
        ),
        (
            "event_timestamp",
            ts_col(rows.iter().map(|r| Some(at(r.2))).collect()),
        ),
        (
            "created",
            ts_col(rows.iter().map(|r| Some(at(r.3))).collect()),
        ),
    ])
    .unwrap()
}

fn entity(rows: &[(i64, f64)]) -> RecordBatch {
    RecordBatch::try_from_iter(vec![
        (
            "driver_id",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
        ),
        (
            "event_timestamp",
            ts_col(rows.iter().map(|r| Some(at(r.1))).collect()),
        ),
        (
            "row",
            Arc::new(Int32Array::from_iter_values(0..rows.len() as i32)),
        ),
    ])
    .unwrap()
}

fn view(uri: &Path, ttl_hours: Option<i64>) -> ViewJoin {
    ViewJoin {
        view: "driver_stats".into(),
        uri: uri.display().to_string(),
        field_mapping: Default::default(),
        keys: vec![("driver_id".into(), "driver_id".into())],
        features: vec![("conv".into(), "conv".into())],
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: Some("created".into()),
        ttl_micros: ttl_hours.map(|h| h * H),
    }
}

async fn run(entity: &RecordBatch, r: &Retrieval, partitions: usize) -> RecordBatch {
    let ctx = session(64 << 20, partitions).unwrap();
    let answer = point_in_time_join(&ctx, entity, r).await.unwrap();
    let batches = answer.collect().unwrap();
    assert!(batches.iter().all(|b| b.num_rows() <= OUTPUT_BATCH));
    datafusion::arrow::compute::concat_batches(&answer.schema(), &batches).unwrap()
}

fn assert_utc_micros(b: &RecordBatch, name: &str) {
    let t = b
        .schema()
        .field_with_name(name)
        .unwrap()
        .data_type()
        .clone();
    assert_eq!(
        t,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
}

fn ints(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .iter()
        .collect()
}

fn floats(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<Float64Type>()
        .iter()
        .collect()
}

/// The §9.3 data: driver 1 at 10:00, 11:00 (created d2), 11:00 (created d3), 12:00; driver 2
/// at 09:00.
fn section_9_3(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("stats.parquet");
    write_parquet(
        &path,
        &source(&[
            (1, 1.0, 10.0, 10.0),
            (1, 2.0, 11.0, 24.0 + 2.0),
            (1, 3.0, 11.0, 24.0 + 3.0),
            (1, 4.0, 12.0, 12.0),
            (2, 5.0, 9.0, 9.0),
        ]),
    );
    path
}

#[tokio::test]
async fn the_table_of_section_9_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = section_9_3(dir.path());
    let e = entity(&[
        (1, 11.5),
        (1, 12.0),
        (1, 13.0),
        (1, 13.0 + 1.0 / 3600.0),
        (2, 10.5),
        (1, 9.0),
        (3, 11.5),
        (1, 11.5),
    ]);
    let r = Retrieval {
        views: vec![view(&path, Some(1))],
        filter_by_created_timestamp: false,
    };
    for partitions in [1, 2, 3] {
        let out = run(&e, &r, partitions).await;
        assert_eq!(
            floats(&out, "conv"),
            vec![
                Some(3.0), // the later created of two rows at 11:00 (feast#3360)
                Some(4.0),
                Some(4.0), // exactly ttl: inclusive
                None,      // one second past the ttl: null, row kept (feast#6787)
                None,      // candidate too old
                None,      // every candidate newer
                None,      // no rows at all
                Some(3.0), // the duplicate entity row is kept
            ]
        );
        // Input order, extra columns passed through, the timestamp column as UTC.
        assert_eq!(
            out.column_by_name("row")
                .unwrap()
                .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                .values()
                .to_vec(),
            (0..8).collect::<Vec<_>>()
        );
        assert_utc_micros(&out, "event_timestamp");
        assert_eq!(
            out.schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>(),
            ["driver_id", "event_timestamp", "row", "conv"]
        );
    }
    // ttl 0 (or none): no lower bound.
    let r = Retrieval {
        views: vec![view(&path, None)],
        filter_by_created_timestamp: false,
    };
    let out = run(&e, &r, 2).await;
    assert_eq!(
        floats(&out, "conv"),
        vec![
            Some(3.0),
            Some(4.0),
            Some(4.0),
            Some(4.0),
            Some(5.0),
            None,
            None,
            Some(3.0)
        ]
    );
}

/// `filter_by_created_timestamp`: a row created after T is not a candidate.
#[tokio::test]
async fn created_after_the_entity_time_is_filtered_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = section_9_3(dir.path());
    let e = entity(&[(1, 11.5), (1, 24.0 + 2.5), (1, 48.0)]);
    let mut r = Retrieval {
        views: vec![view(&path, None)],
        filter_by_created_timestamp: true,
    };
    let out = run(&e, &r, 2).await;
    // 11:30: both 11:00 rows were created later (d2, d3), so 10:00 wins; at d2+0:30 the d2 row
    // is visible but not yet the d3 one, and 12:00 (created 12:00) beats both.
    assert_eq!(floats(&out, "conv"), vec![Some(1.0), Some(4.0), Some(4.0)]);
    r.filter_by_created_timestamp = false;
    let out = run(&e, &r, 2).await;
    assert_eq!(floats(&out, "conv"), vec![Some(3.0), Some(4.0), Some(4.0)]);
}

/// A temporary directory with an empty `src` directory for a source's files.
fn source_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    (dir, src)
}

/// Rows of one key spread over several files and partitions: the best over all of them.
#[tokio::test]
async fn a_key_spread_over_files_and_partitions() {
    let (_dir, src) = source_dir();
    write_parquet(
        &src.join("a.parquet"),
        &source(&[(1, 1.0, 10.0, 0.0), (2, 7.0, 12.0, 0.0)]),
    );
    write_parquet(
        &src.join("b.parquet"),
        &source(&[(1, 2.0, 11.0, 0.0), (1, 9.0, 11.0, 1.0)]),
    );
    write_parquet(
        &src.join("c.parquet"),
        &source(&[(1, 4.0, 12.0, 0.0), (2, 8.0, 11.0, 0.0)]),
    );
    let e = entity(&[(1, 11.5), (2, 11.5), (1, 10.5), (2, 13.0), (1, 12.0)]);
    let r = Retrieval {
        views: vec![view(&src, None)],
        filter_by_created_timestamp: false,
    };
    for partitions in [1, 2, 3, 4] {
        let out = run(&e, &r, partitions).await;
        assert_eq!(
            floats(&out, "conv"),
            vec![Some(9.0), Some(8.0), Some(1.0), Some(7.0), Some(4.0)],
            "{partitions} partitions"
        );
    }
}

/// Entity rows that would not fit in the memory limit at once are joined in groups of keys
/// (each reading the source again): the same answer as in one go, row for row, with integer
/// and compound string keys.
#[tokio::test]
async fn groups_of_keys_under_a_small_memory_limit() {
    let (_dir, src) = source_dir();
    // A small deterministic generator: rows over 200 keys and 48 hours, created times with
    // ties, two files.
    let mut x = 12345u64;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let mut files = Vec::new();
    for file in ["a", "b"] {
        let rows: Vec<(i64, f64, f64, f64)> = (0..1000)
            .map(|i| {
                let ts = next(48 * 4) as f64 / 4.0;
                (next(200) as i64, i as f64, ts, ts + next(3) as f64)
            })
            .collect();
        let batch = source(&rows);
        write_parquet(&src.join(format!("{file}.parquet")), &batch);
        files.push(batch);
    }
    let e = entity(
        &(0..3000)
            .map(|_| (next(250) as i64, next(50 * 4) as f64 / 4.0))
            .collect::<Vec<_>>(),
    );
    let join = |ctx: Context, e: RecordBatch, r: Retrieval| async move {
        let answer = point_in_time_join(&ctx, &e, &r).await.unwrap();
        concat_batches(&answer.schema(), &answer.collect().unwrap()).unwrap()
    };
    let small = || session(100 << 10, 2).unwrap();
    let large = || session(64 << 20, 2).unwrap();
    assert!(key_groups(&small(), e.num_rows()) > 3);
    assert_eq!(key_groups(&large(), e.num_rows()), 1);
    let r = Retrieval {
        views: vec![view(&src, Some(6))],
        filter_by_created_timestamp: false,
    };
    let whole = join(large(), e.clone(), r.clone()).await;
    assert!(
        floats(&whole, "conv")
            .iter()
            .filter(|v| v.is_some())
            .count()
            > 1000
    );
    assert_eq!(join(small(), e.clone(), r).await, whole);

    // Compound string keys (the row-format index): the driver id as text, twice.
    let to_strings = |b: &RecordBatch| {
        let ids = b
            .column_by_name("driver_id")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let text: ArrayRef = Arc::new(StringArray::from_iter_values(
            ids.values().iter().map(|v| format!("d{v}")),
        ));
        let mut cols = b.columns().to_vec();
        cols[0] = text;
        let mut fields: Vec<datafusion::arrow::datatypes::Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[0] = datafusion::arrow::datatypes::Field::new("driver_id", DataType::Utf8, false);
        RecordBatch::try_new(
            Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
            cols,
        )
        .unwrap()
    };
    let (_dir2, src2) = source_dir();
    for (file, batch) in ["a", "b"].into_iter().zip(&files) {
        write_parquet(&src2.join(format!("{file}.parquet")), &to_strings(batch));
    }
    let mut v = view(&src2, Some(6));
    v.keys.push(("driver_id".into(), "driver_id".into()));
    let r = Retrieval {
        views: vec![v],
        filter_by_created_timestamp: false,
    };
    let e = to_strings(&e);
    let whole_strings = join(large(), e.clone(), r.clone()).await;
    assert_eq!(
        floats(&whole_strings, "conv"),
        floats(&whole, "conv"),
        "string keys answer as integer keys do"
    );
    assert_eq!(join(small(), e, r).await, whole_strings);
}

/// Exact ties (same key, event and created time) in several files: the row first in the
/// source (files in path order, rows in file order), with any number of partitions; without a
/// created column too.
#[tokio::test]
async fn exact_ties_take_the_first_row_of_the_source() {
    let (_dir, src) = source_dir();
    write_parquet(
        &src.join("b.parquet"),
        &source(&[(1, 2.0, 10.0, 10.0), (1, 3.0, 10.0, 10.0)]),
    );
    write_parquet(&src.join("a.parquet"), &source(&[(2, 9.0, 9.0, 9.0)]));
    write_parquet(
        &src.join("c.parquet"),
        &source(&[(1, 4.0, 10.0, 10.0), (2, 8.0, 9.0, 9.0)]),
    );
    write_parquet(&src.join("d.parquet"), &source(&[(2, 7.0, 9.0, 9.0)]));
    let e = entity(&[(1, 11.0), (2, 11.0)]);
    for created in [Some("created".to_string()), None] {
        let mut v = view(&src, None);
        v.created_timestamp_column = created.clone();
        let r = Retrieval {
            views: vec![v],
            filter_by_created_timestamp: false,
        };
        for partitions in [1, 2, 3, 4] {
            for _ in 0..3 {
                let out = run(&e, &r, partitions).await;
                assert_eq!(
                    floats(&out, "conv"),
                    vec![Some(2.0), Some(9.0)],
                    "{partitions} partitions, created column {created:?}"
                );
            }
        }
    }
}

/// Several views at once (one with a `field_mapping`, one entity-less, one keyed through a
/// `join_key_map`), their features after the entity columns, grouped per view.
#[tokio::test]
async fn several_views_mappings_and_entityless() {
    let dir = tempfile::tempdir().unwrap();
    let stats = section_9_3(dir.path());
    // A source whose columns are renamed by field_mapping: id → driver_id, v → trips, ts → ts.
    let mapped = dir.path().join("mapped.parquet");
    write_parquet(
        &mapped,
        &RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            ("v", Arc::new(Float64Array::from(vec![10.0, 20.0]))),
            ("t", ts_col(vec![Some(at(8.0)), Some(at(8.0))])),
        ])
        .unwrap(),
    );
    // An entity-less view: every entity row joins it, within its window.
    let global = dir.path().join("global.parquet");
    write_parquet(
        &global,
        &RecordBatch::try_from_iter(vec![
            (
                "total",
                Arc::new(Float64Array::from(vec![100.0, 200.0])) as ArrayRef,
            ),
            ("t", ts_col(vec![Some(at(10.0)), Some(at(12.0))])),
        ])
        .unwrap(),
    );
    let e = RecordBatch::try_from_iter(vec![
        (
            "driver_id",
            Arc::new(Int64Array::from(vec![1, 2, 1])) as ArrayRef,
        ),
        ("origin", Arc::new(Int64Array::from(vec![2, 1, 9]))),
        (
            "event_timestamp",
            ts_col(vec![Some(at(11.5)), Some(at(12.5)), Some(at(9.5))]),
        ),
    ])
    .unwrap();
    let mut by_origin = view(&mapped, None);
    by_origin.view = "mapped".into();
    by_origin.field_mapping = [("id", "driver_id"), ("v", "trips"), ("t", "ts")]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    by_origin.keys = vec![("driver_id".into(), "origin".into())];
    by_origin.features = vec![("trips".into(), "origin__trips".into())];
    by_origin.timestamp_field = "ts".into();
    by_origin.created_timestamp_column = None;
    let entityless = ViewJoin {
        view: "global".into(),
        uri: global.display().to_string(),
        field_mapping: Default::default(),
        keys: vec![],
        features: vec![("total".into(), "total".into())],
        timestamp_field: "t".into(),
        created_timestamp_column: None,
        ttl_micros: Some(H),
    };
    let r = Retrieval {
        views: vec![view(&stats, None), by_origin, entityless],
        filter_by_created_timestamp: false,
    };
    let out = run(&e, &r, 2).await;
    assert_eq!(
        out.schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        [
            "driver_id",
            "origin",
            "event_timestamp",
            "conv",
            "origin__trips",
            "total"
        ]
    );
    assert_eq!(floats(&out, "conv"), vec![Some(3.0), Some(5.0), None]);
    assert_eq!(
        floats(&out, "origin__trips"),
        vec![Some(20.0), Some(10.0), None]
    );
    // 11:30 → the 10:00 row is 1.5 h old (ttl 1 h): null; 12:30 → 12:00; 09:30 → none yet.
    assert_eq!(floats(&out, "total"), vec![None, Some(200.0), None]);
}

/// Keys of two columns, one a string; entity columns of another integer width and a time zone
/// other than UTC (the same instants).
#[tokio::test]
async fn compound_string_keys_widths_and_zones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.parquet");
    write_parquet(
        &path,
        &RecordBatch::try_from_iter(vec![
            (
                "city",
                Arc::new(StringArray::from(vec!["a", "a", "b"])) as ArrayRef,
            ),
            ("id", Arc::new(Int64Array::from(vec![1, 2, 1]))),
            ("f", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0]))),
            (
                "ts",
                Arc::new(
                    TimestampNanosecondArray::from(vec![at(1.0) * 1000; 3]).with_timezone("UTC"),
                ),
            ),
        ])
        .unwrap(),
    );
    // 02:00+02:00 is 00:00 UTC (before the rows); 03:30+02:00 is 01:30 UTC.
    let local = |h: f64| at(h - 2.0);
    let e = RecordBatch::try_from_iter(vec![
        (
            "city",
            Arc::new(StringArray::from(vec!["a", "b", "a", "b", "c"])) as ArrayRef,
        ),
        ("id", Arc::new(Int32Array::from(vec![2, 1, 1, 1, 1]))),
        (
            "event_timestamp",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    local(3.5),
                    local(3.5),
                    local(3.5),
                    local(2.0),
                    local(3.5),
                ])
                .with_timezone("+02:00"),
            ),
        ),
    ])
    .unwrap();
    let v = ViewJoin {
        view: "v".into(),
        uri: path.display().to_string(),
        field_mapping: Default::default(),
        keys: vec![("city".into(), "city".into()), ("id".into(), "id".into())],
        features: vec![("f".into(), "f".into())],
        timestamp_field: "ts".into(),
        created_timestamp_column: None,
        ttl_micros: None,
    };
    let r = Retrieval {
        views: vec![v],
        filter_by_created_timestamp: false,
    };
    let out = run(&e, &r, 2).await;
    assert_eq!(
        floats(&out, "f"),
        vec![Some(2.0), Some(3.0), Some(1.0), None, None]
    );
    assert_utc_micros(&out, "event_timestamp");
}

/// Entity rows with a null key or time get nulls; an empty entity table an empty answer.
#[tokio::test]
async fn nulls_and_empty_entity_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = section_9_3(dir.path());
    let e = RecordBatch::try_from_iter(vec![
        (
            "driver_id",
            Arc::new(Int64Array::from(vec![None, Some(1), Some(1)])) as ArrayRef,
        ),
        (
            "event_timestamp",
            ts_col(vec![Some(at(12.0)), None, Some(at(12.0))]),
        ),
    ])
    .unwrap();
    let r = Retrieval {
        views: vec![view(&path, None)],
        filter_by_created_timestamp: false,
    };
    assert_eq!(
        floats(&run(&e, &r, 2).await, "conv"),
        vec![None, None, Some(4.0)]
    );
    let empty = e.slice(0, 0);
    let out = run(&empty, &r, 2).await;
    assert_eq!(out.num_rows(), 0);
    assert_eq!(out.num_columns(), 3);
}

/// The entity table's time column: `event_timestamp`, else the only timestamp column (its
/// name kept), else an error naming the columns.
#[tokio::test]
async fn the_entity_time_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = section_9_3(dir.path());
    let r = Retrieval {
        views: vec![view(&path, None)],
        filter_by_created_timestamp: false,
    };
    let e = RecordBatch::try_from_iter(vec![
        ("driver_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("when", ts_col(vec![Some(at(12.0))])),
    ])
    .unwrap();
    let out = run(&e, &r, 1).await;
    assert_eq!(floats(&out, "conv"), vec![Some(4.0)]);
    assert!(out.schema().column_with_name("when").is_some());

    let ctx = session(64 << 20, 1).unwrap();
    let none = RecordBatch::try_from_iter(vec![(
        "driver_id",
        Arc::new(Int64Array::from(vec![1])) as ArrayRef,
    )])
    .unwrap();
    let err = point_in_time_join(&ctx, &none, &r).await.unwrap_err();
    assert!(
        err.to_string().contains("no event_timestamp column"),
        "{err}"
    );
    let two = RecordBatch::try_from_iter(vec![
        ("driver_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("a", ts_col(vec![Some(at(12.0))])),
        ("b", ts_col(vec![Some(at(12.0))])),
    ])
    .unwrap();
    let err = point_in_time_join(&ctx, &two, &r).await.unwrap_err();
    assert!(
        err.to_string().contains("2 other timestamp columns"),
        "{err}"
    );
}

/// Bad input: each error names what is wrong.
#[tokio::test]
async fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = section_9_3(dir.path());
    let ctx = session(64 << 20, 1).unwrap();
    let e = entity(&[(1, 12.0)]);
    let err_of = |v: ViewJoin| {
        let ctx = &ctx;
        let e = &e;
        async move {
            let r = Retrieval {
                views: vec![v],
                filter_by_created_timestamp: false,
            };
            point_in_time_join(ctx, e, &r)
                .await
                .unwrap_err()
                .to_string()
        }
    };
    let mut v = view(&path, None);
    v.keys = vec![("driver_id".into(), "customer_id".into())];
    let msg = err_of(v).await;
    assert!(
        msg.contains("no column customer_id") && msg.contains("driver_stats"),
        "{msg}"
    );

    let mut v = view(&path, None);
    v.features = vec![("nope".into(), "nope".into())];
    let msg = err_of(v).await;
    assert!(msg.contains("no column nope"), "{msg}");

    let mut v = view(&path, None);
    v.uri = dir.path().join("missing.parquet").display().to_string();
    let msg = err_of(v).await;
    assert!(msg.contains("missing.parquet"), "{msg}");

    let mut v = view(&path, None);
    v.timestamp_field = "conv".into();
    let msg = err_of(v).await;
    assert!(msg.contains("not a timestamp"), "{msg}");

    // A string key column against an integer source key.
    let strings = RecordBatch::try_from_iter(vec![
        (
            "driver_id",
            Arc::new(StringArray::from(vec!["1"])) as ArrayRef,
        ),
        ("event_timestamp", ts_col(vec![Some(at(12.0))])),
    ])
    .unwrap();
    let r = Retrieval {
        views: vec![view(&path, None)],
        filter_by_created_timestamp: false,
    };
    let msg = point_in_time_join(&ctx, &strings, &r)
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("driver_id") && msg.contains("Int64"), "{msg}");

    // An output name that is already an entity column.
    let clash = RecordBatch::try_from_iter(vec![
        ("driver_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("conv", Arc::new(Float64Array::from(vec![0.5]))),
        ("event_timestamp", ts_col(vec![Some(at(12.0))])),
    ])
    .unwrap();
    let msg = point_in_time_join(&ctx, &clash, &r)
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("conv"), "{msg}");
}

/// Rows offered to their first eligible query in two partitions, merged and carried forward
/// over each key's later queries: the best by `(ts, created)` per query, ties to the first row
/// of the scan; with the created filter, a row created after `T` waits for a later query.
#[test]
fn best_rows_per_query_across_partitions() {
    let keys: ArrayRef = Arc::new(Int64Array::from(vec![7, 7, 7, 8, 7]));
    let t = vec![Some(5), Some(10), Some(20), Some(10), Some(30)];
    let q = Queries::new(&[keys], &t).unwrap();
    let row = |ts, created, partition: u64, r: u64| Best {
        ts,
        created,
        pos: (partition << ROW_BITS) | r,
    };
    let offer_all = |rows: &[(u32, Best)], filter: bool| {
        let mut best = vec![Best::NONE; q.t.len()];
        for &(k, b) in rows {
            offer(&mut best, &q, Span::of(&q.start, &q.t, k), b, filter);
        }
        best
    };
    let p0 = [
        (0, row(9, 0, 0, 0)),
        (0, row(3, 1, 0, 1)),
        (1, row(10, 0, 0, 2)),
    ];
    let p1 = [
        (0, row(15, 0, 1, 0)),
        (0, row(9, 5, 1, 1)),
        (0, row(2, 0, 1, 2)),
        (1, row(10, 0, 1, 3)),
        (0, row(31, 0, 1, 4)),
    ];
    let best = best_per_query(vec![offer_all(&p0, false), offer_all(&p1, false)], &q);
    // Key 7's queries T = 5, 10, 20, 30; key 8's T = 10.
    assert_eq!(
        best,
        vec![
            row(3, 1, 0, 1),
            row(9, 5, 1, 1),
            row(15, 0, 1, 0),
            row(15, 0, 1, 0),
            row(10, 0, 0, 2)
        ]
    );
    // Created at 12: not a candidate at T = 10 under the filter, the best at T = 20.
    let late = [(0, row(9, 0, 0, 0)), (0, row(8, 12, 0, 1))];
    let best = best_per_query(vec![offer_all(&late, true)], &q);
    assert_eq!(best[1], row(9, 0, 0, 0));
    assert_eq!(best[2], row(9, 0, 0, 0));
    let best = best_per_query(vec![offer_all(&late, false)], &q);
    assert_eq!(best[1], row(9, 0, 0, 0));
    assert!(best[0].is_none());
}

/// Source times in nanoseconds with a zone (as pandas writes them): a row exactly at the
/// entity time is a candidate.
#[tokio::test]
async fn nanosecond_sources_include_the_entity_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.parquet");
    let ns = |h: f64| at(h) * 1000;
    write_parquet(
        &path,
        &RecordBatch::try_from_iter(vec![
            (
                "driver_id",
                Arc::new(Int64Array::from(vec![1, 1, 1])) as ArrayRef,
            ),
            ("conv", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0]))),
            (
                "event_timestamp",
                Arc::new(
                    TimestampNanosecondArray::from(vec![ns(10.0), ns(11.0), ns(12.0)])
                        .with_timezone("UTC"),
                ),
            ),
            (
                "created",
                Arc::new(
                    TimestampNanosecondArray::from(vec![ns(10.0), ns(11.0), ns(12.0)])
                        .with_timezone("UTC"),
                ),
            ),
        ])
        .unwrap(),
    );
    let e = RecordBatch::try_from_iter(vec![
        ("driver_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        (
            "event_timestamp",
            Arc::new(TimestampNanosecondArray::from(vec![ns(11.0)]).with_timezone("UTC")),
        ),
    ])
    .unwrap();
    for ttl in [None, Some(1)] {
        let r = Retrieval {
            views: vec![view(&path, ttl)],
            filter_by_created_timestamp: false,
        };
        assert_eq!(
            floats(&run(&e, &r, 2).await, "conv"),
            vec![Some(2.0)],
            "ttl {ttl:?}"
        );
    }
}

/// Entity-less mode: one row per key with rows in the window (`[start, end]`, and the ttl),
/// at `end`, ordered by key; rows before `start` are never candidates.
#[tokio::test]
async fn entityless_mode_keys_in_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = section_9_3(dir.path());
    let ctx = session(64 << 20, 2).unwrap();
    let run = |ttl: Option<i64>, start: f64, end: f64| {
        let ctx = &ctx;
        let path = path.clone();
        async move {
            let r = Retrieval {
                views: vec![view(&path, ttl)],
                filter_by_created_timestamp: false,
            };
            let a = entityless(ctx, &r, at(start), at(end)).await.unwrap();
            concat_batches(&a.schema(), &a.collect().unwrap()).unwrap()
        }
    };
    // Driver 2's only row (09:00) is before the start: driver 1 alone, its latest row by 11:30.
    let out = run(None, 9.5, 11.5).await;
    assert_eq!(
        out.schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        ["driver_id", "event_timestamp", "conv"]
    );
    assert_eq!(floats(&out, "conv"), vec![Some(3.0)]);
    assert_eq!(
        out.column(1)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
            .value(0),
        at(11.5)
    );
    // Both drivers, ordered by key; the window's start bounds the candidates, not the ttl alone.
    let out = run(None, 0.0, 13.0).await;
    assert_eq!(floats(&out, "conv"), vec![Some(4.0), Some(5.0)]);
    // A ttl of 1 h at 13:30: the newest row (12:00) is too old — no key at all.
    let out = run(Some(1), 0.0, 13.5).await;
    assert_eq!(out.num_rows(), 0);
    assert_eq!(out.num_columns(), 3);

    // Views keyed by different columns: the union of their keys, each view's rows with nulls
    // in the other's columns (Feast's Spark store), ordered by key with nulls first.
    let mut other = view(&path, None);
    other.view = "by_origin".into();
    other.keys = vec![("driver_id".into(), "origin_id".into())];
    other.features = vec![("conv".into(), "other_conv".into())];
    let r = Retrieval {
        views: vec![view(&path, None), other],
        filter_by_created_timestamp: false,
    };
    let a = entityless(&ctx, &r, at(0.0), at(13.0)).await.unwrap();
    let out = concat_batches(&a.schema(), &a.collect().unwrap()).unwrap();
    assert_eq!(ints(&out, "driver_id"), vec![None, None, Some(1), Some(2)]);
    assert_eq!(ints(&out, "origin_id"), vec![Some(1), Some(2), None, None]);
    assert_eq!(floats(&out, "conv"), vec![None, None, Some(4.0), Some(5.0)]);
    assert_eq!(
        floats(&out, "other_conv"),
        vec![Some(4.0), Some(5.0), None, None]
    );
    let schema = entityless_schema(&ctx, &r).await.unwrap();
    assert_eq!(schema, *out.schema());

    // A view keyed by a column another view has, and one more: they meet in the shared column.
    let mut pair = view(&path, None);
    pair.view = "pair".into();
    pair.keys = vec![
        ("driver_id".into(), "driver_id".into()),
        ("driver_id".into(), "origin_id".into()),
    ];
    pair.features = vec![("conv".into(), "pair_conv".into())];
    let r = Retrieval {
        views: vec![view(&path, None), pair],
        filter_by_created_timestamp: false,
    };
    let a = entityless(&ctx, &r, at(0.0), at(13.0)).await.unwrap();
    let out = concat_batches(&a.schema(), &a.collect().unwrap()).unwrap();
    assert_eq!(
        ints(&out, "driver_id"),
        vec![Some(1), Some(1), Some(2), Some(2)]
    );
    assert_eq!(ints(&out, "origin_id"), vec![None, Some(1), None, Some(2)]);
    assert_eq!(
        floats(&out, "conv"),
        vec![Some(4.0), Some(4.0), Some(5.0), Some(5.0)]
    );
    assert_eq!(
        floats(&out, "pair_conv"),
        vec![None, Some(4.0), None, Some(5.0)]
    );

    // A shared column of two types: an error naming both views.
    let strings = dir.path().join("strings.parquet");
    write_parquet(
        &strings,
        &RecordBatch::try_from_iter(vec![
            (
                "driver_id",
                Arc::new(StringArray::from(vec!["1"])) as ArrayRef,
            ),
            ("conv", Arc::new(Float64Array::from(vec![1.0]))),
            ("event_timestamp", ts_col(vec![Some(at(10.0))])),
            ("created", ts_col(vec![Some(at(10.0))])),
        ])
        .unwrap(),
    );
    let mut by_name = view(&strings, None);
    by_name.view = "by_name".into();
    by_name.features = vec![("conv".into(), "name_conv".into())];
    let r = Retrieval {
        views: vec![view(&path, None), by_name],
        filter_by_created_timestamp: false,
    };
    let err = entityless(&ctx, &r, at(0.0), at(13.0)).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("column driver_id is Utf8 in feature view by_name")
            && msg.contains("Int64 in feature view driver_stats"),
        "{msg}"
    );
}

/// The join as a plan node: serialized through DataFusion's protobuf form with Larder's codec
/// (as a plan is shipped to another process), decoded and run, it answers what the join itself
/// answers — with the entity table read by a Parquet scan or held in memory, and entity-less.
#[tokio::test]
async fn the_plan_node_round_trips_through_bytes_and_runs() {
    use datafusion::{
        datasource::memory::MemorySourceConfig, physical_plan::ExecutionPlan,
        prelude::ParquetReadOptions,
    };
    use datafusion_proto::bytes::{
        physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
    };
    use exec::{LarderCodec, PointInTimeJoinExec};

    let dir = tempfile::tempdir().unwrap();
    let path = section_9_3(dir.path());
    let e = entity(&[(1, 11.5), (1, 12.0), (2, 10.5), (3, 11.5), (1, 11.5)]);
    let entity_path = dir.path().join("entity.parquet");
    write_parquet(&entity_path, &e);
    let r = Retrieval {
        views: vec![view(&path, Some(1))],
        filter_by_created_timestamp: false,
    };
    let expected = run(&e, &r, 2).await;

    let ctx = session(64 << 20, 2).unwrap();
    let scan = ctx
        .read_parquet(entity_path.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let memory: Arc<dyn ExecutionPlan> =
        MemorySourceConfig::try_new_exec(&[vec![e.clone()]], e.schema(), None).unwrap();
    let go = |plan: Arc<dyn ExecutionPlan>| {
        let ctx = &ctx;
        async move {
            let bytes = physical_plan_to_bytes_with_extension_codec(plan, &LarderCodec).unwrap();
            let decoded = physical_plan_from_bytes_with_extension_codec(
                &bytes,
                &ctx.task_ctx(),
                &LarderCodec,
            )
            .unwrap();
            assert_eq!(decoded.name(), "PointInTimeJoinExec");
            let batches = datafusion::physical_plan::collect(decoded.clone(), ctx.task_ctx())
                .await
                .unwrap();
            concat_batches(&decoded.schema(), &batches).unwrap()
        }
    };
    for input in [scan, memory] {
        let plan = PointInTimeJoinExec::try_new(&ctx, r.clone(), input)
            .await
            .unwrap();
        assert_eq!(plan.schema(), expected.schema());
        let out = go(Arc::new(plan)).await;
        assert_eq!(out, expected);
        assert_eq!(
            floats(&out, "conv"),
            vec![Some(3.0), Some(4.0), None, None, Some(3.0)]
        );
    }

    // Entity-less: no child.
    let plan = PointInTimeJoinExec::entityless(&ctx, r.clone(), at(0.0), at(13.0))
        .await
        .unwrap();
    let out = go(Arc::new(plan)).await;
    let direct = entityless(&ctx, &r, at(0.0), at(13.0)).await.unwrap();
    assert_eq!(
        out,
        concat_batches(&direct.schema(), &direct.collect().unwrap()).unwrap()
    );

    // A request the entity table cannot answer is refused when planned, as the offline
    // error it is.
    let mut bad = r.clone();
    bad.views[0].keys = vec![("driver_id".into(), "rider_id".into())];
    let err = PointInTimeJoinExec::try_new(
        &ctx,
        bad,
        MemorySourceConfig::try_new_exec(&[vec![e.clone()]], e.schema(), None).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, OfflineError::Entity(EntityError::MissingKey { .. })),
        "{err}"
    );
    // An error while running comes out of the stream as the offline error it is: here the
    // source file is gone after planning.
    let plan = PointInTimeJoinExec::try_new(
        &ctx,
        r.clone(),
        MemorySourceConfig::try_new_exec(&[vec![e.clone()]], e.schema(), None).unwrap(),
    )
    .await
    .unwrap();
    std::fs::remove_file(&path).unwrap();
    let err = datafusion::physical_plan::collect(Arc::new(plan), ctx.task_ctx())
        .await
        .unwrap_err();
    let err = exec::offline_error(err);
    assert!(matches!(err, OfflineError::Source { .. }), "{err:?}");
}

/// The plan node over `e` held by a memory source, run.
async fn memory_join(
    ctx: &SessionContext,
    r: &Retrieval,
    e: &RecordBatch,
) -> Result<Vec<RecordBatch>, datafusion::error::DataFusionError> {
    use datafusion::datasource::memory::MemorySourceConfig;
    let input = MemorySourceConfig::try_new_exec(&[vec![e.clone()]], e.schema(), None).unwrap();
    let plan = exec::PointInTimeJoinExec::try_new(ctx, r.clone(), input)
        .await
        .unwrap();
    datafusion::physical_plan::collect(Arc::new(plan), ctx.task_ctx()).await
}

/// What the join keeps is reserved from the session's memory pool: past the limit the plan
/// fails with `ResourcesExhausted` naming the join and the flag, not by exhausting the machine.
#[tokio::test]
async fn the_plan_node_keeps_to_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = section_9_3(dir.path());
    let rows: Vec<(i64, f64)> = (0..20_000).map(|i| (i % 3, 11.5)).collect();
    let e = entity(&rows);
    let r = Retrieval {
        views: vec![view(&path, Some(1))],
        filter_by_created_timestamp: false,
    };
    // Within the limit, an entity table a memory source hands over as slices of one buffer
    // (one per 8,192 rows, each reporting the whole buffer) is counted once.
    let big: Vec<(i64, f64)> = (0..200_000).map(|i| (i % 3, 11.5)).collect();
    let e_big = entity(&big);
    let out = memory_join(&session(16 << 20, 2).unwrap(), &r, &e_big)
        .await
        .unwrap();
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 200_000);

    let err = memory_join(&session(64 << 10, 2).unwrap(), &r, &e)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            exec::offline_error(err),
            OfflineError::DataFusion(datafusion::error::DataFusionError::ResourcesExhausted(_))
        ),
        "{msg}"
    );
    assert!(msg.contains("--memory-limit"), "{msg}");
}
