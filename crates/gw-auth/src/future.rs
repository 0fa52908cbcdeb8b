//! [`ResponseFuture`] of the [`Auth`](crate::Auth) service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use gw_core::{Decisions, Outcome, Stopwatch};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::service::{Shared, authenticate, record};

pin_project! {
    /// Response future of [`Auth`](crate::Auth): the inner service's future, an
    /// immediate refusal, or a wait for a key refetch (unknown `kid`) first.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        kind: Kind<S, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, B>
    where
        S: Service<Request<B>>,
    {
        Inner { #[pin] fut: S::Future },
        Reject { res: Option<S::Response> },
        Refetch {
            wait: BoxFuture<'static, ()>,
            pending: Option<(S, Request<B>, Arc<Shared>)>,
            started: Stopwatch,
        },
    }
}

impl<S: Service<Request<B>>, B> ResponseFuture<S, B> {
    pub(crate) fn inner(fut: S::Future) -> Self {
        Self {
            kind: Kind::Inner { fut },
        }
    }

    pub(crate) fn reject(res: S::Response) -> Self {
        Self {
            kind: Kind::Reject { res: Some(res) },
        }
    }

    pub(crate) fn refetch(
        wait: BoxFuture<'static, ()>,
        inner: S,
        req: Request<B>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            kind: Kind::Refetch {
                wait,
                pending: Some((inner, req, shared)),
                started: Stopwatch::start(),
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.kind.as_mut().project() {
                KindProj::Inner { fut } => return fut.poll(cx),
                KindProj::Reject { res } => {
                    return Poll::Ready(Ok(res.take().expect("polled after completion")));
                }
                KindProj::Refetch {
                    wait,
                    pending,
                    started,
                } => {
                    ready!(wait.as_mut().poll(cx));
                    let (mut inner, mut req, shared) =
                        pending.take().expect("polled after completion");
                    let result = shared.step_after_refetch(&req);
                    if req.extensions().get::<Decisions>().is_some() {
                        let (outcome, reason) = match &result {
                            Ok(_) => (Outcome::Allow, "verified"),
                            Err(r) => (Outcome::Deny, r.reason()),
                        };
                        record(&req, outcome, reason, *started);
                    }
                    match result {
                        Ok(v) => {
                            authenticate(&mut req, &v);
                            Kind::Inner {
                                fut: inner.call(req),
                            }
                        }
                        Err(r) => Kind::Reject {
                            res: Some(r.respond(&req)),
                        },
                    }
                }
            };
            this.kind.set(next);
        }
    }
}
