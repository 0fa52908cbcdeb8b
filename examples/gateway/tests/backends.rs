//! The composed gateway over HTTP with Redis and PostgreSQL configured: one request per
//! outcome of every layer, checked on the wire, at the upstream, and in the audit table.

mod common;

use std::time::Duration;

use axum::body::Body;
use common::{bearer, demo, now, request, send, serve_on_loopback};
use gateway::demo::DEMO_USERS;
use gateway::{Config, build_with};
use gw_core::GatewayType;
use serde_json::{Value, json};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// What one request must come to.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    status: u16,
    code: Option<&'static str>,
}

fn case(name: &'static str, method: &'static str, path: &str, status: u16) -> Case {
    Case {
        name,
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body: None,
        status,
        code: None,
    }
}

impl Case {
    fn auth(mut self, user: usize) -> Self {
        self.headers.push(("authorization".into(), bearer(user)));
        self
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_layer_outcome_with_redis_and_postgres() {
    let run = format!("{}{}", std::process::id(), now() % 1_000_000);
    let audit_schema = format!("gwe2e_audit_{run}");
    let jobs_schema = format!("gwe2e_jobs_{run}");
    let demo = demo();

    let mut config = Config {
        gateway_type: GatewayType::Pp,
        redis_url: Some(redis_url()),
        redis_prefix: format!("gwe2e:{run}:"),
        database_url: Some(database_url()),
        ..Config::default()
    };
    config.audit.schema = audit_schema.clone();
    config.audit.flush_interval_ms = 100;
    config.callbacks.schema = jobs_schema.clone();
    config.callbacks.secrets = vec![demo.callback_secret.clone()];
    config.auth.issuer = Some(demo.issuer.clone());
    config.policy.trial_daily_limit = 1;
    config.policy.approval_ui_url = "https://approve.example".into();
    config.budget.agent_daily_micro_usd = 1_500; // one request at the default 1_000
    let gw = build_with(&config, None, Some(demo)).await.unwrap();
    let jobs = gw.jobs.clone().expect("callbacks are configured");
    jobs.create_job("job-1", "queued").await.unwrap();
    let addr = serve_on_loopback(&gw).await;

    let expired = format!(
        "Bearer {}",
        demo.token(&DEMO_USERS[1], now() - 7_200, 600).unwrap()
    );
    let signed = demo.service_headers("GET", "/api/npu/status").unwrap();
    let secret = demo.callback_secret.clone();
    let event =
        json!({"event_id": "e1", "status": "dispatched", "occurred_at": "2026-01-01T00:00:00Z"});
    let cases = vec![
        case("no token", "GET", "/api/v1/agents", 401).code("unauthorized"),
        case("basic auth", "GET", "/api/v1/agents", 401)
            .header("authorization", "Basic YTpi")
            .code("invalid-token-format"),
        case("garbage token", "GET", "/api/v1/agents", 401)
            .header("authorization", "Bearer abc.def.ghi")
            .code("invalid-token"),
        case("expired token", "GET", "/api/v1/agents", 401)
            .header("authorization", expired)
            .code("token-expired"),
        case("developer reads", "GET", "/api/v1/agents", 200).auth(1),
        case("viewer deletes", "DELETE", "/api/v1/agents/7", 403)
            .auth(2)
            .code("permission-denied"),
        case("trial task 1", "POST", "/api/v1/agents", 200)
            .auth(3)
            .json(json!({})),
        case("trial task 2", "POST", "/api/v1/agents", 429)
            .auth(3)
            .json(json!({}))
            .code("trial-limit-exceeded"),
        case("sensitive action", "DELETE", "/api/v1/agents/7", 307).auth(0),
        case("agent budget 1", "GET", "/api/v1/agents/a1/runs", 200).auth(0),
        case("agent budget 2", "GET", "/api/v1/agents/a1/runs", 402)
            .auth(0)
            .code("budget-exceeded"),
        case("unsigned service call", "GET", "/api/npu/status", 401).code("missing-headers"),
        case("ambiguous path", "GET", "/api/v1/agents/..%2Fadmin", 400).code("ambiguous-path"),
        case(
            "callback applied",
            "POST",
            "/internal/jobs/job-1/status",
            204,
        )
        .header("x-callback-secret", secret.clone())
        .json(event.clone()),
        case(
            "callback replayed",
            "POST",
            "/internal/jobs/job-1/status",
            200,
        )
        .header("x-callback-secret", secret.clone())
        .json(event.clone()),
        case(
            "callback mismatch",
            "POST",
            "/internal/jobs/job-1/status",
            409,
        )
        .header("x-callback-secret", secret.clone())
        .json(json!({"event_id": "e1", "status": "running", "occurred_at": "2026-01-01T00:00:01Z"}))
        .code("EVENT_ID_PAYLOAD_MISMATCH"),
        case(
            "callback unknown job",
            "POST",
            "/internal/jobs/nope/status",
            404,
        )
        .header("x-callback-secret", secret.clone())
        .json(event.clone())
        .code("RESOURCE_NOT_FOUND"),
        case(
            "callback bad secret",
            "POST",
            "/internal/jobs/job-1/status",
            401,
        )
        .header("x-callback-secret", "x".repeat(40))
        .json(event.clone())
        .code("UNAUTHORIZED"),
    ];

    let mut sent = Vec::new();
    for (i, c) in cases.into_iter().enumerate() {
        let cid = format!("e2e-{run}-{i}");
        let mut req = request(c.method, addr, &c.path).header("x-correlation-id", &cid);
        for (k, v) in &c.headers {
            req = req.header(k, v);
        }
        let body = match &c.body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let reply = send(req.body(body).unwrap()).await;
        assert_eq!(
            reply.status.as_u16(),
            c.status,
            "{}: {}",
            c.name,
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(
            reply.headers["x-correlation-id"],
            cid.as_str(),
            "{}",
            c.name
        );
        if let Some(code) = c.code {
            assert_eq!(
                reply.headers["content-type"], "application/problem+json",
                "{}",
                c.name
            );
            let problem = reply.json();
            assert_eq!(problem["code"], code, "{}: {problem}", c.name);
            assert_eq!(problem["correlation_id"], cid.as_str(), "{}", c.name);
        }
        match c.name {
            "no token" => assert!(reply.headers.contains_key("www-authenticate")),
            "developer reads" => {
                // What the upstream saw, and the RBAC headers on the way back.
                let echo = reply.json();
                assert_eq!(echo["headers"]["x-gateway-user-id"], "dev-1");
                assert_eq!(echo["headers"]["x-correlation-id"], cid.as_str());
                assert_eq!(echo["headers"]["x-target-backend"], "production");
                assert_eq!(reply.headers["x-rbac-user-id"], "dev-1");
                assert_eq!(reply.headers["x-budget-alert-level"], "none");
            }
            "trial task 1" => {
                assert_eq!(reply.headers["x-target-backend"], "sandbox");
                assert!(reply.headers.contains_key("ratelimit"));
            }
            "trial task 2" => assert!(reply.headers.contains_key("retry-after")),
            "sensitive action" => {
                let location = reply.headers["location"].to_str().unwrap();
                assert!(
                    location.starts_with("https://approve.example/approval?action=delete_agent")
                );
                assert_eq!(reply.headers["x-governor-approval-required"], "true");
            }
            _ => {}
        }
        sent.push((cid, c.status));
    }

    // A correctly signed service call reaches the upstream with the verified identity.
    let mut req = request("GET", addr, "/api/npu/status");
    for (k, v) in &signed {
        req = req.header(k, v);
    }
    let reply = send(req.body(Body::empty()).unwrap()).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["headers"]["x-gateway-service-id"], "demo-svc");

    // Drain the audit writer, then every request has exactly one row with its status.
    let report = gw.shutdown(Duration::from_secs(10)).await;
    let (client, conn) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(
            &format!(
                "SELECT correlation_id, status_code FROM {audit_schema}.gateway_audit_logs \
                 WHERE correlation_id LIKE $1"
            ),
            &[&format!("e2e-{run}-%")],
        )
        .await
        .unwrap();
    let cleanup = format!("DROP SCHEMA {audit_schema} CASCADE; DROP SCHEMA {jobs_schema} CASCADE");
    client.batch_execute(&cleanup).await.unwrap();
    clean_redis(&config.redis_prefix).await;

    assert_eq!(rows.len(), sent.len(), "{report:?}");
    for (cid, status) in &sent {
        let row = rows
            .iter()
            .find(|r| r.get::<_, String>(0) == *cid)
            .unwrap_or_else(|| panic!("no audit row for {cid}"));
        let code: i32 = row.get::<_, i32>(1);
        assert_eq!(code, i32::from(*status), "{cid}");
    }
}

async fn clean_redis(prefix: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}
