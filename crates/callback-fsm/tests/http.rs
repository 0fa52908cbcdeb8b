//! The HTTP surface: secret gate, body validation, routing, problems (in-memory store).

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use callback_fsm::{
    CallbackLayer, CallbackService, JobStore, MemoryJobStore, StoreStats, TransitionTable,
};
use common::*;
use gw_core::{Decisions, Outcome};
use gw_problem::{Problem, ProblemLayer};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt, service_fn};

async fn store_with_job() -> MemoryJobStore {
    let store = MemoryJobStore::new();
    store.create_job("job-1", "queued").await.unwrap();
    store
}

#[tokio::test]
async fn invalid_secret_is_401_and_leaves_store_untouched() {
    let store = store_with_job().await;
    let before = store.stats();
    assert_eq!(
        before,
        StoreStats {
            reads: 0,
            writes: 1
        }
    );
    let valid = body("e1", "dispatched", &ts(1)).to_string();
    for svc in [
        layered(store.clone(), TransitionTable::default()),
        standalone(store.clone(), TransitionTable::default()),
    ] {
        let cases = [
            callback("job-1", None, valid.clone()),
            callback("job-1", Some("wrong"), valid.clone()),
            callback("job-1", Some(""), valid.clone()),
            callback("job-1", Some(&SECRET[..SECRET.len() - 1]), valid.clone()),
            callback("job-1", Some(&format!("{SECRET}x")), valid.clone()),
            callback("job-1", Some(&SECRET.to_uppercase()), valid.clone()),
            // The secret gate comes before body validation and before the job lookup.
            callback("job-1", Some("wrong"), "{not json"),
            callback("unknown-job", Some("wrong"), valid.clone()),
        ];
        for req in cases {
            let (status, problem) = send(&svc, req).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(problem["code"], "UNAUTHORIZED");
            assert_eq!(problem["status"], 401);
            assert!(!problem.to_string().contains(SECRET));
        }
        // Two secret headers (even if one is right) are refused.
        let mut req = callback("job-1", Some(SECRET), valid.clone());
        req.headers_mut()
            .append("x-callback-secret", "other".parse().unwrap());
        assert_eq!(send(&svc, req).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        store.stats(),
        before,
        "no store access on a rejected secret"
    );
    let job = store.job("job-1").await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.applied_events), ("queued", 0));
    assert!(store.history("job-1").await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_secret_never_reads_the_body() {
    let store = store_with_job().await;
    let spy = Spy::default();
    let svc = ServiceBuilder::new()
        .layer(CallbackLayer::new(secrets(), store.clone()))
        .service_fn(|_req: Request<Spy>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        });
    let req = Request::post("/internal/jobs/job-1/status")
        .header("x-callback-secret", "wrong")
        .body(spy.clone())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(!spy.polled());
    // With the right secret the same body is read (and refused as invalid).
    let req = Request::post("/internal/jobs/job-1/status")
        .header("x-callback-secret", SECRET)
        .body(spy.clone())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(spy.polled());
}

