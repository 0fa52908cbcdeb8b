//! Behaviour every store must show; run against each backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gw_budget::{
    BudgetLayer, FlatCost, Period, PeriodKind, ScopeKey, SpendStore, Thresholds,
    UpstreamReportedCost, UtcOffset,
};
use gw_core::{Outcome, StaticFlags};
use gw_problem::Problem;
use http::StatusCode;
use tower::ServiceExt;

use super::*;

#[allow(unused_imports)] // not every test binary runs the concurrency scenarios
pub use super::concurrency::*;

/// A backend under test. Each `store()` may be a separate client: a separate replica.
pub trait Backend: Send + Sync + 'static {
    fn store(&self) -> Arc<dyn SpendStore>;
}

pub(crate) fn day(unix: u64, offset: UtcOffset) -> Period {
    Period::containing(PeriodKind::Day, unix as i64, offset)
}

pub(crate) fn month(unix: u64) -> Period {
    Period::containing(PeriodKind::Month, unix as i64, UtcOffset::UTC)
}

pub(crate) async fn agent_spent(store: &Arc<dyn SpendStore>, id: &str) -> u64 {
    store
        .spent(&ScopeKey::agent(id, day(NOW, UtcOffset::UTC)))
        .await
        .unwrap()
}

pub(crate) async fn platform_spent(store: &Arc<dyn SpendStore>) -> u64 {
    store.spent(&ScopeKey::platform(month(NOW))).await.unwrap()
}

pub(crate) fn base(store: Arc<dyn SpendStore>) -> BudgetLayer {
    BudgetLayer::new(store)
        .clock(Arc::new(clock()))
        .agent_id(agents())
}

