//! The layer: 401 / 403 / 503 / fail-open / cache / reload / headers / skips.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use gw_core::{BackendError, Decisions, FailMode, GatewayType, ManualClock, Outcome, StaticFlags};
use gw_problem::Problem;
use gw_rbac::{
    Authorization, Authorizer, AuthzInput, DecisionCache, NativeAuthorizer, Policy, PolicyError,
    RbacLayer, UserInfo,
};
use http::{Request, Response, StatusCode};
use tower::{ServiceBuilder, ServiceExt};

/// Counts engine calls.
#[derive(Debug)]
struct Counting {
    inner: NativeAuthorizer,
    calls: Arc<AtomicUsize>,
}

impl Authorizer for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn authorize(&self, input: &AuthzInput<'_>) -> Authorization {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.authorize(input)
    }
    fn reload(&self, policy: &Policy) -> Result<(), PolicyError> {
        self.inner.reload(policy)
    }
}

/// An engine that always fails with `err`, asynchronously.
#[derive(Debug)]
struct Failing(BackendError);

impl Authorizer for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }
    fn authorize(&self, _input: &AuthzInput<'_>) -> Authorization {
        let e = self.0.clone();
        Authorization::pending(async move { Err(e) })
    }
}

fn counting(policy: &Policy) -> (Counting, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = Counting {
        inner: NativeAuthorizer::new(policy).unwrap(),
        calls: calls.clone(),
    };
    (engine, calls)
}

async fn call(layer: &RbacLayer, req: Request<Body>) -> Response<Body> {
    ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(ok_handler)
        .oneshot(req)
        .await
        .unwrap()
}

fn with_log(mut req: Request<Body>) -> (Request<Body>, Decisions) {
    let log = Decisions::new();
    req.extensions_mut().insert(log.clone());
    (req, log)
}

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
            assert_eq!(user.user_id, "user-1");
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
async fn engine_failure_fails_closed_by_default() {
    let policy = Policy::builtin();
    let layer = RbacLayer::new(&policy, Failing(BackendError::unavailable("x", "down"))).unwrap();
    let (req, log) = with_log(request("GET", "/api/v1/agents", Some(&["admin"])));
    let res = call(&layer, req).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = json(res).await;
    assert_eq!(body["code"], "service-unavailable");
    assert_eq!(body["engine"], "failing");
    assert!(
        !body.to_string().contains("down"),
        "backend detail must not leak"
    );
    assert_eq!(log.snapshot().decisions[0].outcome, Outcome::FailClosed);
}

