//! [`CallbackService`]: the endpoint, to mount at the callback route.

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use gw_core::normalize_path;
use gw_problem::{Problem, ProblemType};
use http::header::{ALLOW, HeaderValue};
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_service::Service;

use crate::config::{Auth, RouteError, Shared};
use crate::fsm::TransitionTable;
use crate::future::CallbackFuture;
use crate::handler::{self, codes};
use crate::secret::CallbackSecrets;
use crate::store::JobStore;
use crate::webhook::WebhookKeys;

/// The callback endpoint: `POST /internal/jobs/{job_id}/status` (route configurable).
///
/// Checks, in order: the path is the route (else 404 `RESOURCE_NOT_FOUND`), the method
/// is `POST` (else 405), the secret (401), the body (409 `VALIDATION_ERROR`), then one
/// atomic [`JobStore::apply`]: 404, 200 replay, 409 `EVENT_ID_PAYLOAD_MISMATCH`,
/// `CALLBACK_OUT_OF_ORDER`, `FSM_TRANSITION_INVALID`, or 204. Store failures answer 503,
/// a failed [`Transition`](crate::Transition) hook 500.
///
/// `B` is the response body type (`Full<Bytes>` unless changed with
/// [`response_body`](Self::response_body), e.g. to `axum::body::Body`).
pub struct CallbackService<B = Full<Bytes>> {
    pub(crate) shared: Arc<Shared>,
    _body: PhantomData<fn() -> B>,
}

impl<B> Clone for CallbackService<B> {
    fn clone(&self) -> Self {
        Self::from_shared(self.shared.clone())
    }
}

impl<B> fmt::Debug for CallbackService<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CallbackService")
            .field(&self.shared)
            .finish()
    }
}

impl CallbackService {
    /// An endpoint accepting `secrets`, applying callbacks to `store`, with the default
    /// route, [`TransitionTable::job_lifecycle`] and body limit.
    pub fn new(secrets: CallbackSecrets, store: impl JobStore) -> Self {
        Self::from_shared(Arc::new(Shared::new(
            Auth::Secret(secrets),
            Arc::new(store),
        )))
    }

    /// Like [`new`](Self::new), authenticating callers by
    /// [Standard Webhooks](https://www.standardwebhooks.com/) signature instead of the
    /// shared secret, with `webhook-id` as the event id (the body's `event_id` may be
    /// left out, and if present must equal it). Missing or malformed signature headers
    /// and stale timestamps are refused (401) before the body is read; the signature is
    /// checked (401) after reading the capped body and before parsing it.
    pub fn standard_webhooks(keys: WebhookKeys, store: impl JobStore) -> Self {
        Self::from_shared(Arc::new(Shared::new(Auth::Webhook(keys), Arc::new(store))))
    }
}

impl<B> CallbackService<B> {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            _body: PhantomData,
        }
    }

    /// The same endpoint answering with response body type `B2`.
    pub fn response_body<B2>(self) -> CallbackService<B2> {
        CallbackService::from_shared(self.shared)
    }

    /// Uses `table` as the status machine.
    pub fn transitions(mut self, table: TransitionTable) -> Self {
        Arc::make_mut(&mut self.shared).table = table;
        self
    }

    /// Accepts bodies up to `bytes` long (default
    /// [`DEFAULT_BODY_LIMIT`](crate::DEFAULT_BODY_LIMIT)).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.shared).body_limit = bytes;
        self
    }

    /// Serves `pattern` (a `RouteSet` path with a `{job_id}` segment, no method prefix)
    /// instead of [`DEFAULT_ROUTE`](crate::DEFAULT_ROUTE).
    pub fn route(mut self, pattern: &str) -> Result<Self, RouteError> {
        Arc::make_mut(&mut self.shared).set_route(pattern)?;
        Ok(self)
    }

    /// The route pattern served.
    pub fn route_pattern(&self) -> &str {
        &self.shared.route_spec
    }

    /// The job store.
    pub fn store(&self) -> &dyn JobStore {
        &*self.shared.store
    }
}

impl<ReqB, ResB> Service<Request<ReqB>> for CallbackService<ResB>
where
    ReqB: Body + Send + 'static,
    ReqB::Data: Send,
    ReqB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResB: From<Bytes> + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = Infallible;
    type Future = CallbackFuture<ResB>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let path = match normalize_path(req.uri().path()) {
            Ok(path) => path,
            Err(e) => return CallbackFuture::ready(Problem::from(e).response_for(&req)),
        };
        let Some(job_id) = self.shared.job_id(&path).map(str::to_owned) else {
            let p = Problem::new(ProblemType::NOT_FOUND).code(codes::RESOURCE_NOT_FOUND);
            return CallbackFuture::ready(p.response_for(&req));
        };
        if req.method() != Method::POST {
            let mut res: Response<ResB> = Problem::new(ProblemType::METHOD_NOT_ALLOWED)
                .detail("only POST is allowed")
                .response_for(&req);
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return CallbackFuture::ready(res);
        }
        handler::handle(&self.shared, req, job_id)
    }
}
