//! In-process tests of ServiceAuthLayer: modes, the run-time switch, fail modes, the nonce
//! rule, size caps on streamed bodies, metrics and the key-expiry gauge.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::future::{BoxFuture, ready};
use gw_core::{BackendError, Decisions, FailMode, ManualClock};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use metrics_util::debugging::DebuggingRecorder;
use svc_hmac::{
    KEY_EXPIRY_GAUGE, KeyRing, KeyStore, MemoryKeyStore, Mode, ModeSwitch, NonceCache,
    REQUESTS_COUNTER, ServiceAuthLayer, ServiceKey, VerifiedBody, report_key_expiry, wire,
};
use tower::{ServiceBuilder, ServiceExt};

fn signed(method: Method, uri: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
    let (mut parts, ()) = Request::builder()
        .method(method)
        .uri(uri)
        .body(())
        .unwrap()
        .into_parts();
    signer().sign(&mut parts, body).unwrap();
    let mut req = Request::from_parts(parts, Full::new(Bytes::from_static(body)));
    req.extensions_mut().insert(Decisions::new());
    req
}

fn unsigned(uri: &str) -> Request<Full<Bytes>> {
    let mut req = Request::get(uri).body(Full::default()).unwrap();
    req.extensions_mut().insert(Decisions::new());
    req
}

async fn call(
    layer: &ServiceAuthLayer,
    req: Request<Full<Bytes>>,
) -> (StatusCode, serde_json::Value) {
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(echo::<Full<Bytes>>);
    json(svc.oneshot(req).await.unwrap()).await
}

fn decision(body: &serde_json::Value) -> (String, String) {
    let d = &body["decisions"]["decisions"][0];
    (
        d["outcome"].as_str().unwrap_or("").into(),
        d["reason"].as_str().unwrap_or("").into(),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn log_only_lets_bad_requests_through_and_counts_them() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        rt().block_on(async {
            let layer = ServiceAuthLayer::new(keys()).group("/api/npu/*", Mode::LogOnly);
            let (status, body) = call(&layer, unsigned("/api/npu/x")).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["service"], serde_json::Value::Null);
            assert_eq!(
                decision(&body),
                ("shadow_deny".into(), "missing-headers".into())
            );

            // Tampered body: passes, the handler gets the bytes as received, counted.
            let mut req = signed(Method::POST, "/api/npu/r", b"original");
            *req.body_mut() = Full::new(Bytes::from_static(b"tampered"));
            let (status, body) = call(&layer, req).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["body"], "tampered");
            assert_eq!(decision(&body).1, "digest-mismatch");

            let (status, body) = call(&layer, signed(Method::POST, "/api/npu/r", b"fine")).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["service"], "npu-worker");
            assert_eq!(decision(&body).0, "allow");
        })
    });
    let all = snapshotter.snapshot().into_vec();
    let count = |outcome| {
        metric(
            &all,
            REQUESTS_COUNTER,
            &[("mode", "log_only"), ("outcome", outcome)],
        )
    };
    assert_eq!(count("missing-headers"), Some(1.0));
    assert_eq!(count("digest-mismatch"), Some(1.0));
    assert_eq!(count("ok"), Some(1.0));
}