/// Days and months roll over on calendar boundaries in the configured offset.
pub async fn periods_roll_over<B: Backend>(b: &B) {
    let clock = clock();
    let plus2 = UtcOffset::from_hours(2);
    let svc = service(
        BudgetLayer::new(b.store())
            .clock(Arc::new(clock.clone()))
            .utc_offset(plus2)
            .agent_id(agents())
            .agent_limit(1_000)
            .platform_limit(10_000)
            .cost(FlatCost(1_000)),
        Arc::new(AtomicUsize::new(0)),
    );
    let run = || req("/api/v1/agents/r1/run");
    assert_eq!(call(&svc, run()).await.status(), StatusCode::OK);
    assert_eq!(
        call(&svc, run()).await.status(),
        StatusCode::PAYMENT_REQUIRED
    );
    // Local midnight in UTC+2 is 22:00 UTC: one second before it, still the same day.
    let midnight = day(NOW, plus2).ends_at(plus2) as u64;
    clock.set(std::time::UNIX_EPOCH + Duration::from_secs(midnight - 1));
    assert_eq!(
        call(&svc, run()).await.status(),
        StatusCode::PAYMENT_REQUIRED
    );
    clock.advance(Duration::from_secs(1));
    let res = call(&svc, run()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-agent-utilization"), "100.00");
    // The platform month did not roll over: 2 of 10 requests.
    assert_eq!(header(&res, "x-platform-utilization"), "20.00");
    // The month does, at local month start.
    let next_month = Period::containing(PeriodKind::Month, midnight as i64, plus2).ends_at(plus2);
    clock.set(std::time::UNIX_EPOCH + Duration::from_secs(next_month as u64));
    let res = call(&svc, run()).await;
    assert_eq!(header(&res, "x-platform-utilization"), "10.00");
}

/// Every alert level and its headers; thresholds switchable by feature flags.
pub async fn alert_levels_and_headers<B: Backend>(b: &B) {
    let rec = Recorder::default();
    let svc = service(
        rec.layer(
            base(b.store())
                .agent_limit(100)
                .platform_limit(1_000)
                .cost(HeaderEstimate),
        ),
        Arc::new(AtomicUsize::new(0)),
    );
    let spend = |n: u64| {
        post("/api/v1/agents/h1/run")
            .header("x-test-estimate", n.to_string())
            .body(Body::default())
            .unwrap()
    };
    for (n, level, agent, platform) in [
        (79, "none", "79.00", "7.90"),
        (1, "warning", "80.00", "8.00"),
        (15, "high", "95.00", "9.50"),
        (5, "critical", "100.00", "10.00"),
    ] {
        let res = call(&svc, spend(n)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "x-budget-alert-level"), level);
        assert_eq!(header(&res, "x-agent-utilization"), agent);
        assert_eq!(header(&res, "x-platform-utilization"), platform);
    }
    let res = call(&svc, spend(1)).await;
    assert_eq!(res.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(header(&res, "x-budget-alert-level"), "critical");
    assert_eq!(rec.levels().len(), 3);
    // Without an agent, only the platform counts.
    let status = post("/api/v1/status").header("x-test-estimate", "1");
    let res = call(&svc, status.body(Body::default()).unwrap()).await;
    assert_eq!(header(&res, "x-budget-alert-level"), "none");
    assert_eq!(header(&res, "x-platform-utilization"), "10.10");
    assert!(res.headers().get("x-agent-utilization").is_none());

    // Flags move the thresholds: 50% is already "high".
    let flags = StaticFlags::new()
        .set("budget_alert_threshold_warning", "30")
        .set("budget_alert_threshold_high", "50");
    let svc = service(
        base(b.store())
            .agent_limit(100)
            .cost(HeaderEstimate)
            .thresholds(Thresholds::percent(80, 95, 100))
            .flags(Arc::new(flags)),
        Arc::new(AtomicUsize::new(0)),
    );
    let res = call(
        &svc,
        post("/api/v1/agents/h2/run")
            .header("x-test-estimate", "50")
            .body(Body::default())
            .unwrap(),
    )
    .await;
    assert_eq!(header(&res, "x-budget-alert-level"), "high");
}

/// The upstream reports the actual cost; the reservation is settled to it.
pub async fn settles_to_upstream_cost<B: Backend>(b: &B) {
    let store = b.store();
    let rec = Recorder::default();
    let svc = service(
        rec.layer(
            base(store.clone())
                .agent_limit(5_000)
                .cost(UpstreamReportedCost::with_default_header()),
        ),
        Arc::new(AtomicUsize::new(0)),
    );
    let with_cost = |c: &str| {
        post("/api/v1/agents/s1/run")
            .header("x-test-cost", c)
            .body(Body::default())
            .unwrap()
    };
    let res = call(&svc, with_cost("2500")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-agent-utilization"), "50.00");
    assert_eq!(agent_spent(&store, "s1").await, 2_500);
    let res = call(&svc, with_cost("300")).await;
    assert_eq!(agent_spent(&store, "s1").await, 2_800);
    assert_eq!(header(&res, "x-agent-utilization"), "56.00");
    // Reported above the estimate: alerts fire on settle.
    let res = call(&svc, with_cost("2000")).await;
    assert_eq!(header(&res, "x-budget-alert-level"), "high");
    assert_eq!(agent_spent(&store, "s1").await, 4_800);
    let high = |l: &str| ("agent".to_owned(), l.to_owned());
    assert_eq!(rec.levels(), [high("high"), high("warning")]);
    // The reservation is the estimate (1000), which no longer fits.
    assert_eq!(
        call(&svc, with_cost("1")).await.status(),
        StatusCode::PAYMENT_REQUIRED
    );
    assert_eq!(agent_spent(&store, "s1").await, 4_800);
}

/// A 5xx, a 4xx or an inner error releases the reservation, unless the status is
/// listed as charged.
pub async fn releases_on_upstream_failure<B: Backend>(b: &B) {
    let store = b.store();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = service(base(store.clone()).agent_limit(1_000), calls.clone());
    let res = call(
        &svc,
        post("/api/v1/agents/f1/run")
            .header("x-test-status", "502")
            .body(Body::default())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(header(&res, "x-agent-utilization"), "0.00");
    assert_eq!(agent_spent(&store, "f1").await, 0);
    let err = svc
        .clone()
        .oneshot(
            post("/api/v1/agents/f1/run")
                .header("x-test-error", "1")
                .body(Body::default())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "upstream broke");
    assert_eq!(agent_spent(&store, "f1").await, 0);
    assert_eq!(platform_spent(&store).await, 0);
    // A 4xx is released as well: a caller the upstream refuses (such as one naming
    // another tenant's agent) spends nothing of its budget, however often it tries.
    for status in ["404", "403", "401", "429", "404"] {
        let res = call(
            &svc,
            post("/api/v1/agents/f1/run")
                .header("x-test-status", status)
                .body(Body::default())
                .unwrap(),
        )
        .await;
        assert_eq!(res.status().as_str(), status);
        assert_eq!(header(&res, "x-agent-utilization"), "0.00", "{status}");
    }
    assert_eq!(agent_spent(&store, "f1").await, 0);
    assert_eq!(platform_spent(&store).await, 0);
    // The budget is whole: a success is charged.
    let res = call(&svc, req("/api/v1/agents/f1/run")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-agent-utilization"), "100.00");
    assert_eq!(calls.load(Ordering::SeqCst), 8);

    // An error status listed as charged keeps its charge; the others are released.
    let svc = service(
        base(store.clone())
            .agent_limit(2_000)
            .charge_status(StatusCode::UNPROCESSABLE_ENTITY),
        calls.clone(),
    );
    for status in ["422", "400"] {
        call(
            &svc,
            post("/api/v1/agents/f2/run")
                .header("x-test-status", status)
                .body(Body::default())
                .unwrap(),
        )
        .await;
    }
    assert_eq!(agent_spent(&store, "f2").await, 1_000);
}

/// A request dropped after it was handed to the handler (client gone, timeout) stays
/// charged at its estimate: the upstream may still do the work, so hanging up must not
/// buy it for free.
pub async fn request_dropped_after_the_handoff_stays_charged<B: Backend>(b: &B) {
    let store = b.store();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = service(base(store.clone()).agent_limit(1_000), calls.clone());
    let hang = post("/api/v1/agents/d1/run")
        .header("x-test-hang", "1")
        .body(Body::default())
        .unwrap();
    let r = tokio::time::timeout(Duration::from_millis(200), svc.clone().oneshot(hang)).await;
    assert!(r.is_err(), "the handler hangs");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the request was handed on");
    // A release would run in a background task: give it every chance to.
    for _ in 0..20 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(agent_spent(&store, "d1").await, 1_000);
    let res = call(&svc, req("/api/v1/agents/d1/run")).await;
    assert_eq!(res.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the refused request never ran"
    );
}

/// The 402 problem: fields, code, extensions, decision; customer scope included.
pub async fn exceeded_problem<B: Backend>(b: &B) {
    let svc = service(
        base(b.store())
            .agent_limit(10_000)
            .customer_limit(1_500)
            .upgrade_url("https://example.com/upgrade")
            .contact_sales("sales@example.com"),
        Arc::new(AtomicUsize::new(0)),
    );
    let with_principal = || {
        let mut r = req("/api/v1/agents/e1/run");
        r.extensions_mut().insert(principal("cust-9"));
        r
    };
    let (r, d) = with_decisions(with_principal());
    let res = call(&svc, r).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-customer-utilization"), "66.66");
    let log = d.snapshot();
    assert_eq!(log.decisions[0].layer, "budget");
    assert_eq!(log.decisions[0].outcome, Outcome::Allow);

    let (r, d) = with_decisions(with_principal());
    let res = call(&svc, r).await;
    assert_eq!(res.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        res.extensions().get::<Problem>().unwrap().reason_code(),
        "budget-exceeded"
    );
    assert_eq!(d.snapshot().decisions[0].outcome, Outcome::Deny);
    assert_eq!(
        d.snapshot().decisions[0].reason.as_deref(),
        Some("budget-exceeded")
    );
    let body = json(res).await;
    assert_eq!(body["code"], "budget-exceeded");
    assert_eq!(body["status"], 402);
    assert_eq!(body["scope"], "customer");
    assert_eq!(body["customer_id"], "cust-9");
    assert_eq!(body["limit"], 1_500);
    assert_eq!(body["spent"], 1_000);
    assert_eq!(body["remaining"], 500);
    assert_eq!(body["utilization_percent"], 66.66);
    assert_eq!(body["upgrade_url"], "https://example.com/upgrade");
    assert_eq!(body["contact_sales"], "sales@example.com");
    assert_eq!(body["instance"], "/api/v1/agents/e1/run");
    // Another customer is not affected; the agent budget is untouched by the refusal.
    let mut r = req("/api/v1/agents/e1/run");
    r.extensions_mut().insert(principal("cust-10"));
    let res = call(&svc, r).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-agent-utilization"), "20.00");
}
