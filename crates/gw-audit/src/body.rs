//! [`AuditBody`]: the response body that writes the audit record when it ends.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::pending::Pending;

pin_project! {
    /// Response body of [`Audit`](crate::Audit): the inner body, unchanged; the request's
    /// audit record is written when it ends, fails, or is dropped unfinished.
    pub struct AuditBody<B> {
        #[pin]
        inner: B,
        pending: Option<Pending>,
    }
}

impl<B: Body> AuditBody<B> {
    pub(crate) fn new(inner: B, pending: Pending) -> Self {
        if inner.is_end_stream() {
            pending.finish(true);
            return Self {
                inner,
                pending: None,
            };
        }
        Self {
            inner,
            pending: Some(pending),
        }
    }
}

impl<B> AuditBody<B> {
    /// The wrapped body, unaudited.
    pub fn plain(inner: B) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

impl<B: From<Bytes>> From<Bytes> for AuditBody<B> {
    fn from(bytes: Bytes) -> Self {
        Self::plain(B::from(bytes))
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for AuditBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditBody")
            .field("inner", &self.inner)
            .field("pending", &self.pending.is_some())
            .finish()
    }
}

impl<B: Body> Body for AuditBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(_)) if !this.inner.is_end_stream() => {}
            Some(Ok(_)) | None => {
                if let Some(p) = this.pending.take() {
                    p.finish(true);
                }
            }
            Some(Err(_)) => {
                if let Some(p) = this.pending.take() {
                    p.finish(false);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
