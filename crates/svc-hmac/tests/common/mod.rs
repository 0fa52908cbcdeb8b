//! Shared test fixtures: key rings, an echo handler, a loopback hyper server and client.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gw_core::{Decisions, ServiceIdentity};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use svc_hmac::{KeyRing, KeyState, MemoryKeyStore, ServiceKey, Signer, VerifiedBody};
use tower::Service;

pub const SECRET: &str = "npu-worker-secret-0001";
pub const OLD_SECRET: &str = "npu-worker-secret-0000";

/// `npu-worker` with `k1` (active), `k0` (verify-only), `k-revoked`, `k-expired`.
pub fn ring() -> KeyRing {
    KeyRing::new("npu-worker")
        .key(ServiceKey::new("k1", SECRET))
        .key(ServiceKey::new("k0", OLD_SECRET).state(KeyState::VerifyOnly))
        .key(ServiceKey::new("k-revoked", "revoked-secret").state(KeyState::Revoked))
        .key(ServiceKey::new("k-expired", "expired-secret").expires_at_unix(1_000))
}

pub fn keys() -> MemoryKeyStore {
    MemoryKeyStore::new().with_ring(ring())
}

pub fn signer() -> Signer {
    Signer::new("npu-worker", "k1", SECRET).unwrap()
}

/// Echoes what the verifier handed on: identity, method, body, decisions.
pub async fn echo<B>(req: Request<VerifiedBody<B>>) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let identity = req.extensions().get::<ServiceIdentity>().cloned();
    let decisions = req
        .extensions()
        .get::<Decisions>()
        .map(|d| serde_json::to_value(d.snapshot()).unwrap());
    let method = req.method().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::json!({
        "service": identity.as_ref().map(|i| i.service_id.to_string()),
        "key_id": identity.as_ref().map(|i| i.key_id.to_string()),
        "method": method,
        "body": String::from_utf8_lossy(&body),
        "decisions": decisions,
    });
    Ok(Response::new(Full::new(Bytes::from(json.to_string()))))
}

/// Serves `svc` on 127.0.0.1:0 (HTTP/1.1); returns the address.
pub async fn serve<S>(svc: S) -> SocketAddr
where
    S: Service<
            Request<hyper::body::Incoming>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Status and JSON body of a response.
pub async fn json<B>(res: Response<B>) -> (StatusCode, serde_json::Value)
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// A shared slot to capture a signed request in flight.
pub type Captured = Arc<std::sync::Mutex<Option<Request<Full<Bytes>>>>>;

/// All metrics of a debugging-recorder snapshot (taking a snapshot resets counters, so
/// take one and search it).
pub type Metrics = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    metrics_util::debugging::DebugValue,
)>;

/// The value of a counter or gauge, found by name and labels.
pub fn metric(all: &Metrics, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    use metrics_util::debugging::DebugValue;
    all.iter().find_map(|(key, _, _, value)| {
        let key = key.key();
        let ok = key.name() == name
            && labels
                .iter()
                .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v));
        ok.then(|| match value {
            DebugValue::Counter(n) => *n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(_) => f64::NAN,
        })
    })
}
