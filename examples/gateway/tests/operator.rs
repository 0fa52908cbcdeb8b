//! The gateway over real HTTP: operator endpoints, proxying, upstream failures.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use common::{Reply, bearer, demo, request, serve_on_loopback};
use gateway::{Config, build_with};
use http::{HeaderMap, Request, StatusCode};
use serde_json::Value;

async fn boot(config: Config) -> SocketAddr {
    let gw = build_with(&config, None, Some(demo())).await.unwrap();
    serve_on_loopback(&gw).await
}

async fn send(req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let Reply {
        status,
        headers,
        body,
    } = common::send(req).await;
    (status, headers, body)
}

fn get(addr: SocketAddr, path: &str) -> http::request::Builder {
    request("GET", addr, path)
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

/// Bad input on an operator endpoint gets a problem with a stable code like everywhere
/// else: a wrong method is 405 `method-not-allowed` with `Allow`, an undecodable problem
/// slug is the 404 of an unknown problem type.
#[tokio::test]
async fn operator_endpoints_answer_bad_input_with_problems() {
    let addr = boot(Config::default()).await;
    let problem = |status: StatusCode, headers: &HeaderMap, body: &[u8], code: &str| {
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{code}"
        );
        let p: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(p["code"], code);
        assert_eq!(p["status"], status.as_u16());
        assert_eq!(
            p["correlation_id"],
            headers["x-correlation-id"].to_str().unwrap()
        );
    };
    for (method, path) in [
        ("POST", "/health"),
        ("DELETE", "/metrics"),
        ("PUT", "/ready"),
        ("PATCH", "/healthz"),
        ("POST", "/problems/token-expired"),
        ("DELETE", "/openapi.json"),
        ("POST", "/.well-known/jwks.json"),
    ] {
        let (status, headers, body) =
            send(request(method, addr, path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, 405, "{method} {path}");
        assert_eq!(headers["allow"], "GET,HEAD", "{method} {path}");
        problem(status, &headers, &body, "method-not-allowed");
    }
    // HEAD still runs the GET handler.
    let (status, _, _) = send(
        request("HEAD", addr, "/health")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    for slug in ["%ff", "%C3%28", "%ff%fe"] {
        let path = format!("/problems/{slug}");
        let (status, headers, body) = send(get(addr, &path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, 404, "{path}");
        problem(status, &headers, &body, "unknown-problem-type");
    }
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
async fn signing_headers_never_reach_the_upstream() {
    let mut config = Config::default();
    // The rollback position: unsigned requests reach the service-only routes.
    config.service_auth.enforcement_cap = Some(svc_hmac::Mode::LogOnly);
    let addr = boot(config).await;
    let echo = |body: &[u8]| serde_json::from_slice::<Value>(body).unwrap()["headers"].clone();

    // Unsigned, claiming a service: the claim is dropped, the gateway vouches for nobody.
    let req = get(addr, "/api/npu/status")
        .header("x-service-id", "billing-admin")
        .header("x-service-signature", "v1=Zm9yZ2Vk")
        .header("x-user-id", "root")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(req).await;
    assert_eq!(status, 200);
    let headers = echo(&body);
    for name in headers.as_object().unwrap().keys() {
        assert!(!name.starts_with("x-service-"), "upstream saw {name}");
    }
    assert!(headers.get("x-gateway-service-id").is_none());
    assert_eq!(headers["x-user-id"], "root");

    // Signed: only the verified identity travels, as x-gateway-service-id.
    let mut req = get(addr, "/api/npu/status");
    for (k, v) in demo().service_headers("GET", "/api/npu/status").unwrap() {
        req = req.header(k, v);
    }
    let (status, _, body) = send(req.body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200);
    let headers = echo(&body);
    for name in headers.as_object().unwrap().keys() {
        assert!(!name.starts_with("x-service-"), "upstream saw {name}");
    }
    assert_eq!(headers["x-gateway-service-id"], gateway::demo::DEMO_SERVICE);

    // A user request carrying a service claim on an ordinary route: dropped too.
    let req = get(addr, "/api/v1/agents")
        .header("authorization", bearer(1))
        .header("x-service-id", "billing-admin")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(req).await;
    assert_eq!(status, 200);
    assert!(echo(&body).get("x-service-id").is_none());
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
