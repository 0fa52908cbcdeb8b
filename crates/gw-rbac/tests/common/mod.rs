//! Test helpers: principals, requests, problem bodies, and (features `opa` + `rego`) a
//! local server implementing OPA's Data API with the shipped Rego policy.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use gw_core::{BackendError, Decisions, Principal, PrincipalData};
use gw_rbac::{
    Authorization, Authorizer, AuthzInput, NativeAuthorizer, Policy, PolicyError, RbacLayer,
};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};

pub type Body = Full<Bytes>;

pub fn principal(roles: &[&str]) -> Principal {
    Principal::from(PrincipalData {
        sub: "sub-1".into(),
        user_id: "user-1".into(),
        email: "user-1@example.com".into(),
        customer_id: "cust-1".into(),
        roles: roles
            .iter()
            .map(|r| r.to_string())
            .collect::<Arc<[String]>>(),
        governor_agent_id: None,
        trial: None,
    })
}

pub fn request(method: &str, path: &str, roles: Option<&[&str]>) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::default())
        .unwrap();
    if let Some(roles) = roles {
        req.extensions_mut().insert(principal(roles));
    }
    req
}

pub async fn ok_handler(_req: Request<Body>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Full::from("ok")))
}

pub async fn json(res: Response<Body>) -> serde_json::Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// Counts engine calls.
#[derive(Debug)]
pub struct Counting {
    inner: NativeAuthorizer,
    calls: Arc<AtomicUsize>,
}

impl Authorizer for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn authorize(&self, input: &AuthzInput<'_>) -> Authorization {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.authorize(input)
    }
    fn reload(&self, policy: &Policy) -> Result<(), PolicyError> {
        self.inner.reload(policy)
    }
}

/// An engine that always fails with `err`, asynchronously.
#[derive(Debug)]
pub struct Failing(pub BackendError);

impl Authorizer for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }
    fn authorize(&self, _input: &AuthzInput<'_>) -> Authorization {
        let e = self.0.clone();
        Authorization::pending(async move { Err(e) })
    }
}

pub fn counting(policy: &Policy) -> (Counting, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = Counting {
        inner: NativeAuthorizer::new(policy).unwrap(),
        calls: calls.clone(),
    };
    (engine, calls)
}

pub async fn call(layer: &RbacLayer, req: Request<Body>) -> Response<Body> {
    ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(ok_handler)
        .oneshot(req)
        .await
        .unwrap()
}

pub fn with_log(mut req: Request<Body>) -> (Request<Body>, Decisions) {
    let log = Decisions::new();
    req.extensions_mut().insert(log.clone());
    (req, log)
}

#[cfg(all(feature = "opa", feature = "rego"))]
pub mod opa_server {
    //! A minimal OPA: `POST /v1/data/<path>` with `{"input": ...}` answers
    //! `{"result": <data.<path>>}` (or `{}` when undefined), evaluated with regorus.

    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use gw_rbac::{BUILTIN_POLICY_REGO, Policy};
    use http::{Request, Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    /// Starts the server; `delay` is added before every answer (for timeout tests).
    pub async fn start(policy: &Policy, delay: Duration) -> SocketAddr {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("rbac_pp.rego".into(), BUILTIN_POLICY_REGO.into())
            .unwrap();
        engine
            .add_data(regorus::Value::from(policy.to_data_json()))
            .unwrap();
        let engine = Arc::new(Mutex::new(engine));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let engine = engine.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let engine = engine.clone();
                        async move {
                            tokio::time::sleep(delay).await;
                            Ok::<_, hyper::Error>(answer(&engine, req).await)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        addr
    }

    async fn answer(
        engine: &Mutex<regorus::Engine>,
        req: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, body: serde_json::Value| {
            let mut res = Response::new(Full::from(serde_json::to_vec(&body).unwrap()));
            *res.status_mut() = status;
            res
        };
        let Some(path) = req
            .uri()
            .path()
            .strip_prefix("/v1/data/")
            .map(str::to_owned)
        else {
            return reply(
                StatusCode::NOT_FOUND,
                serde_json::json!({"code": "not_found"}),
            );
        };
        if req.method() != http::Method::POST {
            return reply(StatusCode::METHOD_NOT_ALLOWED, serde_json::json!({}));
        }
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return reply(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"code": "invalid_parameter"}),
            );
        };
        let rule = format!("data.{}", path.trim_matches('/').replace('/', "."));
        let mut engine = engine.lock().unwrap();
        engine.set_input(regorus::Value::from(doc["input"].clone()));
        match engine.eval_rule(rule) {
            Ok(regorus::Value::Undefined) => reply(StatusCode::OK, serde_json::json!({})),
            Ok(v) => reply(
                StatusCode::OK,
                serde_json::json!({ "result": serde_json::to_value(&v).unwrap() }),
            ),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"code": "internal_error", "message": e.to_string()}),
            ),
        }
    }
}
