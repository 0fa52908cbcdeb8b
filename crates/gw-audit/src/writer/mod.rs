//! The [`AuditWriter`]: a bounded queue in front of a background worker that writes
//! batches to an [`AuditSink`], retries, and spools to disk.
//!
//! The queue is bounded by records and by estimated bytes
//! ([`WriterConfig::capacity_bytes`], estimated once per record when it is queued): a
//! record is far larger in memory than on the wire (an 8 KiB JSON body of small objects
//! is about half a MiB once parsed), so the count alone would not bound memory.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::pending::Raw;
use crate::record::AuditRecord;
use crate::sink::AuditSink;

mod config;
mod isolate;
mod queue;
pub(crate) mod spool;
mod worker;

pub use config::{DEFAULT_CAPACITY_BYTES, OverflowPolicy, WriterConfig};

pub(crate) use queue::Item;
use queue::Queue;
use spool::Spool;

/// Counters of an [`AuditWriter`] since it started (also exported through `metrics` as
/// `gw_audit_records_{written,retried,spooled,dropped,rejected}_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Records the sink accepted (first try, retry, or spool replay).
    pub written: u64,
    /// Record writes that failed and were tried again.
    pub retried: u64,
    /// Records appended to the disk spool.
    pub spooled: u64,
    /// Records lost: `drop_oldest` evictions, no spool to fall back to, spool errors,
    /// unreadable spool lines or segments, or records whose data the sink refused.
    pub dropped: u64,
    /// Requests refused with 503 under the `reject` policy.
    pub rejected: u64,
}

/// What [`AuditWriter::shutdown`] did with the records it still had.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Records written to the sink during the drain.
    pub flushed: u64,
    /// Records put into the spool during the drain (replayed at next start).
    pub spooled: u64,
    /// Records lost during the drain.
    pub dropped: u64,
    /// Totals over the writer's life.
    pub totals: AuditStats,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    written: AtomicU64,
    retried: AtomicU64,
    spooled: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
}

