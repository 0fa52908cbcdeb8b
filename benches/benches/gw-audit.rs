//! gw-audit: the AuditLayer's own per-request cost, and sustained throughput into the
//! local PostgreSQL (`DATABASE_URL`): through the sink alone (one connection, batches of
//! 1 000) and end to end through the writer (its queue, record batching and concurrent
//! batches on several connections), with realistic records, into a table that grows
//! over the run with all its indexes.

// The benchmark allocator (mimalloc), as in every benchmark binary.
use gw_benches as _;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::measurement::Measurement;
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use gw_audit::sink::BoxFuture;
use gw_audit::{
    AuditDecision, AuditLayer, AuditRecord, AuditSink, AuditWriter, HeaderFields, PostgresSink,
    WriterConfig,
};
use gw_benches::ThreadCpuTime;
use gw_core::{BackendError, Decision, Outcome};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

/// Accepts and discards, so only the layer and queue are measured.
struct NullSink;

impl AuditSink for NullSink {
    fn write<'a>(&'a self, batch: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), BackendError>> {
        black_box(batch);
        Box::pin(std::future::ready(Ok(())))
    }
}

fn request() -> Request<Body> {
    Request::get("/api/v1/agents/42?page=2")
        .header("x-correlation-id", "bench-1")
        .header("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig")
        .header("accept", "application/json")
        .header("user-agent", "bench/1.0")
        .header("host", "gateway.local")
        .body(Body::default())
        .unwrap()
}

/// One request through `svc`; every 50th yields once so the writer's worker (on the
/// same single thread) drains the queue: its share of the work is part of the figure.
fn one<S>(rt: &tokio::runtime::Runtime, svc: &S, i: &mut u64)
where
    S: tower::Service<Request<Body>, Error = Infallible> + Clone,
    S::Response: IntoBody,
{
    *i += 1;
    rt.block_on(async {
        let res = svc.clone().oneshot(request()).await.unwrap();
        black_box(res.collect_body().await);
        if (*i).is_multiple_of(50) {
            tokio::task::yield_now().await;
        }
    });
}

trait IntoBody {
    fn collect_body(self) -> impl std::future::Future<Output = Bytes>;
}

impl<B> IntoBody for Response<B>
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    async fn collect_body(self) -> Bytes {
        self.into_body().collect().await.unwrap().to_bytes()
    }
}

/// The layer over a bare handler, and the bare handler, measured with `M` (wall or this
/// thread's CPU time).
fn layer_overhead_with<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let writer = rt
        .block_on(async { AuditWriter::spawn(NullSink, WriterConfig::new()) })
        .unwrap();
    let handler =
        |_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::from("ok"))) };
    let bare = ServiceBuilder::new().service_fn(handler);
    let audited = ServiceBuilder::new()
        .layer(AuditLayer::new(writer.clone()))
        .service_fn(handler);

    let mut g = c.benchmark_group(group);
    let mut i = 0;
    g.bench_function("bare", |b| b.iter(|| one(&rt, &bare, &mut i)));
    g.bench_function("audited", |b| b.iter(|| one(&rt, &audited, &mut i)));
    g.finish();
    let report = rt.block_on(writer.shutdown(Duration::from_secs(5)));
    assert_eq!(
        report.totals.dropped, 0,
        "the bench must not overflow the queue"
    );
}

fn layer_overhead(c: &mut Criterion) {
    layer_overhead_with(c, "audit_layer");
}

fn layer_overhead_cpu(c: &mut Criterion<ThreadCpuTime>) {
    layer_overhead_with(c, "audit_layer-cpu-time");
}

/// A realistic record: ids, a few headers, a small JSON body, two decisions, and users,
/// customers and endpoints spread like a busy gateway's.
fn record(now: SystemTime, n: u64) -> AuditRecord {
    let id = uuid::Uuid::now_v7();
    let user = n % 1000;
    let mut headers = http::HeaderMap::new();
    headers.insert("accept", "application/json".parse().unwrap());
    headers.insert("authorization", "***REDACTED***".parse().unwrap());
    headers.insert("user-agent", "bench/1.0".parse().unwrap());
    AuditRecord {
        id,
        correlation_id: gw_core::CorrelationId::generate().into(),
        causation_id: None,
        timestamp: now,
        gateway_type: Some("cp".into()),
        request_id: id.to_string(),
        http_method: "POST".into(),
        endpoint: format!("/api/v1/agents/{}/runs", n % 50),
        query_params: serde_json::json!({"page": "2"}),
        request_headers: HeaderFields::from(&headers),
        request_body: Some(serde_json::json!({"task": "summarize", "password": "***REDACTED***"})),
        user_id: Some(format!("user-{user}").into()),
        customer_id: Some(format!("cust-{}", user % 100).into()),
        email: Some(format!("user-{user}@example.com").into()),
        roles: vec!["developer".into()].into(),
        trial_mode: false,
        policies_evaluated: vec!["rbac/rbac_pp".into(), "policy/trial_mode".into()],
        decisions: vec![
            AuditDecision::from(Decision::new(
                "rbac",
                "rbac_pp",
                Outcome::Allow,
                Duration::from_micros(4),
            )),
            AuditDecision::from(Decision::new(
                "policy",
                "trial_mode",
                Outcome::Allow,
                Duration::from_micros(2),
            )),
        ],
        policy_latency_us: 6,
        status_code: if n.is_multiple_of(20) { 403 } else { 201 },
        response_headers: HeaderFields::default(),
        error_type: None,
        error_message: None,
        total_latency_us: 850,
        upstream_latency_us: Some(700),
        action: Some("create".into()),
        resource: Some("runs".into()),
        resource_id: Some("42".into()),
        response_complete: true,
    }
}

