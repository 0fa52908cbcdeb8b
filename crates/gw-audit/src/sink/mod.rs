//! Where audit records go: the [`AuditSink`] trait and its implementations.
//!
//! What the writer does with a sink's error: a batch refused for its data (an `invalid`
//! error) is written in halves until the refused records are found; only those are
//! dropped and counted (`dropped{reason="sink-refused"}`, logged by record id), and the
//! rest is written. Any other error (unavailable, timed out) is retried, then the batch
//! is spooled and replayed once the sink is healthy again.

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
/// The error's kind says whether trying again can help: an `invalid` error
/// ([`BackendError::invalid`]) means the sink refuses the batch's data and would refuse
/// it again as it is (PostgreSQL: a data exception, a constraint violation, an index row
/// too large); any other kind (unavailable, timed out) is a failure that may pass. See
/// the [module docs](self) for what the writer does with each.
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
