//! Native and Rego (and OPA, through a local server) agree on every decision.
#![cfg(feature = "rego")]

mod common;

use common::*;
use gw_rbac::{AuthzInput, NativeAuthorizer, Policy, RbacLayer, RegoAuthorizer};
use tower::{ServiceBuilder, ServiceExt};

fn pairs(policy: &Policy) -> Vec<(Vec<&str>, &str, &str)> {
    let mut role_sets: Vec<Vec<&str>> = policy.roles.keys().map(|r| vec![r.as_str()]).collect();
    role_sets.extend([
        vec![],
        vec!["nobody"],
        vec!["viewer", "nobody"],
        vec!["support", "analyst"],
        vec!["viewer", "developer"],
        vec!["admin", "viewer"],
    ]);
    let mut perms: Vec<(&str, &str)> = policy
        .permissions
        .keys()
        .map(|p| p.split_once(':').unwrap())
        .collect();
    perms.extend([("agents", "explode"), ("unknown", "read")]);
    let mut out = Vec::new();
    for roles in &role_sets {
        for (r, a) in &perms {
            out.push((roles.clone(), *r, *a));
        }
    }
    out
}

#[test]
fn native_and_rego_agree_on_every_role_and_permission() {
    let policy = Policy::builtin();
    let native = NativeAuthorizer::new(&policy).unwrap();
    let rego = RegoAuthorizer::new(&policy).unwrap();
    let mut allowed = 0;
    let cases = pairs(&policy);
    for (roles, resource, action) in &cases {
        let p = principal(roles);
        let input = AuthzInput {
            principal: &p,
            resource,
            action,
        };
        let n = native.decide(&input);
        let r = rego.decide(&input).unwrap();
        assert_eq!(n, r, "{roles:?} {resource}:{action}");
        // Both agree with the policy data: allowed iff some role's effective set holds it.
        let expected = roles.iter().any(|role| {
            policy
                .effective_permissions(role)
                .contains(format!("{resource}:{action}").as_str())
        });
        assert_eq!(n.allowed, expected, "{roles:?} {resource}:{action}");
        if !n.allowed {
            let reason = n.deny_reason.as_deref().unwrap();
            assert!(
                reason == "no recognised role"
                    || reason == format!("missing permission {resource}:{action}"),
                "{reason}"
            );
        }
        allowed += usize::from(n.allowed);
    }
    // Sanity: the table is neither all-allow nor all-deny.
    assert!(allowed > 0 && allowed < cases.len());
}

const PATHS: &[(&str, &str)] = &[
    ("GET", "/api/v1/agents"),
    ("POST", "/api/v1/agents"),
    ("PUT", "/api/v1/agents/123"),
    ("PATCH", "/api/v1/agents/123"),
    ("DELETE", "/api/v1/agents/123"),
    ("GET", "/api/v1/agents/123/runs"),
    ("POST", "/api/v1/deployments"),
    ("GET", "/api/v1/deployments/9"),
    ("POST", "/api/v1/deployments/9/rollback"),
    ("GET", "/api/v2/customers/c1"),
    ("DELETE", "/api/v1/customers/c1"),
    ("PUT", "/api/v1/billing/b1"),
    ("GET", "/api/v1/billing"),
    ("DELETE", "/api/v1/subscriptions/s1"),
    ("GET", "/api/v1/reports/r1/export"),
    ("POST", "/api/v1/reports"),
    ("GET", "/api/v1/data/export"),
    ("GET", "/api/v1/data/d1"),
    ("DELETE", "/api/v1/data/d1"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/audit-logs"),
    ("GET", "/api/v1/audit-logs/export"),
    ("POST", "/api/v1/keys"),
    ("DELETE", "/api/v1/keys/k1"),
    ("GET", "/api/v1/unknown-things"),
    ("GET", "/internal/x"),
    ("OPTIONS", "/api/v1/agents"),
];

/// Status and X-RBAC headers of every (path, role) through a layer.
async fn outcomes(layer: RbacLayer, policy: &Policy) -> Vec<(String, u16, Option<String>)> {
    let svc = ServiceBuilder::new().layer(layer).service_fn(ok_handler);
    let mut out = Vec::new();
    let mut role_sets: Vec<Vec<&str>> = policy.roles.keys().map(|r| vec![r.as_str()]).collect();
    role_sets.push(vec!["nobody"]);
    for (method, path) in PATHS {
        for roles in &role_sets {
            let res = svc
                .clone()
                .oneshot(request(method, path, Some(roles)))
                .await
                .unwrap();
            let level = res
                .headers()
                .get("x-rbac-role-level")
                .map(|v| v.to_str().unwrap().to_owned());
            let status = res.status().as_u16();
            let body = if status == 200 {
                String::new()
            } else {
                json(res).await["deny_reason"].to_string()
            };
            out.push((format!("{method} {path} {roles:?} {body}"), status, level));
        }
    }
    out
}

#[tokio::test]
async fn native_and_rego_agree_on_request_paths() {
    let policy = Policy::builtin();
    let native = outcomes(RbacLayer::native(&policy).unwrap().no_cache(), &policy).await;
    let rego = outcomes(RbacLayer::rego(&policy).unwrap().no_cache(), &policy).await;
    assert_eq!(native, rego);
    // The seed's examples, through the native layer.
    let find = |needle: &str| {
        native
            .iter()
            .find(|(k, _, _)| k.starts_with(needle))
            .unwrap()
            .1
    };
    assert_eq!(find("GET /api/v1/agents [\"viewer\"]"), 200);
    assert_eq!(find("POST /api/v1/deployments [\"manager\"]"), 403);
    assert_eq!(find("POST /api/v1/deployments [\"developer\"]"), 200);
    assert_eq!(
        find("DELETE /api/v1/customers/c1 [\"customer_admin\"]"),
        403
    );
    assert_eq!(find("DELETE /api/v1/customers/c1 [\"admin\"]"), 200);
    assert_eq!(find("GET /internal/x [\"admin\"]"), 403);
    assert!(native.iter().any(|(_, s, _)| *s == 200) && native.iter().any(|(_, s, _)| *s == 403));
}

#[cfg(feature = "opa")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opa_agrees_through_a_local_server() {
    use gw_rbac::{Authorizer, OpaAuthorizer};

    let policy = Policy::builtin();
    let addr = opa_server::start(&policy, std::time::Duration::ZERO).await;
    let opa = OpaAuthorizer::new(&format!("http://{addr}")).unwrap();
    let native = NativeAuthorizer::new(&policy).unwrap();
    for (roles, resource, action) in pairs(&policy) {
        let p = principal(&roles);
        let input = AuthzInput {
            principal: &p,
            resource,
            action,
        };
        let remote = opa.authorize(&input).await.unwrap();
        assert_eq!(
            native.decide(&input),
            remote,
            "{roles:?} {resource}:{action}"
        );
    }
    let layer = RbacLayer::new(&policy, opa).unwrap().no_cache();
    let via_opa = outcomes(layer, &policy).await;
    let via_native = outcomes(RbacLayer::native(&policy).unwrap(), &policy).await;
    assert_eq!(via_native, via_opa);
}
