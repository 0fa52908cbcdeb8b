//! Governor approval through the layer: 307 and 428 answers, URL encoding, approval
//! tokens (binding, expiry, single use), and compensation between policies.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use gw_core::{ManualClock, Outcome, Principal, PrincipalData, StaticFlags};
use gw_policy::{
    ApprovalBinding, ApprovalResponse, ApprovalStore, GovernorConfig, MemoryApprovalStore,
    MemoryUsageStore, PolicyLayer, PolicySettings, TrialConfig,
};
use http::{Method, StatusCode};

const UI: &str = "https://approve.example.com";

fn setup(response: ApprovalResponse) -> (Svc, Arc<MemoryApprovalStore>, ManualClock) {
    let clock = ManualClock::at_unix(T0);
    let store = Arc::new(MemoryApprovalStore::new());
    let layer = PolicyLayer::new().clock(clock.clone()).governor(
        GovernorConfig::new(UI)
            .response(response)
            .shared_store(store.clone()),
    );
    (service(layer), store, clock)
}

async fn approve(store: &MemoryApprovalStore, action: &str, resource: &str, user: &str) -> String {
    let b = ApprovalBinding {
        action,
        resource,
        user_id: user,
    };
    store.issue(b, at(T0 + 300), at(T0)).await.unwrap()
}

#[tokio::test]
async fn unapproved_sensitive_action_redirects_with_governor_headers() {
    let (svc, _, _) = setup(ApprovalResponse::Redirect);
    let r = call(Method::DELETE, "/api/v1/agents/42", Some(paid_user("u1")))
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.header("location"),
        Some(
            "https://approve.example.com/approval?action=delete_agent&user_id=u1\
             &resource=%2Fapi%2Fv1%2Fagents%2F42&governor_id=gov-1"
        )
    );
    assert_eq!(r.header("x-governor-approval-required"), Some("true"));
    assert_eq!(r.header("x-governor-action"), Some("delete_agent"));
    assert_eq!(r.header("x-governor-agent-id"), Some("gov-1"));
    assert!(r.body.is_empty());
    let problem = r.extensions.get::<gw_problem::Problem>().unwrap();
    assert_eq!(problem.reason_code(), "approval-required");
    let d = r.decision("governor_approval");
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::Deny, Some("approval-required"))
    );
}

#[tokio::test]
async fn hostile_values_are_url_encoded_in_the_redirect() {
    let (svc, _, _) = setup(ApprovalResponse::Redirect);
    let user = Principal::from(PrincipalData {
        governor_agent_id: Some("g 1?a=b&c=%41/é".into()),
        ..PrincipalData::clone(&paid_user("u1&governor_id=evil#x"))
    });
    let r = call(Method::DELETE, "/api/v1/customers/a%20b%26c=d", Some(user))
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    let location = r.header("location").unwrap();
    assert_eq!(
        location,
        "https://approve.example.com/approval?action=delete_customer\
         &user_id=u1%26governor_id%3Devil%23x\
         &resource=%2Fapi%2Fv1%2Fcustomers%2Fa%20b%26c%3Dd\
         &governor_id=g%201%3Fa%3Db%26c%3D%2541%2F%C3%A9"
    );
    // Exactly four parameters survive.
    let query = location.split_once('?').unwrap().1;
    assert_eq!(query.split('&').count(), 4);
    // A governor id that cannot be a header value stays out of the headers.
    assert!(r.header("x-governor-agent-id").is_none());
}

#[tokio::test]
async fn precondition_required_mode_answers_428_with_location() {
    let (svc, _, _) = setup(ApprovalResponse::PreconditionRequired);
    let r = call(Method::PATCH, "/api/v1/billing/plan", Some(paid_user("u1")))
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_REQUIRED);
    let location = r.header("location").unwrap().to_owned();
    assert!(location.starts_with("https://approve.example.com/approval?action=update_billing&"));
    assert_eq!(r.header("x-governor-action"), Some("update_billing"));
    let body = r.json();
    assert_eq!(body["code"], "approval-required");
    assert_eq!(body["status"], 428);
    assert_eq!(body["action"], "update_billing");
    assert_eq!(body["approval_url"], location);
    assert_eq!(body["governor_id"], "gov-1");
    assert_eq!(body["resource"], "/api/v1/billing/plan");
}

