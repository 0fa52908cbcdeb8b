//! Standard Webhooks signature mode.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use callback_fsm::{CallbackLayer, JobStore, MemoryJobStore, StoreStats, WebhookKeys};
use common::*;
use gw_core::ManualClock;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt, service_fn};

const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: i64 = 1_772_323_200;

fn keys() -> WebhookKeys {
    WebhookKeys::new([KEY])
        .unwrap()
        .clock(Arc::new(ManualClock::at_unix(NOW as u64)))
}

async fn setup() -> (MemoryJobStore, Svc) {
    let store = MemoryJobStore::new();
    store.create_job("job-1", "queued").await.unwrap();
    let svc = ServiceBuilder::new()
        .layer(CallbackLayer::standard_webhooks(keys(), store.clone()).body_limit(1024))
        .service(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    (store, tower::util::BoxCloneSyncService::new(svc))
}

fn signed(id: &str, ts: i64, body: &str, signature: Option<String>) -> Request<Full<Bytes>> {
    let signature = signature.unwrap_or_else(|| keys().sign(id, ts, body.as_bytes()));
    Request::post("/internal/jobs/job-1/status")
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

#[tokio::test]
async fn signed_callbacks_follow_the_contract() {
    let (store, svc) = setup().await;
    let body = json!({"status": "dispatched", "occurred_at": ts(1)}).to_string();
    let (status, _) = send(&svc, signed("msg_1", NOW, &body, None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let history = store.history("job-1").await.unwrap();
    assert_eq!(history[0].event_id, "msg_1");
    // Redelivery (new timestamp, new signature) is an idempotent replay.
    let (status, replay) = send(&svc, signed("msg_1", NOW + 30, &body, None)).await;
    assert_eq!(
        (status, replay["event_id"].as_str()),
        (StatusCode::OK, Some("msg_1"))
    );
    // The body may repeat the id, but not contradict it.
    let same = json!({"event_id": "msg_2", "status": "running", "occurred_at": ts(2)}).to_string();
    assert_eq!(
        send(&svc, signed("msg_2", NOW, &same, None)).await.0,
        StatusCode::NO_CONTENT
    );
    let other =
        json!({"event_id": "evt-x", "status": "succeeded", "occurred_at": ts(3)}).to_string();
    let (status, problem) = send(&svc, signed("msg_3", NOW, &other, None)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        (problem["code"].as_str(), problem["field"].as_str()),
        (Some("VALIDATION_ERROR"), Some("event_id"))
    );
    // Same id, other payload.
    let changed = json!({"status": "dispatched", "occurred_at": ts(9)}).to_string();
    assert_eq!(
        send(&svc, signed("msg_1", NOW, &changed, None)).await.1["code"],
        "EVENT_ID_PAYLOAD_MISMATCH"
    );
}

#[tokio::test]
async fn bad_signatures_are_401_without_reading_or_touching_the_store() {
    let (store, svc) = setup().await;
    let before = store.stats();
    let body = json!({"status": "dispatched", "occurred_at": ts(1)}).to_string();
    let wrong_key = WebhookKeys::new([format!(
        "whsec_{}",
        "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    )])
    .unwrap();
    let cases = [
        signed(
            "msg_1",
            NOW,
            &body,
            Some(wrong_key.sign("msg_1", NOW, body.as_bytes())),
        ),
        signed("msg_1", NOW, &body, Some(keys().sign("msg_1", NOW, b"{}"))),
        signed(
            "msg_1",
            NOW,
            &body,
            Some(keys().sign("msg_2", NOW, body.as_bytes())),
        ),
        signed("msg_1", NOW - 301, &body, None),
        signed("msg_1", NOW + 301, &body, None),
        signed("msg_1", NOW, &body, Some("v1,".to_owned())),
        // The plain shared secret is not accepted in this mode.
        callback("job-1", Some(SECRET), body.clone()),
        // Too large to be verified: unauthenticated.
        signed("msg_1", NOW, &" ".repeat(2048), None),
    ];
    for req in cases {
        let (status, problem) = send(&svc, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
        assert_eq!(problem["code"], "UNAUTHORIZED");
    }
    assert_eq!(store.stats(), before);
    assert_eq!(
        before,
        StoreStats {
            reads: 0,
            writes: 1
        }
    );
    assert_eq!(store.job("job-1").await.unwrap().unwrap().status, "queued");
}

#[tokio::test]
async fn header_failures_are_refused_before_the_body_is_read() {
    let store = MemoryJobStore::new();
    let svc = ServiceBuilder::new()
        .layer(CallbackLayer::standard_webhooks(keys(), store))
        .service(service_fn(|_req: Request<Spy>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    for (ts, sig) in [(NOW - 3600, "v1,AAAA"), (NOW, "v2,AAAA")] {
        let spy = Spy::default();
        let req = Request::post("/internal/jobs/job-1/status")
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(spy.clone())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(!spy.polled());
    }
}
