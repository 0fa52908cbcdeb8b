//! Fail modes: a store that is down or hangs, under fail-open and fail-closed.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use gw_core::{BackendError, FailMode, ManualClock, Outcome};
use gw_policy::store::BoxFuture;
use gw_policy::{PolicyLayer, PolicySettings, TrialConfig, Usage, UsageStore};
use http::{Method, StatusCode};

fn layer(clock: &ManualClock, trial: TrialConfig) -> PolicyLayer {
    PolicyLayer::new().clock(clock.clone()).trial(trial)
}

/// A store whose backend is down, hangs, or answers something unusable.
#[derive(Debug)]
struct BrokenStore {
    hang: bool,
}

/// A store whose backend answers, but unusably (Redis `WRONGTYPE`, `NOPERM`).
#[derive(Debug)]
struct InvalidStore;

impl UsageStore for InvalidStore {
    fn acquire<'a>(
        &'a self,
        _key: &'a str,
        _limit: u64,
        _reset_at: SystemTime,
    ) -> BoxFuture<'a, Result<Usage, BackendError>> {
        Box::pin(async { Err(BackendError::invalid("test", "WRONGTYPE")) })
    }

    fn release<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }
}

impl UsageStore for BrokenStore {
    fn acquire<'a>(
        &'a self,
        _key: &'a str,
        _limit: u64,
        _reset_at: SystemTime,
    ) -> BoxFuture<'a, Result<Usage, BackendError>> {
        if self.hang {
            Box::pin(std::future::pending())
        } else {
            Box::pin(async { Err(BackendError::unavailable("test", "refused")) })
        }
    }

    fn release<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn fail_open_by_default_and_fail_closed_when_configured() {
    let clock = ManualClock::at_unix(T0);
    let task = call(Method::POST, "/api/v1/tasks", Some(trial_user("u1")));

    let open = service(layer(
        &clock,
        TrialConfig::new().store(BrokenStore { hang: false }),
    ));
    let r = task.send(&open).await;
    assert_eq!(r.status, StatusCode::OK);
    let d = r.decision("trial_mode");
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::FailOpen, Some("backend-unavailable"))
    );

    let closed = service(layer(
        &clock,
        TrialConfig::new()
            .store(BrokenStore { hang: false })
            .settings(PolicySettings::new().fail_mode(FailMode::Closed)),
    ));
    let r = task.send(&closed).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["code"], "policy-unavailable");
    assert_eq!(r.json()["policy"], "trial_mode");
    assert_eq!(r.decision("trial_mode").outcome, Outcome::FailClosed);
}

#[tokio::test]
async fn a_hanging_backend_times_out_into_the_fail_mode() {
    let clock = ManualClock::at_unix(T0);
    let task = call(Method::POST, "/api/v1/tasks", Some(trial_user("u1")));
    let settings = PolicySettings::new().timeout(Duration::from_millis(20));
    let open = service(layer(
        &clock,
        TrialConfig::new()
            .store(BrokenStore { hang: true })
            .settings(settings),
    ));
    let r = task.send(&open).await;
    assert_eq!(r.status, StatusCode::OK);
    let d = r.decision("trial_mode");
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::FailOpen, Some("timeout"))
    );

    let closed = service(layer(
        &clock,
        TrialConfig::new()
            .store(BrokenStore { hang: true })
            .settings(settings.fail_mode(FailMode::Closed)),
    ));
    let r = task.send(&closed).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.decision("trial_mode").reason.as_deref(), Some("timeout"));
}

/// Only unavailability follows the fail mode: a backend that answers unusably fails
/// closed even under the default fail-open, recorded as `backend-invalid`; shadow mode
/// still never enforces.
#[tokio::test]
async fn an_invalid_backend_answer_fails_closed_even_when_open() {
    let clock = ManualClock::at_unix(T0);
    let task = call(Method::POST, "/api/v1/tasks", Some(trial_user("u1")));
    let open = service(layer(&clock, TrialConfig::new().store(InvalidStore)));
    let r = task.send(&open).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["code"], "policy-unavailable");
    assert_eq!(r.json()["policy"], "trial_mode");
    let d = r.decision("trial_mode");
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::FailClosed, Some("backend-invalid"))
    );

    let shadow = service(layer(
        &clock,
        TrialConfig::new()
            .store(InvalidStore)
            .settings(PolicySettings::new().shadow(true)),
    ));
    let r = task.send(&shadow).await;
    assert_eq!(r.status, StatusCode::OK);
    let d = r.decision("trial_mode");
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::FailOpen, Some("backend-invalid"))
    );
}
