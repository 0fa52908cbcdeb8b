//! [`ProblemLayer`]: the outermost layer. Correlation ids in, problems out.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use gw_core::{CAUSATION_ID_HEADER, CORRELATION_ID_HEADER, CausationId, CorrelationId};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::catalogue::ProblemType;
use crate::problem::{DEFAULT_TYPE_BASE, PROBLEM_JSON, Problem, ProblemContext};

/// What to do with error responses (4xx/5xx) from the inner service that are not
/// `application/problem+json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BareErrors {
    /// Pass them through unchanged (the default).
    #[default]
    Keep,
    /// Replace them with a problem only when their body is empty, so an upstream's own
    /// error documents survive.
    ConvertEmpty,
    /// Replace every one of them with a problem (the inner body is discarded).
    ConvertAll,
}

#[derive(Debug)]
struct Config {
    type_base: Arc<str>,
    /// Whether `type_base` is [`DEFAULT_TYPE_BASE`]: then requests carry no
    /// [`ProblemContext`], as a problem without one gets that base anyway.
    default_base: bool,
    development: bool,
    bare_errors: BareErrors,
}

/// The outermost gw layer.
///
/// - Takes a valid inbound `X-Correlation-ID` or generates a UUIDv7, puts it (and an
///   `X-Request-ID` [`CausationId`], if sent) into the request extensions, rewrites the
///   request header to the accepted value, and echoes it on every response.
/// - With a `type` base other than [`DEFAULT_TYPE_BASE`], puts a [`ProblemContext`] into
///   the request extensions, so problems built by inner layers get that base; with the
///   default base, the [`CorrelationId`] is all [`Problem::for_request`] needs, and one
///   fewer extension is one allocation fewer per request.
/// - Catches panics in the inner service's `call` and in its future, and inner `Err`s,
///   and answers `500 internal-server-error`. Only in development mode does the problem's
///   `detail` include the panic or error message.
/// - Optionally turns bare error responses into problems ([`BareErrors`]).
///
/// Its error type is [`Infallible`](std::convert::Infallible): it is meant to be the
/// last thing between your stack and the server.
#[derive(Debug, Clone)]
pub struct ProblemLayer {
    config: Arc<Config>,
}

impl Default for ProblemLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ProblemLayer {
    /// Production defaults: base [`DEFAULT_TYPE_BASE`], no internals in responses, bare
    /// errors kept.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                type_base: Arc::from(DEFAULT_TYPE_BASE),
                default_base: true,
                development: false,
                bare_errors: BareErrors::Keep,
            }),
        }
    }

    fn map(self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            type_base: self.config.type_base.clone(),
            default_base: self.config.default_base,
            development: self.config.development,
            bare_errors: self.config.bare_errors,
        };
        f(&mut config);
        config.default_base = *config.type_base == *DEFAULT_TYPE_BASE;
        Self {
            config: Arc::new(config),
        }
    }

    /// Sets the base of `type` URIs, e.g. `https://errors.example.com/problems`.
    pub fn type_base(self, base: impl Into<Arc<str>>) -> Self {
        let base = base.into();
        self.map(|c| c.type_base = base)
    }

    /// Development mode: 500 problems include the panic or error message. Never enable
    /// this in production.
    pub fn development(self, on: bool) -> Self {
        self.map(|c| c.development = on)
    }

    /// What to do with bare error responses.
    pub fn bare_errors(self, mode: BareErrors) -> Self {
        self.map(|c| c.bare_errors = mode)
    }
}

impl<S> Layer<S> for ProblemLayer {
    type Service = ProblemService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProblemService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service built by [`ProblemLayer`].
#[derive(Debug, Clone)]
pub struct ProblemService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ProblemService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: std::fmt::Display,
    ResB: From<Bytes> + http_body::Body,
{
    type Response = Response<ResB>;
    type Error = std::convert::Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // An inner service that is not ready with an error can only be reported on the
        // next call; treat it as ready and let `call` surface the failure.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        // Exactly one valid inbound id is kept as is; none, several or an invalid one are
        // replaced, so the upstream sees the same single id we log.
        let mut sent = req.headers().get_all(CORRELATION_ID_HEADER).iter();
        let inbound = match (sent.next(), sent.next()) {
            (Some(value), None) => CorrelationId::from_header(value).map(|id| (id, value.clone())),
            _ => None,
        };
        // One header value, for the request and the echo on the response.
        let (id, header) = match inbound {
            Some(found) => found,
            None => {
                let id = CorrelationId::generate();
                let header = id.to_header_value();
                req.headers_mut()
                    .insert(CORRELATION_ID_HEADER, header.clone());
                (id, header)
            }
        };
        if let Some(cause) = req
            .headers()
            .get(CAUSATION_ID_HEADER)
            .and_then(CausationId::from_header)
        {
            req.extensions_mut().insert(cause);
        }
        let ctx = ProblemContext {
            type_base: self.config.type_base.clone(),
            correlation_id: id.clone(),
        };
        req.extensions_mut().insert(id);
        if !self.config.default_base {
            req.extensions_mut().insert(ctx.clone());
        }
        let uri = req.uri().clone();

        // Called now, while the service is the one `poll_ready` readied: no clone.
        let inner = &mut self.inner;
        let state = match catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
            Ok(future) => State::Running { future },
            Err(panic) => State::Failed {
                message: Some(panic_message(&*panic)),
            },
        };
        ResponseFuture {
            state,
            ctx: Finish {
                ctx,
                uri,
                header: Some(header),
                config: self.config.clone(),
            },
        }
    }
}

