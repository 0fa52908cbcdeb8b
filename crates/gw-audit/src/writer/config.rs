//! [`WriterConfig`] and [`OverflowPolicy`].

use std::path::PathBuf;
use std::time::Duration;

/// Default [`WriterConfig::capacity_bytes`]: 64 MiB.
pub const DEFAULT_CAPACITY_BYTES: usize = 64 << 20;

/// What happens to a record when the in-memory queue is full (by count or by bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Append it to the disk spool (the default). Without a spool directory the record
    /// is dropped and counted.
    #[default]
    Spool,
    /// Drop the oldest queued records to make room, and count them.
    DropOldest,
    /// Refuse new requests with `503 service-unavailable` while the queue is full; a
    /// request that is let in has its queue slot reserved. (Its record is queued even if
    /// it takes the queue past the byte budget: that overshoot is bounded by the
    /// requests in flight.)
    Reject,
}

/// Settings of an [`AuditWriter`](crate::AuditWriter).
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub(crate) capacity: usize,
    pub(crate) capacity_bytes: usize,
    pub(crate) batch_size: usize,
    pub(crate) max_batch: usize,
    pub(crate) concurrency: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) retry_attempts: u32,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) probe_interval: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) segment_bytes: u64,
    pub(crate) overflow: OverflowPolicy,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl WriterConfig {
    /// Queue of 10 000 records or 64 MiB, batches of 100 (up to 1 000 under backlog) or every 5 s,
    /// up to 2 batches written at once, 3 retries from 100 ms doubling up to 2 s, probe an
    /// unhealthy sink every second, 30 s write timeout, overflow to the spool,
    /// no spool directory (set one with [`WriterConfig::spool_dir`] for durability).
    pub const fn new() -> Self {
        Self {
            capacity: 10_000,
            capacity_bytes: DEFAULT_CAPACITY_BYTES,
            batch_size: 100,
            max_batch: 1000,
            concurrency: 2,
            flush_interval: Duration::from_secs(5),
            retry_attempts: 3,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            probe_interval: Duration::from_secs(1),
            write_timeout: Duration::from_secs(30),
            spool_dir: None,
            segment_bytes: 8 << 20,
            overflow: OverflowPolicy::Spool,
        }
    }

    /// Maximum records waiting in memory.
    pub const fn capacity(mut self, records: usize) -> Self {
        self.capacity = if records == 0 { 1 } else { records };
        self
    }

    /// Maximum estimated memory of the records waiting in memory (default 64 MiB); past
    /// it the queue counts as full, as past [`capacity`](Self::capacity). A record larger
    /// than the whole budget is still queued when the queue is empty.
    pub const fn capacity_bytes(mut self, bytes: usize) -> Self {
        self.capacity_bytes = if bytes == 0 { 1 } else { bytes };
        self
    }

    /// Records per batch; a full batch is written at once.
    pub const fn batch_size(mut self, records: usize) -> Self {
        self.batch_size = if records == 0 { 1 } else { records };
        self
    }

    /// Largest batch written at once when a backlog has built up (default 1 000), so
    /// sustained load is written in fewer, larger transactions.
    pub const fn max_batch(mut self, records: usize) -> Self {
        self.max_batch = if records == 0 { 1 } else { records };
        self
    }

    /// Batches written at once when more than one is queued (default 2, for a small
    /// database host; the PostgreSQL sink uses one connection per batch in flight). A
    /// batch is written by one sink call; batches in flight commit independently.
    pub const fn concurrency(mut self, batches: usize) -> Self {
        self.concurrency = if batches == 0 { 1 } else { batches };
        self
    }

    /// A partial batch is written at least this often.
    pub const fn flush_interval(mut self, every: Duration) -> Self {
        self.flush_interval = every;
        self
    }

    /// Retries of a failed batch, with exponential backoff from `base` capped at `max`,
    /// before it goes to the spool.
    pub const fn retry(mut self, attempts: u32, base: Duration, max: Duration) -> Self {
        self.retry_attempts = attempts;
        self.retry_base = base;
        self.retry_max = max;
        self
    }

    /// How often an unhealthy sink is tried again (by replaying the spool).
    pub const fn probe_interval(mut self, every: Duration) -> Self {
        self.probe_interval = every;
        self
    }

    /// Longest a single sink write may take before it counts as failed (default 30 s).
    pub const fn write_timeout(mut self, limit: Duration) -> Self {
        self.write_timeout = limit;
        self
    }

    /// Directory of the durable spool. Segments found there at start are replayed.
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// Size at which a spool segment is closed and a new one started.
    pub const fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// What to do when the queue is full.
    pub const fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }
}