#[tokio::test]
async fn non_sensitive_requests_pass() {
    let (svc, _, _) = setup(ApprovalResponse::Redirect);
    for (m, p) in [
        (Method::GET, "/api/v1/agents/42"),
        (Method::GET, "/api/v2/agents/42/runs/1"),
        (Method::DELETE, "/api/v1/agentsX/42"),
        (Method::DELETE, "/api/v1/deployments/4"),
        (Method::POST, "/api/v1/subscriptions/9"),
        (Method::POST, "/api/v2/subscriptions/9/change/x"),
        (Method::GET, "/api/v2/data/export/x"),
    ] {
        let r = call(m, p, Some(paid_user("u1"))).send(&svc).await;
        assert_eq!(r.status, StatusCode::OK, "{p}");
        assert_eq!(r.decision("governor_approval").outcome, Outcome::Skip);
    }
}

/// The sensitive routes cover every API version and, where gw-rbac asks for the same
/// permission on a whole subtree (`agents:delete`, `customers:delete`, `billing:update`),
/// that subtree: no version or sub-path gets past the governor that RBAC maps to the
/// sensitive permission.
#[tokio::test]
async fn sensitive_routes_cover_every_version_and_what_rbac_maps_to_them() {
    let (svc, _, _) = setup(ApprovalResponse::Redirect);
    for (m, p, action) in [
        (Method::DELETE, "/api/v1/agents/7", "delete_agent"),
        (Method::DELETE, "/api/v2/agents/7", "delete_agent"),
        (Method::DELETE, "/api/v01/agents/7", "delete_agent"),
        (Method::DELETE, "/api/v1/agents/7/force", "delete_agent"),
        (Method::DELETE, "/api/v1/agents", "delete_agent"),
        (Method::DELETE, "/api/v3/customers/c1", "delete_customer"),
        (
            Method::DELETE,
            "/api/v1/customers/c1/purge",
            "delete_customer",
        ),
        (Method::PATCH, "/api/v2/billing/plan", "update_billing"),
        (
            Method::POST,
            "/api/v2/subscriptions/9/change",
            "change_subscription",
        ),
        (Method::POST, "/api/v2/data/export", "export_data"),
    ] {
        let r = call(m.clone(), p, Some(paid_user("u1"))).send(&svc).await;
        assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT, "{m} {p}");
        assert_eq!(r.header("x-governor-action"), Some(action), "{m} {p}");
    }
}

/// HEAD runs the GET handler, so a HEAD on a GET-scoped sensitive route (the export)
/// needs the approval a GET needs; HEAD on a DELETE-only route does not.
#[tokio::test]
async fn head_on_a_sensitive_get_route_needs_approval() {
    let (svc, store, _) = setup(ApprovalResponse::Redirect);
    for method in [Method::GET, Method::HEAD] {
        let r = call(method.clone(), "/api/v1/data/export", Some(paid_user("u1")))
            .send(&svc)
            .await;
        assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT, "{method}");
        assert_eq!(
            r.header("x-governor-action"),
            Some("export_data"),
            "{method}"
        );
    }
    let token = approve(&store, "export_data", "/api/v1/data/export", "u1").await;
    let r = call(Method::HEAD, "/api/v1/data/export", Some(paid_user("u1")))
        .header("x-governor-approval", token)
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.decision("governor_approval").outcome, Outcome::Allow);
    let r = call(Method::HEAD, "/api/v1/agents/42", Some(paid_user("u1")))
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.decision("governor_approval").outcome, Outcome::Skip);
}

#[tokio::test]
async fn a_valid_approval_passes_once() {
    let (svc, store, _) = setup(ApprovalResponse::Redirect);
    let token = approve(&store, "delete_agent", "/api/v1/agents/42", "u1").await;
    let req = call(Method::DELETE, "/api/v1/agents/42", Some(paid_user("u1")))
        .header("x-governor-approval", token);
    let r = req.send(&svc).await;
    assert_eq!(r.status, StatusCode::OK);
    let d = r.decision("governor_approval");
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::Allow, Some("approved"))
    );
    let r = req.send(&svc).await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT, "single use");
    assert_eq!(
        r.decision("governor_approval").reason.as_deref(),
        Some("approval-invalid")
    );
}

