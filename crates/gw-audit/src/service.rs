//! [`Audit`]: the service built by [`AuditLayer`](crate::AuditLayer).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use gw_core::Decisions;
use gw_problem::{Problem, ProblemType};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::AuditBody;
use crate::future::ResponseFuture;
use crate::layer::Config;
use crate::pending::Pending;
use crate::writer::{AuditWriter, OverflowPolicy};

/// Middleware that writes an audit record for every request.
#[derive(Debug, Clone)]
pub struct Audit<S> {
    pub(crate) inner: S,
    pub(crate) writer: AuditWriter,
    pub(crate) config: Arc<Config>,
}

impl<S> Audit<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Audit<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    ReqB: Body + From<Bytes>,
    ResB: Body + From<Bytes>,
{
    type Response = Response<AuditBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let reserved = self.writer.policy() == OverflowPolicy::Reject;
        if reserved && !self.writer.try_reserve() {
            let problem = Problem::new(ProblemType::SERVICE_UNAVAILABLE)
                .code("audit-queue-full")
                .detail("The audit log is saturated; try again shortly.")
                .for_request(&req);
            return ResponseFuture::rejected(problem);
        }
        let decisions = match req.extensions().get::<Decisions>() {
            Some(d) => d.clone(),
            None => {
                let d = Decisions::new();
                req.extensions_mut().insert(d.clone());
                d
            }
        };
        let mut pending = Pending::new(
            &req,
            decisions,
            self.writer.clone(),
            reserved,
            self.config.clone(),
        );

        let cap = self.config.body_cap;
        if self.config.capture_body && is_json(req.headers()) {
            let fits = req
                .body()
                .size_hint()
                .upper()
                .is_some_and(|n| n <= cap as u64);
            if fits {
                // The body is read first: take the readied service, leave a clone.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let (parts, body) = req.into_parts();
                return ResponseFuture::collecting(parts, body, inner, pending, cap);
            }
            pending.body_omitted();
        }
        // Called now, while the service is the one `poll_ready` readied: no clone.
        let mut pending = Some(pending);
        let future = start(&mut self.inner, req, &mut pending);
        ResponseFuture::running(future, pending)
    }
}

/// Calls the inner service; a panic is recorded before it goes on unwinding.
pub(crate) fn start<S, ReqB>(
    inner: &mut S,
    req: Request<ReqB>,
    pending: &mut Option<Pending>,
) -> S::Future
where
    S: Service<Request<ReqB>>,
{
    match catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
        Ok(future) => future,
        Err(panic) => {
            if let Some(mut p) = pending.take() {
                p.fail(ProblemType::INTERNAL_SERVER_ERROR, "panic");
                p.finish(false);
            }
            resume_unwind(panic)
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .map(str::trim)
        .is_some_and(|mime| {
            mime.eq_ignore_ascii_case("application/json")
                || mime.len() > 5 && mime[mime.len() - 5..].eq_ignore_ascii_case("+json")
        })
}
