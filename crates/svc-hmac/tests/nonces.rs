//! The default in-memory nonce cache behind the layer: one service filling it does not
//! refuse the others.

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use svc_hmac::{KeyRing, MemoryNonceCache, ServiceAuthLayer, ServiceKey, Signer};
use tower::{ServiceBuilder, ServiceExt};

async fn send(layer: &ServiceAuthLayer, signer: &Signer, path: &str) -> (StatusCode, String) {
    let (mut parts, ()) = Request::post(path).body(()).unwrap().into_parts();
    signer.sign(&mut parts, b"").unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(echo::<Full<Bytes>>);
    let res = svc
        .oneshot(Request::from_parts(parts, Full::default()))
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn one_service_filling_the_nonce_cache_does_not_refuse_the_others() {
    let keys = svc_hmac::MemoryKeyStore::new()
        .with_ring(ring())
        .with_ring(KeyRing::new("ai-stack").key(ServiceKey::new("k1", "ai-secret")));
    let layer = ServiceAuthLayer::new(keys).nonce_cache(MemoryNonceCache::new(64));
    let npu = signer();
    let mut accepted = 0;
    let refused = loop {
        let (status, body) = send(&layer, &npu, "/api/npu/r").await;
        if status != StatusCode::OK {
            break (status, body);
        }
        accepted += 1;
        assert!(accepted <= 64, "the cache is bounded");
    };
    assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        refused.1.contains("nonce-store-unavailable"),
        "{}",
        refused.1
    );
    assert_eq!(
        accepted, 56,
        "one service alone fills all but the reserve (1/8)"
    );

    // The other service is still served, and npu-worker is still refused.
    let ai = Signer::new("ai-stack", "k1", "ai-secret").unwrap();
    for _ in 0..4 {
        let (status, body) = send(&layer, &ai, "/api/ai-stack/status").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("\"service\":\"ai-stack\""), "{body}");
    }
    let (status, _) = send(&layer, &npu, "/api/npu/r").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
