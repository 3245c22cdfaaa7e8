//! The [`OnlineStore`] trait and its contract.

use larder_protos::feast::types::Value;
use prost_types::Timestamp;

use crate::layout::ViewLayout;

/// Errors of online stores. Backend detail is kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    #[error("online store {store} is unavailable: {message}")]
    Unavailable { store: String, message: String },
    #[error("online store {store}: {message}")]
    Backend { store: String, message: String },
    #[error("online store {store} holds an invalid value for {view}: {message}")]
    Corrupt {
        store: String,
        view: String,
        message: String,
    },
    #[error("invalid online store configuration: {0}")]
    Config(String),
}

impl larder_types::error::Coded for OnlineError {
    /// A store that cannot answer now is `Unavailable`; anything else it does is a fault of
    /// the server or its data, shown to clients only as an internal error.
    fn code(&self) -> larder_types::error::ErrorCode {
        match self {
            OnlineError::Unavailable { .. } => larder_types::error::ErrorCode::Unavailable,
            OnlineError::Backend { .. } | OnlineError::Corrupt { .. } | OnlineError::Config(_) => {
                larder_types::error::ErrorCode::Internal
            }
        }
    }
}

/// One feature view's part of a read.
#[derive(Debug, Clone, Copy)]
pub struct ViewRead<'a> {
    pub layout: &'a ViewLayout,
    /// Which features, as indices into `layout.features`.
    pub features: &'a [usize],
    /// Serialized entity keys ([`larder_types::entity_key`], no project suffix), each listed once.
    pub keys: &'a [Vec<u8>],
}

/// What a store holds for one entity in one view.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The event time of the stored row.
    pub event_ts: Timestamp,
    /// Aligned with the read's `features`: `None` when the feature is not stored for this
    /// entity, `Some(Value::default())` when it is stored as null.
    pub values: Vec<Option<Value>>,
}

/// One row to write into one view.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteRow {
    /// Serialized entity key (no project suffix).
    pub key: Vec<u8>,
    /// Aligned with the layout's `features`: `None` leaves that feature as it is.
    pub values: Vec<Option<Value>>,
    pub event_ts: Timestamp,
    pub created_ts: Option<Timestamp>,
}

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub written: usize,
    /// Rows not written because the store already held an equal or newer event time.
    pub skipped_not_newer: usize,
}

/// How a backend treats a write whose event time is not newer than what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OlderWrites {
    /// Skipped (Feast's Redis rule, also within one batch).
    Skip,
    /// Last write wins (Feast's SQLite behaviour).
    Overwrite,
}

/// A Feast-layout online store.
///
/// Contract, checked for every backend by the conformance suite:
/// - `read` answers `out[v][k]` for `reads[v].keys[k]` (row alignment); `None` when the store
///   holds no row of that view for that entity — on every backend, Redis included.
/// - A feature the entity's record lacks reads as `None`; a stored null as an empty `Value`.
/// - Values, event times (microsecond precision; SQLite keeps whole seconds, as Feast does)
///   and keys are stored in Feast's byte layout, so Feast and Larder can share a store.
/// - `write` applies rows in order; what happens to a row whose event time is not newer than
///   the stored one is the backend's [`OlderWrites`] rule.
/// - `drop_view` removes every value of the view (other views of the same entities stay).
/// - `prepare_view` makes what a view's values need before any is written (SQLite: the
///   table, as `feast apply` creates it), so a read of a view applied but not materialized
///   finds nothing rather than failing; it keeps what is there.
#[async_trait::async_trait]
pub trait OnlineStore: Send + Sync + std::fmt::Debug {
    /// A short description (kind and address) for messages.
    fn describe(&self) -> String;

    /// This backend's rule for not-newer writes.
    fn older_writes(&self) -> OlderWrites;

    async fn read(&self, reads: &[ViewRead<'_>]) -> Result<Vec<Vec<Option<Record>>>, OnlineError>;

    async fn write(
        &self,
        layout: &ViewLayout,
        rows: &[WriteRow],
    ) -> Result<WriteOutcome, OnlineError>;

    async fn drop_view(&self, layout: &ViewLayout) -> Result<(), OnlineError>;

    /// See the contract above; nothing to do for stores whose keys need no schema.
    async fn prepare_view(&self, _layout: &ViewLayout) -> Result<(), OnlineError> {
        Ok(())
    }

    /// How many `write` calls of *disjoint* key sets may be in flight at once with the same
    /// result as one after another (materialization, whose keys are unique, uses this to keep
    /// the store busy). Callers that cannot promise disjoint keys write one batch at a time.
    fn concurrent_disjoint_writes(&self) -> usize {
        1
    }

    /// Fails when the store cannot be reached (for `/health`).
    async fn check(&self) -> Result<(), OnlineError>;
}

/// Nanoseconds since the epoch, for event-time comparisons.
pub fn ts_nanos(ts: &Timestamp) -> i128 {
    ts.seconds as i128 * 1_000_000_000 + ts.nanos as i128
}
