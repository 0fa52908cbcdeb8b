//! Trial mode through the layer: limits, headers, expiry, day rollover, concurrency,
//! shadow mode, flags and fail modes.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use gw_core::{
    BackendError, ManualClock, Outcome, Principal, PrincipalData, StaticFlags, TrialInfo,
};
use gw_policy::store::BoxFuture;
use gw_policy::{MemoryUsageStore, PolicyLayer, PolicySettings, TrialConfig, Usage, UsageStore};
use http::{Method, StatusCode};

fn layer(clock: &ManualClock, trial: TrialConfig) -> PolicyLayer {
    PolicyLayer::new().clock(clock.clone()).trial(trial)
}

#[tokio::test]
async fn admits_up_to_the_limit_then_429_with_all_fields() {
    let clock = ManualClock::at_unix(T0);
    let svc = service(layer(
        &clock,
        TrialConfig::new()
            .limit(3)
            .upgrade_url("https://example.com/upgrade"),
    ));
    let task = call(Method::POST, "/api/v1/tasks", Some(trial_user("u1")));
    // 2023-11-14T22:13:20Z: 6400 s to midnight UTC.
    for remaining in [2, 1, 0] {
        let r = task.send(&svc).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("ratelimit-policy"), Some("\"trial\";q=3;w=86400"));
        assert_eq!(
            r.header("ratelimit"),
            Some(format!("\"trial\";r={remaining};t=6400").as_str())
        );
        let d = r.decision("trial_mode");
        assert_eq!(
            (d.outcome, d.reason.as_deref()),
            (Outcome::Allow, Some("within-limit"))
        );
    }
    let r = task.send(&svc).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("6400"));
    assert_eq!(r.header("ratelimit"), Some("\"trial\";r=0;t=6400"));
    assert_eq!(r.header("ratelimit-policy"), Some("\"trial\";q=3;w=86400"));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let body = r.json();
    assert_eq!(body["code"], "trial-limit-exceeded");
    assert_eq!(body["status"], 429);
    assert_eq!(body["limit"], 3);
    assert_eq!(body["task_count"], 3);
    assert_eq!(body["reset_at"], "2023-11-15T00:00:00Z");
    assert_eq!(body["upgrade_url"], "https://example.com/upgrade");
    assert_eq!(body["instance"], "/api/v1/tasks");
    let problem = r.extensions.get::<gw_problem::Problem>().unwrap();
    assert_eq!(problem.reason_code(), "trial-limit-exceeded");
    let d = r.decision("trial_mode");
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::Deny, Some("trial-limit-exceeded"))
    );
}

#[tokio::test]
async fn reads_are_not_tasks_and_paid_users_are_not_limited() {
    let clock = ManualClock::at_unix(T0);
    let store = Arc::new(MemoryUsageStore::new());
    let svc = service(layer(
        &clock,
        TrialConfig::new().limit(1).shared_store(store.clone()),
    ));
    for _ in 0..3 {
        let r = call(Method::GET, "/api/v1/agents", Some(trial_user("u1")))
            .send(&svc)
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.header("ratelimit").is_none());
        assert_eq!(
            r.decision("trial_mode").reason.as_deref(),
            Some("not-a-task")
        );
        let r = call(Method::POST, "/api/v1/tasks", Some(paid_user("p1")))
            .send(&svc)
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.decision("trial_mode").outcome, Outcome::Skip);
    }
    let day = (T0 / 86_400).to_string();
    assert_eq!(store.count(&format!("u1:{day}")), 0);
    assert_eq!(store.count(&format!("p1:{day}")), 0);
}

