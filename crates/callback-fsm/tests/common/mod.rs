//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use callback_fsm::{CallbackLayer, CallbackSecrets, CallbackService, JobStore, TransitionTable};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

pub mod contract;

pub const SECRET: &str = "primary-callback-secret-0123456789abcdef";
pub const OLD_SECRET: &str = "rotated-out-callback-secret-0123456789";

pub type Svc = BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;

pub fn secrets() -> CallbackSecrets {
    CallbackSecrets::new([SECRET, OLD_SECRET]).unwrap()
}

/// The endpoint behind a layer in front of a handler that answers 418 with a marker
/// header, so pass-through is visible.
pub fn layered(store: impl JobStore, table: TransitionTable) -> Svc {
    let svc = ServiceBuilder::new()
        .layer(CallbackLayer::new(secrets(), store).transitions(table))
        .service_fn(|_req: Request<Full<Bytes>>| async {
            let mut res = Response::new(Full::from("inner"));
            *res.status_mut() = StatusCode::IM_A_TEAPOT;
            Ok::<_, Infallible>(res)
        });
    BoxCloneSyncService::new(svc)
}

pub fn standalone(store: impl JobStore, table: TransitionTable) -> Svc {
    BoxCloneSyncService::new(CallbackService::new(secrets(), store).transitions(table))
}

pub fn body(event_id: &str, status: &str, occurred_at: &str) -> Value {
    json!({"event_id": event_id, "status": status, "occurred_at": occurred_at})
}

pub fn callback(job: &str, secret: Option<&str>, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let mut req = Request::post(format!("/internal/jobs/{job}/status"))
        .header("content-type", "application/json");
    if let Some(secret) = secret {
        req = req.header("x-callback-secret", secret);
    }
    req.body(Full::new(body.into())).unwrap()
}

pub fn json_callback(job: &str, body: &Value) -> Request<Full<Bytes>> {
    callback(job, Some(SECRET), body.to_string())
}

pub async fn send(svc: &Svc, req: Request<Full<Bytes>>) -> (StatusCode, Value) {
    let res = svc.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, value)
}

/// Sends `body` to `job` with the right secret; returns status and the problem `code`
/// (or `""` for non-problem answers).
pub async fn post(svc: &Svc, job: &str, body: &Value) -> (StatusCode, String) {
    let (status, value) = send(svc, json_callback(job, body)).await;
    let code = value["code"].as_str().unwrap_or_default().to_owned();
    (status, code)
}

pub fn ts(secs: u32) -> String {
    format!(
        "2026-03-01T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A body that records whether anyone polled it.
#[derive(Clone, Default)]
pub struct Spy(pub Arc<AtomicBool>);

impl Spy {
    pub fn polled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl http_body::Body for Spy {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.store(true, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{}")))))
    }
}
