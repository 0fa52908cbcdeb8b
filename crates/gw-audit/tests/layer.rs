//! AuditLayer behaviour against the in-memory sink.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gw_audit::{
    AuditLayer, AuditRecord, AuditWriter, MemorySink, OverflowPolicy, REDACTED, WriterConfig,
};
use gw_core::{
    Decision, Decisions, GatewayType, ManualClock, Outcome, Principal, PrincipalData,
    ResourceAction, TrialInfo,
};
use gw_problem::{Problem, ProblemLayer, ProblemType};
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt, service_fn};

type Body = Full<Bytes>;

fn principal() -> Principal {
    Principal::from(PrincipalData {
        sub: "sub-1".into(),
        user_id: "user-1".into(),
        email: "user-1@example.com".into(),
        customer_id: "cust-1".into(),
        roles: Arc::from(vec!["developer".to_owned(), "viewer".to_owned()]),
        governor_agent_id: None,
        trial: Some(TrialInfo { expires_at: None }),
    })
}

/// Stands in for the inner layers: authenticates, records decisions, maps the resource.
async fn inner(mut req: Request<Body>) -> Result<Response<Body>, Infallible> {
    req.extensions_mut().insert(principal());
    let ext = req.extensions();
    Decisions::record(
        ext,
        Decision::new("rbac", "rbac_pp", Outcome::Allow, Duration::from_micros(7)),
    );
    Decisions::record(
        ext,
        Decision::new(
            "policy",
            "trial_mode",
            Outcome::Allow,
            Duration::from_micros(5),
        ),
    );
    Decisions::record_resource(
        ext,
        ResourceAction {
            resource: "agents".into(),
            action: "update".into(),
            resource_id: Some("42".into()),
        },
    );
    Decisions::record_upstream_latency(ext, Duration::from_micros(1234));
    if req.uri().path() == "/denied" {
        return Ok(Problem::new(ProblemType::PERMISSION_DENIED)
            .code("missing-permission")
            .response_for(&req));
    }
    if req.uri().path() == "/boom" {
        panic!("boom");
    }
    // The handler gets the captured body back, byte for byte.
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let mut res = Response::new(Body::from(body));
    res.headers_mut()
        .insert("set-cookie", "session=abc".parse().unwrap());
    res.headers_mut()
        .insert("x-upstream", "plant".parse().unwrap());
    Ok(res)
}

async fn writer(config: WriterConfig) -> (AuditWriter, MemorySink) {
    let sink = MemorySink::new();
    (AuditWriter::spawn(sink.clone(), config).unwrap(), sink)
}

async fn drain(writer: &AuditWriter, sink: &MemorySink) -> Vec<AuditRecord> {
    let report = writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.dropped, 0);
    sink.records()
}

#[tokio::test]
async fn every_field_is_recorded() {
    let (writer, sink) = writer(WriterConfig::new()).await;
    let clock = ManualClock::at_unix(1_750_000_000);
    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(
            AuditLayer::new(writer.clone())
                .gateway_type(GatewayType::Pp)
                .clock(Arc::new(clock)),
        )
        .service(service_fn(inner));

    let body = r#"{"name":"agent","config":{"password":"hunter2"}}"#;
    let req = Request::put("/api/v1/agents/42?dry_run=true&tag=a&tag=b")
        .header("x-correlation-id", "corr-1")
        .header("x-request-id", "cause-1")
        .header("authorization", "Bearer eyJ.secret")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let echoed = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed, body.as_bytes());

    let records = drain(&writer, &sink).await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.id.get_version_num(), 7);
    // The id carries the record's timestamp.
    assert_eq!(r.id.get_timestamp().unwrap().to_unix().0, 1_750_000_000);
    assert_eq!(r.request_id, r.id.to_string());
    assert_eq!(&*r.correlation_id, "corr-1");
    assert_eq!(r.causation_id.as_deref(), Some("cause-1"));
    assert_eq!(r.timestamp, UNIX_EPOCH + Duration::from_secs(1_750_000_000));
    assert_eq!(r.gateway_type.as_deref(), Some("pp"));
    assert_eq!(r.http_method, "PUT");
    assert_eq!(r.endpoint, "/api/v1/agents/42");
    assert_eq!(
        r.query_params,
        serde_json::json!({"dry_run": "true", "tag": ["a", "b"]})
    );
    assert_eq!(r.request_headers.get("authorization"), Some(REDACTED));
    assert_eq!(r.request_headers.get("x-correlation-id"), Some("corr-1"));
    assert_eq!(
        r.request_body,
        Some(serde_json::json!({"name": "agent", "config": {"password": REDACTED}}))
    );
    assert_eq!(r.user_id.as_deref(), Some("user-1"));
    assert_eq!(r.customer_id.as_deref(), Some("cust-1"));
    assert_eq!(r.email.as_deref(), Some("user-1@example.com"));
    assert_eq!(*r.roles, ["developer", "viewer"]);
    assert!(r.trial_mode);
    assert_eq!(r.policies_evaluated, ["rbac/rbac_pp", "policy/trial_mode"]);
    assert_eq!(r.decisions[0].outcome, "allow");
    assert_eq!(r.decisions[1].policy, "trial_mode");
    assert_eq!(
        serde_json::to_value(&r.decisions[1]).unwrap(),
        serde_json::json!({"layer": "policy", "policy": "trial_mode", "outcome": "allow",
            "reason": null, "latency": r.decisions[1].latency})
    );
    assert_eq!(r.policy_latency_us, 12);
    assert_eq!(r.status_code, 200);
    assert_eq!(r.response_headers.get("set-cookie"), Some(REDACTED));
    assert_eq!(r.response_headers.get("x-upstream"), Some("plant"));
    assert_eq!(r.error_type, None);
    assert_eq!(r.error_message, None);
    assert!(r.total_latency_us >= 0);
    assert_eq!(r.upstream_latency_us, Some(1234));
    assert_eq!(r.action.as_deref(), Some("update"));
    assert_eq!(r.resource.as_deref(), Some("agents"));
    assert_eq!(r.resource_id.as_deref(), Some("42"));
    assert!(r.response_complete);
}

