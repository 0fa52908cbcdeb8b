//! [`ResponseFuture`]: buffers a captured request body, runs the inner service, and
//! hands the audit record on to the response body.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use gw_problem::{Problem, ProblemType};
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::AuditBody;
use crate::pending::Pending;
use crate::service::start;

pin_project! {
    /// Response future of [`Audit`](crate::Audit).
    pub struct ResponseFuture<S, ReqB, F> {
        #[pin]
        state: State<S, ReqB, F>,
        pending: Option<Pending>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqB, F> {
        Collecting {
            #[pin]
            body: ReqB,
            // Boxed: only JSON requests collect, and the future stays small for the rest.
            rest: Box<Collect<S>>,
        },
        Running { #[pin] future: F },
        Rejected { problem: Option<Problem> },
        Done,
    }
}

impl<S, ReqB, F> ResponseFuture<S, ReqB, F> {
    pub(crate) fn running(future: F, pending: Option<Pending>) -> Self {
        Self {
            state: State::Running { future },
            pending,
        }
    }

    pub(crate) fn rejected(problem: Problem) -> Self {
        Self {
            state: State::Rejected {
                problem: Some(problem),
            },
            pending: None,
        }
    }

    pub(crate) fn collecting(
        parts: Parts,
        body: ReqB,
        service: S,
        pending: Pending,
        cap: usize,
    ) -> Self {
        Self {
            state: State::Collecting {
                body,
                rest: Box::new(Collect {
                    parts: Some(parts),
                    buf: BytesMut::new(),
                    service: Some(service),
                    cap,
                }),
            },
            pending: Some(pending),
        }
    }
}

struct Collect<S> {
    parts: Option<Parts>,
    buf: BytesMut,
    service: Option<S>,
    cap: usize,
}

enum Collected {
    Done,
    Failed(ProblemType, &'static str),
}

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB, S::Future>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ReqB: Body + From<Bytes>,
    ResB: Body + From<Bytes>,
{
    type Output = Result<Response<AuditBody<ResB>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Collecting { mut body, rest } => {
                    let Collect {
                        parts,
                        buf,
                        service,
                        cap,
                    } = &mut **rest;
                    let collected = loop {
                        match ready!(body.as_mut().poll_frame(cx)) {
                            Some(Ok(frame)) => {
                                if let Ok(mut data) = frame.into_data() {
                                    while data.has_remaining() {
                                        let chunk = data.chunk();
                                        buf.extend_from_slice(chunk);
                                        let n = chunk.len();
                                        data.advance(n);
                                    }
                                    if buf.len() > *cap {
                                        break Collected::Failed(
                                            ProblemType::PAYLOAD_TOO_LARGE,
                                            "request-body-too-large",
                                        );
                                    }
                                }
                            }
                            Some(Err(_)) => {
                                break Collected::Failed(
                                    ProblemType::BAD_REQUEST,
                                    "request-body-error",
                                );
                            }
                            None => break Collected::Done,
                        }
                    };
                    let parts = parts.take().expect("collecting state holds the parts");
                    let mut service = service.take().expect("collecting state holds the service");
                    let bytes = std::mem::take(buf).freeze();
                    match collected {
                        Collected::Done => {
                            if let Some(p) = this.pending.as_mut() {
                                p.capture_body(&bytes);
                            }
                            let req = Request::from_parts(parts, ReqB::from(bytes));
                            let future = start(&mut service, req, this.pending);
                            this.state.set(State::Running { future });
                        }
                        Collected::Failed(kind, code) => {
                            let res: Response<ResB> = Problem::new(kind)
                                .code(code)
                                .with_extensions(&parts.extensions)
                                .instance(parts.uri.path())
                                .into_response();
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(respond(res, this.pending.take())));
                        }
                    }
                }
                StateProj::Running { future } => {
                    let polled = catch_unwind(AssertUnwindSafe(|| future.poll(cx)));
                    let pending = this.pending.take();
                    let out = match polled {
                        Ok(Poll::Pending) => {
                            *this.pending = pending;
                            return Poll::Pending;
                        }
                        Ok(Poll::Ready(Ok(res))) => Ok(respond(res, pending)),
                        Ok(Poll::Ready(Err(e))) => {
                            if let Some(mut p) = pending {
                                p.fail(ProblemType::INTERNAL_SERVER_ERROR, "inner-error");
                                p.finish(false);
                            }
                            Err(e)
                        }
                        Err(panic) => {
                            if let Some(mut p) = pending {
                                p.fail(ProblemType::INTERNAL_SERVER_ERROR, "panic");
                                p.finish(false);
                            }
                            this.state.set(State::Done);
                            resume_unwind(panic)
                        }
                    };
                    this.state.set(State::Done);
                    return Poll::Ready(out);
                }
                StateProj::Rejected { problem } => {
                    let problem = problem.take().expect("polled after completion");
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(problem.into_response().map(AuditBody::plain)));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

fn respond<B: Body>(res: Response<B>, pending: Option<Pending>) -> Response<AuditBody<B>> {
    match pending {
        Some(mut p) => {
            p.response(&res);
            res.map(|b| AuditBody::new(b, p))
        }
        None => res.map(AuditBody::plain),
    }
}
