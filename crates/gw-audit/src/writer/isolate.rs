//! Writing one batch: retries, a timeout per try, and isolating the records the sink
//! refuses for their data.

use std::ops::Range;
use std::sync::atomic::Ordering;

use gw_core::{BackendError, BackendErrorKind};
use tokio::time::{Instant, sleep, timeout_at};

use super::worker::Worker;
use crate::record::AuditRecord;

impl Worker {
    async fn write_once(
        &self,
        batch: &[AuditRecord],
        deadline: Option<Instant>,
    ) -> Result<(), BackendError> {
        let limit = Instant::now() + self.shared.config.write_timeout;
        let at = deadline.map_or(limit, |d| d.min(limit));
        timeout_at(at, self.sink.write(batch))
            .await
            .unwrap_or_else(|_| Err(BackendError::timeout("audit-sink", "write timed out")))
    }

    /// Writes `batch` with retries. When the sink refuses its data (an `invalid` error,
    /// see [`AuditSink`](crate::AuditSink)), writes it in halves to find the records it refuses, drops and
    /// counts only those, and writes the rest. Stops at the first other failure and
    /// returns the parts not written, in order.
    pub(super) async fn write_isolating(
        &self,
        batch: &[AuditRecord],
        attempts: u32,
        deadline: Option<Instant>,
    ) -> Written {
        let mut done = Written {
            written: 0,
            refused: 0,
            failed: None,
        };
        // Parts still to write, the next one last.
        let mut todo: Vec<Range<usize>> = Vec::with_capacity(8);
        todo.push(0..batch.len());
        while let Some(range) = todo.pop() {
            let part = &batch[range.clone()];
            match self.write_with_retries(part, attempts, deadline).await {
                Ok(()) => done.written += part.len(),
                Err(e) if refused(&e) => match part {
                    [record] => {
                        self.drop_refused(record, &e);
                        done.refused += 1;
                    }
                    _ => {
                        let mid = range.start + part.len() / 2;
                        todo.push(mid..range.end);
                        todo.push(range.start..mid);
                    }
                },
                Err(e) => {
                    let rest: Vec<Range<usize>> = std::iter::once(range)
                        .chain(todo.into_iter().rev())
                        .collect();
                    done.failed = Some((e, rest));
                    break;
                }
            }
        }
        done
    }

    /// Counts and logs (by id, rate-limited) one record the sink refused.
    fn drop_refused(&self, record: &AuditRecord, e: &BackendError) {
        if self.shared.counters.dropped(1, "sink-refused") {
            tracing::error!(
                id = %record.id,
                correlation_id = %record.correlation_id,
                total = self.shared.counters.dropped.load(Ordering::Relaxed),
                "audit sink refused a record, dropped: {e}"
            );
        }
    }

    async fn write_with_retries(
        &self,
        batch: &[AuditRecord],
        attempts: u32,
        deadline: Option<Instant>,
    ) -> Result<(), BackendError> {
        let config = &self.shared.config;
        let mut delay = config.retry_base;
        let mut attempt = 0;
        loop {
            let e = match self.write_once(batch, deadline).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if refused(&e)
                || attempt == attempts
                || deadline.is_some_and(|d| Instant::now() + delay >= d)
            {
                return Err(e);
            }
            attempt += 1;
            self.shared.counters.retried(batch.len());
            sleep(delay).await;
            delay = (delay * 2).min(config.retry_max);
        }
    }
}

/// Whether the sink refused the batch's data (it would refuse it again as it is).
fn refused(e: &BackendError) -> bool {
    e.kind == BackendErrorKind::Invalid
}

/// What became of one batch in [`Worker::write_isolating`].
pub(super) struct Written {
    pub(super) written: usize,
    pub(super) refused: usize,
    /// A failure the sink may recover from, and the parts of the batch not written.
    pub(super) failed: Option<(BackendError, Vec<Range<usize>>)>,
}
