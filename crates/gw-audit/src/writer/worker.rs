//! The background worker: batches, retries, spool replay, drain on shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gw_core::BackendError;
use tokio::time::{Instant, MissedTickBehavior, sleep, timeout_at};

use super::spool::read_segment;
use super::{Item, Shared, ShutdownReport};
use crate::record::AuditRecord;
use crate::sink::AuditSink;

struct Worker {
    shared: Arc<Shared>,
    sink: Box<dyn AuditSink>,
    healthy: bool,
    last_failure: Instant,
    buf: Vec<AuditRecord>,
    items: Vec<Item>,
}

pub(super) async fn run(shared: Arc<Shared>, sink: Box<dyn AuditSink>) -> ShutdownReport {
    let mut w = Worker {
        shared,
        sink,
        healthy: true,
        last_failure: Instant::now(),
        buf: Vec::new(),
        items: Vec::new(),
    };
    // Whatever an earlier run left in the spool goes first.
    while w.replay_one().await {}

    let config = w.shared.config.clone();
    let mut tick = tokio::time::interval(config.flush_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    let mut more_spool = false;
    loop {
        if w.closing() {
            break;
        }
        let full = w.shared.lock().len() >= config.batch_size;
        let mut timed = false;
        if !full && !more_spool {
            tokio::select! {
                _ = tick.tick() => timed = true,
                () = w.shared.notify.notified() => {}
                () = sleep(config.probe_interval), if !w.healthy => {}
            }
        }
        if w.closing() {
            break;
        }
        w.flush(!timed).await;
        if let Some(spool) = &w.shared.spool
            && let Err(e) = spool.sync()
        {
            tracing::error!("audit spool sync failed: {e}");
        }
        more_spool = w.replay_one().await;
    }
    w.drain().await
}

impl Worker {
    fn closing(&self) -> bool {
        self.shared.closing.load(Ordering::SeqCst)
    }

    /// Moves the next batch into `batch` (emptied first), building the records outside
    /// the queue lock.
    fn take_into(&mut self, batch: &mut Vec<AuditRecord>, full_only: bool) {
        batch.clear();
        let size = self.shared.config.batch_size;
        {
            let mut queue = self.shared.lock();
            if full_only && queue.len() < size {
                return;
            }
            let n = queue.len().min(size.max(self.shared.config.max_batch));
            self.items.extend(queue.drain(..n));
        }
        batch.extend(self.items.drain(..).map(Item::into_record));
    }

    fn take(&mut self, full_only: bool) -> Vec<AuditRecord> {
        let mut batch = Vec::new();
        self.take_into(&mut batch, full_only);
        batch
    }

    /// Writes queued batches: every full one, and with `full_only == false` the rest too.
    async fn flush(&mut self, full_only: bool) {
        // One buffer for all batches, so a batch costs no large allocation.
        let mut batch = std::mem::take(&mut self.buf);
        loop {
            self.take_into(&mut batch, full_only);
            if batch.is_empty() {
                break;
            }
            self.write_or_spool(&batch, None).await;
        }
        self.buf = batch;
    }

    fn probe_due(&self) -> bool {
        self.healthy || self.last_failure.elapsed() >= self.shared.config.probe_interval
    }

    fn mark_failed(&mut self, e: &BackendError) {
        if self.healthy {
            tracing::warn!("audit sink unhealthy, spooling: {e}");
        }
        self.healthy = false;
        self.last_failure = Instant::now();
    }

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

    /// Writes `batch` with retries (only one try while the sink is unhealthy, none between
    /// probes); what cannot be written goes to the spool.
    async fn write_or_spool(&mut self, batch: &[AuditRecord], deadline: Option<Instant>) {
        if !self.probe_due() {
            self.shared.spool_or_drop(batch, true);
            return;
        }
        let config = &self.shared.config;
        let attempts = if self.healthy {
            config.retry_attempts
        } else {
            0
        };
        let mut delay = config.retry_base;
        let mut last = None;
        for attempt in 0..=attempts {
            match self.write_once(batch, deadline).await {
                Ok(()) => {
                    self.shared.counters.written(batch.len());
                    if !self.healthy {
                        tracing::info!("audit sink healthy again");
                    }
                    self.healthy = true;
                    return;
                }
                Err(e) => last = Some(e),
            }
            if attempt == attempts || deadline.is_some_and(|d| Instant::now() + delay >= d) {
                break;
            }
            self.shared.counters.retried(batch.len());
            sleep(delay).await;
            delay = (delay * 2).min(config.retry_max);
        }
        if let Some(e) = last {
            self.mark_failed(&e);
        }
        self.shared.spool_or_drop(batch, true);
    }

    /// Replays the oldest spool segment if the sink is (probably) healthy; returns whether
    /// it did and more may be waiting.
    async fn replay_one(&mut self) -> bool {
        let Some(spool) = &self.shared.spool else {
            return false;
        };
        if !self.probe_due() {
            return false;
        }
        let path = match spool.oldest() {
            Ok(Some(path)) => path,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!("audit spool unreadable: {e}");
                return false;
            }
        };
        let records = match read_segment(&path) {
            Ok((records, 0)) => records,
            Ok((records, bad)) => {
                self.shared.counters.dropped(bad, "spool-corrupt");
                // Keep only what is readable, so the loss is counted once.
                if let Err(e) = rewrite(&path, &records) {
                    tracing::error!("audit spool rewrite failed: {e}");
                }
                records
            }
            Err(e) => {
                tracing::error!(path = %path.display(), "audit spool segment unreadable: {e}");
                return false;
            }
        };
        let mut done = 0;
        let chunk_size = self
            .shared
            .config
            .batch_size
            .max(self.shared.config.max_batch);
        for chunk in records.chunks(chunk_size) {
            if let Err(e) = self.write_once(chunk, None).await {
                self.mark_failed(&e);
                if done > 0 {
                    // Keep only what is left, so a later replay does not count twice.
                    if let Err(e) = rewrite(&path, &records[done..]) {
                        tracing::error!("audit spool rewrite failed: {e}");
                    }
                }
                return false;
            }
            done += chunk.len();
            self.shared.counters.written(chunk.len());
        }
        self.healthy = true;
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::error!(path = %path.display(), "audit spool segment not removed: {e}");
            return false;
        }
        true
    }

    async fn drain(mut self) -> ShutdownReport {
        let start = self.shared.counters.snapshot();
        let deadline = self
            .shared
            .deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(Instant::now);
        loop {
            let batch = self.take(false);
            if batch.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                self.shared.spool_or_drop(&batch, false);
            } else {
                self.write_or_spool(&batch, Some(deadline)).await;
            }
        }
        let rest: Vec<AuditRecord> = {
            let mut queue = self.shared.lock();
            self.shared.stopped.store(true, Ordering::SeqCst);
            let items: Vec<Item> = queue.drain(..).collect();
            drop(queue);
            items.into_iter().map(Item::into_record).collect()
        };
        if !rest.is_empty() {
            self.shared.spool_or_drop(&rest, false);
        }
        if let Some(spool) = &self.shared.spool
            && let Err(e) = spool.sync()
        {
            tracing::error!("audit spool sync failed: {e}");
        }
        let end = self.shared.counters.snapshot();
        ShutdownReport {
            flushed: end.written - start.written,
            spooled: end.spooled - start.spooled,
            dropped: end.dropped - start.dropped,
            totals: end,
        }
    }
}

fn rewrite(path: &std::path::Path, records: &[AuditRecord]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(records.len() * 512);
    for r in records {
        serde_json::to_writer(&mut buf, r)?;
        buf.push(b'\n');
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &buf)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(tmp, path)
}
