//! [`CallbackLayer`]: answers the callback route in front of any service.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use gw_core::normalize_path;
use gw_problem::Problem;
use http::{Method, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::{RouteError, Shared};
use crate::fsm::TransitionTable;
use crate::future::{CallbackFuture, ResponseFuture};
use crate::handler;
use crate::secret::CallbackSecrets;
use crate::service::CallbackService;
use crate::store::JobStore;
use crate::webhook::WebhookKeys;

/// Intercepts `POST` on the callback route and answers it like [`CallbackService`];
/// every other request goes to the inner service untouched.
///
/// `POST` requests with an ambiguous path are refused with 400 `ambiguous-path`, as in
/// every gw layer; other methods pass on without any path work.
#[derive(Clone, Debug)]
pub struct CallbackLayer {
    service: CallbackService,
}

impl CallbackLayer {
    /// A layer accepting `secrets` and applying callbacks to `store` (defaults as in
    /// [`CallbackService::new`]).
    pub fn new(secrets: CallbackSecrets, store: impl JobStore) -> Self {
        Self {
            service: CallbackService::new(secrets, store),
        }
    }

    /// A layer authenticating by Standard Webhooks signature (see
    /// [`CallbackService::standard_webhooks`]).
    pub fn standard_webhooks(keys: WebhookKeys, store: impl JobStore) -> Self {
        Self {
            service: CallbackService::standard_webhooks(keys, store),
        }
    }

    /// Uses `table` as the status machine.
    pub fn transitions(self, table: TransitionTable) -> Self {
        Self {
            service: self.service.transitions(table),
        }
    }

    /// Accepts bodies up to `bytes` long.
    pub fn body_limit(self, bytes: usize) -> Self {
        Self {
            service: self.service.body_limit(bytes),
        }
    }

    /// Intercepts `pattern` instead of [`DEFAULT_ROUTE`](crate::DEFAULT_ROUTE).
    pub fn route(self, pattern: &str) -> Result<Self, RouteError> {
        Ok(Self {
            service: self.service.route(pattern)?,
        })
    }

    /// The endpoint this layer answers with, e.g. to mount it elsewhere too.
    pub fn service(&self) -> CallbackService {
        self.service.clone()
    }
}

impl<B> From<CallbackService<B>> for CallbackLayer {
    fn from(service: CallbackService<B>) -> Self {
        Self {
            service: service.response_body(),
        }
    }
}

impl<S> Layer<S> for CallbackLayer {
    type Service = Callback<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Callback {
            inner,
            shared: self.service.shared.clone(),
        }
    }
}

/// The service built by [`CallbackLayer`].
#[derive(Clone, Debug)]
pub struct Callback<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Callback<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    ReqB: Body + Send + 'static,
    ReqB::Data: Send,
    ReqB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResB: From<Bytes> + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // Only POST can be the callback: everything else passes on without path work.
        let job_id = if req.method() == Method::POST {
            match normalize_path(req.uri().path()) {
                Ok(path) => self.shared.job_id(&path).map(str::to_owned),
                Err(e) => {
                    let res = Problem::from(e).response_for(&req);
                    return ResponseFuture::callback(CallbackFuture::ready(res));
                }
            }
        } else {
            None
        };
        match job_id {
            Some(job_id) => ResponseFuture::callback(handler::handle(&self.shared, req, job_id)),
            // Called now, while the service is the one `poll_ready` readied: no clone.
            None => ResponseFuture::inner(self.inner.call(req)),
        }
    }
}