#[tokio::test]
async fn staged_rollout_and_switch_rollback() {
    let switch = ModeSwitch::new(Mode::Enforce);
    let layer = ServiceAuthLayer::new(keys())
        .default_mode(Mode::Off)
        .service_only("/api/npu/*")
        .group("/api/browser/*", Mode::LogOnly)
        .exempt("/api/npu/health")
        .mode_switch(switch.clone());
    assert_eq!(layer.mode_for(&Method::GET, "/api/npu/x"), Mode::Enforce);
    assert_eq!(layer.mode_for(&Method::GET, "/api/npu/health"), Mode::Off);
    assert_eq!(
        layer.mode_for(&Method::GET, "/api/browser/x"),
        Mode::LogOnly
    );
    assert_eq!(layer.mode_for(&Method::GET, "/api/chats"), Mode::Off);

    let (status, body) = call(&layer, unsigned("/api/npu/x")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing-headers"))
    );
    assert_eq!(
        call(&layer, unsigned("/api/npu/health")).await.0,
        StatusCode::OK
    );
    let (status, body) = call(&layer, unsigned("/api/chats")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["decisions"]["decisions"], serde_json::json!([]));
    assert_eq!(
        call(&layer, unsigned("/api/browser/x")).await.0,
        StatusCode::OK
    );

    // Rollback: the whole service back to log_only, no restart.
    switch.set(Mode::LogOnly);
    let (status, body) = call(&layer, unsigned("/api/npu/x")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(decision(&body).0, "shadow_deny");
    switch.set(Mode::Enforce);
    assert_eq!(
        call(&layer, unsigned("/api/npu/x")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn ambiguous_paths_and_duplicate_headers_are_refused() {
    let layer = ServiceAuthLayer::new(keys());
    let (status, body) = call(&layer, unsigned("/api/npu%2Fx")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "ambiguous-path");

    let mut req = signed(Method::GET, "/api/npu/x", b"");
    req.headers_mut()
        .append(wire::SERVICE_ID, HeaderValue::from_static("ai-stack"));
    let (status, body) = call(&layer, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "missing-headers");
}

#[tokio::test]
async fn nonce_is_recorded_only_after_the_request_verified() {
    let layer = ServiceAuthLayer::new(keys());
    let good = signed(Method::POST, "/api/npu/r", b"body");
    let nonce = good.headers()[wire::SERVICE_NONCE].clone();

    // Same nonce, wrong signature: rejected, nonce not burned.
    let mut forged = signed(Method::POST, "/api/npu/r", b"body");
    forged
        .headers_mut()
        .insert(wire::SERVICE_NONCE, nonce.clone());
    let (status, body) = call(&layer, forged).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad-signature"))
    );

    // Same nonce, tampered body: rejected, nonce not burned.
    let mut tampered = signed(Method::POST, "/api/npu/r", b"body");
    *tampered.headers_mut() = good.headers().clone();
    *tampered.body_mut() = Full::new(Bytes::from_static(b"evil"));
    assert_eq!(call(&layer, tampered).await.1["code"], "digest-mismatch");

    let mut replay = signed(Method::POST, "/api/npu/r", b"body");
    *replay.headers_mut() = good.headers().clone();
    assert_eq!(call(&layer, good).await.0, StatusCode::OK);
    assert_eq!(call(&layer, replay).await.1["code"], "replayed");
}

#[derive(Debug)]
struct DownKeys;
impl KeyStore for DownKeys {
    fn ring<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<Arc<KeyRing>>, BackendError>> {
        Box::pin(ready(Err(BackendError::unavailable("test", "down"))))
    }
    fn rings(&self) -> BoxFuture<'_, Result<Vec<Arc<KeyRing>>, BackendError>> {
        Box::pin(ready(Err(BackendError::unavailable("test", "down"))))
    }
}

#[derive(Debug)]
struct DownNonces;
impl NonceCache for DownNonces {
    fn check_and_record<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(ready(Err(BackendError::unavailable("test", "down"))))
    }
}

#[tokio::test]
async fn backend_failures_follow_the_fail_mode() {
    let layer = ServiceAuthLayer::new(DownKeys);
    let (status, body) = call(&layer, signed(Method::GET, "/api/npu/x", b"")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("key-store-unavailable")
        )
    );
    let (status, _) = call(
        &layer.clone().default_mode(Mode::LogOnly),
        signed(Method::GET, "/api/npu/x", b""),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let closed = ServiceAuthLayer::new(keys()).nonce_cache(DownNonces);
    let (status, body) = call(&closed, signed(Method::GET, "/api/npu/x", b"")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("nonce-store-unavailable")
        )
    );
    let open = closed.nonce_fail_mode(FailMode::Open);
    let (status, body) = call(&open, signed(Method::GET, "/api/npu/x", b"")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["service"], "npu-worker");
    assert_eq!(decision(&body).0, "fail_open");
}

type Chunks = StreamBody<
    futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>,
>;

