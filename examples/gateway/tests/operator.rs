//! The gateway over real HTTP: operator endpoints, proxying, upstream failures.

use std::net::SocketAddr;

use axum::body::Body;
use gateway::demo::{DEMO_USERS, DemoAuth};
use gateway::{Config, build_with, serve};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

fn demo() -> &'static DemoAuth {
    static DEMO: std::sync::OnceLock<DemoAuth> = std::sync::OnceLock::new();
    DEMO.get_or_init(|| DemoAuth::generate("gw-demo").unwrap())
}

/// A bearer token for demo user `i` (0 admin, 1 developer, 2 viewer, 3 trial).
fn bearer(i: usize) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    format!("Bearer {}", demo().token(&DEMO_USERS[i], now, 600).unwrap())
}

async fn boot(config: Config) -> SocketAddr {
    let gw = build_with(&config, None, Some(demo())).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, gw.service, std::future::pending()));
    addr
}

async fn send(req: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let res = client.request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

fn get(addr: SocketAddr, path: &str) -> http::request::Builder {
    Request::get(format!("http://{addr}{path}"))
}

#[tokio::test]
async fn operator_endpoints() {
    let addr = boot(Config::default()).await;
    let (status, headers, body) = send(get(addr, "/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("x-correlation-id"));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["status"],
        "ok"
    );

    let (status, _, body) = send(get(addr, "/ready").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["status"],
        "ready"
    );

    let (status, _, body) = send(
        get(addr, "/problems/token-expired")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(String::from_utf8(body).unwrap().contains("Token expired"));

    let (status, headers, body) =
        send(get(addr, "/problems/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/problem+json");
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["code"], "unknown-problem-type");
    assert_eq!(
        problem["correlation_id"],
        headers["x-correlation-id"].to_str().unwrap()
    );

    let (status, _, body) = send(get(addr, "/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["openapi"],
        "3.1.0"
    );
}

#[tokio::test]
async fn proxies_to_the_demo_upstream_and_strips_forged_headers() {
    let addr = boot(Config::default()).await;
    // Without a token: 401 from the auth layer, never reaching the upstream.
    let (status, headers, _) = send(get(addr, "/api/v1/agents").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));

    let req = get(addr, "/api/v1/agents?limit=5")
        .header("authorization", bearer(1))
        .header("x-correlation-id", "trace-42")
        .header("x-gateway-user-id", "forged-admin")
        .header("x-target-backend", "production")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = send(req).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-correlation-id"], "trace-42");
    assert_eq!(headers["x-target-backend"], "production");
    let echo: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["upstream"], "demo");
    assert_eq!(echo["path"], "/api/v1/agents");
    assert_eq!(echo["query"], "limit=5");
    assert_eq!(echo["headers"]["x-correlation-id"], "trace-42");
    // The forged identity header was replaced by the verified one.
    assert_eq!(echo["headers"]["x-gateway-user-id"], "dev-1");
    assert_eq!(echo["headers"]["x-gateway-roles"], "developer");
    assert!(echo["headers"].get("authorization").is_some());
    assert_eq!(echo["headers"]["x-target-backend"], "production");
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_upstream_is_504() {
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let mut config = Config::default();
    config.upstream.production_url = Some(format!("http://{dead_addr}"));
    let addr = boot(config).await;
    let req = get(addr, "/api/x").header("authorization", bearer(1));
    let (status, headers, body) = send(req.body(Body::empty()).unwrap()).await;
    assert_eq!(status, 502);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["code"],
        "upstream-unavailable"
    );

    // An upstream that accepts but never answers.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_addr = slow.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = slow.accept().await {
            held.push(sock);
        }
    });
    let mut config = Config::default();
    config.upstream.production_url = Some(format!("http://{slow_addr}"));
    config.upstream.timeout_ms = 200;
    let addr = boot(config).await;
    let req = get(addr, "/api/x").header("authorization", bearer(1));
    let (status, _, body) = send(req.body(Body::empty()).unwrap()).await;
    assert_eq!(status, 504);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["code"],
        "upstream-timeout"
    );
}
