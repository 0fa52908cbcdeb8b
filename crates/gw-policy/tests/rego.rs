//! The shipped Rego policies and the native ones decide alike on a table of inputs.
#![cfg(feature = "rego")]

use gw_policy::governor::{self, ApprovalState};
use gw_policy::rego::RegoPolicies;
use gw_policy::trial::{self, TrialInput};
use gw_policy::{GovernorConfig, TrialConfig, sandbox};
use http::Method;
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000_000;

#[test]
fn trial_mode_agrees() {
    let mut rego = RegoPolicies::load().unwrap();
    let cfg = TrialConfig::new();
    let principals = [
        json!(null),
        json!({"trial": null}),
        json!({"trial": {"expires_at_ms": null}}),
        json!({"trial": {"expires_at_ms": NOW - 1}}),
        json!({"trial": {"expires_at_ms": NOW}}),
        json!({"trial": {"expires_at_ms": NOW + 1}}),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for principal in &principals {
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            for (task_count, limit) in [(0, 10), (9, 10), (10, 10), (11, 10), (0, 0), (0, 1)] {
                let m = Method::from_bytes(method.as_bytes()).unwrap();
                let input = TrialInput {
                    is_trial: !principal.is_null() && !principal["trial"].is_null(),
                    expires_at_ms: principal["trial"]["expires_at_ms"].as_u64(),
                    now_ms: NOW,
                    is_task: cfg.is_task(&m, "/api/v1/tasks"),
                    task_count,
                    limit,
                };
                let native = trial::decide(&input);
                let r = rego
                    .decide(
                        "trial_mode",
                        &json!({
                            "principal": principal,
                            "method": method,
                            "now_ms": NOW,
                            "task_count": task_count,
                            "limit": limit,
                        }),
                    )
                    .unwrap();
                let case = format!("{principal} {method} {task_count}/{limit}");
                assert_eq!(r.reason, native.reason(), "{case}");
                assert_eq!(r.allow, native.allows(), "{case}");
                seen.insert(r.reason);
            }
        }
    }
    assert_eq!(seen.len(), 5, "every outcome covered: {seen:?}");
}

#[test]
fn governor_approval_agrees() {
    let mut rego = RegoPolicies::load().unwrap();
    let cfg = GovernorConfig::new("");
    let requests = [
        ("DELETE", "/api/v1/agents/42"),
        ("DELETE", "/api/v2/agents/42"),
        ("DELETE", "/api/v01/agents/42/force"),
        ("DELETE", "/api/v1/agents"),
        ("DELETE", "/api/v1/agents/42/runs"),
        ("DELETE", "/api/agents/42"),
        ("DELETE", "/api/v3/customers/c1/x"),
        ("POST", "/api/v2/subscriptions/7/change"),
        ("PUT", "/api/v9/billing"),
        ("GET", "/api/v2/data/export"),
        ("GET", "/api/v1/agents/42"),
        ("DELETE", "/api/v1/agentsX/42"),
        ("PUT", "/api/v1/billing"),
        ("PATCH", "/api/v1/billing/plan/x"),
        ("POST", "/api/v1/billing/plan"),
        ("POST", "/api/v1/subscriptions/7/change"),
        ("POST", "/api/v1/subscriptions/7/changes"),
        ("PUT", "/api/v1/subscriptions/7/change"),
        ("GET", "/api/v1/data/export"),
        ("HEAD", "/api/v1/data/export"),
        ("HEAD", "/api/v1/agents/42"),
        ("OPTIONS", "/api/v1/data/export"),
        ("POST", "/api/v1/data/export"),
        ("GET", "/api/v1/data/export/x"),
        ("DELETE", "/api/v1/customers/c1"),
        ("DELETE", "/api/v1/customers/c1/"),
        ("GET", "/"),
    ];
    let states = [
        ("missing", ApprovalState::Missing),
        ("valid", ApprovalState::Valid),
        ("invalid", ApprovalState::Invalid),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (method, raw) in requests {
        let path = gw_core::normalize_path(raw).unwrap();
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let action = cfg.action_for(&m, &path);
        for (name, state) in states {
            let native = governor::decide(action, state);
            let r = rego
                .decide(
                    "governor_approval",
                    &json!({"method": method, "path": path, "approval": name}),
                )
                .unwrap();
            let case = format!("{method} {path} {name}");
            assert_eq!(r.reason, native.reason(), "{case}");
            assert_eq!(r.allow, native.allows(), "{case}");
            assert_eq!(r.detail.as_deref(), action, "{case}");
            seen.insert(r.reason);
        }
    }
    assert_eq!(seen.len(), 4, "every outcome covered: {seen:?}");
}

#[test]
fn sandbox_routing_agrees() {
    let mut rego = RegoPolicies::load().unwrap();
    let cases: [(Value, Option<gw_core::Principal>); 3] = [
        (json!(null), None),
        (json!({"trial": null}), Some(principal(false))),
        (
            json!({"trial": {"expires_at_ms": null}}),
            Some(principal(true)),
        ),
    ];
    for (input, p) in cases {
        let native = sandbox::decide(p.as_ref()).map(|t| t.as_str());
        let r = rego
            .decide("sandbox_routing", &json!({ "principal": input }))
            .unwrap();
        assert_eq!(r.detail.as_deref(), native, "{input}");
        assert_eq!(r.reason, native.unwrap_or("no-principal"), "{input}");
    }
}

fn principal(trial: bool) -> gw_core::Principal {
    gw_core::Principal::from(gw_core::PrincipalData {
        sub: "u".into(),
        user_id: "u".into(),
        email: "u@example.com".into(),
        customer_id: "c".into(),
        roles: std::sync::Arc::from([]),
        governor_agent_id: None,
        trial: trial.then_some(gw_core::TrialInfo { expires_at: None }),
    })
}