#[tokio::test]
async fn rotated_secret_is_accepted() {
    let store = store_with_job().await;
    let svc = layered(store.clone(), TransitionTable::default());
    let req = callback(
        "job-1",
        Some(OLD_SECRET),
        body("e1", "dispatched", &ts(1)).to_string(),
    );
    assert_eq!(send(&svc, req).await.0, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn malformed_bodies_are_409_validation_error_without_store_access() {
    let store = store_with_job().await;
    let svc = layered(store.clone(), TransitionTable::default());
    let before = store.stats();
    let ok = body("e1", "dispatched", &ts(1));
    let mut extra = ok.clone();
    extra["priority"] = json!(1);
    let mut missing = ok.clone();
    missing.as_object_mut().unwrap().remove("occurred_at");
    let mut bad_time = ok.clone();
    bad_time["occurred_at"] = json!("2026-03-01 00:00:01");
    let mut bad_status = ok.clone();
    bad_status["status"] = json!("paused");
    let cases: Vec<(Bytes, Option<&str>)> = vec![
        (Bytes::from_static(b""), None),
        (Bytes::from_static(b"{"), None),
        (Bytes::from_static(b"[1]"), None),
        (Bytes::from(extra.to_string()), None),
        (Bytes::from(missing.to_string()), None),
        (Bytes::from(bad_time.to_string()), Some("occurred_at")),
        (Bytes::from(bad_status.to_string()), Some("status")),
        (
            Bytes::from_static(
                br#"{"event_id":"e1","status":"dispatched","occurred_at":"2026-03-01T00:00:01Z","artifact_updates":[{"uri":"s3://a","uri":"s3://b"}]}"#,
            ),
            Some("artifact_updates"),
        ),
        (Bytes::from(vec![b' '; 20 * 1024]), None),
    ];
    for (raw, field) in cases {
        for job in ["job-1", "unknown-job"] {
            let (status, problem) = send(&svc, callback(job, Some(SECRET), raw.clone())).await;
            assert_eq!(status, StatusCode::CONFLICT, "{problem}");
            assert_eq!(problem["code"], "VALIDATION_ERROR");
            assert_eq!(problem["field"].as_str(), field);
        }
    }
    // Wrong media type.
    let mut req = json_callback("job-1", &ok);
    req.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(send(&svc, req).await.1["code"], "VALIDATION_ERROR");
    // A JSON media type followed by a conflicting one.
    let mut req = json_callback("job-1", &ok);
    req.headers_mut()
        .append("content-type", "text/plain".parse().unwrap());
    let (status, problem) = send(&svc, req).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "VALIDATION_ERROR");
    // A declared length over the cap is refused before reading.
    let mut req = json_callback("job-1", &ok);
    req.headers_mut()
        .insert("content-length", "999999".parse().unwrap());
    let (status, problem) = send(&svc, req).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(problem["detail"].as_str().unwrap().contains("exceeds"));
    assert_eq!(store.stats(), before);
    // `application/…+json` and a charset parameter are fine.
    let mut req = json_callback("job-1", &ok);
    req.headers_mut().insert(
        "content-type",
        "application/json; charset=utf-8".parse().unwrap(),
    );
    assert_eq!(send(&svc, req).await.0, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn body_limit_is_configurable() {
    let store = store_with_job().await;
    let svc = ServiceBuilder::new()
        .layer(CallbackLayer::new(secrets(), store).body_limit(64))
        .service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        });
    let mut big = body("e1", "dispatched", &ts(1));
    big["actor_type"] = json!("x".repeat(64));
    let res = svc.oneshot(json_callback("job-1", &big)).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(
        res.extensions().get::<Problem>().unwrap().reason_code(),
        "VALIDATION_ERROR"
    );
}

#[tokio::test]
async fn unknown_jobs_look_the_same_whatever_the_id() {
    let store = store_with_job().await;
    let svc = layered(store, TransitionTable::default());
    let event = body("e1", "dispatched", &ts(1));
    let long = "j".repeat(300);
    let mut seen = Vec::new();
    for job in ["missing", long.as_str(), "a%20b"] {
        let (status, mut problem) = send(&svc, json_callback(job, &event)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        problem.as_object_mut().unwrap().remove("instance");
        seen.push(problem);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    assert_eq!(seen[0]["code"], "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn layer_passes_everything_else_on() {
    let store = store_with_job().await;
    let svc = layered(store.clone(), TransitionTable::default());
    for (method, path) in [
        (Method::GET, "/internal/jobs/job-1/status"),
        (Method::POST, "/internal/jobs/job-1/status/extra"),
        (Method::POST, "/internal/jobs/job-1"),
        (Method::POST, "/internal/jobs/job-1/statusX"),
        (Method::POST, "/api/v1/jobs"),
        // Only POST is inspected: other methods pass on without path work.
        (Method::GET, "/internal/jobs/a%2Fb/status"),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::default())
            .unwrap();
        let (status, _) = send_raw(&svc, req).await;
        assert_eq!(status, StatusCode::IM_A_TEAPOT, "{path}");
    }
    // Ambiguous paths are refused, not guessed.
    let req = callback("job-1%2F..", Some(SECRET), "{}");
    let (status, problem) = send(&svc, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "ambiguous-path");
    // Trailing slash is the same route after normalization.
    let mut req = json_callback("job-1", &body("e1", "dispatched", &ts(1)));
    *req.uri_mut() = "/internal/jobs/job-1/status/".parse().unwrap();
    assert_eq!(send(&svc, req).await.0, StatusCode::NO_CONTENT);
    assert_eq!(store.stats().writes, 2);
}

async fn send_raw(svc: &Svc, req: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
    let res = svc.clone().oneshot(req).await.unwrap();
    (
        res.status(),
        res.into_body().collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn custom_route() {
    let store = store_with_job().await;
    assert!(
        CallbackLayer::new(secrets(), store.clone())
            .route("/cb/{id}")
            .is_err()
    );
    assert!(
        CallbackLayer::new(secrets(), store.clone())
            .route("POST /cb/{job_id}")
            .is_err()
    );
    assert!(
        CallbackLayer::new(secrets(), store.clone())
            .route("/cb/{job_id}/*")
            .is_err()
    );
    let layer = CallbackLayer::new(secrets(), store.clone())
        .route("/v2/callbacks/{job_id}")
        .unwrap();
    assert_eq!(layer.service().route_pattern(), "/v2/callbacks/{job_id}");
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        });
    let mut req = json_callback("job-1", &body("e1", "dispatched", &ts(1)));
    *req.uri_mut() = "/v2/callbacks/job-1".parse().unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The default route is no longer intercepted.
    let req = json_callback("job-1", &body("e2", "running", &ts(2)));
    assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn standalone_service_routes_and_methods() {
    let store = store_with_job().await;
    let svc = standalone(store.clone(), TransitionTable::default());
    let req = Request::get("/internal/jobs/job-1/status")
        .header("x-callback-secret", SECRET)
        .body(Full::default())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "POST");
    let mut req = json_callback("job-1", &body("e1", "dispatched", &ts(1)));
    *req.uri_mut() = "/elsewhere".parse().unwrap();
    let (status, problem) = send(&svc, req).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["code"], "RESOURCE_NOT_FOUND");
    let req = json_callback("job-1", &body("e1", "dispatched", &ts(1)));
    assert_eq!(send(&svc, req).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        store.job("job-1").await.unwrap().unwrap().status,
        "dispatched"
    );
}

#[tokio::test]
async fn problems_carry_correlation_and_decisions_are_recorded() {
    let store = store_with_job().await;
    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(CallbackLayer::new(secrets(), store))
        .service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        });
    let decisions = Decisions::new();
    let mut req = callback("job-1", Some("wrong"), "{}");
    req.headers_mut()
        .insert("x-correlation-id", "corr-42".parse().unwrap());
    req.extensions_mut().insert(decisions.clone());
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["x-correlation-id"], "corr-42");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(
        res.extensions().get::<Problem>().unwrap().reason_code(),
        "UNAUTHORIZED"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(doc["correlation_id"], "corr-42");
    assert_eq!(doc["instance"], "/internal/jobs/job-1/status");
    let log = decisions.snapshot();
    let d = &log.decisions[0];
    assert_eq!((d.layer, d.outcome), ("callback", Outcome::Deny));
    assert_eq!(d.reason.as_deref(), Some("UNAUTHORIZED"));

    let decisions = Decisions::new();
    let mut req = json_callback("job-1", &body("e1", "dispatched", &ts(1)));
    req.extensions_mut().insert(decisions.clone());
    assert_eq!(
        svc.oneshot(req).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let d = &decisions.snapshot().decisions[0];
    assert_eq!(
        (d.outcome, d.reason.as_deref()),
        (Outcome::Allow, Some("applied"))
    );
}

#[tokio::test]
async fn mounts_in_axum_with_axum_bodies() {
    let store = store_with_job().await;
    let endpoint =
        CallbackService::new(secrets(), store.clone()).response_body::<axum::body::Body>();
    let app = axum::Router::new()
        .route_service("/internal/jobs/{jobId}/status", endpoint)
        .route("/health", axum::routing::get(|| async { "ok" }));
    let req = Request::post("/internal/jobs/job-1/status")
        .header("x-callback-secret", SECRET)
        .body(axum::body::Body::from(
            body("e1", "queued", &ts(1)).to_string(),
        ))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&bytes).contains("FSM_TRANSITION_INVALID"));
    let req = Request::post("/internal/jobs/job-1/status")
        .header("x-callback-secret", SECRET)
        .body(axum::body::Body::from(
            body("e1", "dispatched", &ts(1)).to_string(),
        ))
        .unwrap();
    assert_eq!(
        app.oneshot(req).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        store.job("job-1").await.unwrap().unwrap().status,
        "dispatched"
    );
}

#[tokio::test]
async fn layer_inner_errors_pass_through() {
    let store = store_with_job().await;
    let svc = ServiceBuilder::new()
        .layer(CallbackLayer::new(secrets(), store))
        .service(service_fn(|_req: Request<Full<Bytes>>| async {
            Err::<Response<Full<Bytes>>, _>("inner failed")
        }));
    let req = Request::get("/other").body(Full::default()).unwrap();
    assert_eq!(svc.clone().oneshot(req).await.unwrap_err(), "inner failed");
    let req = json_callback("job-1", &body("e1", "dispatched", &ts(1)));
    assert_eq!(
        svc.oneshot(req).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
}
