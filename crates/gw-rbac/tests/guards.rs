//! Per-route guards and axum extractors.

mod common;

use common::*;
use gw_rbac::{RbacLayer, require_permission, require_role, require_role_level};
use http::StatusCode;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::test]
async fn guards_behind_the_rbac_layer() {
    let guarded = |guard: gw_rbac::RequireLayer| {
        ServiceBuilder::new()
            .layer(RbacLayer::builtin())
            .layer(guard)
            .service_fn(ok_handler)
    };
    // The layer allows GET agents for every role; the guards narrow per route.
    let get = |roles: &'static [&'static str]| request("GET", "/api/v1/agents/1", Some(roles));

    let svc = guarded(require_permission("agents:delete"));
    assert_eq!(
        svc.clone()
            .oneshot(get(&["developer"]))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let res = svc.oneshot(get(&["viewer"])).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body = json(res).await;
    assert_eq!(body["code"], "permission-denied");
    assert_eq!(body["deny_reason"], "missing permission agents:delete");

    let svc = guarded(require_role("admin"));
    assert_eq!(
        svc.clone().oneshot(get(&["admin"])).await.unwrap().status(),
        StatusCode::OK
    );
    let res = svc.oneshot(get(&["customer_admin"])).await.unwrap();
    assert_eq!(json(res).await["deny_reason"], "missing role admin");

    let svc = guarded(require_role_level(3));
    assert_eq!(
        svc.clone().oneshot(get(&["admin"])).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        svc.clone()
            .oneshot(get(&["developer"]))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        svc.oneshot(get(&["manager"])).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn guards_without_the_rbac_layer_refuse() {
    let svc = ServiceBuilder::new()
        .layer(require_permission("agents:read"))
        .service_fn(ok_handler);
    let res = svc
        .clone()
        .oneshot(request("GET", "/x", None))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = svc
        .oneshot(request("GET", "/x", Some(&["admin"])))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        json(res).await["deny_reason"],
        "the request was not authorized by the rbac layer"
    );
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_extractors() {
    use axum::Router;
    use axum::body::Body as AxumBody;
    use axum::routing::{delete, get};
    use gw_rbac::{HasPermission, PermissionName, UserInfo};
    use http::Request;
    use http_body_util::BodyExt;

    struct DeleteAgents;
    impl PermissionName for DeleteAgents {
        const NAME: &'static str = "agents:delete";
    }

    async fn whoami(user: UserInfo) -> String {
        format!("{} level {}", user.user_id, user.role_level.unwrap())
    }
    async fn purge(perm: HasPermission<DeleteAgents>) -> String {
        format!("purged by {}", perm.into_inner().user_id)
    }

    let app = Router::new()
        .route("/api/v1/agents/{id}", get(whoami))
        .route("/api/v1/agents/{id}", delete(purge))
        .route("/api/v1/agents/{id}/purge", get(purge))
        .route("/open", get(whoami))
        .layer(RbacLayer::builtin().bypass(gw_core::RouteSet::from_routes(["/open"]).unwrap()));
    let req = |method: &str, path: &str, roles: &[&str]| {
        let mut r = Request::builder()
            .method(method)
            .uri(path)
            .body(AxumBody::empty())
            .unwrap();
        r.extensions_mut().insert(principal(roles));
        r
    };
    let text = |res: http::Response<AxumBody>| async move {
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    };

    let res = app
        .clone()
        .oneshot(req("GET", "/api/v1/agents/1", &["analyst"]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "user-1 level 5");
    let res = app
        .clone()
        .oneshot(req("DELETE", "/api/v1/agents/1", &["developer"]))
        .await
        .unwrap();
    assert_eq!(text(res).await, "purged by user-1");
    // The layer allows a viewer's GET (agents:read); the extractor requires agents:delete.
    let res = app
        .clone()
        .oneshot(req("GET", "/api/v1/agents/1/purge", &["viewer"]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(text(res).await.contains("missing permission agents:delete"));
    let res = app
        .clone()
        .oneshot(req("GET", "/api/v1/agents/1/purge", &["admin"]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // On a bypassed route there is no UserInfo: the extractor refuses.
    let res = app.oneshot(req("GET", "/open", &["viewer"])).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(text(res).await.contains("not authorized by the rbac layer"));
}
