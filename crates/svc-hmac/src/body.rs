//! The request body handed to the inner service, and capped, hashing body collection.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use sha2::{Digest, Sha256};

pin_project! {
    /// The request body behind [`ServiceAuth`](crate::ServiceAuth): the original stream where
    /// nothing was verified, or the exact bytes whose digest was verified.
    pub struct VerifiedBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        // Not read by the verifier (mode `off`, exempt path).
        Passthrough { #[pin] body: B },
        // Read in full and checked against `Content-Digest` (or read for a `log_only` check).
        Buffered { data: Option<Bytes> },
        // `log_only` over the size cap: the part already read, then the rest of the stream.
        Partial { head: Option<Bytes>, rest: Pin<Box<B>> },
    }
}

impl<B> VerifiedBody<B> {
    /// A fully buffered body.
    pub fn buffered(data: Bytes) -> Self {
        Self {
            kind: Kind::Buffered {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// The original body, not read by the verifier.
    pub fn passthrough(body: B) -> Self {
        Self {
            kind: Kind::Passthrough { body },
        }
    }

    /// The original body back when the verifier did not read it (mode `off`, an exempt
    /// path), or `self` otherwise. Lets the next layer go on with the body it had
    /// instead of wrapping (and boxing) this one:
    ///
    /// ```
    /// use svc_hmac::VerifiedBody;
    ///
    /// let body = VerifiedBody::passthrough(String::from("as sent"));
    /// assert_eq!(body.into_passthrough().ok().as_deref(), Some("as sent"));
    /// let read = VerifiedBody::<String>::buffered("checked".into());
    /// assert!(read.into_passthrough().is_err());
    /// ```
    pub fn into_passthrough(self) -> Result<B, Self> {
        match self.kind {
            Kind::Passthrough { body } => Ok(body),
            kind => Err(Self { kind }),
        }
    }

    /// `head` (already read), then the rest of `rest`.
    pub(crate) fn partial(head: Bytes, rest: Pin<Box<B>>) -> Self {
        Self {
            kind: Kind::Partial {
                head: Some(head),
                rest,
            },
        }
    }
}

fn to_bytes<D: Buf>(frame: Frame<D>) -> Frame<Bytes> {
    frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
}

impl<B> Body for VerifiedBody<B>
where
    B: Body,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Passthrough { body } => {
                Poll::Ready(ready!(body.poll_frame(cx)).map(|r| r.map(to_bytes)))
            }
            KindProj::Buffered { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Partial { head, rest } => {
                if let Some(h) = head.take() {
                    return Poll::Ready(Some(Ok(Frame::data(h))));
                }
                Poll::Ready(ready!(rest.as_mut().poll_frame(cx)).map(|r| r.map(to_bytes)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passthrough { body } => body.is_end_stream(),
            Kind::Buffered { data } => data.is_none(),
            Kind::Partial { head, rest } => head.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough { body } => body.size_hint(),
            Kind::Buffered { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Partial { head, rest } => {
                let extra = head.as_ref().map_or(0, |h| h.len() as u64);
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + extra);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + extra);
                }
                hint
            }
        }
    }
}

/// The outcome of reading a body with a cap.
pub(crate) enum Read<B> {
    /// The whole body and its SHA-256.
    Done { bytes: Bytes, hash: [u8; 32] },
    /// More than the cap: what was read, and the rest of the stream.
    TooLarge { head: Bytes, rest: Pin<Box<B>> },
    /// The stream failed.
    Failed,
}

/// Reads `body` up to `cap` bytes, hashing as it streams. Trailers are dropped.
pub(crate) async fn read_capped<B>(body: B, cap: usize) -> Read<B>
where
    B: Body,
{
    let mut body = Box::pin(body);
    let mut hasher = Sha256::new();
    let mut first: Option<Bytes> = None;
    let mut more: Option<BytesMut> = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Read::Failed;
        };
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        let chunk = data.copy_to_bytes(data.remaining());
        len += chunk.len();
        hasher.update(&chunk);
        match (&mut first, &mut more) {
            (None, _) => first = Some(chunk),
            (Some(f), None) => {
                let mut buf = BytesMut::with_capacity((f.len() + chunk.len()).min(cap.max(1)));
                buf.extend_from_slice(f);
                buf.extend_from_slice(&chunk);
                more = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&chunk),
        }
        if len > cap {
            let head = more.map_or_else(|| first.unwrap_or_default(), BytesMut::freeze);
            return Read::TooLarge { head, rest: body };
        }
    }
    let bytes = more.map_or_else(|| first.unwrap_or_default(), BytesMut::freeze);
    Read::Done {
        bytes,
        hash: hasher.finalize().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use futures_util::stream;
    use http_body_util::{Full, StreamBody};

    fn chunks(parts: &[&'static [u8]]) -> impl Body<Data = Bytes, Error = std::io::Error> {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        StreamBody::new(stream::iter(frames))
    }

    #[test]
    fn reads_and_hashes_chunked_bodies() {
        let Read::Done { bytes, hash } = read_capped(chunks(&[b"hel", b"lo", b"!"]), 6)
            .now_or_never()
            .unwrap()
        else {
            panic!("expected Done");
        };
        assert_eq!(&bytes[..], b"hello!");
        assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(b"hello!")));
    }

    #[test]
    fn over_the_cap_keeps_the_rest_of_the_stream() {
        let Read::TooLarge { head, rest } = read_capped(chunks(&[b"abcd", b"efgh", b"ij"]), 6)
            .now_or_never()
            .unwrap()
        else {
            panic!("expected TooLarge");
        };
        assert_eq!(&head[..], b"abcdefgh");
        let body = VerifiedBody::partial(head, rest);
        let all = body.collect().now_or_never().unwrap().unwrap().to_bytes();
        assert_eq!(&all[..], b"abcdefghij");
    }

    #[test]
    fn passthrough_and_buffered_bodies() {
        let p: VerifiedBody<Full<Bytes>> =
            VerifiedBody::passthrough(Full::new(Bytes::from_static(b"x")));
        assert_eq!(p.size_hint().exact(), Some(1));
        assert_eq!(
            &p.collect().now_or_never().unwrap().unwrap().to_bytes()[..],
            b"x"
        );
        let b: VerifiedBody<Full<Bytes>> = VerifiedBody::buffered(Bytes::new());
        assert!(b.is_end_stream());
    }
}
