//! Helpers shared by the gateway's HTTP tests.
#![allow(dead_code)]

pub mod raw;

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::body::Body;
use gateway::demo::{DEMO_USERS, DemoAuth};
use gateway::{Gateway, serve};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// One demo key for the whole test binary.
pub fn demo() -> &'static DemoAuth {
    static DEMO: OnceLock<DemoAuth> = OnceLock::new();
    DEMO.get_or_init(|| DemoAuth::generate("gw-demo").unwrap())
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `Bearer <token>` for demo user `i` (0 admin, 1 developer, 2 viewer, 3 trial).
pub fn bearer(i: usize) -> String {
    format!(
        "Bearer {}",
        demo().token(&DEMO_USERS[i], now(), 600).unwrap()
    )
}

/// Serves `gw` on a free loopback port.
pub async fn serve_on_loopback(gw: &Gateway) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, gw.service.clone(), std::future::pending()));
    addr
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends `req` over a real connection.
pub async fn send(req: Request<Body>) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let res = client.request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// A request builder for `method` `http://addr{path}`.
pub fn request(method: &str, addr: SocketAddr, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
}
