//! gw-budget hot paths: the in-memory reserve+settle, the whole layer against a bare
//! service (in-memory), and the Redis path (one script round trip before the handler; a
//! second one after it only when the actual cost differs from the estimate).

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::measurement::Measurement;
use criterion::{Criterion, criterion_group, criterion_main};
use gw_benches::ThreadCpuTime;
use gw_budget::backend::{ReserveOutcome, ReserveRequest, SettleRequest};
use gw_budget::{
    BudgetLayer, Charge, FlatCost, MemorySpendStore, PathParam, Period, RedisSpendStore, ScopeKey,
    Thresholds, UpstreamReportedCost,
};
use http::{Request, Response};
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

const HUGE: u64 = 1 << 50;

fn store_ops<M: Measurement + 'static>(c: &mut Criterion<M>, group: &str) {
    let store = MemorySpendStore::new();
    let charges: Arc<[Charge]> = vec![
        Charge {
            key: ScopeKey::platform(Period::Month(24_322)),
            limit: HUGE,
            expires_at: i64::MAX,
        },
        Charge {
            key: ScopeKey::agent("agent-42", Period::Day(20_414)),
            limit: HUGE,
            expires_at: i64::MAX,
        },
    ]
    .into();
    let reserve = ReserveRequest {
        charges: charges.clone(),
        amount: 1_000,
        thresholds: Thresholds::DEFAULT,
        now: 0,
    };
    let settle = SettleRequest {
        charges,
        reserved: 1_000,
        actual: 700,
        thresholds: Thresholds::DEFAULT,
        now: 0,
    };
    let mut g = c.benchmark_group(group);
    g.bench_function("reserve+settle (2 scopes)", |b| {
        b.iter(|| {
            let r = store.reserve_now(black_box(&reserve));
            assert!(matches!(r, ReserveOutcome::Admitted { .. }));
            black_box(store.settle_now(black_box(&settle)))
        })
    });
    g.finish();
}

fn store_wall(c: &mut Criterion) {
    store_ops(c, "gw-budget/memory");
}

fn store_cpu(c: &mut Criterion<ThreadCpuTime>) {
    store_ops(c, "gw-budget/memory-cpu-time");
}

fn layer_memory_cpu(c: &mut Criterion<ThreadCpuTime>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handler =
        |_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::default())) };
    let agents = || PathParam::new(["/api/v1/agents/{agent_id}/*"], "agent_id").unwrap();
    let req = || {
        Request::post("/api/v1/agents/agent-42/run")
            .body(Body::default())
            .unwrap()
    };
    let bare = ServiceBuilder::new().service_fn(handler);
    let memory = ServiceBuilder::new()
        .layer(
            BudgetLayer::in_memory()
                .platform_limit(HUGE)
                .agent_limit(HUGE)
                .agent_id(agents()),
        )
        .service_fn(handler);
    let mut g = c.benchmark_group("gw-budget/layer-cpu-time");
    g.bench_function("bare", |b| {
        b.iter(|| rt.block_on(bare.oneshot(req())).unwrap())
    });
    g.bench_function("memory", |b| {
        b.iter(|| rt.block_on(memory.clone().oneshot(req())).unwrap())
    });
    g.finish();
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handler =
        |_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::default())) };
    let agents = || PathParam::new(["/api/v1/agents/{agent_id}/*"], "agent_id").unwrap();
    let req = || {
        Request::post("/api/v1/agents/agent-42/run")
            .body(Body::default())
            .unwrap()
    };

    let bare = ServiceBuilder::new().service_fn(handler);
    let memory = ServiceBuilder::new()
        .layer(
            BudgetLayer::in_memory()
                .platform_limit(HUGE)
                .agent_limit(HUGE)
                .agent_id(agents()),
        )
        .service_fn(handler);
    let mut g = c.benchmark_group("gw-budget/layer");
    g.bench_function("bare", |b| {
        b.iter(|| rt.block_on(bare.oneshot(req())).unwrap())
    });
    g.bench_function("memory", |b| {
        b.iter(|| rt.block_on(memory.clone().oneshot(req())).unwrap())
    });

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("gwbench:budget:{}:", std::process::id());
    let redis = || RedisSpendStore::open(&url).unwrap().prefix(&prefix);
    let flat = ServiceBuilder::new()
        .layer(
            BudgetLayer::new(redis())
                .platform_limit(HUGE)
                .agent_limit(HUGE)
                .agent_id(agents())
                .cost(FlatCost(1_000)),
        )
        .service_fn(handler);
    let reported = ServiceBuilder::new()
        .layer(
            BudgetLayer::new(redis())
                .platform_limit(HUGE)
                .agent_limit(HUGE)
                .agent_id(agents())
                .cost(UpstreamReportedCost::with_default_header()),
        )
        .service_fn(|_req: Request<Body>| async {
            let mut res = Response::new(Body::default());
            res.headers_mut()
                .insert(gw_budget::UPSTREAM_COST_HEADER, "700".parse().unwrap());
            Ok::<_, Infallible>(res)
        });
    // Refuse to measure a fail-open shortcut: Redis must be there.
    let probe = rt.block_on(flat.clone().oneshot(req())).unwrap();
    assert!(
        probe.headers().contains_key("x-budget-alert-level"),
        "Redis at {url} is not reachable; the Redis benchmarks need it"
    );
    g.bench_function("redis/flat (1 round trip)", |b| {
        b.iter(|| rt.block_on(flat.clone().oneshot(req())).unwrap())
    });
    g.bench_function("redis/upstream-reported (2 round trips)", |b| {
        b.iter(|| rt.block_on(reported.clone().oneshot(req())).unwrap())
    });
    g.finish();
    rt.block_on(async {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    });
}

criterion_group!(benches, store_wall, layer);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = store_cpu, layer_memory_cpu
}
criterion_main!(benches, cpu);
