//! Signer -> verifier over real HTTP on loopback: a hyper server on 127.0.0.1:0 behind
//! `ServiceAuthLayer`, and hyper-util's legacy client behind `SigningLayer`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use gw_core::ManualClock;
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use svc_hmac::{KeyRing, MemoryKeyStore, ServiceAuthLayer, ServiceKey, Signer, SigningLayer, wire};
use tower::{ServiceBuilder, ServiceExt, service_fn};

type Tamper = Box<dyn Fn(&mut Request<Full<Bytes>>) + Send + Sync>;

async fn server(layer: ServiceAuthLayer) -> String {
    let svc = ServiceBuilder::new().layer(layer).service_fn(echo);
    format!("http://{}", serve(svc).await)
}

fn post(url: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

/// Signs with `signer`, then applies `tamper` to the signed request, then sends it.
async fn send_tampered(
    signer: Signer,
    req: Request<Full<Bytes>>,
    tamper: impl Fn(&mut Request<Full<Bytes>>) + Clone + Send + Sync + 'static,
) -> (StatusCode, serde_json::Value) {
    let svc = ServiceBuilder::new()
        .layer(SigningLayer::new(signer))
        .map_request(move |mut r: Request<Full<Bytes>>| {
            tamper(&mut r);
            r
        })
        .service(client());
    json(svc.oneshot(req).await.unwrap()).await
}

async fn send(signer: Signer, req: Request<Full<Bytes>>) -> (StatusCode, serde_json::Value) {
    send_tampered(signer, req, |_| {}).await
}

#[tokio::test]
async fn get_with_query_round_trip() {
    let base = server(ServiceAuthLayer::new(keys())).await;
    let (status, body) = send(
        signer(),
        get(&format!("{base}/api/npu/status?verbose=1&x=a%20b")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["service"], "npu-worker");
    assert_eq!(body["key_id"], "k1");
    assert_eq!(body["method"], "GET");
}

#[tokio::test]
async fn post_with_body_round_trip_hands_on_the_verified_body() {
    let base = server(ServiceAuthLayer::new(keys())).await;
    let payload = r#"{"task_id":"42","result":[1,2,3]}"#;
    let (status, body) = send(
        signer(),
        post(&format!("{base}/api/npu/results/42"), payload),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["body"], payload);
    assert_eq!(body["service"], "npu-worker");
}

#[tokio::test]
async fn tampering_is_rejected_with_the_right_code() {
    let base = server(ServiceAuthLayer::new(keys())).await;
    let url = format!("{base}/api/npu/results/42?run=1");
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "digest-mismatch",
            Box::new(|r| *r.body_mut() = Full::new(Bytes::from_static(b"{\"task_id\":\"43\"}"))),
        ),
        (
            "bad-signature",
            Box::new(|r| {
                *r.uri_mut() = swap(r.uri(), "/api/npu/results/42", "/api/npu/results/43")
            }),
        ),
        (
            "bad-signature",
            Box::new(|r| *r.uri_mut() = swap(r.uri(), "run=1", "run=2")),
        ),
        ("bad-signature", Box::new(|r| *r.method_mut() = Method::PUT)),
        (
            "bad-signature",
            Box::new(|r| {
                // Body and digest both replaced: the digest is signed.
                let body = b"{\"evil\":true}";
                *r.body_mut() = Full::new(Bytes::from_static(body));
                r.headers_mut().insert(
                    wire::CONTENT_DIGEST,
                    HeaderValue::from_str(&wire::content_digest(body)).unwrap(),
                );
            }),
        ),
        (
            "missing-headers",
            Box::new(|r| {
                r.headers_mut().remove(wire::SERVICE_NONCE);
            }),
        ),
        (
            "unknown-service",
            Box::new(|r| {
                r.headers_mut()
                    .insert(wire::SERVICE_ID, HeaderValue::from_static("ai-stack"));
            }),
        ),
        (
            "unknown-key",
            Box::new(|r| {
                r.headers_mut()
                    .insert(wire::SERVICE_KEY_ID, HeaderValue::from_static("k9"));
            }),
        ),
    ];
    for (code, tamper) in cases {
        let tamper = Arc::new(tamper);
        let (status, body) = send_tampered(signer(), post(&url, r#"{"task_id":"42"}"#), move |r| {
            tamper(r)
        })
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{code}: {body}");
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["status"], 401);
    }
}

fn swap(uri: &Uri, from: &str, to: &str) -> Uri {
    uri.to_string().replace(from, to).parse().unwrap()
}