#[tokio::test]
async fn configured_headers_and_fields_are_redacted_too() {
    let (writer, sink) = writer(WriterConfig::new()).await;
    let svc = ServiceBuilder::new()
        .layer(
            AuditLayer::new(writer.clone())
                .redact_headers([HeaderName::from_static("x-tenant-key")])
                .redact_fields(["ssn"]),
        )
        .service(service_fn(inner));
    let mut req = Request::post("/api/v1/agents?ssn=S3CRET&api_key=S3CRET&q=ok")
        .header("content-type", "application/vnd.api+json; charset=utf-8")
        .header("x-tenant-key", "S3CRET-tk")
        .header("cookie", "S3CRET-a=b")
        .header("x-api-key", "S3CRET-k1")
        .header("x-callback-secret", "S3CRET-cs")
        .header("x-service-signature", "S3CRET-sig")
        .header("proxy-authorization", "Basic S3CRET")
        .body(Body::from(
            r#"[{"ssn":"S3CRET-1","token":"S3CRET-2","ok":1}]"#,
        ))
        .unwrap();
    req.headers_mut()
        .append("cookie", "S3CRET-c=d".parse().unwrap());
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();

    let r = &drain(&writer, &sink).await[0];
    for h in [
        "x-tenant-key",
        "cookie",
        "x-api-key",
        "x-callback-secret",
        "x-service-signature",
        "proxy-authorization",
    ] {
        let values: Vec<&str> = r.request_headers.get_all(h).collect();
        assert!(!values.is_empty(), "{h}");
        assert!(values.iter().all(|v| *v == REDACTED), "{h}");
    }
    assert_eq!(
        r.request_body,
        Some(serde_json::json!([{"ssn": REDACTED, "token": REDACTED, "ok": 1}]))
    );
    assert_eq!(
        r.query_params,
        serde_json::json!({"ssn": REDACTED, "api_key": REDACTED, "q": "ok"})
    );
    let text = serde_json::to_string(r).unwrap();
    assert!(!text.contains("S3CRET"), "a secret leaked: {text}");
}

#[tokio::test]
async fn bodies_that_are_not_json_or_too_large_are_passed_through_uncaptured() {
    let (writer, sink) = writer(WriterConfig::new()).await;
    let svc = ServiceBuilder::new()
        .layer(AuditLayer::new(writer.clone()).body_cap(16))
        .service(service_fn(inner));
    let big = format!(r#"{{"password":"{}"}}"#, "x".repeat(64));
    for (ct, body) in [
        ("text/plain", "hello".to_owned()),
        ("application/json", big.clone()),
    ] {
        let req = Request::post("/echo")
            .header("content-type", ct)
            .body(Body::from(body.clone()))
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        // The handler still got the whole body.
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), body);
    }
    let records = drain(&writer, &sink).await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].request_body, None);
    assert_eq!(
        records[1].request_body,
        Some(serde_json::json!({"_omitted": "too-large"}))
    );
    assert!(!serde_json::to_string(&records).unwrap().contains("xxxx"));
}

