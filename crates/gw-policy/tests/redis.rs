//! Redis stores against the Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`), each
//! test in its own random key prefix; and against a port nothing listens on.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use gw_core::{FailMode, ManualClock, Outcome};
use gw_policy::store::redis::{RedisApprovalStore, RedisUsageStore};
use gw_policy::{
    ApprovalBinding, ApprovalCheck, ApprovalStore, GovernorConfig, PolicyLayer, PolicySettings,
    TrialConfig, UsageStore,
};
use http::{Method, StatusCode};
use rand::Rng;
use redis::AsyncCommands;

fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A random key prefix, and a guard that deletes its keys at the end.
struct Prefix(String);

impl Prefix {
    fn new() -> Self {
        Self(format!(
            "gwtest:policy:{:016x}:",
            rand::rng().random::<u64>()
        ))
    }

    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("Redis must be reachable at REDIS_URL")
    }

    async fn keys(&self) -> Vec<String> {
        self.conn()
            .await
            .keys(format!("{}*", self.0))
            .await
            .unwrap()
    }

    async fn cleanup(self) {
        let keys = self.keys().await;
        if !keys.is_empty() {
            let _: () = self.conn().await.del(keys).await.unwrap();
        }
    }
}

/// A URL of a local port nothing listens on.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("redis://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_the_limit_passes_under_concurrency() {
    let prefix = Prefix::new();
    let store = RedisUsageStore::from_url(&url())
        .unwrap()
        .prefix(prefix.0.clone());
    let clock = ManualClock::new(SystemTime::now());
    let svc = service(
        PolicyLayer::new()
            .clock(clock.clone())
            .trial(TrialConfig::new().limit(10).store(store)),
    );
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (svc, barrier) = (svc.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                call(Method::POST, "/api/v1/tasks", Some(trial_user("racer")))
                    .send(&svc)
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}: {:?}", r.log),
        }
    }
    assert_eq!((ok, limited), (10, 90));

    // One key for the user's day, holding exactly the limit, expiring at the reset.
    let keys = prefix.keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with(&format!("{}racer:", prefix.0)));
    let mut conn = prefix.conn().await;
    let count: u64 = conn.get(&keys[0]).await.unwrap();
    assert_eq!(count, 10, "refused tasks are not counted");
    let pttl: i64 = conn.pttl(&keys[0]).await.unwrap();
    assert!(
        pttl > 0 && pttl <= 86_400_000,
        "expires at the reset: {pttl}"
    );
    prefix.cleanup().await;
}

#[tokio::test]
async fn a_new_day_gets_a_new_counter() {
    let prefix = Prefix::new();
    let store = RedisUsageStore::from_url(&url())
        .unwrap()
        .prefix(prefix.0.clone());
    let clock = ManualClock::new(SystemTime::now());
    let svc = service(
        PolicyLayer::new()
            .clock(clock.clone())
            .trial(TrialConfig::new().limit(1).store(store)),
    );
    let task = call(Method::POST, "/api/v1/tasks", Some(trial_user("u1")));
    assert_eq!(task.send(&svc).await.status, StatusCode::OK);
    let r = task.send(&svc).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json()["task_count"], 1);
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(task.send(&svc).await.status, StatusCode::OK);
    assert_eq!(prefix.keys().await.len(), 2);
    prefix.cleanup().await;
}

#[tokio::test]
async fn release_gives_a_task_back_but_never_below_zero() {
    let prefix = Prefix::new();
    let store = RedisUsageStore::from_url(&url())
        .unwrap()
        .prefix(prefix.0.clone());
    let reset = SystemTime::now() + Duration::from_secs(60);
    assert!(store.acquire("k", 1, reset).await.unwrap().admitted);
    assert!(!store.acquire("k", 1, reset).await.unwrap().admitted);
    store.release("k").await.unwrap();
    store.release("k").await.unwrap();
    let u = store.acquire("k", 1, reset).await.unwrap();
    assert_eq!((u.admitted, u.count), (true, 1));
    prefix.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvals_are_single_use_under_concurrency_and_bound() {
    let prefix = Prefix::new();
    let store = Arc::new(
        RedisApprovalStore::from_url(&url())
            .unwrap()
            .prefix(prefix.0.clone()),
    );
    let now = SystemTime::now();
    let b = ApprovalBinding {
        action: "delete_agent",
        resource: "/api/v1/agents/42",
        user_id: "u1",
    };
    let token = store
        .issue(b, now + Duration::from_secs(60), now)
        .await
        .unwrap();
    let keys = prefix.keys().await;
    assert_eq!(keys.len(), 1);
    assert!(
        !keys[0].contains(&token),
        "the token itself is never stored"
    );

    let other = ApprovalBinding { user_id: "u2", ..b };
    assert_eq!(
        store.consume(&token, other, now).await.unwrap(),
        ApprovalCheck::Invalid
    );

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (store, token) = (store.clone(), token.clone());
            tokio::spawn(async move { store.consume(&token, b, now).await.unwrap() })
        })
        .collect();
    let mut approved = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), ApprovalCheck::Approved { .. }) {
            approved += 1;
        }
    }
    assert_eq!(approved, 1);
    assert!(prefix.keys().await.is_empty());
    prefix.cleanup().await;
}

