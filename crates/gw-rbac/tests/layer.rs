//! The layer: 401 / 403 / allowed with headers / gateway type / flag / bypass.

mod common;

use std::sync::Arc;

use common::*;
use gw_core::{GatewayType, Outcome, StaticFlags};
use gw_problem::Problem;
use gw_rbac::{RbacLayer, UserInfo};
use http::{Request, StatusCode};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::test]
async fn no_principal_is_401() {
    let (req, log) = with_log(request("GET", "/api/v1/agents", None));
    let res = call(&RbacLayer::builtin(), req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(res).await["code"], "unauthorized");
    let d = &log.snapshot().decisions[0];
    assert_eq!(
        (d.layer, d.outcome, d.reason.as_deref()),
        ("rbac", Outcome::Deny, Some("unauthorized"))
    );
}

#[tokio::test]
async fn missing_permission_is_403_with_deny_reason() {
    let (req, log) = with_log(request("DELETE", "/api/v1/agents/42", Some(&["viewer"])));
    let res = call(&RbacLayer::builtin(), req).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get("x-rbac-user-id").is_none());
    assert_eq!(
        res.extensions().get::<Problem>().unwrap().reason_code(),
        "permission-denied"
    );
    let body = json(res).await;
    assert_eq!(body["code"], "permission-denied");
    assert_eq!(body["deny_reason"], "missing permission agents:delete");
    assert_eq!(body["required_permission"], "agents:delete");
    assert_eq!(body["instance"], "/api/v1/agents/42");

    let log = log.snapshot();
    assert_eq!(log.decisions[0].outcome, Outcome::Deny);
    assert_eq!(log.decisions[0].policy, "rbac_pp");
    let ra = log.resource.unwrap();
    assert_eq!(
        (
            ra.resource.as_str(),
            ra.action.as_str(),
            ra.resource_id.as_deref()
        ),
        ("agents", "delete", Some("42"))
    );

    // Unknown roles and unmapped routes are denied too.
    let res = call(
        &RbacLayer::builtin(),
        request("GET", "/api/v1/agents", Some(&["intern"])),
    )
    .await;
    assert_eq!(json(res).await["deny_reason"], "no recognised role");
    let res = call(
        &RbacLayer::builtin(),
        request("GET", "/internal/x", Some(&["admin"])),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(res).await["code"], "permission-denied");
}

#[tokio::test]
async fn allowed_request_carries_user_info_and_headers() {
    let svc = ServiceBuilder::new()
        .layer(RbacLayer::builtin())
        .service_fn(|req: Request<Body>| async move {
            let user = req
                .extensions()
                .get::<UserInfo>()
                .expect("user info")
                .clone();
            assert_eq!(&*user.user_id, "user-1");
            assert_eq!(user.role_level, Some(3));
            assert!(!user.is_admin);
            assert!(
                user.has_permission("deployments:deploy") && user.has_permission("reports:read")
            );
            assert!(!user.has_permission("customers:delete"));
            ok_handler(req).await
        });
    let (req, log) = with_log(request(
        "POST",
        "/api/v1/deployments",
        Some(&["viewer", "developer"]),
    ));
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-rbac-user-id"], "user-1");
    assert_eq!(res.headers()["x-rbac-roles"], "viewer,developer");
    assert_eq!(res.headers()["x-rbac-role-level"], "3");
    let log = log.snapshot();
    assert_eq!(log.decisions[0].outcome, Outcome::Allow);
    assert_eq!(log.resource.unwrap().action, "deploy");
}

#[tokio::test]
async fn skipped_on_the_other_gateway_type() {
    let mut req = request("DELETE", "/api/v1/agents/1", None);
    req.extensions_mut().insert(GatewayType::Cp);
    let (req, log) = with_log(req);
    let res = call(&RbacLayer::builtin(), req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = &log.snapshot().decisions[0];
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::Skip, Some("other-gateway"))
    );

    // Same when the layer is told it is mounted in the customer gateway...
    let cp = RbacLayer::builtin().gateway_type(GatewayType::Cp);
    assert_eq!(
        call(&cp, request("GET", "/api/v1/agents", None))
            .await
            .status(),
        StatusCode::OK
    );
    // ...but the request's own gateway type wins, and pp requests are checked.
    let mut req = request("GET", "/api/v1/agents", None);
    req.extensions_mut().insert(GatewayType::Pp);
    assert_eq!(call(&cp, req).await.status(), StatusCode::UNAUTHORIZED);
    // A layer configured to run on cp checks cp requests.
    let on_cp = RbacLayer::builtin()
        .runs_on(GatewayType::Cp)
        .gateway_type(GatewayType::Cp);
    assert_eq!(
        call(&on_cp, request("GET", "/api/v1/agents", None))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn feature_flag_switches_the_layer() {
    let off =
        RbacLayer::builtin().flags(Arc::new(StaticFlags::new().set("enable_rbac_pp", "false")));
    let (req, log) = with_log(request("DELETE", "/api/v1/customers/1", Some(&["viewer"])));
    assert_eq!(call(&off, req).await.status(), StatusCode::OK);
    assert_eq!(
        log.snapshot().decisions[0].reason.as_deref(),
        Some("flag-off")
    );
    let on = RbacLayer::builtin().flags(Arc::new(StaticFlags::new().set("enable_rbac_pp", "true")));
    let res = call(
        &on,
        request("DELETE", "/api/v1/customers/1", Some(&["viewer"])),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let renamed = RbacLayer::builtin()
        .flag_name("rbac")
        .flags(Arc::new(StaticFlags::new().set("rbac", "off")));
    assert_eq!(
        call(&renamed, request("GET", "/api/v1/agents", None))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn public_paths_bypass_and_ambiguous_paths_are_400() {
    let layer = RbacLayer::builtin();
    assert_eq!(
        call(&layer, request("GET", "/health", None)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&layer, request("GET", "/docs/a/b", None))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&layer, request("GET", "/healthX", None))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let res = call(
        &layer,
        request("GET", "/health/..%2Fapi/v1/agents", Some(&["admin"])),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(res).await["code"], "ambiguous-path");
    let strict = RbacLayer::builtin().bypass(gw_core::RouteSet::new());
    assert_eq!(
        call(&strict, request("GET", "/health", None))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

/// HEAD runs the GET handler, so it needs what GET needs: the GET-scoped export
/// overrides apply to it, not the default `read`.
#[tokio::test]
async fn head_needs_the_permission_of_get() {
    let layer = RbacLayer::builtin();
    for (role, path, required, holder) in [
        ("analyst", "/api/v1/data/export", "data:export", "developer"),
        (
            "manager",
            "/api/v1/audit-logs/export",
            "audit_logs:export",
            "admin",
        ),
        (
            "viewer",
            "/api/v2/reports/9/export",
            "reports:export",
            "manager",
        ),
    ] {
        for method in ["GET", "HEAD"] {
            let res = call(&layer, request(method, path, Some(&[role]))).await;
            assert_eq!(
                res.status(),
                StatusCode::FORBIDDEN,
                "{role} {method} {path}"
            );
            assert_eq!(
                json(res).await["required_permission"],
                required,
                "{role} {method} {path}"
            );
            let res = call(&layer, request(method, path, Some(&[holder]))).await;
            assert_eq!(res.status(), StatusCode::OK, "{holder} {method} {path}");
        }
    }
}
