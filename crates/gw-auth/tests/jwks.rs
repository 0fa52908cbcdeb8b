//! JwksSource against a local JWKS server: rotation, single-flight refetch, endpoint down.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::future::{BoxFuture, join_all};
use gw_auth::{AuthLayer, FetchError, HttpClient, JwksSource, KeySource};
use gw_core::ManualClock;
use http::{Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A JWKS endpoint on 127.0.0.1 whose document and health the test controls.
#[derive(Clone, Default)]
struct Server {
    doc: Arc<Mutex<String>>,
    down: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl Server {
    async fn start(doc: String) -> (Self, Uri) {
        let server = Self::default();
        *server.doc.lock().unwrap() = doc;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req| {
                        let s = s.clone();
                        async move {
                            s.hits.fetch_add(1, Ordering::SeqCst);
                            let res = if s.down.load(Ordering::SeqCst) {
                                Response::builder()
                                    .status(StatusCode::SERVICE_UNAVAILABLE)
                                    .body(Full::new(Bytes::from_static(b"down")))
                            } else {
                                let doc = s.doc.lock().unwrap().clone();
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(doc)))
                            };
                            Ok::<_, Infallible>(res.unwrap())
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (
            server,
            format!("http://{addr}/.well-known/jwks.json")
                .parse()
                .unwrap(),
        )
    }

    fn publish(&self, doc: String) {
        *self.doc.lock().unwrap() = doc;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn layer_for(source: JwksSource) -> AuthLayer {
    AuthLayer::new(source)
        .issuer(ISS)
        .clock(Arc::new(ManualClock::at_unix(NOW as u64)))
}

async fn status(layer: &AuthLayer, token: &str) -> (StatusCode, serde_json::Value) {
    let seen = send(layer, bearer("/api", token)).await;
    (seen.status, seen.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_key_is_accepted_after_one_refetch() {
    let (server, uri) = Server::start(jwks(&[("rsa1", "k1")])).await;
    let (source, first) = JwksSource::builder(uri)
        .refresh_interval(Duration::from_secs(3600))
        .start()
        .await;
    first.unwrap();
    assert_eq!(server.hits(), 1);
    assert!(source.age().is_some());
    let layer = layer_for(source.clone());
    let verifier = layer.verifier();

    let old = mint("rsa1", Some("k1"), &claims());
    assert_eq!(status(&layer, &old).await.0, StatusCode::OK);
    let cached_old = verifier.verify(&old, NOW).await.unwrap();
    assert_eq!(verifier.cached_tokens(), 1);

    // The issuer rotates: k2 appears at the URL. Many requests carrying the new kid at
    // once cause exactly one fetch, and all of them are accepted after it.
    server.publish(jwks(&[("rsa1", "k1"), ("rsa2", "k2")]));
    let new = mint("rsa2", Some("k2"), &claims());
    let results = join_all((0..16).map(|_| status(&layer, &new))).await;
    for (code, body) in &results {
        assert_eq!(*code, StatusCode::OK, "{body}");
    }
    assert_eq!(server.hits(), 2, "single-flight: one refetch for all");
    assert_eq!(results[0].1["principal"]["user_id"], "user-1");

    // The key set changed, so the cache was purged: the old token verifies afresh.
    let again = verifier.verify(&old, NOW).await.unwrap();
    assert!(!Arc::ptr_eq(&cached_old, &again));

    // Another unknown kid within the refetch interval: refused without a fetch.
    let unknown = mint("rsa3", Some("k3"), &claims());
    let (code, body) = status(&layer, &unknown).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid-token");
    assert_eq!(body["reason"], "unknown-kid");
    assert_eq!(server.hits(), 2);

    // A refresh that returns the same document keeps the key set (and the cache).
    let generation = source.generation();
    source.fetch_now().await.unwrap();
    assert_eq!(source.generation(), generation);
    assert_eq!(server.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refetch_limit_is_per_interval() {
    let (server, uri) = Server::start(jwks(&[("rsa1", "k1")])).await;
    let (source, first) = JwksSource::builder(uri)
        .refresh_interval(Duration::from_secs(3600))
        .refetch_interval(Duration::ZERO)
        .start()
        .await;
    first.unwrap();
    let layer = layer_for(source);
    let unknown = mint("rsa3", Some("k3"), &claims());
    for i in 0..3 {
        assert_eq!(status(&layer, &unknown).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            server.hits(),
            2 + i,
            "with a zero interval every unknown kid refetches"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetches_even_beside_a_key_without_kid() {
    // A JWKS key without a kid does not answer a token's unknown kid (static keys do):
    // the source refetches and finds the rotated key.
    let mut bare = jwk("rsa1", "x");
    bare.as_object_mut().unwrap().remove("kid");
    let (server, uri) = Server::start(serde_json::json!({"keys": [bare]}).to_string()).await;
    let (source, first) = JwksSource::builder(uri)
        .refresh_interval(Duration::from_secs(3600))
        .start()
        .await;
    first.unwrap();
    let layer = layer_for(source);
    server.publish(jwks(&[("rsa1", "k1"), ("rsa2", "k2")]));
    let (code, body) = status(&layer, &mint("rsa2", Some("k2"), &claims())).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(server.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_keeps_the_last_good_keys() {
    let (server, uri) = Server::start(jwks(&[("rsa1", "k1")])).await;
    let (source, first) = JwksSource::builder(uri)
        .refresh_interval(Duration::from_secs(3600))
        .refetch_interval(Duration::ZERO)
        .start()
        .await;
    first.unwrap();
    let layer = layer_for(source.clone());
    let token = mint("rsa1", Some("k1"), &claims());

    server.down.store(true, Ordering::SeqCst);
    let err = source.fetch_now().await.unwrap_err();
    assert!(err.0.contains("503"), "{err}");
    assert_eq!(source.last_error(), Some(err));
    assert!(
        source.age().is_some(),
        "age of the last good set stays visible"
    );
    assert!(layer.key_set_age().is_some());
    assert_eq!(status(&layer, &token).await.0, StatusCode::OK);
    let mut fresh = claims();
    fresh["jti"] = serde_json::json!("not-cached");
    assert_eq!(
        status(&layer, &mint("rsa1", Some("k1"), &fresh)).await.0,
        StatusCode::OK
    );

    // Garbage and key-less documents are errors too; the old set stays.
    server.down.store(false, Ordering::SeqCst);
    server.publish("<html>oops</html>".into());
    assert!(source.fetch_now().await.is_err());
    server.publish(r#"{"keys":[]}"#.into());
    assert!(source.fetch_now().await.is_err());
    assert_eq!(source.keys().kids().collect::<Vec<_>>(), ["k1"]);
    assert_eq!(status(&layer, &token).await.0, StatusCode::OK);

    server.publish(jwks(&[("rsa1", "k1")]));
    source.fetch_now().await.unwrap();
    assert_eq!(source.last_error(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_has_no_keys_and_no_age() {
    // A port nothing listens on: bind, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri: Uri = format!("http://127.0.0.1:{port}/jwks").parse().unwrap();
    let (source, first) = JwksSource::builder(uri)
        .refresh_interval(Duration::from_secs(3600))
        .start()
        .await;
    assert!(first.is_err());
    assert!(source.keys().is_empty());
    assert_eq!(source.age(), None);
    let layer = layer_for(source);
    assert_eq!(layer.key_set_age(), None, "not ready");
    let (code, body) = status(&layer, &mint("rsa1", Some("k1"), &claims())).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "unknown-kid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_refresh_picks_up_new_keys() {
    let (server, uri) = Server::start(jwks(&[("rsa1", "k1")])).await;
    let (source, first) = JwksSource::builder(uri)
        .refresh_interval(Duration::from_millis(50))
        .start()
        .await;
    first.unwrap();
    server.publish(jwks(&[("rsa2", "k2")]));
    let mut seen = false;
    for _ in 0..200 {
        if source.keys().kids().any(|k| k == "k2") {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen, "the background task refreshed the key set");
    assert!(server.hits() >= 2);
}

/// An injected client: no network at all.
#[derive(Debug)]
struct Canned(String);

impl HttpClient for Canned {
    fn get(&self, uri: &Uri) -> BoxFuture<'static, Result<Bytes, FetchError>> {
        assert_eq!(uri.path(), "/keys");
        let body = Bytes::from(self.0.clone());
        Box::pin(async move { Ok(body) })
    }
}

#[tokio::test]
async fn http_client_is_injectable() {
    let (source, first) = JwksSource::builder(Uri::from_static("https://id.example.com/keys"))
        .client(Canned(jwks(&[("ec256", "e1")])))
        .start()
        .await;
    first.unwrap();
    let layer = layer_for(source);
    assert_eq!(
        status(&layer, &mint("ec256", Some("e1"), &claims()))
            .await
            .0,
        StatusCode::OK
    );
}
