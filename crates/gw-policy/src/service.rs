//! [`Policy`]: the service that evaluates the three policies concurrently.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use bytes::Bytes;
use gw_core::{Decisions, Principal, Stopwatch, TargetBackend, normalize_path};
use gw_problem::Problem;
use http::request::Parts;
use http::{Request, Response};
use tower_service::Service;

use crate::config::{FLAG_GOVERNOR_APPROVAL, FLAG_SANDBOX_ROUTING, FLAG_TRIAL_MODE};
use crate::eval::{Evaluated, Headers, Rejection, Subject, disabled, settle, target_value, timed};
use crate::future::ResponseFuture;
use crate::layer::PolicyLayer;
use crate::undo::{Undo, Used, compensate};
use crate::{governor, sandbox, trial};

/// Middleware that applies trial mode, governor approval and sandbox routing; built by
/// [`PolicyLayer`].
#[derive(Debug, Clone)]
pub struct Policy<S> {
    inner: S,
    config: Arc<PolicyLayer>,
    /// All stores answer on the first poll: evaluate inside `call`.
    inline: bool,
}

impl<S> Policy<S> {
    pub(crate) fn new(inner: S, config: Arc<PolicyLayer>) -> Self {
        let inline = config.trial.store.is_local() && config.governor.store.is_local();
        Self {
            inner,
            config,
            inline,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Policy<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    ReqB: Send + 'static,
    ResB: From<Bytes>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let req = if self.inline {
            // In-process stores answer at once: evaluate here, without futures.
            let (mut parts, body) = req.into_parts();
            match evaluate_inline(&self.config, &mut parts) {
                Some(Ok((headers, used))) => {
                    let undo = used.map(|used| Undo::new(&self.config, used));
                    let fut = self.inner.call(Request::from_parts(parts, body));
                    return ResponseFuture::calling(fut, headers, undo);
                }
                Some(Err(rejection)) => return ResponseFuture::rejected(rejection),
                None => {
                    // A store that claimed to be local was not; evaluate asynchronously.
                    tracing::error!("a store with is_local() == true returned a pending future");
                    Request::from_parts(parts, body)
                }
            }
        } else {
            req
        };
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let eval = Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let outcome = evaluate(&config, &mut parts)
                .await
                .map(|(headers, used)| (headers, used.map(|used| Undo::new(&config, used))));
            (Request::from_parts(parts, body), outcome)
        });
        ResponseFuture::evaluating(eval, inner)
    }
}

/// What every evaluation starts from: the time, and which policies are switched on.
struct Start {
    now: SystemTime,
    started: Stopwatch,
    trial_on: bool,
    governor_on: bool,
    sandbox_on: bool,
}

impl Start {
    fn new(cfg: &PolicyLayer) -> Self {
        let flags = &cfg.flags;
        Self {
            now: cfg.clock.now(),
            started: Stopwatch::start(),
            trial_on: flags.is_enabled(FLAG_TRIAL_MODE, true),
            governor_on: flags.is_enabled(FLAG_GOVERNOR_APPROVAL, true),
            sandbox_on: flags.is_enabled(FLAG_SANDBOX_ROUTING, true),
        }
    }
}

/// An admitted request: the headers for its response and what it used up.
type Admitted = (Headers, Option<Used>);

/// Evaluates the enabled policies concurrently; on admission applies their effects to the
/// request and returns the headers for the response and what the request used up.
pub(crate) async fn evaluate(cfg: &PolicyLayer, parts: &mut Parts) -> Result<Admitted, Rejection> {
    let start = Start::new(cfg);
    let Start { now, started, .. } = start;
    let evaluated = {
        let shared: &Parts = parts;
        let path = match normalize_path(shared.uri.path()) {
            Ok(path) => path,
            Err(e) => return Err(Rejection::problem(Problem::from(e), shared)),
        };
        let req = Subject {
            parts: shared,
            principal: shared.extensions.get::<Principal>(),
            path: &path,
        };
        // The three run concurrently, polled in place (no combinator to move them into).
        let trial = pin!(async {
            if !start.trial_on {
                return disabled("trial_mode");
            }
            let settings = cfg.trial.settings;
            let fut = pin!(trial::evaluate(&cfg.trial, req, now));
            let (result, latency) = timed(settings, started, fut).await;
            settle("trial_mode", settings, shared, latency, result)
        });
        let governor = pin!(async {
            if !start.governor_on {
                return disabled("governor_approval");
            }
            let settings = cfg.governor.settings;
            let fut = pin!(governor::evaluate(&cfg.governor, req, now));
            let (result, latency) = timed(settings, started, fut).await;
            settle("governor_approval", settings, shared, latency, result)
        });
        let sandbox = pin!(async {
            if !start.sandbox_on {
                return disabled("sandbox_routing");
            }
            sandbox_routing(cfg, req)
        });
        join3_in_place(trial, governor, sandbox).await
    };
    let mut evaluated = evaluated.into();
    match finish(cfg, parts, &start, &mut evaluated) {
        Ok(headers) => Ok((headers, Used::take(&mut evaluated))),
        Err(rejection) => {
            let [t, g, _] = &evaluated;
            let (acquired, approval) =
                (t.effects.acquired.as_deref(), g.effects.approval.as_deref());
            compensate(cfg, acquired, approval, now).await;
            Err(*rejection)
        }
    }
}