#[tokio::test]
async fn custom_task_routes() {
    let clock = ManualClock::at_unix(T0);
    let svc = service(layer(
        &clock,
        TrialConfig::new()
            .limit(1)
            .task_routes(["POST /api/v1/agents/{id}/run"])
            .unwrap(),
    ));
    let user = Some(trial_user("u1"));
    for _ in 0..2 {
        let r = call(Method::POST, "/api/v1/agents", user.clone())
            .send(&svc)
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let run = call(Method::POST, "/api/v1/agents/7/run", user);
    assert_eq!(run.send(&svc).await.status, StatusCode::OK);
    assert_eq!(run.send(&svc).await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_day_rolls_over_at_midnight_in_the_configured_offset() {
    // 2023-11-14T22:13:20Z is 2023-11-14T23:13:20 at UTC+1: midnight comes at 23:00Z.
    let clock = ManualClock::at_unix(T0);
    let svc = service(layer(
        &clock,
        TrialConfig::new().limit(1).utc_offset_seconds(3600),
    ));
    let task = call(Method::DELETE, "/api/v1/things/1", Some(trial_user("u1")));
    assert_eq!(task.send(&svc).await.status, StatusCode::OK);
    let r = task.send(&svc).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("2800"));
    assert_eq!(r.json()["reset_at"], "2023-11-14T23:00:00Z");

    clock.advance(Duration::from_secs(2799));
    assert_eq!(task.send(&svc).await.status, StatusCode::TOO_MANY_REQUESTS);
    clock.advance(Duration::from_secs(1));
    let r = task.send(&svc).await;
    assert_eq!(r.status, StatusCode::OK, "a new day at local midnight");
    assert_eq!(r.header("ratelimit"), Some("\"trial\";r=0;t=86400"));
    assert_eq!(task.send(&svc).await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn expired_trial_is_403_for_every_request() {
    let clock = ManualClock::at_unix(T0);
    let svc = service(layer(&clock, TrialConfig::new().upgrade_url("/up")));
    let user = principal(
        "u1",
        Some(TrialInfo {
            expires_at: Some(at(T0 + 60)),
        }),
    );
    let read = call(Method::GET, "/api/v1/agents", Some(user));
    assert_eq!(read.send(&svc).await.status, StatusCode::OK);
    clock.advance(Duration::from_secs(60));
    let r = read.send(&svc).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let body = r.json();
    assert_eq!(body["code"], "trial-expired");
    assert_eq!(body["trial_expires_at"], "2023-11-14T22:14:20Z");
    assert_eq!(body["upgrade_url"], "/up");
    assert!(r.header("x-target-backend").is_none());
    assert_eq!(r.decision("trial_mode").outcome, Outcome::Deny);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_the_limit_passes_under_concurrency() {
    let clock = ManualClock::at_unix(T0);
    let svc = service(layer(&clock, TrialConfig::new().limit(10)));
    let statuses = race(&svc, 100).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        10
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        90
    );
}

/// Sends `n` concurrent tasks of one trial user; returns the statuses.
pub async fn race(svc: &Svc, n: usize) -> Vec<StatusCode> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (svc, barrier) = (svc.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                call(Method::POST, "/api/v1/tasks", Some(trial_user("racer")))
                    .send(&svc)
                    .await
                    .status
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn shadow_mode_records_but_never_enforces() {
    let clock = ManualClock::at_unix(T0);
    let svc = service(layer(
        &clock,
        TrialConfig::new()
            .limit(1)
            .settings(PolicySettings::new().shadow(true)),
    ));
    let task = call(Method::POST, "/api/v1/tasks", Some(trial_user("u1")));
    assert_eq!(task.send(&svc).await.status, StatusCode::OK);
    let r = task.send(&svc).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("retry-after").is_none());
    let d = r.decision("trial_mode");
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::ShadowDeny, Some("trial-limit-exceeded"))
    );
}

#[tokio::test]
async fn the_feature_flag_switches_trial_mode_off() {
    let clock = ManualClock::at_unix(T0);
    let svc = service(
        layer(&clock, TrialConfig::new().limit(0))
            .flags(StaticFlags::new().set("enable_trial_mode", "false")),
    );
    let r = call(Method::POST, "/api/v1/tasks", Some(trial_user("u1")))
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let d = r.decision("trial_mode");
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::Skip, Some("disabled"))
    );
    // The others still ran.
    assert_eq!(r.decision("sandbox_routing").outcome, Outcome::Allow);
}

#[tokio::test]
async fn ambiguous_paths_are_refused() {
    let svc = service(PolicyLayer::new());
    let r = call(
        Method::POST,
        "/api/v1/agents%2F..%2Fx",
        Some(trial_user("u1")),
    )
    .send(&svc)
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["code"], "ambiguous-path");
}

#[test]
fn in_memory_policies_need_no_timer() {
    // A runtime without the time driver: the in-memory path must never start a timer,
    // on admission or on rejection (with compensation).
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let svc = service(PolicyLayer::new().trial(TrialConfig::new().limit(1)));
        let task = call(Method::POST, "/api/v1/tasks", Some(trial_user("u1")));
        assert_eq!(task.send(&svc).await.status, StatusCode::OK);
        assert_eq!(task.send(&svc).await.status, StatusCode::TOO_MANY_REQUESTS);
        let r = call(Method::DELETE, "/api/v1/agents/1", Some(trial_user("u2")))
            .send(&svc)
            .await;
        assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    });
}

/// The in-memory store, but not declared local: forces the boxed, asynchronous path.
#[derive(Debug, Default)]
struct NotLocal(MemoryUsageStore);

impl UsageStore for NotLocal {
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        reset_at: SystemTime,
    ) -> BoxFuture<'a, Result<Usage, BackendError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            self.0.acquire(key, limit, reset_at).await
        })
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        self.0.release(key)
    }
}