fn chunked(parts: Vec<&'static [u8]>) -> Chunks {
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = parts
        .into_iter()
        .map(|p| Ok(Frame::data(Bytes::from_static(p))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

#[tokio::test]
async fn streamed_body_over_the_cap() {
    let body: &[u8] = b"aaaaaaaabbbbbbbbcccc";
    let make = || {
        let (mut parts, ()) = Request::post("/api/npu/r").body(()).unwrap().into_parts();
        signer().sign(&mut parts, body).unwrap();
        Request::from_parts(parts, chunked(vec![&body[..8], &body[8..16], &body[16..]]))
    };
    for (mode, want) in [
        (Mode::Enforce, StatusCode::PAYLOAD_TOO_LARGE),
        (Mode::LogOnly, StatusCode::OK),
    ] {
        let layer = ServiceAuthLayer::new(keys())
            .max_body_size(10)
            .default_mode(mode);
        let svc = ServiceBuilder::new().layer(layer).service_fn(
            |req: Request<VerifiedBody<_>>| async move {
                // log_only hands on the whole stream: what was read, then the rest.
                let bytes = req.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(&bytes[..], b"aaaaaaaabbbbbbbbcccc");
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
            },
        );
        let res = svc.oneshot(make()).await.unwrap();
        assert_eq!(res.status(), want, "{mode:?}");
    }
    // Within the cap a chunked body verifies.
    let layer = ServiceAuthLayer::new(keys()).max_body_size(64);
    let svc = ServiceBuilder::new().layer(layer).service_fn(echo::<_>);
    let (status, out) = json(svc.oneshot(make()).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(out["body"], "aaaaaaaabbbbbbbbcccc");
}

#[test]
fn key_expiry_gauge_reports_days_left() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::at_unix(1_760_000_000);
    let store = MemoryKeyStore::new().with_ring(
        KeyRing::new("ai-stack")
            .key(ServiceKey::new("a1", "x").expires_at_unix(1_760_000_000 + 85 * 86_400))
            .key(ServiceKey::new("a0", "y").expires_at_unix(1_760_000_000 - 86_400))
            .key(ServiceKey::new("forever", "z")),
    );
    let n = metrics::with_local_recorder(&recorder, || {
        rt().block_on(report_key_expiry(&store, &clock)).unwrap()
    });
    assert_eq!(n, 1);
    let all = snapshotter.snapshot().into_vec();
    let gauge = |key_id| {
        metric(
            &all,
            KEY_EXPIRY_GAUGE,
            &[("service", "ai-stack"), ("key_id", key_id)],
        )
    };
    assert_eq!(gauge("a1"), Some(85.0));
    assert_eq!(gauge("a0"), Some(-1.0));
    assert_eq!(gauge("forever"), None);
}

/// Child half of `service_client_from_env`: run by the parent with the variables set; in a
/// normal run the variables are absent and `from_env` must refuse.
#[test]
fn from_env_child() {
    match std::env::var("SVC_HMAC_EXPECT_SERVICE") {
        Ok(expected) => {
            let client = svc_hmac::ServiceClient::from_env().unwrap();
            assert_eq!(client.signer().service_id(), expected);
            println!("FROM_ENV_OK {expected}");
        }
        Err(_) => {
            if std::env::var_os("SERVICE_ID").is_none() {
                let err = svc_hmac::ServiceClient::from_env().unwrap_err();
                assert!(err.to_string().contains("SERVICE_ID"));
            }
        }
    }
}

#[test]
fn service_client_from_env() {
    let dir = std::env::temp_dir().join(format!("svc-hmac-env-{}", wire::new_nonce()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("npu-worker.env");
    std::fs::write(&file, "SERVICE_KEY=abc\nSERVICE_KEY_ID=k7\n").unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "from_env_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SERVICE_ID", "npu-worker")
        .env("SERVICE_KEY_FILE", &file)
        .env("SVC_HMAC_EXPECT_SERVICE", "npu-worker")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("FROM_ENV_OK npu-worker"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn enforce_rejection_records_a_deny_and_carries_the_problem() {
    let decisions = Decisions::new();
    let mut req = Request::get("/api/npu/x")
        .body(Full::<Bytes>::default())
        .unwrap();
    req.extensions_mut().insert(decisions.clone());
    let svc = ServiceBuilder::new()
        .layer(ServiceAuthLayer::new(keys()))
        .service_fn(echo::<Full<Bytes>>);
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem = res.extensions().get::<gw_problem::Problem>().unwrap();
    assert_eq!(problem.reason_code(), "missing-headers");
    assert_eq!(problem.kind().slug, "service-unauthorized");
    let log = decisions.snapshot();
    assert_eq!(log.decisions.len(), 1);
    assert_eq!(log.decisions[0].layer, "svc-hmac");
    assert_eq!(log.decisions[0].outcome, gw_core::Outcome::Deny);
    assert_eq!(log.decisions[0].reason.as_deref(), Some("missing-headers"));
}