#[tokio::test]
async fn identical_replay_is_refused() {
    let base = server(ServiceAuthLayer::new(keys())).await;
    let captured: Captured = Arc::default();
    let slot = captured.clone();
    let svc = ServiceBuilder::new()
        .layer(SigningLayer::new(signer()))
        .map_request(move |r: Request<Full<Bytes>>| {
            let mut copy = Request::builder()
                .method(r.method())
                .uri(r.uri())
                .body(r.body().clone())
                .unwrap();
            *copy.headers_mut() = r.headers().clone();
            *slot.lock().unwrap() = Some(copy);
            r
        })
        .service(client());
    let (status, _) = json(
        svc.oneshot(post(&format!("{base}/api/npu/results/1"), "{}"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let replay = captured.lock().unwrap().take().unwrap();
    let (status, body) = json(client().request(replay).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "replayed");
}

#[tokio::test]
async fn timestamps_outside_the_window_are_stale_both_ways() {
    let now = gw_core::clock::unix_seconds(std::time::SystemTime::now()) as u64;
    let base = server(ServiceAuthLayer::new(keys())).await;
    for skew in [305i64, -305] {
        let clock = ManualClock::at_unix(now.checked_add_signed(skew).unwrap());
        let (status, body) = send(
            signer().clock(Arc::new(clock)),
            get(&format!("{base}/api/npu/x")),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{skew}");
        assert_eq!(body["code"], "stale-timestamp");
    }
    // Inside the window (a few seconds of drift) is fine.
    let clock = ManualClock::at_unix(now + 7);
    let (status, _) = send(
        signer().clock(Arc::new(clock)),
        get(&format!("{base}/api/npu/x")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn revoked_and_expired_keys_fail_verify_only_keys_pass() {
    let base = server(ServiceAuthLayer::new(keys())).await;
    for (key_id, secret) in [
        ("k-revoked", "revoked-secret"),
        ("k-expired", "expired-secret"),
    ] {
        let signer = Signer::new("npu-worker", key_id, secret).unwrap();
        let (status, body) = send(signer, get(&format!("{base}/api/npu/x"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key_id}");
        assert_eq!(body["code"], "key-expired", "{key_id}");
    }
    let signer = Signer::new("npu-worker", "k0", OLD_SECRET).unwrap();
    let (status, body) = send(signer, get(&format!("{base}/api/npu/x"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["key_id"], "k0");
}

#[tokio::test]
async fn rotation_with_two_signatures_verifies_on_old_and_new_servers() {
    let old_server = server(ServiceAuthLayer::new(
        MemoryKeyStore::new()
            .with_ring(KeyRing::new("npu-worker").key(ServiceKey::new("k1", SECRET))),
    ))
    .await;
    let new_server = server(ServiceAuthLayer::new(MemoryKeyStore::new().with_ring(
        KeyRing::new("npu-worker").key(ServiceKey::new("k2", "npu-worker-secret-0002")),
    )))
    .await;
    let dual = Signer::new("npu-worker", "k2", "npu-worker-secret-0002")
        .unwrap()
        .also_sign_with("k1", SECRET)
        .unwrap();
    for (base, want_key) in [(old_server, "k1"), (new_server, "k2")] {
        let (status, body) = send(
            dual.clone(),
            post(&format!("{base}/api/npu/results/9"), "{\"n\":9}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["key_id"], want_key);
    }
    // A wrong second signature does not help a request whose first key is unknown.
    let base = server(ServiceAuthLayer::new(keys())).await;
    let bad = Signer::new("npu-worker", "k2", "x")
        .unwrap()
        .also_sign_with("k1", "wrong")
        .unwrap();
    let (status, body) = send(bad, get(&format!("{base}/api/npu/x"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "bad-signature");
}

#[tokio::test]
async fn oversized_bodies_get_413_before_and_while_streaming() {
    let base = server(ServiceAuthLayer::new(keys()).max_body_size(16)).await;
    let (status, body) = send(
        signer(),
        post(&format!("{base}/api/npu/r"), "0123456789abcdefX"),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "payload-too-large");
    let (status, _) = send(
        signer(),
        post(&format!("{base}/api/npu/r"), "0123456789abcdef"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn exempt_path_does_not_exempt_its_prefix_twin() {
    let layer = ServiceAuthLayer::new(keys())
        .default_mode(svc_hmac::Mode::Off)
        .group("/api/*", svc_hmac::Mode::Enforce)
        .exempt("/api/chats/*");
    let base = server(layer).await;
    let (status, _) = json(
        client()
            .request(get(&format!("{base}/api/chats/7")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = json(
        client()
            .request(get(&format!("{base}/api/chats")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = json(
        client()
            .request(get(&format!("{base}/api/chatsX")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "missing-headers");
}

#[tokio::test]
async fn key_file_client_signs_for_a_directory_store_server() {
    let dir = std::env::temp_dir().join(format!("svc-hmac-rt-{}", wire::new_nonce()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("browser-service.env");
    std::fs::write(&file, "SERVICE_KEY=browser-key-1\nSERVICE_KEY_ID=b1\n").unwrap();
    let store = svc_hmac::DirKeyStore::open(&dir)
        .unwrap()
        .poll_interval(Duration::ZERO);
    let base = server(ServiceAuthLayer::new(store)).await;
    let client_side = svc_hmac::ServiceClient::from_key_file("browser-service", &file).unwrap();
    let svc = ServiceBuilder::new()
        .layer(client_side.layer())
        .service(client());
    let (status, body) = json(
        svc.oneshot(post(&format!("{base}/api/browser/results/1"), "{}"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["service"], "browser-service");
    assert_eq!(body["key_id"], "b1");

    // Key rotated on the server side only: the old client key is now unknown.
    std::fs::write(&file, "SERVICE_KEY=browser-key-2\nSERVICE_KEY_ID=b2\n").unwrap();
    let svc = ServiceBuilder::new()
        .layer(client_side.layer())
        .service(client());
    let (status, body) = json(
        svc.oneshot(post(&format!("{base}/api/browser/results/1"), "{}"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "unknown-key");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn service_fn_clients_work_too() {
    // The signing layer works in front of any Service<Request<Full<Bytes>>>.
    let svc = ServiceBuilder::new()
        .layer(SigningLayer::new(signer()))
        .service(service_fn(|req: Request<Full<Bytes>>| async move {
            Ok::<_, std::convert::Infallible>(req.headers().get(wire::SERVICE_SIGNATURE).cloned())
        }));
    let sig = svc
        .oneshot(get("http://svc/api/npu/x"))
        .await
        .unwrap()
        .unwrap();
    assert!(sig.to_str().unwrap().starts_with("v1="));
}
