//! The concurrency scenarios: exact admission and once-only alerts under races.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gw_budget::FlatCost;
use http::StatusCode;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::scenarios::{Backend, agent_spent, base, platform_spent};
use super::*;

/// A budget that fits exactly K requests, 20*K concurrent requests over two replicas:
/// exactly K admitted, spent == K * cost, and each alert threshold fires once.
pub async fn concurrency_is_exact<B: Backend>(b: &B) {
    const K: usize = 5;
    const COST: u64 = 1_000;
    let rec = Recorder::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let replica = |store| {
        service(
            rec.layer(
                base(store)
                    .agent_limit(K as u64 * COST)
                    .cost(FlatCost(COST)),
            ),
            calls.clone(),
        )
    };
    let (a, b2) = (replica(b.store()), replica(b.store()));
    let mut set = JoinSet::new();
    for i in 0..20 * K {
        let svc = if i % 2 == 0 { a.clone() } else { b2.clone() };
        set.spawn(async move {
            svc.oneshot(req("/api/v1/agents/a1/run"))
                .await
                .unwrap()
                .status()
        });
    }
    let mut admitted = 0;
    let mut refused = 0;
    while let Some(status) = set.join_next().await {
        match status.unwrap() {
            StatusCode::OK => admitted += 1,
            StatusCode::PAYMENT_REQUIRED => refused += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!((admitted, refused), (K, 19 * K));
    assert_eq!(calls.load(Ordering::SeqCst), K);
    let store = b.store();
    assert_eq!(agent_spent(&store, "a1").await, K as u64 * COST);
    assert_eq!(platform_spent(&store).await, K as u64 * COST);
    assert_eq!(
        rec.levels(),
        [
            ("agent", "critical"),
            ("agent", "high"),
            ("agent", "warning")
        ]
        .map(|(s, l)| (s.to_owned(), l.to_owned()))
    );
    assert_eq!(*rec.paused.lock().unwrap(), ["a1"]);
}

/// Many requests crossing the thresholds at once still fire each alert exactly once.
pub async fn one_alert_per_threshold_under_concurrency<B: Backend>(b: &B) {
    let rec = Recorder::default();
    let calls = Arc::new(AtomicUsize::new(0));
    // 150 requests of 1000 over two agents with 50_000 each, platform 100_000: every
    // scope crosses every threshold while requests race.
    let svc = service(
        rec.layer(
            base(b.store())
                .agent_limit(50_000)
                .platform_limit(100_000)
                .cost(FlatCost(1_000)),
        ),
        calls.clone(),
    );
    let mut set = JoinSet::new();
    for i in 0..150 {
        let svc = svc.clone();
        let agent = if i % 3 == 0 { "b1" } else { "b2" };
        set.spawn(async move {
            let r = req(&format!("/api/v1/agents/{agent}/x"));
            svc.oneshot(r).await.unwrap().status()
        });
    }
    let mut ok = 0;
    while let Some(s) = set.join_next().await {
        ok += usize::from(s.unwrap() == StatusCode::OK);
    }
    assert_eq!(ok, 100);
    assert_eq!(platform_spent(&b.store()).await, 100_000);
    let levels = rec.levels();
    for scope in ["platform", "agent"] {
        for level in ["warning", "high", "critical"] {
            let n = levels
                .iter()
                .filter(|(s, l)| s == scope && l == level)
                .count();
            let want = if scope == "agent" { 2 } else { 1 };
            // b1 gets 50 requests (exactly its limit), b2 gets 100 (50 admitted):
            // both agents and the platform reach critical.
            assert_eq!(n, want, "{scope} {level}: {levels:?}");
        }
    }
    let mut paused = rec.paused.lock().unwrap().clone();
    paused.sort();
    assert_eq!(paused, ["b1", "b2"]);
}
