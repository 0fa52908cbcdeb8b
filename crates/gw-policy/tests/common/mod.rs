//! Test helpers shared by the integration tests.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gw_core::{
    Decision, DecisionLog, Decisions, Principal, PrincipalData, TargetBackend, TrialInfo,
};
use gw_policy::PolicyLayer;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};

pub type Body = Full<Bytes>;
pub type Svc = BoxCloneService<Request<Body>, Response<Body>, Infallible>;

/// 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000;

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn principal(user: &str, trial: Option<TrialInfo>) -> Principal {
    Principal::from(PrincipalData {
        sub: user.into(),
        user_id: user.into(),
        email: format!("{user}@example.com").into(),
        customer_id: "c1".into(),
        roles: Arc::from([]),
        governor_agent_id: Some("gov-1".into()),
        trial,
    })
}

pub fn trial_user(user: &str) -> Principal {
    principal(user, Some(TrialInfo { expires_at: None }))
}

pub fn paid_user(user: &str) -> Principal {
    principal(user, None)
}

/// A service whose handler echoes the target backend it saw (extension and header) in
/// `x-seen-target` / `x-seen-target-header`.
pub fn service(layer: PolicyLayer) -> Svc {
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|req: Request<Body>| async move {
            let mut res = Response::new(Body::from("ok"));
            if let Some(t) = req.extensions().get::<TargetBackend>() {
                res.headers_mut()
                    .insert("x-seen-target", t.as_str().parse().unwrap());
            }
            if let Some(h) = req.headers().get(TargetBackend::HEADER) {
                res.headers_mut().insert("x-seen-target-header", h.clone());
            }
            Ok::<_, Infallible>(res)
        });
    BoxCloneService::new(svc)
}

/// A service whose handler answers as the request's `x-answer` header says, like the
/// layers and upstreams inside a gateway would: `refuse` is an inner gw layer's 402
/// `budget-exceeded` problem, `unavailable` an inner layer's fail-closed 503 problem,
/// `timeout` a proxy's 504 `upstream-timeout` problem, `upstream-400` a plain upstream
/// 400 (no problem), `hang` never answers; anything else is 200.
pub fn answering(layer: PolicyLayer) -> Svc {
    use gw_problem::{Problem, ProblemType};
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|req: Request<Body>| async move {
            let answer = req
                .headers()
                .get("x-answer")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("ok")
                .to_owned();
            let res = match answer.as_str() {
                "refuse" => Problem::new(ProblemType::BUDGET_EXCEEDED).into_response(),
                "unavailable" => Problem::new(ProblemType::SERVICE_UNAVAILABLE).into_response(),
                "timeout" => Problem::new(ProblemType::GATEWAY_TIMEOUT)
                    .code("upstream-timeout")
                    .into_response(),
                "upstream-400" => {
                    let mut res = Response::new(Body::from("bad input"));
                    *res.status_mut() = StatusCode::BAD_REQUEST;
                    res
                }
                "hang" => std::future::pending().await,
                _ => Response::new(Body::from("ok")),
            };
            Ok::<_, Infallible>(res)
        });
    BoxCloneService::new(svc)
}

pub struct Call {
    pub method: Method,
    pub path: String,
    pub principal: Option<Principal>,
    pub headers: Vec<(&'static str, String)>,
}

pub fn call(method: Method, path: &str, principal: Option<Principal>) -> Call {
    Call {
        method,
        path: path.into(),
        principal,
        headers: Vec::new(),
    }
}

impl Call {
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn request(&self) -> (Request<Body>, Decisions) {
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(&self.path)
            .body(Body::default())
            .unwrap();
        for (n, v) in &self.headers {
            req.headers_mut().insert(*n, v.parse().unwrap());
        }
        if let Some(p) = &self.principal {
            req.extensions_mut().insert(p.clone());
        }
        let log = Decisions::new();
        req.extensions_mut().insert(log.clone());
        (req, log)
    }

    pub fn send(&self, svc: &Svc) -> impl Future<Output = Reply> + Send + 'static {
        let (req, log) = self.request();
        let fut = svc.clone().oneshot(req);
        async move {
            let res = fut.await.unwrap();
            Reply::new(res, log.take()).await
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub extensions: http::Extensions,
    pub body: Bytes,
    pub log: DecisionLog,
}

impl Reply {
    pub async fn new(res: Response<Body>, log: DecisionLog) -> Self {
        let (parts, body) = res.into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            extensions: parts.extensions,
            body: body.collect().await.unwrap().to_bytes(),
            log,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn decision(&self, policy: &str) -> &Decision {
        self.log
            .decisions
            .iter()
            .find(|d| d.policy == policy)
            .unwrap_or_else(|| panic!("no decision for {policy}: {:?}", self.log))
    }
}
