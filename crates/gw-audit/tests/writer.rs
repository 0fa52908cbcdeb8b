//! AuditWriter: batching, retries, spool, replay, shutdown.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use gw_audit::sink::BoxFuture;
use gw_audit::{AuditRecord, AuditSink, AuditWriter, OverflowPolicy, WriterConfig};
use gw_core::BackendError;

/// A sink that can be switched down, fails its first `fail_first` writes, and keeps
/// what it accepted.
#[derive(Default)]
struct FlakySink {
    down: AtomicBool,
    fail_first: AtomicUsize,
    writes: AtomicUsize,
    records: Mutex<Vec<AuditRecord>>,
}

impl FlakySink {
    fn ids(&self) -> Vec<uuid::Uuid> {
        self.records.lock().unwrap().iter().map(|r| r.id).collect()
    }
}

impl AuditSink for FlakySink {
    fn write<'a>(&'a self, batch: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), BackendError>> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        let result =
            if self.down.load(Ordering::SeqCst) || n < self.fail_first.load(Ordering::SeqCst) {
                Err(BackendError::unavailable("flaky", "down"))
            } else {
                self.records.lock().unwrap().extend_from_slice(batch);
                Ok(())
            };
        Box::pin(std::future::ready(result))
    }
}

fn record(n: usize) -> AuditRecord {
    let id = uuid::Uuid::now_v7();
    AuditRecord {
        id,
        correlation_id: format!("c{n}").into(),
        causation_id: None,
        timestamp: SystemTime::now(),
        gateway_type: None,
        request_id: id.to_string(),
        http_method: "GET".into(),
        endpoint: "/x".into(),
        query_params: serde_json::json!({}),
        request_headers: Default::default(),
        request_body: None,
        user_id: None,
        customer_id: None,
        email: None,
        roles: Vec::new().into(),
        trial_mode: false,
        policies_evaluated: vec![],
        decisions: Vec::new(),
        policy_latency_us: 0,
        status_code: 200,
        response_headers: Default::default(),
        error_type: None,
        error_message: None,
        total_latency_us: 1,
        upstream_latency_us: None,
        action: None,
        resource: None,
        resource_id: None,
        response_complete: true,
    }
}

fn spool_dir() -> PathBuf {
    std::env::temp_dir().join(format!("gw-audit-test-{}", uuid::Uuid::now_v7()))
}

fn fast() -> WriterConfig {
    WriterConfig::new()
        .batch_size(10)
        .flush_interval(Duration::from_millis(20))
        .retry(2, Duration::from_millis(1), Duration::from_millis(5))
        .probe_interval(Duration::from_millis(10))
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn assert_unique(ids: &[uuid::Uuid], n: usize) {
    assert_eq!(ids.len(), n);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), n);
}

#[tokio::test]
async fn a_full_batch_is_written_without_waiting_for_the_interval() {
    let sink = Arc::new(FlakySink::default());
    let writer = AuditWriter::spawn(
        sink.clone(),
        WriterConfig::new()
            .batch_size(10)
            .max_batch(10)
            .flush_interval(Duration::from_secs(3600)),
    )
    .unwrap();
    for n in 0..25 {
        writer.push(record(n));
    }
    until("two full batches", || sink.ids().len() == 20).await;
    assert_eq!(writer.queued(), 5);
    let report = writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.flushed, report.spooled, report.dropped), (5, 0, 0));
    assert_unique(&sink.ids(), 25);
}

#[tokio::test]
async fn failed_batches_are_retried_once_each_without_duplicates() {
    let sink = Arc::new(FlakySink::default());
    sink.fail_first.store(2, Ordering::SeqCst);
    let writer = AuditWriter::spawn(sink.clone(), fast()).unwrap();
    for n in 0..10 {
        writer.push(record(n));
    }
    until("the retried batch", || sink.ids().len() == 10).await;
    let stats = writer.stats();
    assert_eq!((stats.written, stats.retried, stats.spooled), (10, 20, 0));
    writer.shutdown(Duration::from_secs(5)).await;
    assert_unique(&sink.ids(), 10);
}

