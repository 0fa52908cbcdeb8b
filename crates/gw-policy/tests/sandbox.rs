//! Sandbox routing through the layer.

mod common;

use common::*;
use gw_core::{Outcome, StaticFlags};
use gw_policy::{PolicyLayer, PolicySettings, SandboxConfig};
use http::{Method, StatusCode};

#[tokio::test]
async fn trial_to_sandbox_paid_to_production() {
    let svc = service(PolicyLayer::new());
    for (user, target) in [
        (trial_user("t1"), "sandbox"),
        (paid_user("p1"), "production"),
    ] {
        let r = call(Method::GET, "/api/v1/agents", Some(user))
            .send(&svc)
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("x-seen-target"), Some(target), "extension");
        assert_eq!(
            r.header("x-seen-target-header"),
            Some(target),
            "forwarded header"
        );
        assert_eq!(
            r.header("x-target-backend"),
            Some(target),
            "response header"
        );
        let d = r.decision("sandbox_routing");
        assert_eq!(
            (d.outcome, d.reason.as_deref()),
            (Outcome::Allow, Some(target))
        );
    }
}

#[tokio::test]
async fn a_client_cannot_pick_its_backend() {
    let svc = service(PolicyLayer::new());
    let r = call(Method::GET, "/api/v1/agents", Some(trial_user("t1")))
        .header("x-target-backend", "production")
        .send(&svc)
        .await;
    assert_eq!(r.header("x-seen-target-header"), Some("sandbox"));
    // Without a principal nothing is routed, and the client's header is still dropped.
    let r = call(Method::GET, "/health", None)
        .header("x-target-backend", "production")
        .send(&svc)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("x-seen-target").is_none());
    assert!(r.header("x-seen-target-header").is_none());
    assert_eq!(
        r.decision("sandbox_routing").reason.as_deref(),
        Some("no-principal")
    );
}

#[tokio::test]
async fn shadow_mode_and_flag_leave_routing_alone() {
    let shadow = service(
        PolicyLayer::new()
            .sandbox(SandboxConfig::new().settings(PolicySettings::new().shadow(true))),
    );
    let r = call(Method::GET, "/api/v1/agents", Some(trial_user("t1")))
        .send(&shadow)
        .await;
    assert!(r.header("x-seen-target").is_none());
    assert!(r.header("x-target-backend").is_none());
    assert_eq!(
        r.decision("sandbox_routing").reason.as_deref(),
        Some("shadow-sandbox")
    );

    let off =
        service(PolicyLayer::new().flags(StaticFlags::new().set("enable_sandbox_routing", "no")));
    let r = call(Method::GET, "/api/v1/agents", Some(trial_user("t1")))
        .header("x-target-backend", "production")
        .send(&off)
        .await;
    assert!(r.header("x-seen-target").is_none());
    assert_eq!(
        r.header("x-seen-target-header"),
        Some("production"),
        "left untouched when off"
    );
    assert_eq!(
        r.decision("sandbox_routing").reason.as_deref(),
        Some("disabled")
    );
}

#[tokio::test]
async fn every_policy_is_recorded_once_per_request() {
    let svc = service(PolicyLayer::new());
    let r = call(Method::POST, "/api/v1/tasks", Some(trial_user("t1")))
        .send(&svc)
        .await;
    let names: Vec<_> = r
        .log
        .decisions
        .iter()
        .map(|d| d.policy.to_string())
        .collect();
    // Recorded in a fixed order once all three are done.
    assert_eq!(
        names,
        ["trial_mode", "governor_approval", "sandbox_routing"]
    );
    assert!(r.log.decisions.iter().all(|d| d.layer == "policy"));
}
