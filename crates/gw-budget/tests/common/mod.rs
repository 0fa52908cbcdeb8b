//! Shared fixtures and backend-independent scenarios; `memory.rs` and `redis.rs` run them.
#![allow(dead_code)]

pub mod concurrency;
pub mod scenarios;

use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gw_budget::{
    AgentIdExtractor, BudgetAlert, CostModel, PathParam, RequestInfo, UPSTREAM_COST_HEADER,
};
use gw_core::{Decisions, ManualClock, Principal, PrincipalData};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneService;
use tower::{Layer, ServiceExt, service_fn};

pub type Body = Full<Bytes>;
pub type Svc = BoxCloneService<Request<Body>, Response<Body>, io::Error>;

/// 2026-11-22T07:58:36Z.
pub const NOW: u64 = 1_795_334_316;

pub fn clock() -> ManualClock {
    ManualClock::at_unix(NOW)
}

pub fn agents() -> impl AgentIdExtractor {
    PathParam::new(["/api/v1/agents/{agent_id}/*"], "agent_id").unwrap()
}

/// Reserves the `x-test-estimate` request header (default 1000).
#[derive(Debug, Clone, Copy)]
pub struct HeaderEstimate;

impl CostModel for HeaderEstimate {
    fn estimate(&self, req: &RequestInfo<'_>) -> u64 {
        req.headers
            .get("x-test-estimate")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(1_000)
    }

    fn actual(&self, estimate: u64, response: &HeaderMap) -> u64 {
        response
            .get(UPSTREAM_COST_HEADER)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(estimate)
    }
}

/// A handler that counts its calls and obeys `x-test-status`, `x-test-error`,
/// `x-test-cost` (echoed as the upstream cost header) and `x-test-hang`.
pub fn handler(
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<Request<Body>, Response = Response<Body>, Error = io::Error, Future = impl Send>
+ Clone
+ Send {
    service_fn(move |req: Request<Body>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let h = req.headers();
            if h.contains_key("x-test-hang") {
                std::future::pending::<()>().await;
            }
            if h.contains_key("x-test-error") {
                return Err(io::Error::other("upstream broke"));
            }
            let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
            if let Some(s) = h.get("x-test-status") {
                *res.status_mut() = StatusCode::from_bytes(s.as_bytes()).unwrap();
            }
            if let Some(c) = h.get("x-test-cost") {
                res.headers_mut().insert(UPSTREAM_COST_HEADER, c.clone());
            }
            Ok(res)
        }
    })
}

pub fn service(layer: gw_budget::BudgetLayer, calls: Arc<AtomicUsize>) -> Svc {
    BoxCloneService::new(layer.layer(handler(calls)))
}

pub fn post(path: &str) -> http::request::Builder {
    Request::post(path)
}

pub fn req(path: &str) -> Request<Body> {
    post(path).body(Body::default()).unwrap()
}

pub async fn call(svc: &Svc, req: Request<Body>) -> Response<Body> {
    svc.clone().oneshot(req).await.unwrap()
}

pub fn header<'a>(res: &'a Response<Body>, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

pub async fn json(res: Response<Body>) -> serde_json::Value {
    serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

pub fn principal(customer: &str) -> Principal {
    Principal::from(PrincipalData {
        sub: "u1".into(),
        user_id: "u1".into(),
        email: "u1@example.com".into(),
        customer_id: customer.into(),
        roles: Arc::from(vec!["developer".to_string()]),
        governor_agent_id: None,
        trial: None,
    })
}

pub fn with_decisions(mut req: Request<Body>) -> (Request<Body>, Decisions) {
    let d = Decisions::new();
    req.extensions_mut().insert(d.clone());
    (req, d)
}

/// Alerts and pauses as they were delivered.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    pub alerts: Arc<Mutex<Vec<BudgetAlert>>>,
    pub paused: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub fn layer(&self, layer: gw_budget::BudgetLayer) -> gw_budget::BudgetLayer {
        let alerts = self.alerts.clone();
        let paused = self.paused.clone();
        layer
            .alert_sink(move |a: &BudgetAlert| alerts.lock().unwrap().push(a.clone()))
            .agent_pauser(move |id: &str, _: &BudgetAlert| {
                paused.lock().unwrap().push(id.to_owned())
            })
    }

    pub fn levels(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .alerts
            .lock()
            .unwrap()
            .iter()
            .map(|a| (a.scope.as_str().to_owned(), a.level.as_str().to_owned()))
            .collect();
        v.sort();
        v
    }
}

pub fn ok_handler()
-> impl Fn(Request<Body>) -> std::future::Ready<Result<Response<Body>, Infallible>> {
    |_| std::future::ready(Ok(Response::new(Body::default())))
}