#[tokio::test]
async fn fail_open_lets_the_request_through_without_user_info() {
    let policy = Policy::builtin();
    let layer = RbacLayer::new(&policy, Failing(BackendError::timeout("x", "slow")))
        .unwrap()
        .fail_mode(FailMode::Open);
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|req: Request<Body>| async move {
            assert!(req.extensions().get::<UserInfo>().is_none());
            ok_handler(req).await
        });
    let (req, log) = with_log(request("DELETE", "/api/v1/customers/1", Some(&["viewer"])));
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("x-rbac-role-level").is_none());
    let d = &log.snapshot().decisions[0];
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::FailOpen, Some("engine-unavailable"))
    );

    // An engine answering garbage is not "unavailable": still 503 under fail-open.
    let layer = RbacLayer::new(&policy, Failing(BackendError::invalid("x", "garbage")))
        .unwrap()
        .fail_mode(FailMode::Open);
    let res = call(&layer, request("GET", "/api/v1/agents", Some(&["viewer"]))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn decisions_are_cached_per_roles_resource_action_and_expire() {
    let policy = Policy::builtin();
    let (engine, calls) = counting(&policy);
    let clock = ManualClock::at_unix(1_000);
    let layer = RbacLayer::new(&policy, engine)
        .unwrap()
        .cache(DecisionCache::new(Duration::from_secs(60), 100).clock(Arc::new(clock.clone())));
    let cache = layer.handle().cache().unwrap();

    for _ in 0..3 {
        let res = call(
            &layer,
            request("GET", "/api/v1/agents/1", Some(&["viewer"])),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        // Served from the cache, the response is the same.
        assert_eq!(res.headers()["x-rbac-role-level"], "7");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.hits(), 2);
    // Denials are cached too; other roles / actions are other keys.
    for _ in 0..2 {
        let res = call(
            &layer,
            request("DELETE", "/api/v1/agents/1", Some(&["viewer"])),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    call(&layer, request("GET", "/api/v1/agents/1", Some(&["admin"]))).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    clock.advance(Duration::from_secs(61));
    call(
        &layer,
        request("GET", "/api/v1/agents/1", Some(&["viewer"])),
    )
    .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "expired entries are asked again"
    );

    // Without a cache every request reaches the engine.
    let (engine, calls) = counting(&policy);
    let layer = RbacLayer::new(&policy, engine).unwrap().no_cache();
    for _ in 0..3 {
        call(
            &layer,
            request("GET", "/api/v1/agents/1", Some(&["viewer"])),
        )
        .await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

fn viewer_may_delete(policy: &Policy) -> Policy {
    let mut p = policy.clone();
    p.roles
        .get_mut("viewer")
        .unwrap()
        .permissions
        .push("agents:delete".into());
    p.routes.push(gw_rbac::RouteRule {
        route: "GET /api/{version}/agents/{id}/purge".into(),
        permission: Some("agents:delete".into()),
        resource: None,
    });
    p
}

#[tokio::test]
async fn reload_switches_policy_without_rebuilding_and_drops_cached_decisions() {
    let policy = Policy::builtin();
    let layer = RbacLayer::builtin();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(ok_handler);
    let handle = layer.handle();
    let del = || request("DELETE", "/api/v1/agents/1", Some(&["viewer"]));
    let purge = || request("GET", "/api/v1/agents/1/purge", Some(&["viewer"]));
    assert_eq!(
        svc.clone().oneshot(del()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        svc.clone().oneshot(purge()).await.unwrap().status(),
        StatusCode::OK,
        "agents:read before"
    );

    let rev = handle.revision();
    assert_eq!(handle.reload(&viewer_may_delete(&policy)).unwrap(), rev + 1);
    assert!(handle.cache().unwrap().is_empty());
    assert_eq!(
        svc.clone().oneshot(del()).await.unwrap().status(),
        StatusCode::OK
    );

    // A bad policy is refused and the one in force stays.
    let mut bad = policy.clone();
    bad.roles
        .get_mut("viewer")
        .unwrap()
        .permissions
        .push("nope:nope".into());
    assert!(handle.reload(&bad).is_err());
    assert_eq!(handle.revision(), rev + 1);
    assert_eq!(
        svc.clone().oneshot(del()).await.unwrap().status(),
        StatusCode::OK
    );

    // Back to the original.
    handle.reload(&policy).unwrap();
    assert_eq!(
        svc.oneshot(del()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[cfg(feature = "rego")]
#[tokio::test]
async fn rego_engine_reloads_too() {
    let policy = Policy::builtin();
    let layer = RbacLayer::rego(&policy).unwrap();
    let del = || request("DELETE", "/api/v1/agents/1", Some(&["viewer"]));
    assert_eq!(call(&layer, del()).await.status(), StatusCode::FORBIDDEN);
    layer.handle().reload(&viewer_may_delete(&policy)).unwrap();
    assert_eq!(call(&layer, del()).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_the_policy_file_reloads_on_change() {
    let dir = std::env::temp_dir().join(format!("gw-rbac-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rbac.toml");
    std::fs::write(&file, gw_rbac::BUILTIN_POLICY_TOML).unwrap();
    let layer = RbacLayer::native(&Policy::from_file(&file).unwrap()).unwrap();
    let handle = layer.handle();
    let task = handle.watch_file(&file, Duration::from_millis(20));
    let del = || request("DELETE", "/api/v1/agents/1", Some(&["viewer"]));
    assert_eq!(call(&layer, del()).await.status(), StatusCode::FORBIDDEN);

    let changed = gw_rbac::BUILTIN_POLICY_TOML.replace(
        "permissions = [\"agents:read\", \"deployments:read\", \"reports:read\"]",
        "permissions = [\"agents:read\", \"deployments:read\", \"reports:read\", \"agents:delete\"]",
    );
    assert_ne!(changed, gw_rbac::BUILTIN_POLICY_TOML);
    std::fs::write(&file, changed).unwrap();
    let mut status = StatusCode::FORBIDDEN;
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = call(&layer, del()).await.status();
        if status == StatusCode::OK {
            break;
        }
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "the watcher reloaded the changed file"
    );

    // A broken file is ignored: the policy in force stays.
    let rev = handle.revision();
    std::fs::write(&file, "this is not toml [").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handle.revision(), rev);
    assert_eq!(call(&layer, del()).await.status(), StatusCode::OK);
    task.abort();
    std::fs::remove_dir_all(&dir).unwrap();
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

#[cfg(feature = "opa")]
mod opa {
    use super::*;
    use gw_rbac::OpaAuthorizer;

    fn dead_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_opa_is_503_or_fail_open() {
        let policy = Policy::builtin();
        let opa = OpaAuthorizer::new(&format!("http://127.0.0.1:{}", dead_port())).unwrap();
        let layer = RbacLayer::new(&policy, opa).unwrap();
        let res = call(&layer, request("GET", "/api/v1/agents", Some(&["viewer"]))).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(res).await["engine"], "opa");
        let open = layer.fail_mode(FailMode::Open);
        let res = call(
            &open,
            request("DELETE", "/api/v1/customers/1", Some(&["viewer"])),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[cfg(feature = "rego")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_opa_times_out_and_fast_opa_is_cached() {
        let policy = Policy::builtin();
        let slow = opa_server::start(&policy, Duration::from_millis(500)).await;
        let opa = OpaAuthorizer::new(&format!("http://{slow}"))
            .unwrap()
            .timeout(Duration::from_millis(50));
        let layer = RbacLayer::new(&policy, opa).unwrap();
        let (req, log) = with_log(request("GET", "/api/v1/agents", Some(&["viewer"])));
        assert_eq!(
            call(&layer, req).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(log.snapshot().decisions[0].outcome, Outcome::FailClosed);

        let fast = opa_server::start(&policy, Duration::ZERO).await;
        let layer = RbacLayer::new(
            &policy,
            OpaAuthorizer::new(&format!("http://{fast}")).unwrap(),
        )
        .unwrap();
        for _ in 0..3 {
            let res = call(&layer, request("GET", "/api/v1/agents", Some(&["manager"]))).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()["x-rbac-role-level"], "4");
        }
        let cache = layer.handle().cache().unwrap();
        assert_eq!((cache.hits(), cache.misses()), (2, 1));
        let res = call(
            &layer,
            request("DELETE", "/api/v1/agents/1", Some(&["manager"])),
        )
        .await;
        assert_eq!(
            json(res).await["deny_reason"],
            "missing permission agents:delete"
        );
        // An OPA-side policy change: invalidate, and the next request asks again.
        layer.handle().invalidate();
        call(&layer, request("GET", "/api/v1/agents", Some(&["manager"]))).await;
        assert_eq!(cache.misses(), 3);
    }
}
