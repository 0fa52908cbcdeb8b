//! Redis nonce cache and key store against the local Redis (`REDIS_URL`, default
//! `redis://127.0.0.1:6379`). Each test uses its own random key prefix and deletes it.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use svc_hmac::{
    KeyState, KeyStore, NonceCache, RedisKeyStore, RedisNonceCache, ServiceAuthLayer, ServiceKey,
    wire,
};
use tower::{ServiceBuilder, ServiceExt};

fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn prefix() -> String {
    format!("svc-hmac-test:{}:", wire::new_nonce())
}

async fn cleanup(prefix: &str) {
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

async fn pttl(key: &str) -> i64 {
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn nonce_cache_is_shared_between_replicas_and_expires() {
    let prefix = prefix();
    let a = RedisNonceCache::connect(&url(), &prefix).await.unwrap();
    let b = RedisNonceCache::connect(&url(), &prefix).await.unwrap();
    let ttl = Duration::from_secs(601);
    assert!(
        a.check_and_record("npu-worker", "nonce-1", ttl)
            .await
            .unwrap()
    );
    assert!(
        !b.check_and_record("npu-worker", "nonce-1", ttl)
            .await
            .unwrap()
    );
    assert!(
        b.check_and_record("ai-stack", "nonce-1", ttl)
            .await
            .unwrap()
    );
    let left = pttl(&format!("{prefix}nonce:npu-worker:nonce-1")).await;
    assert!(left > 590_000 && left <= 601_000, "{left}");

    assert!(
        a.check_and_record("npu-worker", "short", Duration::from_millis(50))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        a.check_and_record("npu-worker", "short", Duration::from_millis(50))
            .await
            .unwrap()
    );
    cleanup(&prefix).await;
}

#[tokio::test]
async fn replay_to_another_replica_is_refused() {
    let prefix = prefix();
    let replica = |nonces| {
        ServiceBuilder::new()
            .layer(ServiceAuthLayer::new(keys()).nonce_cache(nonces))
            .service_fn(echo::<Full<Bytes>>)
    };
    let r1 = replica(RedisNonceCache::connect(&url(), &prefix).await.unwrap());
    let r2 = replica(RedisNonceCache::connect(&url(), &prefix).await.unwrap());
    let (mut parts, ()) = Request::post("/api/npu/r").body(()).unwrap().into_parts();
    signer().sign(&mut parts, b"{}").unwrap();
    let first = Request::from_parts(parts.clone(), Full::new(Bytes::from_static(b"{}")));
    let again = Request::from_parts(parts, Full::new(Bytes::from_static(b"{}")));
    assert_eq!(r1.oneshot(first).await.unwrap().status(), StatusCode::OK);
    let (status, body) = json(r2.oneshot(again).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "replayed");
    cleanup(&prefix).await;
}

#[tokio::test]
async fn key_store_round_trip_revocation_and_listing() {
    let prefix = prefix();
    let store = RedisKeyStore::connect(&url(), &prefix)
        .await
        .unwrap()
        .cache_ttl(Duration::ZERO);
    assert!(store.ring("npu-worker").await.unwrap().is_none());
    store
        .put_key(
            "npu-worker",
            &ServiceKey::new("k1", SECRET).expires_at_unix(4_000_000_000),
        )
        .await
        .unwrap();
    store
        .put_key(
            "npu-worker",
            &ServiceKey::new("k0", OLD_SECRET).state(KeyState::VerifyOnly),
        )
        .await
        .unwrap();
    store
        .put_key("ai-stack", &ServiceKey::new("a1", "x"))
        .await
        .unwrap();
    let ring = store.ring("npu-worker").await.unwrap().unwrap();
    assert_eq!(
        ring.find("k1").unwrap().secret().expose(),
        SECRET.as_bytes()
    );
    assert!(ring.find("k1").unwrap().expiry().is_some());
    assert_eq!(
        ring.find("k0").unwrap().current_state(),
        KeyState::VerifyOnly
    );
    let mut services: Vec<_> = store
        .rings()
        .await
        .unwrap()
        .iter()
        .map(|r| r.service_id().to_string())
        .collect();
    services.sort();
    assert_eq!(services, ["ai-stack", "npu-worker"]);

    let svc = ServiceBuilder::new()
        .layer(ServiceAuthLayer::new(store.clone()))
        .service_fn(echo::<Full<Bytes>>);
    let request = || {
        let (mut parts, ()) = Request::builder()
            .method(Method::GET)
            .uri("/api/npu/x")
            .body(())
            .unwrap()
            .into_parts();
        signer().sign(&mut parts, b"").unwrap();
        Request::from_parts(parts, Full::default())
    };
    let (status, body) = json(svc.clone().oneshot(request()).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key_id"], "k1");

    store
        .put_key(
            "npu-worker",
            &ServiceKey::new("k1", SECRET).state(KeyState::Revoked),
        )
        .await
        .unwrap();
    let (status, body) = json(svc.clone().oneshot(request()).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "key-expired");

    store.remove_service("npu-worker").await.unwrap();
    let (_, body) = json(svc.oneshot(request()).await.unwrap()).await;
    assert_eq!(body["code"], "unknown-service");
    cleanup(&prefix).await;
}

#[tokio::test]
async fn unreachable_redis_is_an_unavailable_backend() {
    // Nothing listens on port 1.
    let err = RedisNonceCache::connect("redis://127.0.0.1:1", "x:")
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let err = RedisKeyStore::connect("redis://127.0.0.1:1", "x:")
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}

#[tokio::test]
async fn out_of_range_expiry_skips_that_key_only() {
    let prefix = prefix();
    let store = RedisKeyStore::connect(&url(), &prefix)
        .await
        .unwrap()
        .cache_ttl(Duration::ZERO);
    store
        .put_key("npu-worker", &ServiceKey::new("k1", SECRET))
        .await
        .unwrap();
    // Written by another tool: an expiry past i64::MAX seconds, and one in milliseconds.
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let secret = r#"{"secret_b64":"c2VjcmV0","state":"active","expires_at":"#;
    let () = redis::cmd("HSET")
        .arg(format!("{prefix}keys:npu-worker"))
        .arg("k-huge")
        .arg(format!("{secret}18446744073709551615}}"))
        .arg("k-millis")
        .arg(format!("{secret}1767225600000}}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    // Asked for twice: a lookup neither panics nor loses the good key.
    for _ in 0..2 {
        let ring = store.ring("npu-worker").await.unwrap().unwrap();
        assert!(ring.find("k1").is_some());
        assert!(ring.find("k-huge").is_none() && ring.find("k-millis").is_none());
    }
    // A key expiring before the epoch is stored as expired, not as never expiring.
    let old = std::time::UNIX_EPOCH - Duration::from_secs(10);
    store
        .put_key("npu-worker", &ServiceKey::new("k-old", "x").expires_at(old))
        .await
        .unwrap();
    let ring = store.ring("npu-worker").await.unwrap().unwrap();
    let now = std::time::SystemTime::now();
    assert!(ring.find("k-old").unwrap().check_usable(now).is_err());
    cleanup(&prefix).await;
}
