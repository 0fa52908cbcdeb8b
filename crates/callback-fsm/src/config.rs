//! Configuration shared by [`CallbackService`](crate::CallbackService) and
//! [`CallbackLayer`](crate::CallbackLayer).

use std::fmt;
use std::sync::Arc;

use gw_core::{PatternError, RouteSet};

use crate::fsm::TransitionTable;
use crate::secret::CallbackSecrets;
use crate::store::JobStore;
use crate::webhook::WebhookKeys;

/// The route served by default (`{job_id}` is the job id).
pub const DEFAULT_ROUTE: &str = "/internal/jobs/{job_id}/status";

/// Largest body accepted by default, in bytes.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

/// Why a route pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Not a valid `gw_core::RouteSet` pattern.
    Pattern(PatternError),
    /// The pattern has a method prefix (the callback route is always `POST`), a `*`, or no
    /// `{job_id}` segment.
    Shape(&'static str),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pattern(e) => e.fmt(f),
            Self::Shape(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for RouteError {}

/// How callers authenticate.
#[derive(Clone, Debug)]
pub(crate) enum Auth {
    /// `X-Callback-Secret`, before the body is read.
    Secret(CallbackSecrets),
    /// Standard Webhooks signature: headers before the body, signature over the body.
    Webhook(WebhookKeys),
}

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) auth: Auth,
    pub(crate) table: TransitionTable,
    pub(crate) body_limit: usize,
    pub(crate) route: RouteSet,
    pub(crate) route_spec: Arc<str>,
    pub(crate) store: Arc<dyn JobStore>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackConfig")
            .field("auth", &self.auth)
            .field("table", &self.table)
            .field("body_limit", &self.body_limit)
            .field("route", &self.route_spec)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(auth: Auth, store: Arc<dyn JobStore>) -> Self {
        Self {
            auth,
            table: TransitionTable::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            route: RouteSet::from_routes([DEFAULT_ROUTE]).expect("default route is valid"),
            route_spec: Arc::from(DEFAULT_ROUTE),
            store,
        }
    }

    pub(crate) fn set_route(&mut self, pattern: &str) -> Result<(), RouteError> {
        if !pattern.starts_with('/') {
            return Err(RouteError::Shape(
                "the callback route has no method prefix (it is always POST)",
            ));
        }
        if pattern.contains('*') {
            return Err(RouteError::Shape("the callback route has no wildcard"));
        }
        if !pattern.split('/').any(|s| s == "{job_id}") {
            return Err(RouteError::Shape(
                "the callback route needs a {job_id} segment",
            ));
        }
        self.route = RouteSet::from_routes([pattern]).map_err(RouteError::Pattern)?;
        self.route_spec = Arc::from(pattern);
        Ok(())
    }

    /// The job id in `path` (normalized), if `path` is the callback route.
    pub(crate) fn job_id<'p>(&self, path: &'p str) -> Option<&'p str> {
        self.route
            .find(&http::Method::POST, path)
            .and_then(|m| m.param("job_id"))
    }
}