pin_project! {
    /// Response future of [`ProblemService`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        ctx: Finish,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] future: F },
        Failed { message: Option<String> },
        Done,
    }
}

struct Finish {
    ctx: ProblemContext,
    uri: http::Uri,
    /// The `X-Correlation-ID` value to echo (taken by the one successful finish).
    header: Option<HeaderValue>,
    config: Arc<Config>,
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: std::fmt::Display,
    ResB: From<Bytes> + http_body::Body,
{
    type Output = Result<Response<ResB>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let failure = match this.state.as_mut().project() {
            StateProj::Running { future } => {
                match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(Ok(res))) => {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(this.ctx.finish(res)));
                    }
                    Ok(Poll::Ready(Err(e))) => Failure::Error(e.to_string()),
                    Err(panic) => Failure::Panic(panic_message(&*panic)),
                }
            }
            StateProj::Failed { message } => Failure::Panic(message.take().unwrap_or_default()),
            StateProj::Done => panic!("ResponseFuture polled after completion"),
        };
        this.state.set(State::Done);
        Poll::Ready(Ok(this.ctx.failure(failure)))
    }
}

enum Failure {
    Panic(String),
    Error(String),
}

impl Finish {
    fn problem(&self, kind: ProblemType) -> Problem {
        Problem::new(kind)
            .type_base(self.ctx.type_base.clone())
            .correlation_id(&self.ctx.correlation_id)
            .instance(self.uri.path())
    }

    fn failure<B: From<Bytes>>(&self, failure: Failure) -> Response<B> {
        let (what, message) = match failure {
            Failure::Panic(m) => ("panic", m),
            Failure::Error(m) => ("error", m),
        };
        tracing::error!(
            correlation_id = %self.ctx.correlation_id,
            path = %self.uri.path(),
            "inner service {what}: {message}"
        );
        metrics::counter!("gw_problem_internal_errors_total", "kind" => what).increment(1);
        let mut problem = self.problem(ProblemType::INTERNAL_SERVER_ERROR);
        if self.config.development {
            problem = problem.detail(format!("{what}: {message}"));
        }
        problem.into_response()
    }

    fn finish<B: From<Bytes> + http_body::Body>(&mut self, mut res: Response<B>) -> Response<B> {
        let status = res.status();
        if status.is_client_error() || status.is_server_error() {
            if let Some(problem) = res.extensions().get::<Problem>() {
                // Built without request context (e.g. returned by a handler): render
                // again with the correlation id and type base.
                if problem.extension("correlation_id").is_none() {
                    let fixed = self.rebuild(problem.clone());
                    return replace_body(res, fixed);
                }
            } else if self.converts(&res) {
                let problem = self.problem(ProblemType::for_status(status));
                return replace_body(res, problem);
            }
        }
        let header = self
            .header
            .take()
            .unwrap_or_else(|| self.ctx.correlation_id.to_header_value());
        res.headers_mut().insert(CORRELATION_ID_HEADER, header);
        res
    }

    fn rebuild(&self, problem: Problem) -> Problem {
        let mut p = problem.correlation_id(&self.ctx.correlation_id);
        if p.type_base.is_none() {
            p.type_base = Some(self.ctx.type_base.clone());
        }
        if p.instance.is_none() {
            p.instance = Some(self.uri.path().to_owned());
        }
        p
    }

    fn converts<B: http_body::Body>(&self, res: &Response<B>) -> bool {
        let is_problem = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with(PROBLEM_JSON));
        match self.config.bare_errors {
            BareErrors::Keep => false,
            _ if is_problem => false,
            BareErrors::ConvertAll => true,
            BareErrors::ConvertEmpty => res.body().size_hint().exact() == Some(0),
        }
    }
}

/// Swaps the body for `problem`'s, keeping the status and other headers (such as
/// `WWW-Authenticate` or `Retry-After`).
fn replace_body<B: From<Bytes>>(res: Response<B>, problem: Problem) -> Response<B> {
    let (mut parts, _) = res.into_parts();
    let fresh = problem.into_response::<B>();
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    for (name, value) in &fresh_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    parts.extensions.extend(fresh_parts.extensions);
    Response::from_parts(parts, body)
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
