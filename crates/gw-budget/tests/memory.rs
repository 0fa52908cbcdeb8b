//! The layer over the in-memory store.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::scenarios::{self, Backend};
use common::*;
use gw_budget::backend::{BoxFuture, ReserveOutcome, ReserveRequest, SettleOutcome, SettleRequest};
use gw_budget::{
    BudgetLayer, MemorySpendStore, Period, PeriodKind, ScopeKey, SpendStore, UtcOffset,
};
use gw_core::BackendError;
use gw_core::{Outcome, RouteSet, StaticFlags};
use http::StatusCode;
use tokio::sync::Semaphore;
use tower::ServiceExt;

struct Memory(MemorySpendStore);

impl Backend for Memory {
    fn store(&self) -> Arc<dyn SpendStore> {
        Arc::new(self.0.clone())
    }
}

fn mem() -> Memory {
    Memory(MemorySpendStore::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_exact() {
    scenarios::concurrency_is_exact(&mem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alert_per_threshold_under_concurrency() {
    scenarios::one_alert_per_threshold_under_concurrency(&mem()).await;
}

#[tokio::test]
async fn periods_roll_over() {
    scenarios::periods_roll_over(&mem()).await;
}

#[tokio::test]
async fn alert_levels_and_headers() {
    scenarios::alert_levels_and_headers(&mem()).await;
}

#[tokio::test]
async fn settles_to_upstream_cost() {
    scenarios::settles_to_upstream_cost(&mem()).await;
}

#[tokio::test]
async fn releases_on_upstream_failure() {
    scenarios::releases_on_upstream_failure(&mem()).await;
}

#[tokio::test]
async fn request_dropped_after_the_handoff_stays_charged() {
    scenarios::request_dropped_after_the_handoff_stays_charged(&mem()).await;
}

#[tokio::test]
async fn exceeded_problem() {
    scenarios::exceeded_problem(&mem()).await;
}

#[tokio::test]
async fn skipped_routes_and_disabled_flag_are_not_charged() {
    let store = MemorySpendStore::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = BudgetLayer::new(store.clone())
        .platform_limit(0)
        .skip(RouteSet::from_routes(["/health", "/docs/*"]).unwrap());
    let svc = service(layer.clone(), calls.clone());
    let (r, d) = with_decisions(req("/docs/intro"));
    let res = call(&svc, r).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("x-budget-alert-level").is_none());
    assert_eq!(d.snapshot().decisions[0].outcome, Outcome::Skip);
    assert_eq!(
        d.snapshot().decisions[0].reason.as_deref(),
        Some("exempt-route")
    );
    assert_eq!(
        call(&svc, req("/docsX")).await.status(),
        StatusCode::PAYMENT_REQUIRED
    );

    let off = StaticFlags::new().set("enable_budget_enforcement", "false");
    let svc = service(layer.flags(Arc::new(off)), calls.clone());
    assert_eq!(call(&svc, req("/api/v1/x")).await.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Only the refused /docsX request touched the store.
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn bad_paths_and_ids_are_refused() {
    let svc = service(
        BudgetLayer::in_memory().agent_id(agents()),
        Arc::new(AtomicUsize::new(0)),
    );
    let (r, d) = with_decisions(req("/api/v1/agents/a%2Fb/run"));
    let res = call(&svc, r).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        d.snapshot().decisions[0].reason.as_deref(),
        Some("ambiguous-path")
    );
    assert_eq!(json(res).await["code"], "ambiguous-path");
    let res = call(&svc, req("/api/v1/agents/a:b/run")).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(res).await["code"], "invalid-agent-id");
}

/// A store whose reserve answers only once the gate opens, like a slow Redis.
#[derive(Debug, Clone)]
struct Gated {
    inner: MemorySpendStore,
    gate: Arc<Semaphore>,
}

impl SpendStore for Gated {
    fn reserve(&self, req: ReserveRequest) -> BoxFuture<Result<ReserveOutcome, BackendError>> {
        let fut = self.inner.reserve(req);
        let gate = self.gate.clone();
        Box::pin(async move {
            gate.acquire().await.unwrap().forget();
            fut.await
        })
    }

    fn settle(&self, req: SettleRequest) -> BoxFuture<Result<SettleOutcome, BackendError>> {
        self.inner.settle(req)
    }

    fn spent(&self, key: &ScopeKey) -> BoxFuture<Result<u64, BackendError>> {
        self.inner.spent(key)
    }
}

#[tokio::test]
async fn request_dropped_during_the_reserve_releases_it_when_the_store_answers() {
    let store = Gated {
        inner: MemorySpendStore::new(),
        gate: Arc::new(Semaphore::new(0)),
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = service(
        BudgetLayer::new(store.clone())
            .clock(Arc::new(clock()))
            .agent_id(agents()),
        calls.clone(),
    );
    let key = ScopeKey::agent(
        "g1",
        Period::containing(PeriodKind::Day, NOW as i64, UtcOffset::UTC),
    );
    let pending = svc.clone().oneshot(req("/api/v1/agents/g1/run"));
    let r = tokio::time::timeout(std::time::Duration::from_millis(50), pending).await;
    assert!(r.is_err(), "the reserve is still waiting for the store");
    // The store made the reservation; nobody is left to settle it...
    assert_eq!(store.spent(&key).await.unwrap(), 1_000);
    // ...until the store answers: then the background task releases it.
    store.gate.add_permits(1);
    for _ in 0..500 {
        if store.spent(&key).await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(store.spent(&key).await.unwrap(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// An inner service whose `call` panics: the request never reaches an upstream.
#[derive(Debug, Clone)]
struct PanicsInCall;

impl tower::Service<http::Request<Body>> for PanicsInCall {
    type Response = http::Response<Body>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<Body>) -> Self::Future {
        panic!("the inner service broke before handing the request on")
    }
}

#[tokio::test]
async fn request_dropped_before_the_handoff_releases() {
    use tower::{Layer, Service};
    let store = MemorySpendStore::new();
    let mut svc = BudgetLayer::new(store.clone())
        .clock(Arc::new(clock()))
        .agent_id(agents())
        .layer(PanicsInCall);
    let key = ScopeKey::agent(
        "p1",
        Period::containing(PeriodKind::Day, NOW as i64, UtcOffset::UTC),
    );
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        svc.call(req("/api/v1/agents/p1/run"))
    }));
    assert!(r.is_err(), "the inner call panicked");
    // Reserved, then released when the admission was dropped before the handoff.
    assert_eq!(store.spent(&key).await.unwrap(), 0);
}

/// Counts store calls: each is one script (one round trip) on Redis.
#[derive(Debug, Clone, Default)]
struct Counting {
    inner: MemorySpendStore,
    reserves: Arc<AtomicUsize>,
    settles: Arc<AtomicUsize>,
}

impl SpendStore for Counting {
    fn reserve(&self, req: ReserveRequest) -> BoxFuture<Result<ReserveOutcome, BackendError>> {
        self.reserves.fetch_add(1, Ordering::SeqCst);
        self.inner.reserve(req)
    }

    fn settle(&self, req: SettleRequest) -> BoxFuture<Result<SettleOutcome, BackendError>> {
        self.settles.fetch_add(1, Ordering::SeqCst);
        self.inner.settle(req)
    }

    fn spent(&self, key: &ScopeKey) -> BoxFuture<Result<u64, BackendError>> {
        self.inner.spent(key)
    }
}

#[tokio::test]
async fn one_store_call_before_and_one_after_only_when_the_cost_changes() {
    let store = Counting::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let count = |s: &Counting| {
        (
            s.reserves.load(Ordering::SeqCst),
            s.settles.load(Ordering::SeqCst),
        )
    };
    let flat = service(
        BudgetLayer::new(store.clone()).agent_id(agents()),
        calls.clone(),
    );
    assert_eq!(
        call(&flat, req("/api/v1/agents/c1/run")).await.status(),
        StatusCode::OK
    );
    assert_eq!(count(&store), (1, 0));

    let reported = service(
        BudgetLayer::new(store.clone())
            .agent_id(agents())
            .cost(gw_budget::UpstreamReportedCost::with_default_header()),
        calls.clone(),
    );
    let r = post("/api/v1/agents/c1/run")
        .header("x-test-cost", "1000")
        .body(Body::default());
    call(&reported, r.unwrap()).await;
    assert_eq!(
        count(&store),
        (2, 0),
        "reported cost equal to the estimate: no settle"
    );
    let r = post("/api/v1/agents/c1/run")
        .header("x-test-cost", "1500")
        .body(Body::default());
    call(&reported, r.unwrap()).await;
    assert_eq!(count(&store), (3, 1));
    let r = post("/api/v1/agents/c1/run")
        .header("x-test-status", "503")
        .body(Body::default());
    call(&flat, r.unwrap()).await;
    assert_eq!(count(&store), (4, 2), "a 5xx releases with one settle");
}

#[tokio::test]
async fn works_with_axum_bodies_behind_the_problem_layer() {
    use axum::body::Body as AxumBody;
    use gw_problem::ProblemLayer;
    use tower::ServiceBuilder;

    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(
            BudgetLayer::in_memory()
                .agent_id(agents())
                .agent_limit(1_000),
        )
        .service_fn(|_req: http::Request<AxumBody>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(AxumBody::from("ok")))
        });
    let run = || {
        http::Request::post("/api/v1/agents/x1/run")
            .header("x-correlation-id", "corr-7")
            .body(AxumBody::empty())
            .unwrap()
    };
    let res = svc.clone().oneshot(run()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-agent-utilization"], "100.00");
    let res = svc.oneshot(run()).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(res.headers()["x-correlation-id"], "corr-7");
    let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "budget-exceeded");
    assert_eq!(body["correlation_id"], "corr-7");
    assert_eq!(body["agent_id"], "x1");
}

/// A caller naming another tenant's agent, refused by the upstream (404), leaves that
/// agent's budget, alerts and pauser untouched, however often it tries.
#[tokio::test]
async fn refused_requests_for_another_tenants_agent_cost_it_nothing() {
    let rec = Recorder::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = rec.layer(
        BudgetLayer::new(MemorySpendStore::new())
            .clock(Arc::new(clock()))
            .agent_id(agents())
            .agent_limit(3_000)
            .cost(gw_budget::FlatCost(1_000)),
    );
    let svc = service(layer, calls.clone());
    for _ in 0..10 {
        let mut r = post("/api/v1/agents/victim-agent/run")
            .header("x-test-status", "404")
            .body(Body::default())
            .unwrap();
        r.extensions_mut().insert(principal("attacker"));
        let res = call(&svc, r).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(header(&res, "x-agent-utilization"), "0.00");
    }
    let mut r = req("/api/v1/agents/victim-agent/run");
    r.extensions_mut().insert(principal("victim"));
    let res = call(&svc, r).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-agent-utilization"), "33.33");
    assert!(rec.paused.lock().unwrap().is_empty());
    assert!(rec.levels().is_empty());
}
