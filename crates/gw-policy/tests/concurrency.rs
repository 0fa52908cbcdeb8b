//! The policies run concurrently: a trial store and an approval store that can only
//! finish together (each waits for the other at a barrier) both decide in time.

mod common;

use std::sync::Arc;
use std::time::SystemTime;

use common::*;
use gw_core::{BackendError, ManualClock, Outcome};
use gw_policy::store::BoxFuture;
use gw_policy::{
    ApprovalBinding, ApprovalCheck, ApprovalStore, GovernorConfig, MemoryApprovalStore,
    MemoryUsageStore, PolicyLayer, TrialConfig, Usage, UsageStore,
};
use http::{Method, StatusCode};
use tokio::sync::Barrier;

#[derive(Debug)]
struct Usage2(MemoryUsageStore, Arc<Barrier>);

impl UsageStore for Usage2 {
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        reset_at: SystemTime,
    ) -> BoxFuture<'a, Result<Usage, BackendError>> {
        Box::pin(async move {
            self.1.wait().await;
            self.0.acquire(key, limit, reset_at).await
        })
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        self.0.release(key)
    }
}

#[derive(Debug)]
struct Approvals2(MemoryApprovalStore, Arc<Barrier>);

impl ApprovalStore for Approvals2 {
    fn issue<'a>(
        &'a self,
        binding: ApprovalBinding<'a>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        self.0.issue(binding, expires_at, now)
    }

    fn consume<'a>(
        &'a self,
        token: &'a str,
        binding: ApprovalBinding<'a>,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<ApprovalCheck, BackendError>> {
        Box::pin(async move {
            self.1.wait().await;
            self.0.consume(token, binding, now).await
        })
    }

    fn restore<'a>(
        &'a self,
        token: &'a str,
        binding: ApprovalBinding<'a>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.0.restore(token, binding, expires_at, now)
    }
}

#[tokio::test]
async fn trial_and_governor_wait_for_each_other() {
    let barrier = Arc::new(Barrier::new(2));
    let approvals = Arc::new(Approvals2(MemoryApprovalStore::new(), barrier.clone()));
    let clock = ManualClock::at_unix(T0);
    let svc = service(
        PolicyLayer::new()
            .clock(clock)
            .trial(TrialConfig::new().store(Usage2(MemoryUsageStore::new(), barrier)))
            .governor(GovernorConfig::new("").shared_store(approvals.clone())),
    );
    let b = ApprovalBinding {
        action: "delete_agent",
        resource: "/api/v1/agents/1",
        user_id: "t1",
    };
    let token = approvals.issue(b, at(T0 + 60), at(T0)).await.unwrap();
    let r = call(Method::DELETE, "/api/v1/agents/1", Some(trial_user("t1")))
        .header("x-governor-approval", token)
        .send(&svc)
        .await;
    // Run one after the other, each would time out waiting for the other (fail-open,
    // reason `timeout`); concurrently both decide.
    assert_eq!(r.status, StatusCode::OK);
    let t = r.decision("trial_mode");
    assert_eq!(
        (t.outcome, t.reason.as_deref()),
        (Outcome::Allow, Some("within-limit"))
    );
    let g = r.decision("governor_approval");
    assert_eq!(
        (g.outcome, g.reason.as_deref()),
        (Outcome::Allow, Some("approved"))
    );
}
