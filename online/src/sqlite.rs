//! Feast's SQLite online store layout (spec §3.3): one table `"<project>_<view>"` per view,
//! one row per (entity key, feature), values as serialized `feast.types.Value`, event and
//! created times as INTEGER Unix seconds. Last write wins, as in Feast.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use larder_protos::feast::types::Value;
use prost::Message;
use prost_types::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params_from_iter, types::ValueRef};

use crate::{
    layout::ViewLayout,
    pyrepr::value_text,
    store::{OlderWrites, OnlineError, OnlineStore, Record, ViewRead, WriteOutcome, WriteRow},
};

/// How many keys go in one `IN (…)` list.
const KEYS_PER_QUERY: usize = 500;

/// The SQLite online store at a file path.
#[derive(Debug, Clone)]
pub struct SqliteOnlineStore {
    path: PathBuf,
    pool: Arc<Vec<Mutex<Connection>>>,
}

impl SqliteOnlineStore {
    /// Opens (creating if needed) the database file with `connections` connections.
    pub fn open(path: &Path, connections: usize) -> Result<Self, OnlineError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| OnlineError::Unavailable {
                store: format!("sqlite {}", path.display()),
                message: e.to_string(),
            })?;
        }
        let mut pool = Vec::new();
        for _ in 0..connections.max(1) {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| OnlineError::Unavailable {
                store: format!("sqlite {}", path.display()),
                message: e.to_string(),
            })?;
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(|e| OnlineError::Unavailable {
                    store: format!("sqlite {}", path.display()),
                    message: e.to_string(),
                })?;
            pool.push(Mutex::new(conn));
        }
        Ok(Self {
            path: path.to_owned(),
            pool: Arc::new(pool),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> OnlineError {
        OnlineError::Backend {
            store: self.describe(),
            message: e.to_string(),
        }
    }

    /// Runs `f` on a pooled connection on the blocking thread pool.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, OnlineError> + Send + 'static,
    ) -> Result<T, OnlineError> {
        let pool = self.pool.clone();
        let describe = self.describe();
        tokio::task::spawn_blocking(move || {
            // Take the first free connection, else wait on one.
            for slot in pool.iter() {
                if let Ok(mut conn) = slot.try_lock() {
                    return f(&mut conn);
                }
            }
            let mut conn = pool[0].lock().map_err(|_| OnlineError::Backend {
                store: describe,
                message: "connection poisoned".into(),
            })?;
            f(&mut conn)
        })
        .await
        .map_err(|e| self.err(e))?
    }
}

/// Feast's DDL for a view table.
pub fn create_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS \"{table}\" (entity_key BLOB, feature_name TEXT, value BLOB, value_text TEXT, \
         vector_value BLOB, event_ts timestamp, created_ts timestamp, PRIMARY KEY(entity_key, feature_name)); \
         CREATE INDEX IF NOT EXISTS \"{table}_ek\" ON \"{table}\" (entity_key);"
    )
}

fn to_epoch_seconds(ts: &Timestamp) -> i64 {
    ts.seconds
}