#[tokio::test]
async fn an_outage_goes_to_the_spool_and_is_replayed_when_healthy() {
    let dir = spool_dir();
    let sink = Arc::new(FlakySink::default());
    sink.down.store(true, Ordering::SeqCst);
    let writer = AuditWriter::spawn(sink.clone(), fast().spool_dir(&dir)).unwrap();
    for n in 0..57 {
        writer.push(record(n));
    }
    until("everything spooled", || writer.stats().spooled == 57).await;
    assert!(sink.ids().is_empty());
    assert!(writer.spool_segments() > 0);

    sink.down.store(false, Ordering::SeqCst);
    until("the replay", || sink.ids().len() == 57).await;
    until("the spool emptied", || writer.spool_segments() == 0).await;
    let report = writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.dropped, 0);
    assert_eq!(report.totals.written, 57);
    assert_unique(&sink.ids(), 57);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn shutdown_spools_what_it_cannot_write_and_the_next_start_replays_it() {
    let dir = spool_dir();
    let sink = Arc::new(FlakySink::default());
    sink.down.store(true, Ordering::SeqCst);
    let config = fast()
        .flush_interval(Duration::from_secs(3600))
        .batch_size(1000);
    let writer = AuditWriter::spawn(sink.clone(), config.clone().spool_dir(&dir)).unwrap();
    for n in 0..30 {
        writer.push(record(n));
    }
    let report = writer.shutdown(Duration::from_millis(200)).await;
    assert_eq!((report.flushed, report.spooled, report.dropped), (0, 30, 0));
    // Records that arrive after shutdown still reach the spool.
    writer.push(record(30));
    assert_eq!(writer.stats().spooled, 31);

    let healthy = Arc::new(FlakySink::default());
    let again = AuditWriter::spawn(healthy.clone(), config.spool_dir(&dir)).unwrap();
    until("the startup replay", || healthy.ids().len() == 31).await;
    until("the spool emptied", || again.spool_segments() == 0).await;
    again.shutdown(Duration::from_secs(5)).await;
    assert_unique(&healthy.ids(), 31);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn overflow_goes_to_the_spool_by_default() {
    let dir = spool_dir();
    let sink = Arc::new(FlakySink::default());
    let config = WriterConfig::new()
        .capacity(5)
        .batch_size(100)
        .flush_interval(Duration::from_secs(3600))
        .spool_dir(&dir);
    assert_eq!(
        format!("{:?}", OverflowPolicy::default()),
        format!("{:?}", OverflowPolicy::Spool)
    );
    let writer = AuditWriter::spawn(sink.clone(), config.clone()).unwrap();
    // Let the worker finish its (empty) startup replay first.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for n in 0..12 {
        writer.push(record(n));
    }
    assert_eq!(writer.stats().spooled, 7);
    assert_eq!(writer.queued(), 5);
    let report = writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.flushed, 5);
    assert_eq!(writer.spool_segments(), 1);

    let again = AuditWriter::spawn(sink.clone(), config).unwrap();
    until("the overflow replayed", || sink.ids().len() == 12).await;
    again.shutdown(Duration::from_secs(5)).await;
    assert_unique(&sink.ids(), 12);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn without_a_spool_losses_are_counted_not_silent() {
    let sink = Arc::new(FlakySink::default());
    sink.down.store(true, Ordering::SeqCst);
    let writer = AuditWriter::spawn(sink.clone(), fast()).unwrap();
    for n in 0..10 {
        writer.push(record(n));
    }
    until("the loss to be counted", || writer.stats().dropped == 10).await;
    let report = writer.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.totals.dropped, 10);
    assert_eq!(report.totals.written, 0);
}

#[tokio::test]
async fn overflow_without_a_spool_is_counted_as_lost() {
    let sink = Arc::new(FlakySink::default());
    let config = WriterConfig::new()
        .capacity(3)
        .batch_size(100)
        .flush_interval(Duration::from_secs(3600));
    let writer = AuditWriter::spawn(sink.clone(), config).unwrap();
    for n in 0..5 {
        writer.push(record(n));
    }
    // The queue keeps the first three; the two that did not fit are lost, and counted.
    assert_eq!(writer.queued(), 3);
    assert_eq!(writer.stats().dropped, 2);
    assert_eq!(writer.stats().spooled, 0);
    let report = writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.flushed, 3);
    assert_eq!(report.totals.dropped, 2);
    assert_unique(&sink.ids(), 3);
}

/// A sink whose writes take a while, counting how many are in flight at once.
#[derive(Default)]
struct SlowSink {
    in_flight: AtomicUsize,
    most: AtomicUsize,
    batches: Mutex<Vec<usize>>,
    records: Mutex<Vec<AuditRecord>>,
}

