//! [`ResponseFuture`]: evaluate the policies, call the inner service, and give back what
//! the request used up if the inner service refuses it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use gw_problem::Problem;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::eval::{Headers, Rejection};
use crate::undo::Undo;

/// The outcome of an evaluation: the headers for the response and what to give back if
/// the inner service refuses the request, or the rejection.
pub(crate) type Outcome = Result<(Headers, Option<Undo>), Rejection>;

type EvalFuture<B> = Pin<Box<dyn Future<Output = (Request<B>, Outcome)> + Send>>;

type UndoFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

pin_project! {
    /// Response future of [`Policy`](crate::Policy).
    ///
    /// When the service inside refuses an admitted request (see the crate docs), the
    /// trial task it counted is released and the approval it consumed restored before
    /// the response is returned. If this future is dropped before the inner service has
    /// answered, both stay used: the request was already handed on and may have run.
    pub struct ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        state: State<S, ReqB, S::Future, S::Response>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqB, F, R> {
        Evaluating { eval: EvalFuture<ReqB>, inner: Option<S> },
        Calling { #[pin] fut: F, headers: Headers, undo: Option<Undo> },
        Undoing { undo: UndoFuture, res: Option<R> },
        Rejected { rejection: Option<Box<Rejection>> },
    }
}

impl<S, ReqB> ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    pub(crate) fn evaluating(eval: EvalFuture<ReqB>, inner: S) -> Self {
        Self {
            state: State::Evaluating {
                eval,
                inner: Some(inner),
            },
        }
    }

    pub(crate) fn calling(fut: S::Future, headers: Headers, undo: Option<Undo>) -> Self {
        Self {
            state: State::Calling { fut, headers, undo },
        }
    }

    pub(crate) fn rejected(rejection: Rejection) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(Box::new(rejection)),
            },
        }
    }
}

impl<S, ReqB> fmt::Debug for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// Whether the service inside refused the request without carrying it out: a gw problem
/// response (a [`Problem`] in its extensions, as every gw layer's rejection has) whose
/// status says the request was not acted on (3xx, 4xx, or 503). Plain upstream answers
/// and problems of 500, 502 or 504 (the handler failed, or the upstream was tried and
/// gave no answer) leave open whether the work was done, so they are not refusals.
fn refused<B>(res: &Response<B>) -> bool {
    let status = res.status();
    (status.is_redirection()
        || status.is_client_error()
        || status == StatusCode::SERVICE_UNAVAILABLE)
        && res.extensions().get::<Problem>().is_some()
}

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<Bytes>,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Evaluating { eval, inner } => {
                    let (req, outcome) = ready!(eval.as_mut().poll(cx));
                    match outcome {
                        Ok((headers, undo)) => {
                            let mut svc = inner.take().expect("polled after completion");
                            let fut = svc.call(req);
                            this.state.set(State::Calling { fut, headers, undo });
                        }
                        Err(rejection) => return Poll::Ready(Ok(rejection.into_response())),
                    }
                }
                StateProj::Calling { fut, headers, undo } => {
                    let mut res = ready!(fut.poll(cx))?;
                    let mut headers = std::mem::take(headers);
                    match undo.take() {
                        Some(undo) if refused(&res) => {
                            // The task is given back: the quota fields no longer hold.
                            headers.ratelimit = None;
                            headers.apply(res.headers_mut());
                            let undo = Box::pin(undo.run());
                            this.state.set(State::Undoing {
                                undo,
                                res: Some(res),
                            });
                        }
                        _ => {
                            headers.apply(res.headers_mut());
                            return Poll::Ready(Ok(res));
                        }
                    }
                }
                StateProj::Undoing { undo, res } => {
                    ready!(undo.as_mut().poll(cx));
                    let res = res.take().expect("polled after completion");
                    return Poll::Ready(Ok(res));
                }
                StateProj::Rejected { rejection } => {
                    let rejection = rejection.take().expect("polled after completion");
                    return Poll::Ready(Ok(rejection.into_response()));
                }
            }
        }
    }
}
