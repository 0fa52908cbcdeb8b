//! gw-audit: the AuditLayer's own per-request cost, and sustained binary COPY throughput
//! of the PostgreSQL sink against the local PostgreSQL (`DATABASE_URL`).

// The benchmark allocator (mimalloc), as in every benchmark binary.
use gw_benches as _;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gw_audit::sink::BoxFuture;
use gw_audit::{
    AuditLayer, AuditRecord, AuditSink, AuditWriter, HeaderFields, PostgresSink, WriterConfig,
};
use gw_core::BackendError;
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

/// Runs `iters` requests; every 50th request yields once so the writer's worker (on the
/// same single thread) drains the queue: its share of the work is part of the figure.
fn run<S>(rt: &tokio::runtime::Runtime, svc: &S, iters: u64) -> Duration
where
    S: tower::Service<Request<Body>, Error = Infallible> + Clone,
    S::Response: IntoBody,
{
    let start = Instant::now();
    for i in 0..iters {
        rt.block_on(async {
            let res = svc.clone().oneshot(request()).await.unwrap();
            black_box(res.collect_body().await);
            if i % 50 == 49 {
                tokio::task::yield_now().await;
            }
        });
    }
    start.elapsed()
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

fn layer_overhead(c: &mut Criterion) {
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

    let mut g = c.benchmark_group("audit_layer");
    g.bench_function("bare", |b| b.iter_custom(|iters| run(&rt, &bare, iters)));
    g.bench_function("audited", |b| {
        b.iter_custom(|iters| run(&rt, &audited, iters))
    });
    g.finish();
    let report = rt.block_on(writer.shutdown(Duration::from_secs(5)));
    assert_eq!(
        report.totals.dropped, 0,
        "the bench must not overflow the queue"
    );
}

fn record(now: SystemTime) -> AuditRecord {
    let id = uuid::Uuid::now_v7();
    let mut headers = http::HeaderMap::new();
    headers.insert("accept", "application/json".parse().unwrap());
    headers.insert("authorization", "***REDACTED***".parse().unwrap());
    headers.insert("user-agent", "bench/1.0".parse().unwrap());
    AuditRecord {
        id,
        correlation_id: id.to_string(),
        causation_id: None,
        timestamp: now,
        gateway_type: Some("cp".into()),
        request_id: id.to_string(),
        http_method: "POST".into(),
        endpoint: "/api/v1/agents/42/runs".into(),
        query_params: serde_json::json!({"page": "2"}),
        request_headers: HeaderFields(headers),
        request_body: Some(serde_json::json!({"task": "summarize", "password": "***REDACTED***"})),
        user_id: Some("user-1".into()),
        customer_id: Some("cust-1".into()),
        email: Some("user-1@example.com".into()),
        roles: vec!["developer".into()],
        trial_mode: false,
        policies_evaluated: vec!["rbac/rbac_pp".into(), "policy/trial_mode".into()],
        decisions: serde_json::json!([
            {"layer": "rbac", "policy": "rbac_pp", "outcome": "allow", "reason": null, "latency": 4},
            {"layer": "policy", "policy": "trial_mode", "outcome": "allow", "reason": null, "latency": 2}
        ]),
        policy_latency_us: 6,
        status_code: 201,
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
    let rt = tokio::runtime::Builder::new_current_thread()
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

    let mut g = c.benchmark_group("postgres_copy");
    for size in [100usize, 1000] {
        g.throughput(Throughput::Elements(size as u64));
        g.bench_function(format!("batch_{size}"), |b| {
            b.iter_batched(
                || {
                    let now = SystemTime::now();
                    (0..size).map(|_| record(now)).collect::<Vec<_>>()
                },
                |batch| rt.block_on(sink.write(&batch)).unwrap(),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
    rt.block_on(async {
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    });
}

criterion_group!(benches, layer_overhead, postgres_copy);
criterion_main!(benches);