#[tokio::test]
async fn approvals_are_bound_to_action_resource_and_user() {
    let (svc, store, _) = setup(ApprovalResponse::PreconditionRequired);
    let token = approve(&store, "delete_agent", "/api/v1/agents/42", "u1").await;
    for (path, user) in [
        ("/api/v1/agents/43", "u1"),    // other resource
        ("/api/v1/customers/42", "u1"), // other action
        ("/api/v1/agents/42", "u2"),    // other user
    ] {
        let r = call(Method::DELETE, path, Some(paid_user(user)))
            .header("x-governor-approval", token.clone())
            .send(&svc)
            .await;
        assert_eq!(r.status, StatusCode::PRECONDITION_REQUIRED, "{path} {user}");
        assert_eq!(r.json()["code"], "approval-invalid");
    }
    // Still good for its own binding.
    let r = call(Method::DELETE, "/api/v1/agents/42", Some(paid_user("u1")))
        .header("x-governor-approval", token)
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn approvals_expire() {
    let (svc, store, clock) = setup(ApprovalResponse::Redirect);
    let token = approve(&store, "export_data", "/api/v1/data/export", "u1").await;
    clock.advance(Duration::from_secs(300));
    let r = call(Method::GET, "/api/v1/data/export", Some(paid_user("u1")))
        .header("x-governor-approval", token)
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert!(store.is_empty(), "expired approvals are dropped");
}

#[tokio::test]
async fn a_trial_rejection_restores_the_approval() {
    let clock = ManualClock::at_unix(T0);
    let approvals = Arc::new(MemoryApprovalStore::new());
    let svc = service(
        PolicyLayer::new()
            .clock(clock.clone())
            .trial(TrialConfig::new().limit(0))
            .governor(GovernorConfig::new(UI).shared_store(approvals.clone())),
    );
    let token = approve(&approvals, "delete_agent", "/api/v1/agents/1", "t1").await;
    let req = call(Method::DELETE, "/api/v1/agents/1", Some(trial_user("t1")))
        .header("x-governor-approval", token.clone());
    let r = req.send(&svc).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "trial rejection wins"
    );
    assert_eq!(r.decision("governor_approval").outcome, Outcome::Allow);
    assert_eq!(approvals.len(), 1, "the approval was put back");
    // Without the trial limit, the same approval works.
    let svc = service(
        PolicyLayer::new()
            .clock(clock)
            .flags(StaticFlags::new().set("enable_trial_mode", "off"))
            .governor(GovernorConfig::new(UI).shared_store(approvals.clone())),
    );
    assert_eq!(req.send(&svc).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_governor_rejection_does_not_count_the_task() {
    let clock = ManualClock::at_unix(T0);
    let usage = Arc::new(MemoryUsageStore::new());
    let svc = service(
        PolicyLayer::new()
            .clock(clock)
            .trial(TrialConfig::new().limit(1).shared_store(usage.clone())),
    );
    let user = Some(trial_user("t1"));
    let r = call(Method::DELETE, "/api/v1/agents/1", user.clone())
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.decision("trial_mode").outcome, Outcome::Allow);
    assert_eq!(usage.count(&format!("t1:{}", T0 / 86_400)), 0);
    // The day's one task is still available.
    let r = call(Method::POST, "/api/v1/tasks", user).send(&svc).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn shadow_mode_and_flag() {
    let clock = ManualClock::at_unix(T0);
    let shadow = service(
        PolicyLayer::new()
            .clock(clock.clone())
            .governor(GovernorConfig::new(UI).settings(PolicySettings::new().shadow(true))),
    );
    let req = call(Method::DELETE, "/api/v1/agents/42", Some(paid_user("u1")));
    let r = req.send(&shadow).await;
    assert_eq!(r.status, StatusCode::OK);
    let d = r.decision("governor_approval");
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::ShadowDeny, Some("approval-required"))
    );

    let off = service(
        PolicyLayer::new()
            .clock(clock)
            .flags(StaticFlags::new().set("enable_governor_approval", "0")),
    );
    let r = req.send(&off).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.decision("governor_approval").reason.as_deref(),
        Some("disabled")
    );
}