#[tokio::test]
async fn approvals_through_the_layer_and_expiry() {
    let prefix = Prefix::new();
    let store = Arc::new(
        RedisApprovalStore::from_url(&url())
            .unwrap()
            .prefix(prefix.0.clone()),
    );
    let clock = ManualClock::new(SystemTime::now());
    let svc =
        service(PolicyLayer::new().clock(clock.clone()).governor(
            GovernorConfig::new("https://approve.example.com").shared_store(store.clone()),
        ));
    let now = SystemTime::now();
    let b = ApprovalBinding {
        action: "delete_customer",
        resource: "/api/v1/customers/7",
        user_id: "u1",
    };
    let token = store
        .issue(b, now + Duration::from_secs(60), now)
        .await
        .unwrap();
    let req = call(Method::DELETE, "/api/v1/customers/7", Some(paid_user("u1")))
        .header("x-governor-approval", token);
    assert_eq!(req.send(&svc).await.status, StatusCode::OK);
    assert_eq!(req.send(&svc).await.status, StatusCode::TEMPORARY_REDIRECT);

    let token = store
        .issue(b, now + Duration::from_secs(60), now)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(61));
    let r = call(Method::DELETE, "/api/v1/customers/7", Some(paid_user("u1")))
        .header("x-governor-approval", token)
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT, "expired");
    assert_eq!(
        r.decision("governor_approval").reason.as_deref(),
        Some("approval-invalid")
    );
    prefix.cleanup().await;
}

#[tokio::test]
async fn redis_down_fails_open_by_default() {
    let dead = dead_url();
    let svc = service(
        PolicyLayer::new()
            .trial(TrialConfig::new().store(RedisUsageStore::from_url(&dead).unwrap()))
            .governor(GovernorConfig::new("").store(RedisApprovalStore::from_url(&dead).unwrap())),
    );
    let r = call(Method::POST, "/api/v1/tasks", Some(trial_user("u1")))
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.decision("trial_mode").outcome, Outcome::FailOpen);
    assert_eq!(r.header("x-target-backend"), Some("sandbox"));

    let r = call(Method::DELETE, "/api/v1/agents/1", Some(paid_user("u1")))
        .header("x-governor-approval", "some-token")
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let d = r.decision("governor_approval");
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::FailOpen, Some("backend-unavailable"))
    );

    let err = RedisUsageStore::from_url(&dead)
        .unwrap()
        .acquire("k", 1, SystemTime::now())
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}

#[tokio::test]
async fn redis_down_fails_closed_when_configured() {
    let dead = dead_url();
    let closed = PolicySettings::new().fail_mode(FailMode::Closed);
    let svc = service(
        PolicyLayer::new()
            .trial(
                TrialConfig::new()
                    .store(RedisUsageStore::from_url(&dead).unwrap())
                    .settings(closed),
            )
            .governor(
                GovernorConfig::new("")
                    .store(RedisApprovalStore::from_url(&dead).unwrap())
                    .settings(closed),
            ),
    );
    let r = call(Method::POST, "/api/v1/tasks", Some(trial_user("u1")))
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["policy"], "trial_mode");
    let r = call(Method::DELETE, "/api/v1/agents/1", Some(paid_user("u1")))
        .header("x-governor-approval", "some-token")
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.decision("governor_approval").outcome, Outcome::FailClosed);
}

/// A Redis that answers unusably (here `WRONGTYPE`: the day's counter key holds a hash)
/// fails closed even under the default fail-open: only unavailability follows the fail
/// mode.
#[tokio::test]
async fn an_unusable_redis_answer_fails_closed_even_when_open() {
    let prefix = Prefix::new();
    let store = RedisUsageStore::from_url(&url())
        .unwrap()
        .prefix(prefix.0.clone());
    // The key of user u1 on the clock's day (T0 is day 19675 in UTC).
    let _: () = prefix
        .conn()
        .await
        .hset(format!("{}u1:19675", prefix.0), "f", "v")
        .await
        .unwrap();
    let svc = service(
        PolicyLayer::new()
            .clock(ManualClock::at_unix(T0))
            .trial(TrialConfig::new().store(store)),
    );
    let r = call(Method::POST, "/api/v1/tasks", Some(trial_user("u1")))
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["code"], "policy-unavailable");
    let d = r.decision("trial_mode");
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::FailClosed, Some("backend-invalid"))
    );
    prefix.cleanup().await;
}

/// Through a Redis store (evaluated and given back asynchronously): a task refused by the
/// service inside is released, so the day's one task is still there.
#[tokio::test]
async fn an_inner_refusal_releases_the_task_in_redis() {
    let prefix = Prefix::new();
    let store = RedisUsageStore::from_url(&url())
        .unwrap()
        .prefix(prefix.0.clone());
    let svc = answering(
        PolicyLayer::new()
            .clock(ManualClock::new(SystemTime::now()))
            .trial(TrialConfig::new().limit(1).store(store)),
    );
    let task = |answer: &str| {
        call(Method::POST, "/api/v1/tasks", Some(trial_user("u1"))).header("x-answer", answer)
    };
    for _ in 0..3 {
        let r = task("refuse").send(&svc).await;
        assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    }
    let keys = prefix.keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let count: u64 = prefix.conn().await.get(&keys[0]).await.unwrap();
    assert_eq!(count, 0, "every refused task was released");
    assert_eq!(task("ok").send(&svc).await.status, StatusCode::OK);
    assert_eq!(
        task("ok").send(&svc).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    prefix.cleanup().await;
}
