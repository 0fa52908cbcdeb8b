//! Response futures.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::store::BoxFuture;

pin_project! {
    /// Response future of [`CallbackService`](crate::CallbackService): ready at once for
    /// a rejected secret, otherwise the body and store work.
    pub struct CallbackFuture<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Ready { response: Option<Response<B>> },
        Running { future: BoxFuture<'static, Response<B>> },
    }
}

impl<B> CallbackFuture<B> {
    pub(crate) fn ready(response: Response<B>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }

    pub(crate) fn boxed(future: BoxFuture<'static, Response<B>>) -> Self {
        Self {
            kind: Kind::Running { future },
        }
    }
}

impl<B> Future for CallbackFuture<B> {
    type Output = Result<Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .expect("CallbackFuture polled after completion"))),
            KindProj::Running { future } => future.as_mut().poll(cx).map(Ok),
        }
    }
}

pin_project! {
    /// Response future of [`Callback`](crate::Callback): the callback's, or the inner
    /// service's for every other request.
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Either<F, B>,
    }
}

pin_project! {
    #[project = EitherProj]
    enum Either<F, B> {
        Inner { #[pin] future: F },
        Callback { #[pin] future: CallbackFuture<B> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: Either::Inner { future },
        }
    }

    pub(crate) fn callback(future: CallbackFuture<B>) -> Self {
        Self {
            kind: Either::Callback { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            EitherProj::Inner { future } => future.poll(cx),
            EitherProj::Callback { future } => match future.poll(cx) {
                Poll::Ready(Ok(res)) => Poll::Ready(Ok(res)),
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