/// [`evaluate`] for in-process stores, without futures, timers or joins: each policy
/// plans, calls its store, and concludes in turn. `None` if a store's future was not
/// ready after all (nothing is applied to the request then).
fn evaluate_inline(cfg: &PolicyLayer, parts: &mut Parts) -> Option<Result<Admitted, Rejection>> {
    let start = Start::new(cfg);
    let now = start.now;
    let mut evaluated = {
        let shared: &Parts = parts;
        let path = match normalize_path(shared.uri.path()) {
            Ok(path) => path,
            Err(e) => return Some(Err(Rejection::problem(Problem::from(e), shared))),
        };
        let req = Subject {
            parts: shared,
            principal: shared.extensions.get::<Principal>(),
            path: &path,
        };
        let t = if start.trial_on {
            let trial = &cfg.trial;
            let result = match trial::plan(trial, req, now) {
                trial::Plan::Decided(result) => Ok(result),
                trial::Plan::Count(task) => {
                    let (store, key, reset_at) = (&trial.store, &task.key, task.reset_at());
                    let usage = match store.acquire_now(key, trial.limit, reset_at) {
                        Some(usage) => usage,
                        None => ready_now(store.acquire(key, trial.limit, reset_at))?,
                    };
                    usage.map(|usage| trial::conclude(trial, shared, task, usage))
                }
            };
            settle("trial_mode", trial.settings, shared, None, Some(result))
        } else {
            disabled("trial_mode")
        };
        let g = if start.governor_on {
            let governor = &cfg.governor;
            let result = match governor::plan(governor, req) {
                Err(result) => Ok(result),
                Ok(sensitive) => {
                    let check = match sensitive.token {
                        Ok(token) => {
                            let binding = sensitive.binding(req.path);
                            match ready_now(governor.store.consume(token, binding, now)) {
                                Some(consumed) => consumed.map(Some),
                                None => {
                                    // The asynchronous path evaluates again from the
                                    // start: give back the task counted above first.
                                    let acquired = t.effects.acquired.as_deref();
                                    let _ = ready_now(compensate(cfg, acquired, None, now));
                                    return None;
                                }
                            }
                        }
                        Err(_) => Ok(None),
                    };
                    check.map(|c| governor::conclude(governor, req, &sensitive, c))
                }
            };
            settle(
                "governor_approval",
                governor.settings,
                shared,
                None,
                Some(result),
            )
        } else {
            disabled("governor_approval")
        };
        let s = if start.sandbox_on {
            sandbox_routing(cfg, req)
        } else {
            disabled("sandbox_routing")
        };
        [t, g, s]
    };
    Some(match finish(cfg, parts, &start, &mut evaluated) {
        Ok(headers) => Ok((headers, Used::take(&mut evaluated))),
        Err(rejection) => {
            let [t, g, _] = &evaluated;
            let (acquired, approval) =
                (t.effects.acquired.as_deref(), g.effects.approval.as_deref());
            if ready_now(compensate(cfg, acquired, approval, now)).is_none() {
                tracing::error!("a store with is_local() == true returned a pending future");
            }
            Err(*rejection)
        }
    })
}

/// Polls `fut` once: its output if it is ready (a local store's always is).
fn ready_now<F: Future>(fut: F) -> Option<F::Output> {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// Sandbox routing: pure and synchronous, so nothing to time out.
fn sandbox_routing(cfg: &PolicyLayer, req: Subject<'_>) -> Evaluated {
    let result = sandbox::evaluate(&cfg.sandbox, req.principal);
    settle(
        "sandbox_routing",
        cfg.sandbox.settings,
        req.parts,
        None,
        Some(result),
    )
}

/// Records the decisions of trial, governor and sandbox (in that order); then returns
/// the first rejection, or applies their effects to the request and returns the headers
/// for the response.
fn finish(
    cfg: &PolicyLayer,
    parts: &mut Parts,
    start: &Start,
    [t, g, s]: &mut [Evaluated; 3],
) -> Result<Headers, Box<Rejection>> {
    // One clock read for every policy that did not have to wait (all of them in memory).
    if let Some(log) = parts.extensions.get::<Decisions>() {
        let all = start.started.elapsed();
        log.extend(
            [&mut *t, &mut *g, &mut *s]
                .into_iter()
                .filter_map(|e| e.take_decision(all)),
        );
    }
    if let Some(rejection) = t.rejection.take().or_else(|| g.rejection.take()) {
        return Err(rejection);
    }
    let target = s.effects.target;
    match target {
        Some(target) => {
            parts.extensions.insert(target);
            // Replaces whatever the client sent: routing is the gateway's call.
            parts
                .headers
                .insert(TargetBackend::HEADER, target_value(target));
        }
        // Never forward a client's own choice.
        None if start.sandbox_on => {
            parts.headers.remove(&TargetBackend::HEADER);
        }
        None => {}
    }
    Ok(Headers {
        ratelimit: t
            .effects
            .quota
            .map(|quota| trial::ratelimit(&cfg.trial, quota)),
        target,
    })
}

/// Polls three pinned futures until all are done, without moving them.
async fn join3_in_place<A: Future, B: Future, C: Future>(
    mut a: Pin<&mut A>,
    mut b: Pin<&mut B>,
    mut c: Pin<&mut C>,
) -> (A::Output, B::Output, C::Output) {
    let (mut ra, mut rb, mut rc) = (None, None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if rc.is_none()
            && let Poll::Ready(v) = c.as_mut().poll(cx)
        {
            rc = Some(v);
        }
        if ra.is_some() && rb.is_some() && rc.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    match (ra, rb, rc) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => unreachable!("poll_fn returns only once all three are done"),
    }
}
