//! [`ResponseFuture`]: evaluate the policies, then call the inner service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::eval::{Headers, Rejection};

type EvalFuture<B> = Pin<Box<dyn Future<Output = (Request<B>, Result<Headers, Rejection>)> + Send>>;

pin_project! {
    /// Response future of [`Policy`](crate::Policy).
    pub struct ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        state: State<S, ReqB, S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqB, F> {
        Evaluating { eval: EvalFuture<ReqB>, inner: Option<S> },
        Calling { #[pin] fut: F, headers: Headers },
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

    pub(crate) fn calling(fut: S::Future, headers: Headers) -> Self {
        Self {
            state: State::Calling { fut, headers },
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
                        Ok(headers) => {
                            let mut svc = inner.take().expect("polled after completion");
                            let fut = svc.call(req);
                            this.state.set(State::Calling { fut, headers });
                        }
                        Err(rejection) => return Poll::Ready(Ok(rejection.into_response())),
                    }
                }
                StateProj::Calling { fut, headers } => {
                    let mut res = ready!(fut.poll(cx))?;
                    std::mem::take(headers).apply(res.headers_mut());
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
