//! [`Budget`]: the service the layer wraps around the handler.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gw_core::{Decision, Decisions, Outcome, Principal, normalize_path};
use gw_problem::{Problem, ProblemType};
use http::{Extensions, Request, Response};
use tower_service::Service;

use crate::extract::RequestInfo;
use crate::future::ResponseFuture;
use crate::inflight::ReserveInFlight;
use crate::layer::{Config, ENABLE_FLAG};
use crate::outcome::{Next, Pending};
use crate::period::Period;
use crate::scope::{Charge, ScopeKey, valid_id};

/// Name of the layer in [`Decisions`].
pub(crate) const LAYER: &str = "budget";
/// Name of the policy in [`Decisions`] (the reference system's OPA policy).
pub(crate) const POLICY: &str = "agent_budget";

/// Middleware that charges requests against spend budgets; see [`BudgetLayer`](crate::BudgetLayer).
pub struct Budget<S> {
    inner: S,
    cfg: Arc<Config>,
}

impl<S> Budget<S> {
    pub(crate) fn new(inner: S, cfg: Arc<Config>) -> Self {
        Self { inner, cfg }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone> Clone for Budget<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            cfg: self.cfg.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Budget<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

enum Plan<B> {
    Skip(&'static str),
    Reject(Response<B>),
    Reserve(Pending),
}

impl<S, ReqB, ResBody> Service<Request<ReqB>> for Budget<S>
where
    S: Service<Request<ReqB>, Response = Response<ResBody>> + Clone,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The inner service is called now on every path but the asynchronous reservation,
        // which takes the readied service and leaves a clone in its place.
        let inner = &mut self.inner;
        let started = DecisionTimer::start(req.extensions());
        match plan(&self.cfg, &req, started) {
            Plan::Skip(reason) => {
                record(&req, Outcome::Skip, reason, started.elapsed());
                ResponseFuture::calling(inner.call(req), None)
            }
            Plan::Reject(res) => ResponseFuture::ready(res),
            Plan::Reserve(pending) => {
                let reserve = pending.reserve_request();
                if let Some(outcome) = self.cfg.store.reserve_sync(&reserve) {
                    return match pending.resolve(outcome, &req) {
                        Next::Call(mut ticket) => {
                            let fut = inner.call(req);
                            if let Some(t) = &mut ticket {
                                t.handed_on();
                            }
                            ResponseFuture::calling(fut, ticket)
                        }
                        Next::Respond(res) => ResponseFuture::ready(res),
                    };
                }
                let fut = ReserveInFlight::new(
                    self.cfg.store.reserve(reserve),
                    self.cfg.store.clone(),
                    pending.release_request(),
                );
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::reserving(fut, inner, req, pending)
            }
        }
    }
}

fn plan<ReqB, B: From<Bytes>>(
    cfg: &Arc<Config>,
    req: &Request<ReqB>,
    started: DecisionTimer,
) -> Plan<B> {
    if let Some(flags) = &cfg.flags
        && !flags.is_enabled(ENABLE_FLAG, true)
    {
        return Plan::Skip("budget-disabled");
    }
    let path = match normalize_path(req.uri().path()) {
        Ok(p) => p,
        Err(e) => {
            record(req, Outcome::Deny, "ambiguous-path", started.elapsed());
            return Plan::Reject(Problem::from(e).response_for(req));
        }
    };
    if cfg.skip.matches(req.method(), &path) {
        return Plan::Skip("exempt-route");
    }
    let info = RequestInfo {
        method: req.method(),
        path: &path,
        headers: req.headers(),
        extensions: req.extensions(),
    };
    let now = cfg.clock.unix_seconds();
    let charge = |key: ScopeKey, limit: u64| {
        let expires_at = key.period.ends_at(cfg.offset);
        Charge {
            key,
            limit,
            expires_at,
        }
    };
    let period = |kind| Period::containing(kind, now, cfg.offset);
    let platform = charge(
        ScopeKey::platform(period(cfg.platform.period)),
        cfg.platform.limit,
    );
    let mut agent = None;
    if let Some(id) = cfg.agent_id.agent_id(&info) {
        if !valid_id(&id) {
            return Plan::Reject(bad_id(req, "invalid-agent-id", started));
        }
        agent = Some(charge(
            ScopeKey::agent(id, period(cfg.agent.period)),
            cfg.agent.limit,
        ));
    }
    let mut customer = None;
    if let (Some(c), Some(p)) = (&cfg.customer, req.extensions().get::<Principal>())
        && !p.customer_id.is_empty()
    {
        if !valid_id(&p.customer_id) {
            return Plan::Reject(bad_id(req, "invalid-customer-id", started));
        }
        customer = Some(charge(
            ScopeKey::customer(&*p.customer_id, period(c.period)),
            c.limit,
        ));
    }
    // One allocation, straight into the shared slice.
    let charges: Arc<[Charge]> = match (agent, customer) {
        (None, None) => Arc::new([platform]),
        (Some(a), None) => Arc::new([platform, a]),
        (None, Some(c)) => Arc::new([platform, c]),
        (Some(a), Some(c)) => Arc::new([platform, a, c]),
    };
    let thresholds = match &cfg.flags {
        Some(f) => cfg.thresholds.with_flags(&**f),
        None => cfg.thresholds,
    };
    Plan::Reserve(Pending {
        cfg: cfg.clone(),
        charges,
        amount: cfg.cost.estimate(&info),
        thresholds,
        now,
        started,
    })
}

fn bad_id<ReqB, B: From<Bytes>>(
    req: &Request<ReqB>,
    code: &'static str,
    started: DecisionTimer,
) -> Response<B> {
    record(req, Outcome::Deny, code, started.elapsed());
    Problem::new(ProblemType::BAD_REQUEST)
        .code(code)
        .detail("The agent or customer id is not usable for budgeting.")
        .response_for(req)
}

pub(crate) fn record<ReqB>(
    req: &Request<ReqB>,
    outcome: Outcome,
    reason: &'static str,
    latency: Duration,
) {
    Decisions::record(
        req.extensions(),
        Decision::new(LAYER, POLICY, outcome, latency).reason(reason),
    );
}

/// Measures decision latency, only when someone keeps the decisions (no clock reads
/// otherwise).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecisionTimer(Option<gw_core::Stopwatch>);

impl DecisionTimer {
    pub(crate) fn start(ext: &Extensions) -> Self {
        Self(ext.get::<Decisions>().map(|_| gw_core::Stopwatch::start()))
    }

    pub(crate) fn elapsed(self) -> Duration {
        self.0.map_or(Duration::ZERO, |t| t.elapsed())
    }
}