impl AuditSink for SlowSink {
    fn write<'a>(&'a self, batch: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.batches.lock().unwrap().push(batch.len());
            self.records.lock().unwrap().extend_from_slice(batch);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

async fn backlog_through(concurrency: usize) -> Arc<SlowSink> {
    let sink = Arc::new(SlowSink::default());
    let config = WriterConfig::new()
        .batch_size(10)
        .max_batch(20)
        .concurrency(concurrency)
        .flush_interval(Duration::from_secs(3600));
    let writer = AuditWriter::spawn(sink.clone(), config).unwrap();
    // A backlog builds up before the worker runs (current-thread runtime).
    let records: Vec<_> = (0..150).map(record).collect();
    for r in &records {
        writer.push(r.clone());
    }
    let report = writer.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.totals.written, 150);
    assert_eq!(report.totals.dropped, 0);
    let written: Vec<_> = sink.records.lock().unwrap().iter().map(|r| r.id).collect();
    let unique: HashSet<_> = written.iter().collect();
    assert_eq!(unique.len(), 150, "every record exactly once");
    assert_eq!(written.len(), 150, "every record exactly once");
    assert!(
        sink.batches.lock().unwrap().iter().all(|&n| n <= 20),
        "no batch over max_batch: {:?}",
        sink.batches.lock().unwrap()
    );
    sink
}

#[tokio::test]
async fn a_backlog_is_written_in_up_to_concurrency_batches_at_once() {
    let sink = backlog_through(3).await;
    assert_eq!(sink.most.load(Ordering::SeqCst), 3);
    let sink = backlog_through(1).await;
    assert_eq!(sink.most.load(Ordering::SeqCst), 1);
}

/// Refuses (an `invalid` error, as PostgreSQL's data errors are) every batch holding a
/// record whose endpoint is `/bad`; keeps the rest. Counts writes.
#[derive(Default)]
struct RefusingSink {
    writes: AtomicUsize,
    records: Mutex<Vec<AuditRecord>>,
}

impl AuditSink for RefusingSink {
    fn write<'a>(&'a self, batch: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), BackendError>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let result = if batch.iter().any(|r| r.endpoint == "/bad") {
            Err(BackendError::invalid("refusing", "data exception"))
        } else {
            self.records.lock().unwrap().extend_from_slice(batch);
            Ok(())
        };
        Box::pin(std::future::ready(result))
    }
}

fn bad(n: usize) -> AuditRecord {
    AuditRecord {
        endpoint: "/bad".into(),
        ..record(n)
    }
}