#[tokio::test]
async fn the_asynchronous_path_decides_the_same() {
    let clock = ManualClock::at_unix(T0);
    let store = Arc::new(NotLocal::default());
    let svc = service(layer(
        &clock,
        TrialConfig::new().limit(2).shared_store(store.clone()),
    ));
    let user = Some(trial_user("u1"));
    let task = call(Method::POST, "/api/v1/tasks", user.clone());
    let r = task.send(&svc).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("ratelimit"), Some("\"trial\";r=1;t=6400"));
    assert_eq!(r.header("x-target-backend"), Some("sandbox"));
    assert_eq!(r.header("x-seen-target"), Some("sandbox"));
    // A governor rejection gives the counted task back.
    let r = call(Method::DELETE, "/api/v1/agents/1", user)
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(store.0.count(&format!("u1:{}", T0 / 86_400)), 1);
    assert_eq!(task.send(&svc).await.status, StatusCode::OK);
    let r = task.send(&svc).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json()["task_count"], 2);
}

#[tokio::test]
async fn users_are_counted_separately_and_by_subject_without_a_user_id() {
    let clock = ManualClock::at_unix(T0);
    let store = Arc::new(MemoryUsageStore::new());
    let svc = service(layer(
        &clock,
        TrialConfig::new().limit(1).shared_store(store.clone()),
    ));
    let anonymous = Principal::from(PrincipalData {
        sub: "sub-9".into(),
        ..PrincipalData::clone(&trial_user(""))
    });
    for p in [trial_user("a"), trial_user("b"), anonymous] {
        let r = call(Method::POST, "/api/v1/tasks", Some(p))
            .send(&svc)
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let day = T0 / 86_400;
    for key in ["a", "b", "sub-9"] {
        assert_eq!(store.count(&format!("{key}:{day}")), 1, "{key}");
    }
}

/// A request that the service inside refuses with a gw problem (an inner BudgetLayer's
/// 402, an inner layer's fail-closed 503) did not run its task: the task is given back.
#[tokio::test]
async fn an_inner_refusal_gives_the_task_back() {
    let clock = ManualClock::at_unix(T0);
    let svc = answering(layer(&clock, TrialConfig::new().limit(1)));
    let task = |answer: &str| {
        call(Method::POST, "/api/v1/tasks", Some(trial_user("u1"))).header("x-answer", answer)
    };
    for (answer, status) in [
        ("refuse", StatusCode::PAYMENT_REQUIRED),
        ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
        ("refuse", StatusCode::PAYMENT_REQUIRED),
    ] {
        let r = task(answer).send(&svc).await;
        assert_eq!(r.status, status, "{answer}");
        assert_eq!(r.decision("trial_mode").outcome, Outcome::Allow);
        assert!(r.header("ratelimit").is_none(), "the task was given back");
        assert_eq!(r.header("x-target-backend"), Some("sandbox"));
    }
    // The day's one task is still there.
    assert_eq!(task("ok").send(&svc).await.status, StatusCode::OK);
    assert_eq!(
        task("ok").send(&svc).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Answers that leave open whether the work was done count the task: a plain upstream
/// answer (whatever its status) and 500/502/504 problems (the upstream was tried).
#[tokio::test]
async fn upstream_answers_and_gateway_timeouts_count_the_task() {
    let clock = ManualClock::at_unix(T0);
    let svc = answering(layer(&clock, TrialConfig::new().limit(1)));
    for (user, answer, status) in [
        ("u1", "upstream-400", StatusCode::BAD_REQUEST),
        ("u2", "timeout", StatusCode::GATEWAY_TIMEOUT),
    ] {
        let task = |answer: &str| {
            call(Method::POST, "/api/v1/tasks", Some(trial_user(user))).header("x-answer", answer)
        };
        let r = task(answer).send(&svc).await;
        assert_eq!(r.status, status, "{answer}");
        assert_eq!(r.header("ratelimit"), Some("\"trial\";r=0;t=6400"));
        let r = task("ok").send(&svc).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    }
}

/// A client that goes away after its request was handed to the service inside does not
/// get the task back: the request may already be running upstream (and giving it back
/// would let a client run unlimited tasks by disconnecting).
#[tokio::test]
async fn a_request_dropped_while_the_inner_service_runs_keeps_its_task() {
    use tower::ServiceExt;
    let clock = ManualClock::at_unix(T0);
    let svc = answering(layer(&clock, TrialConfig::new().limit(1)));
    let task = |answer: &str| {
        call(Method::POST, "/api/v1/tasks", Some(trial_user("u1"))).header("x-answer", answer)
    };
    let (req, _) = task("hang").request();
    let gone = tokio::time::timeout(Duration::from_millis(20), svc.clone().oneshot(req)).await;
    assert!(gone.is_err(), "the inner service had not answered");
    assert_eq!(
        task("ok").send(&svc).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}
