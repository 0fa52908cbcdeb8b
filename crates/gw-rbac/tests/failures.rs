//! Engine failures: fail-closed 503, fail-open, OPA unreachable / timeout.

mod common;

use common::*;
use gw_core::{BackendError, FailMode, Outcome};
use gw_rbac::{Policy, RbacLayer, UserInfo};
use http::{Request, StatusCode};
use tower::{ServiceBuilder, ServiceExt};

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

#[cfg(feature = "opa")]
mod opa {
    use super::*;
    use gw_rbac::OpaAuthorizer;
    #[cfg(feature = "rego")]
    use std::time::Duration;

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

/// Counts `metrics` counter increments by name.
mod counted {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    type Counts = Arc<Mutex<HashMap<String, u64>>>;

    #[derive(Default)]
    pub struct CountingRecorder(pub Counts);

    struct Ctr(String, Counts);

    impl CounterFn for Ctr {
        fn increment(&self, value: u64) {
            *self.1.lock().unwrap().entry(self.0.clone()).or_default() += value;
        }
        fn absolute(&self, _value: u64) {}
    }

    impl Recorder for CountingRecorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Ctr(key.name().to_owned(), self.0.clone())))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }
}

#[test]
fn fail_open_and_fail_closed_are_counted() {
    let recorder = counted::CountingRecorder::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let policy = Policy::builtin();
    let down = || Failing(BackendError::unavailable("x", "down"));
    let open = RbacLayer::new(&policy, down())
        .unwrap()
        .fail_mode(FailMode::Open);
    let closed = RbacLayer::new(&policy, down()).unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            for _ in 0..3 {
                let res = call(&open, request("GET", "/api/v1/agents", Some(&["viewer"]))).await;
                assert_eq!(res.status(), StatusCode::OK);
            }
            let res = call(&closed, request("GET", "/api/v1/agents", Some(&["viewer"]))).await;
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        })
    });
    let counts = recorder.0.lock().unwrap();
    assert_eq!(counts.get("gw_rbac_fail_open_total"), Some(&3));
    assert_eq!(counts.get("gw_rbac_fail_closed_total"), Some(&1));
}
