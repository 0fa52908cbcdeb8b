//! Decision cache and policy hot reload.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use gw_core::{ManualClock, Principal, PrincipalData};
use gw_rbac::{
    Authorization, Authorizer, AuthzDecision, AuthzInput, DecisionCache, Permissions, Policy,
    RbacLayer,
};
use http::StatusCode;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::test]
async fn decisions_are_cached_per_input_and_expire() {
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

/// An engine whose policy reads the user id (as an OPA or Rego policy may): only alice
/// is allowed. Answers at once or, with `pending`, asynchronously (the OPA path).
#[derive(Debug)]
struct OnlyAlice {
    calls: Arc<AtomicUsize>,
    pending: bool,
}

impl Authorizer for OnlyAlice {
    fn name(&self) -> &'static str {
        "only-alice"
    }

    fn authorize(&self, input: &AuthzInput<'_>) -> Authorization {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let allowed = &*input.principal.user_id == "alice";
        let decision = AuthzDecision {
            allowed,
            deny_reason: (!allowed).then(|| Arc::from("only alice")),
            role_level: Some(7),
            is_admin: false,
            permissions: Permissions::empty(),
        };
        if self.pending {
            Authorization::pending(async move { Ok(decision) })
        } else {
            Authorization::ready(Ok(decision))
        }
    }
}

fn viewer_named(user: &str) -> Principal {
    Principal::from(PrincipalData {
        sub: user.into(),
        user_id: user.into(),
        email: format!("{user}@example.com").into(),
        customer_id: "c1".into(),
        roles: Arc::from(["viewer".to_string()]),
        governor_agent_id: None,
        trial: None,
    })
}

/// The cache is on by default for custom engines; a decision made for one user must
/// never answer another user who merely has the same roles.
#[tokio::test]
async fn a_cached_decision_is_never_served_to_another_user() {
    for pending in [false, true] {
        let calls = Arc::new(AtomicUsize::new(0));
        let engine = OnlyAlice {
            calls: calls.clone(),
            pending,
        };
        let layer = RbacLayer::new(&Policy::builtin(), engine).unwrap();
        assert!(layer.handle().cache().is_some(), "cache on by default");
        let as_user = |user: &str| {
            let mut req = request("GET", "/api/v1/agents", None);
            req.extensions_mut().insert(viewer_named(user));
            req
        };
        for round in 0..2 {
            let alice = call(&layer, as_user("alice")).await;
            assert_eq!(
                alice.status(),
                StatusCode::OK,
                "pending {pending} round {round}"
            );
            let mallory = call(&layer, as_user("mallory")).await;
            assert_eq!(
                mallory.status(),
                StatusCode::FORBIDDEN,
                "pending {pending} round {round}"
            );
        }
        // The second round came from the cache, per user.
        assert_eq!(calls.load(Ordering::SeqCst), 2, "pending {pending}");
    }
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
    let layer = RbacLayer::builtin().cache(DecisionCache::default());
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

    assert_eq!(
        handle.cache().unwrap().len(),
        2,
        "both decisions were cached"
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