fn postgres_copy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!(
        "gwa_bench_{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    let client = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL must be reachable at DATABASE_URL");
        tokio::spawn(conn);
        gw_audit::migrate(&client, &schema).await.unwrap();
        client
    });
    let sink = Arc::new(PostgresSink::connect_str(&url, &schema).unwrap());
    let mut n = 0u64;

    let mut g = c.benchmark_group("postgres_copy");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(5))
        .measurement_time(Duration::from_secs(20));
    // The sink alone: one connection, one batch of 1 000 after another.
    g.throughput(Throughput::Elements(1000));
    g.bench_function("sink_batch_1000", |b| {
        b.iter_batched(
            || {
                let now = SystemTime::now();
                (0..1000)
                    .map(|_| {
                        n += 1;
                        record(now, n)
                    })
                    .collect::<Vec<_>>()
            },
            |batch| rt.block_on(sink.write(&batch)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    // End to end through the writer, for each concurrency (these runs are not criterion
    // benchmarks; a name filter given on the command line that none of them contains
    // skips them).
    let filter = std::env::args().skip(1).rfind(|a| !a.starts_with('-'));
    for concurrency in [1usize, 2, 3] {
        let name = format!("postgres_copy/writer_concurrency_{concurrency}");
        if filter.as_ref().is_none_or(|f| name.contains(f.as_str())) {
            rt.block_on(sustained(&url, &schema, concurrency, &mut n));
        }
    }
    let rows: i64 = rt.block_on(async {
        client
            .query_one(
                &format!("SELECT count(*) FROM {schema}.gateway_audit_logs"),
                &[],
            )
            .await
            .unwrap()
            .get(0)
    });
    eprintln!("postgres_copy: {rows} rows in the table at the end, with all its indexes");
    rt.block_on(async {
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    });
}

/// Rows pushed through the writer in one sustained run.
const SUSTAINED_ROWS: u64 = 200_000;

/// CPU time (user + system) a process has used so far, from `/proc/{pid}/stat` (Linux,
/// 100 ticks a second).
fn process_cpu(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the command name: state is field 3; utime and stime are fields 14 and 15.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Pushes `SUSTAINED_ROWS` realistic records into a writer as fast as it takes them (the
/// queue kept under 5 000, so nothing overflows or spools) and prints the rows per second
/// from the first push until the last row is committed (the writer's shutdown, which
/// writes what is left, is inside the timing). Also prints the CPU time per row of the
/// PostgreSQL backends that wrote them and of this process (which also builds the
/// records), and what two otherwise idle cores could sustain at that cost.
async fn sustained(url: &str, schema: &str, concurrency: usize, n: &mut u64) {
    let mut target: tokio_postgres::Config = url.parse().unwrap();
    let app = format!("{schema}_c{concurrency}");
    target.application_name(&app);
    let sink = Arc::new(PostgresSink::new(target, schema).unwrap());
    let writer =
        AuditWriter::spawn(sink.clone(), WriterConfig::new().concurrency(concurrency)).unwrap();
    let own_before = process_cpu("self");
    let start = Instant::now();
    let mut now = SystemTime::now();
    for i in 0..SUSTAINED_ROWS {
        while writer.queued() > 5_000 {
            tokio::time::sleep(Duration::from_micros(200)).await;
            now = SystemTime::now();
        }
        *n += 1;
        writer.push(record(now, *n));
        if i.is_multiple_of(64) {
            tokio::task::yield_now().await;
        }
    }
    let report = writer.shutdown(Duration::from_secs(60)).await;
    let took = start.elapsed();
    let own = process_cpu("self") - own_before;
    assert_eq!(report.totals.written, SUSTAINED_ROWS);
    assert_eq!(report.totals.dropped + report.totals.spooled, 0);
    // The sink's connections are still open (this function holds the sink): their
    // backends' CPU time is what writing these rows cost the server.
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let pids: Vec<i32> = client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let server: Duration = pids.iter().map(|p| process_cpu(&p.to_string())).sum();
    drop(sink);
    let per_row = |d: Duration| d.as_secs_f64() * 1e6 / SUSTAINED_ROWS as f64;
    let (server_us, own_us) = (per_row(server), per_row(own));
    println!(
        "postgres_copy/writer_concurrency_{concurrency}: {SUSTAINED_ROWS} rows in {:.2} s = \
         {:.0} rows/s; CPU per row: {server_us:.1} µs in {} PostgreSQL backends, {own_us:.1} µs \
         here; two idle cores would bound it at {:.0} rows/s",
        took.as_secs_f64(),
        SUSTAINED_ROWS as f64 / took.as_secs_f64(),
        pids.len(),
        2e6 / (server_us + own_us)
    );
}

criterion_group!(benches, layer_overhead, postgres_copy);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = layer_overhead_cpu
}
criterion_main!(benches, cpu);
