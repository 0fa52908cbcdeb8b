//! [`ResponseFuture`] of [`ServiceAuth`](crate::ServiceAuth).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use pin_project_lite::pin_project;

pin_project! {
    /// Response future of [`ServiceAuth`](crate::ServiceAuth): the inner future directly for
    /// unverified paths, a boxed verification otherwise.
    pub struct ResponseFuture<F>
    where
        F: Future,
    {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F>
    where
        F: Future,
    {
        Inner { #[pin] fut: F },
        Verifying { fut: BoxFuture<'static, F::Output> },
        Ready { out: Option<F::Output> },
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn inner(fut: F) -> Self {
        Self {
            kind: Kind::Inner { fut },
        }
    }

    pub(crate) fn verifying(fut: BoxFuture<'static, F::Output>) -> Self {
        Self {
            kind: Kind::Verifying { fut },
        }
    }

    pub(crate) fn ready(out: F::Output) -> Self {
        Self {
            kind: Kind::Ready { out: Some(out) },
        }
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { fut } => fut.poll(cx),
            KindProj::Verifying { fut } => fut.as_mut().poll(cx),
            KindProj::Ready { out } => Poll::Ready(out.take().expect("polled after completion")),
        }
    }
}