#[tokio::test]
async fn records_the_sink_refuses_are_dropped_alone_and_the_rest_is_written() {
    let dir = spool_dir();
    let sink = Arc::new(RefusingSink::default());
    let writer = AuditWriter::spawn(
        sink.clone(),
        fast()
            .max_batch(10)
            .flush_interval(Duration::from_secs(3600))
            .spool_dir(&dir),
    )
    .unwrap();
    // One batch of ten with two refused records; then a clean batch.
    for n in 0..20 {
        writer.push(if n == 3 || n == 8 { bad(n) } else { record(n) });
    }
    until("the good records", || {
        sink.records.lock().unwrap().len() == 18
    })
    .await;
    let stats = writer.stats();
    assert_eq!((stats.written, stats.dropped), (18, 2), "{stats:?}");
    // Refusals are not retried, spooled, or taken for an outage.
    assert_eq!((stats.retried, stats.spooled), (0, 0), "{stats:?}");
    assert_eq!(writer.spool_segments(), 0);
    // Halving finds each refused record in about 2 * log2(10) writes (15 for this
    // batch), plus one for the clean batch.
    let writes = sink.writes.load(Ordering::SeqCst);
    assert!(writes <= 16, "{writes} writes");
    writer.shutdown(Duration::from_secs(1)).await;
    let written: Vec<uuid::Uuid> = sink.records.lock().unwrap().iter().map(|r| r.id).collect();
    assert_unique(&written, 18);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_refused_record_in_the_spool_does_not_block_its_replay() {
    use std::io::Write;
    let dir = spool_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut segment = Vec::new();
    for n in 0..5 {
        let r = if n == 2 { bad(n) } else { record(n) };
        serde_json::to_writer(&mut segment, &r).unwrap();
        segment.push(b'\n');
    }
    std::fs::File::create(dir.join(format!("{:020}.spool", 0)))
        .unwrap()
        .write_all(&segment)
        .unwrap();
    let sink = Arc::new(RefusingSink::default());
    let writer = AuditWriter::spawn(sink.clone(), fast().spool_dir(&dir)).unwrap();
    writer.push(record(10));
    until("the replay and the new record", || {
        sink.records.lock().unwrap().len() == 5
    })
    .await;
    until("the spool emptied", || writer.spool_segments() == 0).await;
    let report = writer.shutdown(Duration::from_secs(1)).await;
    assert_eq!(
        (report.totals.written, report.totals.dropped),
        (5, 1),
        "{report:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn nuls_in_pushed_records_are_replaced() {
    let sink = Arc::new(FlakySink::default());
    let writer = AuditWriter::spawn(sink.clone(), fast()).unwrap();
    let mut r = record(0);
    r.endpoint = "/x\0".into();
    r.query_params = serde_json::json!({"q\u{0}": "a\u{0}"});
    r.user_id = Some("u\0".into());
    writer.push(r);
    until("the record", || sink.ids().len() == 1).await;
    writer.shutdown(Duration::from_secs(1)).await;
    let got = sink.records.lock().unwrap()[0].clone();
    assert_eq!(got.endpoint, "/x\u{fffd}");
    assert_eq!(
        got.query_params,
        serde_json::json!({"q\u{fffd}": "a\u{fffd}"})
    );
    assert_eq!(got.user_id.as_deref(), Some("u\u{fffd}"));
}

/// A crash mid-append can cut a line inside a multi-byte character: that line is counted
/// lost like any torn line, and the rest of its segment and later segments are replayed.
#[tokio::test]
async fn a_line_torn_inside_a_character_is_counted_and_replay_goes_on() {
    use std::io::Write;
    let dir = spool_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let line = |n: usize| {
        let mut r = record(n);
        r.endpoint = "/caf\u{e9}".into();
        let mut l = serde_json::to_vec(&r).unwrap();
        l.push(b'\n');
        l
    };
    let mut first = [line(0), line(1)].concat();
    let torn = line(2);
    let cut = torn.iter().position(|&b| b == 0xc3).unwrap() + 1;
    first.extend_from_slice(&torn[..cut]);
    std::fs::File::create(dir.join(format!("{:020}.spool", 0)))
        .unwrap()
        .write_all(&first)
        .unwrap();
    let second: Vec<u8> = (10..20).flat_map(line).collect();
    std::fs::File::create(dir.join(format!("{:020}.spool", 1)))
        .unwrap()
        .write_all(&second)
        .unwrap();

    let sink = Arc::new(FlakySink::default());
    let writer = AuditWriter::spawn(sink.clone(), fast().spool_dir(&dir)).unwrap();
    for n in 100..105 {
        writer.push(record(n));
    }
    until("every readable record", || sink.ids().len() == 17).await;
    until("the spool emptied", || writer.spool_segments() == 0).await;
    let report = writer.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.totals.dropped, 1, "{report:?}");
    assert_unique(&sink.ids(), 17);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A segment that cannot be read at all is moved aside (kept for inspection) instead of
/// holding up the segments after it forever.
#[tokio::test]
async fn an_unreadable_segment_is_moved_aside_and_the_next_ones_replayed() {
    use std::io::Write;
    let dir = spool_dir();
    // A directory where a segment should be: opening works, reading fails (EISDIR).
    std::fs::create_dir_all(dir.join(format!("{:020}.spool", 0))).unwrap();
    let good: Vec<u8> = (0..10)
        .flat_map(|n| {
            let mut l = serde_json::to_vec(&record(n)).unwrap();
            l.push(b'\n');
            l
        })
        .collect();
    std::fs::File::create(dir.join(format!("{:020}.spool", 1)))
        .unwrap()
        .write_all(&good)
        .unwrap();

    let sink = Arc::new(FlakySink::default());
    let writer = AuditWriter::spawn(sink.clone(), fast().spool_dir(&dir)).unwrap();
    until("the readable segment", || sink.ids().len() == 10).await;
    until("the spool emptied", || writer.spool_segments() == 0).await;
    // Its records are lost and counted so (how many cannot be read: at least one).
    assert_eq!(writer.stats().dropped, 1);
    writer.shutdown(Duration::from_secs(1)).await;
    assert!(dir.join(format!("{:020}.unreadable", 0)).exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A segment whose read fails once (an error that may pass, such as EMFILE) is read
/// again at the next probe, not moved aside.
#[tokio::test]
async fn a_segment_that_fails_to_read_once_is_replayed_at_the_next_probe() {
    let dir = spool_dir();
    let segment = dir.join(format!("{:020}.spool", 0));
    // Reading a directory fails (EISDIR); it is replaced by the segment before the
    // worker's second try.
    std::fs::create_dir_all(&segment).unwrap();
    let sink = Arc::new(FlakySink::default());
    let writer = AuditWriter::spawn(
        sink.clone(),
        fast()
            .flush_interval(Duration::from_secs(3600))
            .spool_dir(&dir),
    )
    .unwrap();
    // The worker's first try, at start, fails.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!dir.join(format!("{:020}.unreadable", 0)).exists());
    let _ = std::fs::remove_dir(&segment);
    let lines: Vec<u8> = (0..5)
        .flat_map(|n| {
            let mut l = serde_json::to_vec(&record(n)).unwrap();
            l.push(b'\n');
            l
        })
        .collect();
    std::fs::write(&segment, lines).unwrap();
    // A full batch wakes the worker, which writes it and then replays the spool.
    for n in 5..15 {
        writer.push(record(n));
    }
    until("the segment replayed", || sink.ids().len() == 15).await;
    writer.shutdown(Duration::from_secs(1)).await;
    assert_eq!(writer.stats().dropped, 0);
    assert_unique(&sink.ids(), 15);
    assert!(!dir.join(format!("{:020}.unreadable", 0)).exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A record with a body of many small objects is large in memory: the queue holds
/// records up to its byte budget and overflows (here to the spool) past it.
#[tokio::test]
async fn the_queue_is_bounded_by_bytes_as_well_as_by_records() {
    let dir = spool_dir();
    let sink = Arc::new(FlakySink::default());
    let budget = 256 * 1024;
    let writer = AuditWriter::spawn(
        sink.clone(),
        WriterConfig::new()
            .capacity(10_000)
            .capacity_bytes(budget)
            .batch_size(10_000)
            .flush_interval(Duration::from_secs(3600))
            .spool_dir(&dir),
    )
    .unwrap();
    // 64 one-entry objects: about 40 KiB each in memory, though 0.5 KiB as text.
    let text = format!("[{}]", vec![r#"{"a":0}"#; 64].join(","));
    for n in 0..20 {
        writer.push(AuditRecord {
            request_body: Some(serde_json::from_str(&text).unwrap()),
            ..record(n)
        });
    }
    let queued = writer.queued();
    assert!((3..20).contains(&queued), "{queued} queued");
    assert!(writer.queued_bytes() <= budget, "{}", writer.queued_bytes());
    assert_eq!(writer.stats().spooled, 20 - queued as u64);
    // Drained, every record is written (queued ones now, spooled ones on replay).
    until("the spool replayed", || sink.ids().len() == 20 - queued).await;
    let report = writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.flushed, queued as u64);
    assert_unique(&sink.ids(), 20);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn drop_oldest_evicts_as_many_records_as_the_byte_budget_needs() {
    let sink = Arc::new(FlakySink::default());
    let writer = AuditWriter::spawn(
        sink.clone(),
        WriterConfig::new()
            .capacity(10_000)
            .capacity_bytes(48 * 1024)
            .batch_size(10_000)
            .flush_interval(Duration::from_secs(3600))
            .overflow(OverflowPolicy::DropOldest),
    )
    .unwrap();
    for n in 0..30 {
        writer.push(record(n));
    }
    let light = writer.queued();
    assert_eq!(light, 30);
    // One heavy record (about 40 KiB) pushes out as many light ones as it needs.
    let text = format!("[{}]", vec![r#"{"a":0}"#; 64].join(","));
    writer.push(AuditRecord {
        request_body: Some(serde_json::from_str(&text).unwrap()),
        ..record(99)
    });
    let dropped = writer.stats().dropped;
    assert!(dropped > 1, "{dropped}");
    assert_eq!(writer.queued() as u64, 31 - dropped);
    assert!(writer.queued_bytes() <= 48 * 1024);
    writer.shutdown(Duration::from_secs(5)).await;
}