#[tokio::test]
async fn problems_from_inner_layers_and_panics_are_recorded() {
    let (writer, sink) = writer(WriterConfig::new()).await;
    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(AuditLayer::new(writer.clone()))
        .service(service_fn(inner));
    for path in ["/denied", "/boom"] {
        let res = svc
            .clone()
            .oneshot(Request::get(path).body(Body::default()).unwrap())
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
    }
    let records = drain(&writer, &sink).await;
    assert_eq!(records.len(), 2);
    let denied = &records[0];
    assert_eq!(denied.status_code, 403);
    assert_eq!(denied.error_type.as_deref(), Some("permission-denied"));
    assert_eq!(denied.error_message.as_deref(), Some("missing-permission"));
    assert_eq!(denied.user_id.as_deref(), Some("user-1"));
    let boom = &records[1];
    assert_eq!(boom.status_code, 500);
    assert_eq!(boom.error_type.as_deref(), Some("internal-server-error"));
    assert_eq!(boom.error_message.as_deref(), Some("panic"));
    assert!(!boom.response_complete);
}

#[tokio::test]
async fn client_going_away_is_recorded() {
    let (writer, sink) = writer(WriterConfig::new()).await;
    // A streaming response whose body the client stops reading after one chunk.
    let svc = ServiceBuilder::new()
        .layer(AuditLayer::new(writer.clone()))
        .service(service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Chunks::three()))
        }));
    let res = svc
        .clone()
        .oneshot(Request::get("/stream").body(Body::default()).unwrap())
        .await
        .unwrap();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "chunk");
    drop(body);

    // A request whose client leaves before the response headers.
    let slow = ServiceBuilder::new()
        .layer(AuditLayer::new(writer.clone()))
        .service(service_fn(|_req: Request<Body>| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, Infallible>(Response::new(Body::default()))
        }));
    let fut = slow.oneshot(Request::get("/slow").body(Body::default()).unwrap());
    assert!(
        tokio::time::timeout(Duration::from_millis(20), fut)
            .await
            .is_err()
    );

    let records = drain(&writer, &sink).await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].endpoint, "/stream");
    assert_eq!(records[0].status_code, 200);
    assert!(!records[0].response_complete);
    assert_eq!(records[1].endpoint, "/slow");
    assert_eq!(records[1].status_code, 499);
    assert_eq!(
        records[1].error_message.as_deref(),
        Some("client-disconnected")
    );
}

/// A streaming body of three chunks (`From<Bytes>` as the layer requires).
struct Chunks(std::collections::VecDeque<Bytes>);

impl Chunks {
    fn three() -> Self {
        Self(std::iter::repeat_n(Bytes::from_static(b"chunk"), 3).collect())
    }
}

impl From<Bytes> for Chunks {
    fn from(b: Bytes) -> Self {
        Self([b].into())
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

#[tokio::test]
async fn reject_policy_answers_503_when_the_queue_is_full() {
    let config = WriterConfig::new()
        .capacity(1)
        .overflow(OverflowPolicy::Reject)
        .flush_interval(Duration::from_secs(3600));
    let (writer, sink) = writer(config).await;
    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(AuditLayer::new(writer.clone()))
        .service(service_fn(inner));
    // The first request holds the only slot while its body is unread.
    let first = svc
        .clone()
        .oneshot(Request::get("/a").body(Body::from("x")).unwrap())
        .await
        .unwrap();
    let second = svc
        .clone()
        .oneshot(Request::get("/b").body(Body::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: serde_json::Value =
        serde_json::from_slice(&second.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(problem["code"], "audit-queue-full");
    first.into_body().collect().await.unwrap();
    assert_eq!(writer.stats().rejected, 1);

    let records = drain(&writer, &sink).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].endpoint, "/a");
}

#[tokio::test]
async fn drop_oldest_policy_counts_what_it_drops() {
    let config = WriterConfig::new()
        .capacity(3)
        .batch_size(100)
        .overflow(OverflowPolicy::DropOldest)
        .flush_interval(Duration::from_secs(3600));
    let (writer, sink) = writer(config).await;
    for n in 0..5 {
        let mut r = sample_record();
        r.correlation_id = format!("c{n}").into();
        writer.push(r);
    }
    assert_eq!(writer.stats().dropped, 2);
    let report = writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.flushed, 3);
    let ids: Vec<_> = sink
        .records()
        .into_iter()
        .map(|r| r.correlation_id.to_string())
        .collect();
    assert_eq!(ids, ["c2", "c3", "c4"]);
}

pub(crate) fn sample_record() -> AuditRecord {
    let id = uuid::Uuid::now_v7();
    AuditRecord {
        id,
        correlation_id: "c".into(),
        causation_id: None,
        timestamp: SystemTime::now(),
        gateway_type: None,
        request_id: id.to_string(),
        http_method: "GET".into(),
        endpoint: "/x".into(),
        query_params: serde_json::json!({}),
        request_headers: Default::default(),
        request_body: None,
        user_id: None,
        customer_id: None,
        email: None,
        roles: Vec::new().into(),
        trial_mode: false,
        policies_evaluated: vec![],
        decisions: Vec::new(),
        policy_latency_us: 0,
        status_code: 200,
        response_headers: Default::default(),
        error_type: None,
        error_message: None,
        total_latency_us: 1,
        upstream_latency_us: None,
        action: None,
        resource: None,
        resource_id: None,
        response_complete: true,
    }
}

#[tokio::test]
async fn nuls_in_the_query_and_json_body_are_replaced() {
    let (writer, sink) = writer(WriterConfig::new()).await;
    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(AuditLayer::new(writer.clone()))
        .service(service_fn(inner));
    let req = Request::post("/api/v1/agents/42?q=a%00b&%00=1")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"k":"v\u0000","\u0000":[{"x":"\u0000"}],"ok":"\\u0000"}"#,
        ))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
    let r = &drain(&writer, &sink).await[0];
    assert_eq!(
        r.query_params,
        serde_json::json!({"q": "a\u{fffd}b", "\u{fffd}": "1"})
    );
    assert_eq!(
        r.request_body,
        Some(
            serde_json::json!({"k": "v\u{fffd}", "\u{fffd}": [{"x": "\u{fffd}"}],
                                "ok": "\\u0000"})
        )
    );
}