fn read_ts(v: ValueRef<'_>) -> Option<Timestamp> {
    match v {
        ValueRef::Integer(s) => Some(Timestamp {
            seconds: s,
            nanos: 0,
        }),
        ValueRef::Real(f) => Some(Timestamp {
            seconds: f.floor() as i64,
            nanos: ((f - f.floor()) * 1e9) as i32,
        }),
        ValueRef::Text(t) => {
            let s = std::str::from_utf8(t).ok()?;
            let s = s.trim().replace('T', " ");
            let (date, time) = s.split_once(' ').unwrap_or((&s, "00:00:00"));
            let mut d = date.split('-').map(|p| p.parse::<i64>());
            let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
            let time = time.trim_end_matches('Z');
            let time = time.split(['+']).next()?;
            let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
            let mut t = hms.split(':').map(|p| p.parse::<i64>());
            let (h, mi, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
            let days = days_from_civil(y, m, day);
            let nanos = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<9}")[..9].parse::<i32>().ok()?
            };
            Some(Timestamp {
                seconds: days * 86_400 + h * 3600 + mi * 60 + sec,
                nanos,
            })
        }
        _ => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_missing_table(e: &rusqlite::Error) -> bool {
    e.to_string().contains("no such table")
}

#[async_trait::async_trait]
impl OnlineStore for SqliteOnlineStore {
    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }

    fn older_writes(&self) -> OlderWrites {
        OlderWrites::Overwrite
    }

    #[tracing::instrument(name = "sqlite.read", skip_all,
        fields(otel.kind = "client", db.system.name = "sqlite"))]
    async fn read(&self, reads: &[ViewRead<'_>]) -> Result<Vec<Vec<Option<Record>>>, OnlineError> {
        let jobs: Vec<(String, String, Vec<String>, Vec<Vec<u8>>)> = reads
            .iter()
            .map(|r| {
                (
                    r.layout.sqlite_table.clone(),
                    r.layout.name.clone(),
                    r.features
                        .iter()
                        .map(|&i| r.layout.features[i].clone())
                        .collect(),
                    r.keys.to_vec(),
                )
            })
            .collect();
        let describe = self.describe();
        self.with_conn(move |conn| {
            let mut out = Vec::with_capacity(jobs.len());
            for (table, view, features, keys) in jobs {
                let mut by_key: std::collections::HashMap<Vec<u8>, Record> = std::collections::HashMap::new();
                for chunk in keys.chunks(KEYS_PER_QUERY) {
                    let placeholders = vec!["?"; chunk.len()].join(",");
                    let sql = format!(
                        "SELECT entity_key, feature_name, value, event_ts FROM \"{table}\" WHERE entity_key IN ({placeholders})"
                    );
                    let mut stmt = match conn.prepare_cached(&sql) {
                        Ok(s) => s,
                        Err(e) if is_missing_table(&e) => break,
                        Err(e) => {
                            return Err(OnlineError::Backend { store: describe.clone(), message: e.to_string() })
                        }
                    };
                    let mut rows = stmt
                        .query(params_from_iter(chunk.iter()))
                        .map_err(|e| OnlineError::Backend { store: describe.clone(), message: e.to_string() })?;
                    while let Some(row) = rows
                        .next()
                        .map_err(|e| OnlineError::Backend { store: describe.clone(), message: e.to_string() })?
                    {
                        let key: Vec<u8> = row.get(0).map_err(|e| OnlineError::Backend {
                            store: describe.clone(),
                            message: e.to_string(),
                        })?;
                        let feature: String = row.get(1).unwrap_or_default();
                        let bytes: Option<Vec<u8>> = row.get(2).ok();
                        let ts = row.get_ref(3).ok().and_then(read_ts).unwrap_or_default();
                        let rec = by_key.entry(key).or_insert_with(|| Record {
                            event_ts: ts,
                            values: vec![None; features.len()],
                        });
                        rec.event_ts = ts;
                        if let Some(i) = features.iter().position(|f| *f == feature) {
                            let value = Value::decode(bytes.unwrap_or_default().as_slice()).map_err(|e| {
                                OnlineError::Corrupt { store: describe.clone(), view: view.clone(), message: e.to_string() }
                            })?;
                            rec.values[i] = Some(value);
                        }
                    }
                }
                out.push(keys.iter().map(|k| by_key.remove(k)).collect());
            }
            Ok(out)
        })
        .await
    }

    #[tracing::instrument(name = "sqlite.write", skip_all,
        fields(otel.kind = "client", db.system.name = "sqlite", rows = rows.len()))]
    async fn write(
        &self,
        layout: &ViewLayout,
        rows: &[WriteRow],
    ) -> Result<WriteOutcome, OnlineError> {
        let layout = layout.clone();
        let rows = rows.to_vec();
        let describe = self.describe();
        self.with_conn(move |conn| {
            let e = |e: rusqlite::Error| OnlineError::Backend { store: describe.clone(), message: e.to_string() };
            conn.execute_batch(&create_table_sql(&layout.sqlite_table)).map_err(e)?;
            let tx = conn.transaction().map_err(e)?;
            {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "INSERT INTO \"{}\" (entity_key, feature_name, value, value_text, event_ts, created_ts) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(entity_key, feature_name) DO UPDATE SET \
                         value = excluded.value, value_text = excluded.value_text, \
                         event_ts = excluded.event_ts, created_ts = excluded.created_ts",
                        layout.sqlite_table
                    ))
                    .map_err(e)?;
                for row in &rows {
                    let event = to_epoch_seconds(&row.event_ts);
                    let created = row.created_ts.as_ref().map(to_epoch_seconds);
                    for (name, value) in layout.features.iter().zip(&row.values) {
                        let Some(value) = value else { continue };
                        stmt.execute(rusqlite::params![
                            row.key,
                            name,
                            value.encode_to_vec(),
                            value_text(value),
                            event,
                            created
                        ])
                        .map_err(e)?;
                    }
                }
            }
            tx.commit().map_err(e)?;
            Ok(WriteOutcome { written: rows.len(), skipped_not_newer: 0 })
        })
        .await
    }

    async fn drop_view(&self, layout: &ViewLayout) -> Result<(), OnlineError> {
        let table = layout.sqlite_table.clone();
        let describe = self.describe();
        self.with_conn(move |conn| {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS \"{table}\""))
                .map_err(|e| OnlineError::Backend {
                    store: describe,
                    message: e.to_string(),
                })
        })
        .await
    }

    async fn prepare_view(&self, layout: &ViewLayout) -> Result<(), OnlineError> {
        let table = layout.sqlite_table.clone();
        let describe = self.describe();
        self.with_conn(move |conn| {
            conn.execute_batch(&create_table_sql(&table))
                .map_err(|e| OnlineError::Backend {
                    store: describe,
                    message: e.to_string(),
                })
        })
        .await
    }

    async fn check(&self) -> Result<(), OnlineError> {
        let describe = self.describe();
        self.with_conn(move |conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .optional()
                .map(|_| ())
                .map_err(|e| OnlineError::Unavailable {
                    store: describe,
                    message: e.to_string(),
                })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_timestamps_parse() {
        let ts = read_ts(ValueRef::Text(b"2021-04-12 10:59:42.123456")).unwrap();
        assert_eq!(
            ts,
            Timestamp {
                seconds: 1_618_225_182,
                nanos: 123_456_000
            }
        );
        let ts = read_ts(ValueRef::Integer(1_618_225_182)).unwrap();
        assert_eq!(ts.seconds, 1_618_225_182);
    }
}