impl Counters {
    pub(crate) fn written(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!("gw_audit_records_written_total").increment(n as u64);
    }
    pub(crate) fn retried(&self, n: usize) {
        self.retried.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!("gw_audit_records_retried_total").increment(n as u64);
    }
    pub(crate) fn spooled(&self, n: usize) {
        self.spooled.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!("gw_audit_records_spooled_total").increment(n as u64);
    }
    /// Counts a loss; returns whether it deserves a log line (the first ten losses, then
    /// whenever the total passes a power of two), so a flood of losses cannot flood logs.
    pub(crate) fn dropped(&self, n: usize, reason: &'static str) -> bool {
        let before = self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!("gw_audit_records_dropped_total", "reason" => reason).increment(n as u64);
        let after = before + n as u64;
        before < 10 || (before + 1..=after).any(u64::is_power_of_two)
    }
    fn snapshot(&self) -> AuditStats {
        AuditStats {
            written: self.written.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            spooled: self.spooled.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

pub(crate) struct Shared {
    pub(crate) queue: Mutex<Queue>,
    /// Queue slots promised to in-flight requests (`reject` policy).
    reserved: AtomicUsize,
    pub(crate) config: WriterConfig,
    pub(crate) notify: Notify,
    pub(crate) spool: Option<Spool>,
    pub(crate) counters: Counters,
    pub(crate) closing: AtomicBool,
    /// Set (under the queue lock) once the worker took its last records.
    pub(crate) stopped: AtomicBool,
    pub(crate) deadline: Mutex<Option<tokio::time::Instant>>,
    worker: Mutex<Option<JoinHandle<ShutdownReport>>>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `batch` into the spool, or counts it dropped when there is none or it fails.
    pub(crate) fn spool_or_drop(&self, batch: &[AuditRecord], sync: bool) {
        match &self.spool {
            Some(spool) => match spool.append(batch, sync) {
                Ok(()) => self.counters.spooled(batch.len()),
                Err(e) => {
                    if self.counters.dropped(batch.len(), "spool-error") {
                        tracing::error!(
                            total = self.counters.dropped.load(Ordering::Relaxed),
                            "audit spool write failed, {} records lost: {e}",
                            batch.len()
                        );
                    }
                }
            },
            None => self.drop_unspooled(batch.len()),
        }
    }

    /// [`Shared::spool_or_drop`] for one queued item, built into a record only when there
    /// is a spool to take it.
    fn spool_or_drop_item(&self, item: Item, sync: bool) {
        match &self.spool {
            Some(_) => self.spool_or_drop(&[item.into_record()], sync),
            None => self.drop_unspooled(1),
        }
    }

    /// Counts `n` records lost for want of a spool. Like every loss, it is logged for the
    /// first ten records and then each time the total passes a power of two, so an
    /// overload does not also flood the log.
    fn drop_unspooled(&self, n: usize) {
        if self.counters.dropped(n, "no-spool") {
            tracing::error!(
                total = self.counters.dropped.load(Ordering::Relaxed),
                "audit sink unavailable and no spool: {n} records lost"
            );
        }
    }
}

/// Handle to the audit queue and its background worker; cheap to clone.
///
/// Created with [`AuditWriter::spawn`] inside a Tokio runtime. Records are pushed by the
/// [`AuditLayer`](crate::AuditLayer) (or [`AuditWriter::push`]); call
/// [`AuditWriter::shutdown`] on the way out to drain the queue.
#[derive(Clone)]
pub struct AuditWriter {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts the worker writing to `sink`. Fails only if the spool directory cannot be
    /// opened. Spooled segments from an earlier run are replayed first.
    pub fn spawn(sink: impl AuditSink, config: WriterConfig) -> std::io::Result<Self> {
        let spool = match &config.spool_dir {
            Some(dir) => Some(Spool::open(dir, config.segment_bytes)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::with_capacity(config.capacity.min(4096))),
            reserved: AtomicUsize::new(0),
            config,
            notify: Notify::new(),
            spool,
            counters: Counters::default(),
            closing: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            deadline: Mutex::new(None),
            worker: Mutex::new(None),
        });
        let handle = tokio::spawn(worker::run(shared.clone(), Box::new(sink)));
        *shared.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(Self { shared })
    }

    /// Counters so far.
    pub fn stats(&self) -> AuditStats {
        self.shared.counters.snapshot()
    }

    /// Records waiting in memory.
    pub fn queued(&self) -> usize {
        self.shared.lock().len()
    }

    /// Estimated bytes the records waiting in memory hold (see
    /// [`WriterConfig::capacity_bytes`]).
    pub fn queued_bytes(&self) -> usize {
        self.shared.lock().bytes()
    }

    /// Segment files currently in the spool.
    pub fn spool_segments(&self) -> usize {
        self.shared.spool.as_ref().map_or(0, Spool::segments)
    }

    pub(crate) fn policy(&self) -> OverflowPolicy {
        self.shared.config.overflow
    }

    /// Reserves a queue slot (`reject` policy); `false` when the queue is full (by
    /// count, or by bytes).
    pub(crate) fn try_reserve(&self) -> bool {
        let queue = self.shared.lock();
        let reserved = self.shared.reserved.load(Ordering::Relaxed);
        if queue.len() + reserved >= self.shared.config.capacity
            || queue.bytes() >= self.shared.config.capacity_bytes
        {
            drop(queue);
            self.shared
                .counters
                .rejected
                .fetch_add(1, Ordering::Relaxed);
            metrics::counter!("gw_audit_records_rejected_total").increment(1);
            return false;
        }
        self.shared.reserved.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Queues a record (applying the overflow policy when the queue is full). NULs in its
    /// text are replaced with U+FFFD (PostgreSQL cannot store them).
    pub fn push(&self, mut record: AuditRecord) {
        record.scrub_nul();
        self.push_item(Item::Record(Box::new(record)), false);
    }

    pub(crate) fn push_raw(&self, raw: Box<Raw>, reserved: bool) {
        self.push_item(Item::Raw(raw), reserved);
    }

    fn push_item(&self, record: Item, reserved: bool) {
        let shared = &*self.shared;
        // Estimated outside the lock.
        let bytes = record.estimated_bytes();
        let mut queue = shared.lock();
        if reserved {
            shared.reserved.fetch_sub(1, Ordering::Relaxed);
        }
        let taken = shared.reserved.load(Ordering::Relaxed);
        // Full by count, or by bytes (a record bigger than the whole budget still goes
        // into an empty queue).
        let full = |q: &Queue| {
            q.len() + taken >= shared.config.capacity
                || (!q.is_empty() && q.bytes() + bytes > shared.config.capacity_bytes)
        };
        if shared.stopped.load(Ordering::Relaxed) {
            drop(queue);
            shared.spool_or_drop_item(record, true);
            return;
        }
        if !full(&queue) || reserved {
            queue.push_back(record, bytes);
        } else {
            match shared.config.overflow {
                OverflowPolicy::DropOldest => {
                    let mut evicted = 0;
                    while full(&queue) && queue.pop_front().is_some() {
                        evicted += 1;
                    }
                    queue.push_back(record, bytes);
                    drop(queue);
                    if evicted > 0 && shared.counters.dropped(evicted, "drop-oldest") {
                        tracing::warn!(
                            total = shared.counters.dropped.load(Ordering::Relaxed),
                            "audit queue full: {evicted} oldest records dropped"
                        );
                    }
                    return;
                }
                OverflowPolicy::Spool | OverflowPolicy::Reject => {
                    drop(queue);
                    shared.spool_or_drop_item(record, false);
                    return;
                }
            }
        }
        let len = queue.len();
        drop(queue);
        if len >= shared.config.batch_size {
            shared.notify.notify_one();
        }
    }

    /// Stops the worker: writes what is queued until `deadline` has passed, spools the
    /// rest, and reports. Records pushed afterwards go straight to the spool.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        *self
            .shared
            .deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now() + deadline);
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.notify.notify_one();
        let handle = self
            .shared
            .worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let mut report = match handle {
            Some(h) => h.await.unwrap_or_default(),
            None => ShutdownReport::default(),
        };
        report.totals = self.stats();
        report
    }
}
