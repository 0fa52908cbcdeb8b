//! [`ResponseFuture`]: reserve, call the handler, settle.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::inflight::{ReserveInFlight, SettleInFlight};
use crate::outcome::{Next, Pending, Ticket};

pin_project! {
    /// Response future of [`Budget`](crate::Budget).
    pub struct ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        state: State<S, ReqB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        Ready { res: Option<S::Response> },
        Reserving {
            fut: ReserveInFlight,
            // Boxed: only the store round trip path carries these, and a small enum
            // keeps the in-memory path from copying them around.
            rest: Option<Box<(S, Request<ReqB>, Pending)>>,
        },
        Calling {
            #[pin]
            fut: S::Future,
            ticket: Option<Ticket>,
        },
        Settling {
            fut: SettleInFlight,
            rest: Option<Box<(Result<S::Response, S::Error>, Ticket)>>,
        },
        Done,
    }
}

impl<S, ReqB> ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    pub(crate) fn ready(res: S::Response) -> Self {
        Self {
            state: State::Ready { res: Some(res) },
        }
    }

    pub(crate) fn calling(fut: S::Future, ticket: Option<Ticket>) -> Self {
        Self {
            state: State::Calling { fut, ticket },
        }
    }

    pub(crate) fn reserving(
        fut: ReserveInFlight,
        inner: S,
        req: Request<ReqB>,
        pending: Pending,
    ) -> Self {
        Self {
            state: State::Reserving {
                fut,
                rest: Some(Box::new((inner, req, pending))),
            },
        }
    }
}

const POLLED_AFTER_DONE: &str = "ResponseFuture polled after completion";

impl<S, ReqB, ResBody> Future for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Ready { res } => {
                    let res = res.take().expect(POLLED_AFTER_DONE);
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(res));
                }
                StateProj::Reserving { fut, rest } => {
                    let outcome = ready!(Pin::new(fut).poll(cx));
                    let (mut inner, req, pending) = *rest.take().expect(POLLED_AFTER_DONE);
                    match pending.resolve(outcome, &req) {
                        Next::Call(mut ticket) => {
                            let fut = inner.call(req);
                            if let Some(t) = &mut ticket {
                                t.handed_on();
                            }
                            this.state.set(State::Calling { fut, ticket });
                        }
                        Next::Respond(res) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(res));
                        }
                    }
                }
                StateProj::Calling { fut, ticket } => {
                    let out = ready!(fut.poll(cx));
                    let Some(mut t) = ticket.take() else {
                        this.state.set(State::Done);
                        return Poll::Ready(out);
                    };
                    match t.after(&out) {
                        None => {
                            this.state.set(State::Done);
                            return Poll::Ready(t.finish(out, None));
                        }
                        Some(settle) => {
                            if let Some(settled) = t.store().settle_sync(&settle) {
                                this.state.set(State::Done);
                                return Poll::Ready(t.finish(out, Some(settled)));
                            }
                            let fut = SettleInFlight::new(t.store().settle(settle));
                            this.state.set(State::Settling {
                                fut,
                                rest: Some(Box::new((out, t))),
                            });
                        }
                    }
                }
                StateProj::Settling { fut, rest } => {
                    let settled = ready!(Pin::new(fut).poll(cx));
                    let (out, t) = *rest.take().expect(POLLED_AFTER_DONE);
                    this.state.set(State::Done);
                    return Poll::Ready(t.finish(out, Some(settled)));
                }
                StateProj::Done => panic!("{POLLED_AFTER_DONE}"),
            }
        }
    }
}
