//! A request body whose stream fails part way, in every mode that reads it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::*;
use gw_core::Decisions;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use svc_hmac::{Mode, ServiceAuthLayer, VerifiedBody};
use tower::{ServiceBuilder, ServiceExt};

type Failing = StreamBody<
    futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>,
>;

/// A signed PUT whose body stream sends five bytes, then fails (a client reset).
fn reset_mid_body() -> Request<Failing> {
    let body: &[u8] = b"{\"task\":42}";
    let (mut parts, ()) = Request::put("/api/npu/r").body(()).unwrap().into_parts();
    signer().sign(&mut parts, body).unwrap();
    parts.extensions.insert(Decisions::new());
    let frames = vec![
        Ok(Frame::data(Bytes::copy_from_slice(&body[..5]))),
        Err(std::io::Error::other("client reset")),
    ];
    Request::from_parts(parts, StreamBody::new(futures_util::stream::iter(frames)))
}

#[tokio::test]
async fn a_body_that_fails_to_read_is_a_400_in_every_mode_that_reads_it() {
    for mode in [Mode::Enforce, Mode::LogOnly] {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let svc = ServiceBuilder::new()
            .layer(ServiceAuthLayer::new(keys()).default_mode(mode))
            .service_fn(move |req: Request<VerifiedBody<Failing>>| {
                seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    // Never reached: it would see a truncated body as complete.
                    let body = req.into_body().collect().await;
                    let text = format!("{:?}", body.map(|c| c.to_bytes()));
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(text))))
                }
            });
        let req = reset_mid_body();
        let decisions = req.extensions().get::<Decisions>().unwrap().clone();
        let (status, body) = json(svc.oneshot(req).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{mode:?}: {body}");
        assert_eq!(body["code"], "body-unreadable", "{mode:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "{mode:?}: handler called");
        let d = serde_json::to_value(decisions.snapshot()).unwrap();
        assert_eq!(d["decisions"][0]["outcome"], "deny", "{mode:?}: {d}");
        assert_eq!(d["decisions"][0]["reason"], "body-unreadable");
    }

    // Mode `off` does not read the body: the handler gets the stream and its error.
    let svc = ServiceBuilder::new()
        .layer(ServiceAuthLayer::new(keys()).default_mode(Mode::Off))
        .service_fn(|req: Request<VerifiedBody<Failing>>| async move {
            let err = req.into_body().collect().await.unwrap_err();
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                err.to_string(),
            ))))
        });
    let res = svc.oneshot(reset_mid_body()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&text[..], b"client reset");
}
