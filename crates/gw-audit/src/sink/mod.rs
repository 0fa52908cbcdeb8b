//! Where audit records go: the [`AuditSink`] trait and its implementations.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use gw_core::BackendError;

use crate::record::AuditRecord;

mod jsonl;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;

pub use jsonl::JsonLinesSink;
#[cfg(feature = "postgres")]
pub use postgres::{MAX_INDEXED_TEXT, MIGRATION, PostgresSink, migrate};

/// A boxed, sendable future, as sinks return it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A destination for batches of audit records.
///
/// `write` must be all-or-nothing as far as the caller can tell and idempotent per record
/// id: the writer retries a failed batch, and replays spooled batches that may already
/// have been written once.
///
/// The error's kind tells the writer what to do. An `invalid` error
/// ([`BackendError::invalid`]) means the sink refused the batch's data and would refuse
/// it again as it is (PostgreSQL: a data exception, a constraint violation, an index row
/// too large): the writer then writes the batch in halves to find the records refused,
/// drops and counts only those (`dropped{reason="sink-refused"}`, logged by record id),
/// and writes the rest. Any other error (unavailable, timed out) is retried, then the
/// batch is spooled and replayed once the sink is healthy again.
pub trait AuditSink: Send + Sync + 'static {
    /// Writes `batch`.
    fn write<'a>(&'a self, batch: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), BackendError>>;
}

impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    fn write<'a>(&'a self, batch: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), BackendError>> {
        (**self).write(batch)
    }
}

/// An in-memory sink that keeps every record; for tests and embedding. Clones share
/// the same records.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    records: Arc<Mutex<Vec<AuditRecord>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the records written so far.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl AuditSink for MemorySink {
    fn write<'a>(&'a self, batch: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), BackendError>> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(batch);
        Box::pin(std::future::ready(Ok(())))
    }
}