/// Secret-bearing names are found however they are spelled or nested; token counts stay.
#[tokio::test]
async fn secrets_are_redacted_under_any_spelling_and_token_counts_are_kept() {
    let (writer, sink) = writer(WriterConfig::new()).await;
    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(AuditLayer::new(writer.clone()))
        .service(service_fn(inner));
    let req = Request::post(
        "/api/v1/login?api-key=Q1&id_token=Q2&user%5Bpassword%5D=Q3&sig=Q4&jwt=Q5\
         &max_tokens=100&tokens=Q6&page=2",
    )
    .header("content-type", "application/json")
    .header("x-governor-approval", "H1")
    .header("x-auth-token", "H2")
    .body(Body::from(
        r#"{"accessToken":"B1","refreshToken":"B2","clientSecret":"B3","private_key":"B4",
            "api-key":"B5","idToken":"B6","credentials":{"pass":"B7"},"user":{"PassWord":"B8"},
            "max_tokens":256,"usage":{"prompt_tokens":12},"tokens":["B9"],"model":"m"}"#,
    ))
    .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
    let r = &drain(&writer, &sink).await[0];
    let all = serde_json::to_string(r).unwrap();
    for secret in [
        "Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "H1", "H2", "B1", "B2", "B3", "B4", "B5", "B6", "B7",
        "B8", "B9",
    ] {
        assert!(
            !all.contains(&format!("\"{secret}\"")),
            "{secret} kept: {all}"
        );
    }
    assert_eq!(r.query_params["max_tokens"], "100");
    assert_eq!(r.query_params["page"], "2");
    assert_eq!(r.query_params["user[password]"], REDACTED);
    let body = r.request_body.as_ref().unwrap();
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["usage"]["prompt_tokens"], 12);
    assert_eq!(body["model"], "m");
    assert_eq!(body["credentials"], REDACTED);
    assert_eq!(r.request_headers.get("x-governor-approval"), Some(REDACTED));
    assert_eq!(r.request_headers.get("x-auth-token"), Some(REDACTED));
}

/// JSON bodies of small objects are several times larger parsed than on the wire: the
/// queue's byte budget, not only its record count, decides when it is full.
#[tokio::test]
async fn the_queue_counts_the_bytes_of_captured_bodies() {
    let config = WriterConfig::new()
        .capacity(1000)
        .capacity_bytes(256 * 1024)
        .overflow(OverflowPolicy::Reject)
        .batch_size(1000)
        .flush_interval(Duration::from_secs(3600));
    let (writer, sink) = writer(config).await;
    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(AuditLayer::new(writer.clone()))
        .service(service_fn(inner));
    // 8 KiB on the wire: a thousand one-entry objects, over half a MiB parsed.
    let body = format!("[{}]", vec![r#"{"a":0}"#; 1000].join(","));
    let heavy = || {
        Request::post("/heavy")
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap()
    };
    let res = svc.clone().oneshot(heavy()).await.unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(writer.queued(), 1);
    assert!(
        writer.queued_bytes() > 256 * 1024,
        "{}",
        writer.queued_bytes()
    );
    // One record, far under the count, fills the byte budget: the next is refused.
    let res = svc.clone().oneshot(heavy()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(writer.stats().rejected, 1);
    let records = drain(&writer, &sink).await;
    assert_eq!(records.len(), 1);
    assert_eq!(writer.queued_bytes(), 0);
}
