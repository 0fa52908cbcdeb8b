//! The background worker: batches, retries, spool replay, drain on shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::future::join_all;
use gw_core::BackendError;
use tokio::time::{Instant, MissedTickBehavior, sleep};

use super::spool::{count_lines, read_segment};
use super::{Item, Shared, ShutdownReport};
use crate::record::AuditRecord;
use crate::sink::AuditSink;

/// The worker's state; writing one batch is in [`super::isolate`].
pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) sink: Box<dyn AuditSink>,
    healthy: bool,
    last_failure: Instant,
    /// Emptied batch buffers, reused so a batch costs no large allocation.
    bufs: Vec<Vec<AuditRecord>>,
    items: Vec<Item>,
    /// The spool segment whose last read failed with an error that may pass.
    unreadable: Option<std::path::PathBuf>,
}

pub(super) async fn run(shared: Arc<Shared>, sink: Box<dyn AuditSink>) -> ShutdownReport {
    let mut w = Worker {
        shared,
        sink,
        healthy: true,
        last_failure: Instant::now(),
        bufs: Vec::new(),
        items: Vec::new(),
        unreadable: None,
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

    /// Takes the next batches: up to `concurrency` of them, together at most
    /// `concurrency` times the largest batch, split evenly but no smaller than
    /// `batch_size` (fewer batches when there is less). With `full_only`, nothing unless a
    /// full batch is queued. The records are built outside the queue lock.
    fn take_batches(&mut self, full_only: bool) -> Vec<Vec<AuditRecord>> {
        let config = &self.shared.config;
        let size = config.batch_size;
        let largest = size.max(config.max_batch);
        {
            let mut queue = self.shared.lock();
            if queue.is_empty() || (full_only && queue.len() < size) {
                return Vec::new();
            }
            let n = queue.len().min(largest * config.concurrency);
            queue.take(n, &mut self.items);
        }
        let n = self.items.len();
        let count = n.div_ceil(size).min(config.concurrency).max(1);
        let per = n.div_ceil(count);
        let mut items = self.items.drain(..);
        let mut batches = Vec::with_capacity(count);
        for _ in 0..count {
            let mut batch = self.bufs.pop().unwrap_or_default();
            batch.extend(items.by_ref().take(per).map(Item::into_record));
            if !batch.is_empty() {
                batches.push(batch);
            }
        }
        batches
    }

    /// Empties `batches` (dropping their records) and keeps the buffers for reuse.
    fn recycle(&mut self, batches: Vec<Vec<AuditRecord>>) {
        for mut batch in batches {
            batch.clear();
            if self.bufs.len() < self.shared.config.concurrency {
                self.bufs.push(batch);
            }
        }
    }

    /// Writes queued batches: every full one, and with `full_only == false` the rest too.
    async fn flush(&mut self, full_only: bool) {
        loop {
            let batches = self.take_batches(full_only);
            if batches.is_empty() {
                break;
            }
            self.write_or_spool(&batches, None).await;
            self.recycle(batches);
        }
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

    /// Writes `batches` concurrently, each with retries (only one try while the sink is
    /// unhealthy, none between probes); what cannot be written goes to the spool.
    async fn write_or_spool(&mut self, batches: &[Vec<AuditRecord>], deadline: Option<Instant>) {
        if !self.probe_due() {
            for batch in batches {
                self.shared.spool_or_drop(batch, true);
            }
            return;
        }
        let attempts = if self.healthy {
            self.shared.config.retry_attempts
        } else {
            0
        };
        let results = join_all(
            batches
                .iter()
                .map(|batch| self.write_isolating(batch, attempts, deadline)),
        )
        .await;
        for (batch, done) in batches.iter().zip(results) {
            if done.written > 0 {
                self.shared.counters.written(done.written);
            }
            match done.failed {
                None => {
                    if !self.healthy {
                        tracing::info!("audit sink healthy again");
                    }
                    self.healthy = true;
                }
                Some((e, rest)) => {
                    self.mark_failed(&e);
                    for range in rest {
                        self.shared.spool_or_drop(&batch[range], true);
                    }
                }
            }
        }
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
                if let Err(e) = rewrite(&path, records.iter()) {
                    tracing::error!("audit spool rewrite failed: {e}");
                }
                records
            }
            Err(e) => {
                // An error that may pass (EMFILE, ENOMEM) is tried again at the next
                // probe; one that will not, or the same segment failing twice in a row,
                // has the segment moved aside and its records counted lost.
                if e.kind() != std::io::ErrorKind::InvalidData
                    && self.unreadable.as_ref() != Some(&path)
                {
                    tracing::warn!(path = %path.display(), "audit spool segment not read, trying again: {e}");
                    self.unreadable = Some(path);
                    return false;
                }
                self.unreadable = None;
                tracing::error!(path = %path.display(), "audit spool segment unreadable: {e}");
                let lost = count_lines(&path);
                spool.quarantine(&path);
                // Its records, or at least one when even their count cannot be read.
                let n = lost.as_ref().map_or(1, |&n| n);
                if n > 0 && self.shared.counters.dropped(n, "spool-unreadable") {
                    tracing::error!(
                        path = %path.display(),
                        lost = n,
                        "audit records of an unreadable spool segment dropped{}",
                        if lost.is_err() { " (at least)" } else { "" }
                    );
                }
                return true;
            }
        };
        self.unreadable = None;
        let chunk_size = self
            .shared
            .config
            .batch_size
            .max(self.shared.config.max_batch);
        let mut start = 0;
        for chunk in records.chunks(chunk_size) {
            let done = self.write_isolating(chunk, 0, None).await;
            if done.written > 0 {
                self.shared.counters.written(done.written);
            }
            if let Some((e, rest)) = done.failed {
                self.mark_failed(&e);
                if start > 0 || done.written + done.refused > 0 {
                    // Keep only what is left, so a later replay does not count twice.
                    let left = rest
                        .into_iter()
                        .flat_map(|r| &chunk[r])
                        .chain(&records[start + chunk.len()..]);
                    if let Err(e) = rewrite(&path, left) {
                        tracing::error!("audit spool rewrite failed: {e}");
                    }
                }
                return false;
            }
            start += chunk.len();
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
            let batches = self.take_batches(false);
            if batches.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for batch in &batches {
                    self.shared.spool_or_drop(batch, false);
                }
            } else {
                self.write_or_spool(&batches, Some(deadline)).await;
            }
            self.recycle(batches);
        }
        let rest: Vec<AuditRecord> = {
            let mut queue = self.shared.lock();
            self.shared.stopped.store(true, Ordering::SeqCst);
            let mut items = Vec::with_capacity(queue.len());
            queue.take(usize::MAX, &mut items);
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

fn rewrite<'a>(
    path: &std::path::Path,
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for r in records {
        serde_json::to_writer(&mut buf, r)?;
        buf.push(b'\n');
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &buf)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(tmp, path)
}