/// Claims to be in-process but answers `consume` only on its second poll, so the layer
/// falls back from its synchronous path to the asynchronous one.
#[derive(Debug, Default)]
struct SlowLocalApprovals(MemoryApprovalStore);

impl ApprovalStore for SlowLocalApprovals {
    fn issue<'a>(
        &'a self,
        binding: ApprovalBinding<'a>,
        expires_at: std::time::SystemTime,
        now: std::time::SystemTime,
    ) -> gw_policy::store::BoxFuture<'a, Result<String, gw_core::BackendError>> {
        self.0.issue(binding, expires_at, now)
    }

    fn consume<'a>(
        &'a self,
        token: &'a str,
        binding: ApprovalBinding<'a>,
        now: std::time::SystemTime,
    ) -> gw_policy::store::BoxFuture<'a, Result<gw_policy::ApprovalCheck, gw_core::BackendError>>
    {
        Box::pin(async move {
            tokio::task::yield_now().await;
            self.0.consume(token, binding, now).await
        })
    }

    fn restore<'a>(
        &'a self,
        token: &'a str,
        binding: ApprovalBinding<'a>,
        expires_at: std::time::SystemTime,
        now: std::time::SystemTime,
    ) -> gw_policy::store::BoxFuture<'a, Result<(), gw_core::BackendError>> {
        self.0.restore(token, binding, expires_at, now)
    }

    fn is_local(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_local_store_that_is_not_ready_does_not_count_the_task_twice() {
    let usage = Arc::new(MemoryUsageStore::new());
    let approvals = Arc::new(SlowLocalApprovals::default());
    let svc = service(
        PolicyLayer::new()
            .clock(ManualClock::at_unix(T0))
            .trial(TrialConfig::new().limit(5).shared_store(usage.clone()))
            .governor(GovernorConfig::new(UI).shared_store(approvals.clone())),
    );
    let token = approvals
        .issue(
            ApprovalBinding {
                action: "change_subscription",
                resource: "/api/v1/subscriptions/7/change",
                user_id: "t1",
            },
            at(T0 + 300),
            at(T0),
        )
        .await
        .unwrap();
    let r = call(
        Method::POST,
        "/api/v1/subscriptions/7/change",
        Some(trial_user("t1")),
    )
    .header("x-governor-approval", token)
    .send(&svc)
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.decision("governor_approval").outcome, Outcome::Allow);
    assert_eq!(usage.count(&format!("t1:{}", T0 / 86_400)), 1);
}

/// An approval consumed by a request that the service inside refuses (an inner layer's
/// gw problem) is restored; one consumed by a request the upstream was tried with (504)
/// stays used.
#[tokio::test]
async fn an_inner_refusal_restores_the_approval() {
    let clock = ManualClock::at_unix(T0);
    let store = Arc::new(MemoryApprovalStore::new());
    let svc = answering(
        PolicyLayer::new()
            .clock(clock.clone())
            .governor(GovernorConfig::new(UI).shared_store(store.clone())),
    );
    let token = approve(&store, "delete_agent", "/api/v1/agents/42", "u1").await;
    let delete = |answer: &str| {
        call(Method::DELETE, "/api/v1/agents/42", Some(paid_user("u1")))
            .header("x-governor-approval", token.clone())
            .header("x-answer", answer)
    };
    let r = delete("refuse").send(&svc).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.decision("governor_approval").outcome, Outcome::Allow);
    let r = delete("timeout").send(&svc).await;
    assert_eq!(
        r.status,
        StatusCode::GATEWAY_TIMEOUT,
        "the approval was restored"
    );
    let r = delete("ok").send(&svc).await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT, "used by the 504");
    assert_eq!(
        r.decision("governor_approval").reason.as_deref(),
        Some("approval-invalid")
    );
}
