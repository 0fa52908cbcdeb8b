//! [`Rbac`]: the service that decides per request.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gw_core::{
    Decision, Decisions, FailMode, GatewayType, Outcome, Principal, ResourceAction, Stopwatch,
    normalize_path,
};
use gw_problem::{Problem, ProblemType};
use http::{Request, Response};
use tower_service::Service;

use crate::cache::DecisionCache;
use crate::engine::{Authorization, AuthzDecision, AuthzInput};
use crate::future::{RbacHeaders, ResponseFuture};
use crate::layer::{Config, Shared};
use crate::user::UserInfo;

/// The service built by [`RbacLayer`](crate::RbacLayer).
#[derive(Debug, Clone)]
pub struct Rbac<S> {
    inner: S,
    config: Arc<Config>,
    shared: Arc<Shared>,
}

/// What to do with a request.
enum Step<B> {
    /// Not checked (other gateway, flag off, bypass path) or failed open.
    Pass,
    /// Rejected.
    Respond(Response<B>),
    /// Allowed.
    Allow(UserInfo),
    /// Waiting for the engine.
    Pending(Authorization, PendingCtx),
}

/// What the pending path needs to finish: the cache key and the start time.
struct PendingCtx {
    revision: u64,
    principal: Principal,
    resource: String,
    action: String,
    start: Option<Stopwatch>,
    cache: Option<Arc<DecisionCache>>,
}

impl<S> Rbac<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            config,
            shared,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

fn record(
    config: &Config,
    ext: &http::Extensions,
    outcome: Outcome,
    reason: &'static str,
    latency: Duration,
) {
    Decisions::record(
        ext,
        Decision::new("rbac", config.policy_name.clone(), outcome, latency).reason(reason),
    );
}

fn decide<ReqB, ResB: From<Bytes>>(
    config: &Config,
    shared: &Shared,
    req: &Request<ReqB>,
) -> Step<ResB> {
    let ext = req.extensions();
    let gateway = ext.get::<GatewayType>().copied().or(config.gateway);
    if gateway.is_some_and(|g| g != config.runs_on) {
        record(config, ext, Outcome::Skip, "other-gateway", Duration::ZERO);
        return Step::Pass;
    }
    if !config.flags.is_enabled(&config.flag, true) {
        record(config, ext, Outcome::Skip, "flag-off", Duration::ZERO);
        return Step::Pass;
    }
    let path = match normalize_path(req.uri().path()) {
        Ok(p) => p,
        Err(e) => {
            record(config, ext, Outcome::Deny, "ambiguous-path", Duration::ZERO);
            return Step::Respond(Problem::from(e).response_for(req));
        }
    };
    if config.bypass.matches(req.method(), &path) {
        record(config, ext, Outcome::Skip, "bypass", Duration::ZERO);
        return Step::Pass;
    }
    let Some(principal) = ext.get::<Principal>() else {
        record(config, ext, Outcome::Deny, "unauthorized", Duration::ZERO);
        return Step::Respond(
            Problem::new(ProblemType::UNAUTHORIZED)
                .code("unauthorized")
                .detail("authorization needs an authenticated caller")
                .response_for(req),
        );
    };
    let mapper = shared.mapper.load();
    let Some(m) = mapper.map(req.method(), &path) else {
        record(config, ext, Outcome::Deny, "unmapped-route", Duration::ZERO);
        metrics::counter!("gw_rbac_denied_total").increment(1);
        return Step::Respond(deny(req, "route is not mapped to a permission", None));
    };
    // Without a decision log there is nobody to tell the resource or the latency.
    let logging = ext.get::<Decisions>().is_some();
    if logging {
        Decisions::record_resource(
            ext,
            ResourceAction {
                resource: m.resource.to_string(),
                action: m.action.to_string(),
                resource_id: m.resource_id.map(str::to_owned),
            },
        );
    }

    let start = logging.then(Stopwatch::start);
    let revision = shared.revision.load(Ordering::Acquire);
    let cache = shared.cache.load();
    let input = AuthzInput {
        principal,
        resource: &m.resource,
        action: &m.action,
    };
    if let Some(c) = cache.as_ref()
        && let Some(d) = c.get(revision, &input)
    {
        return conclude(
            config,
            shared,
            req,
            principal,
            &m.resource,
            &m.action,
            Ok(d),
            start,
        );
    }
    let mut auth = shared.engine.authorize(&input);
    match auth.try_take() {
        Some(result) => {
            if let (Ok(d), Some(c)) = (&result, cache.as_ref()) {
                c.insert(revision, &input, d.clone());
            }
            conclude(
                config,
                shared,
                req,
                principal,
                &m.resource,
                &m.action,
                result,
                start,
            )
        }
        None => Step::Pending(
            auth,
            PendingCtx {
                revision,
                principal: principal.clone(),
                resource: m.resource.into_owned(),
                action: m.action.into_owned(),
                start,
                cache: cache.clone(),
            },
        ),
    }
}

fn deny<ReqB, ResB: From<Bytes>>(
    req: &Request<ReqB>,
    reason: &str,
    required: Option<String>,
) -> Response<ResB> {
    let mut p = Problem::new(ProblemType::PERMISSION_DENIED)
        .code("permission-denied")
        .detail(reason.to_owned())
        .with("deny_reason", reason);
    if let Some(required) = required {
        p = p.with("required_permission", required);
    }
    p.response_for(req)
}

#[allow(clippy::too_many_arguments)]
fn conclude<ReqB, ResB: From<Bytes>>(
    config: &Config,
    shared: &Shared,
    req: &Request<ReqB>,
    principal: &Principal,
    resource: &str,
    action: &str,
    result: Result<AuthzDecision, gw_core::BackendError>,
    start: Option<Stopwatch>,
) -> Step<ResB> {
    let latency = start.map_or(Duration::ZERO, |s| s.elapsed());
    let ext = req.extensions();
    match result {
        Ok(d) if d.allowed => {
            record(config, ext, Outcome::Allow, "allowed", latency);
            Step::Allow(UserInfo {
                user_id: principal.user_id.clone(),
                email: principal.email.clone(),
                roles: principal.roles.clone(),
                role_level: d.role_level,
                is_admin: d.is_admin,
                permissions: d.permissions,
            })
        }
        Ok(d) => {
            record(config, ext, Outcome::Deny, "permission-denied", latency);
            metrics::counter!("gw_rbac_denied_total").increment(1);
            let reason = d.deny_reason.as_deref().unwrap_or("denied");
            Step::Respond(deny(req, reason, Some(format!("{resource}:{action}"))))
        }
        Err(e) => {
            let engine = shared.engine.name();
            if e.is_unavailable() && config.fail_mode == FailMode::Open {
                tracing::warn!(engine, error = %e, "rbac engine unavailable; failing open");
                metrics::counter!("gw_rbac_fail_open_total", "engine" => engine).increment(1);
                record(
                    config,
                    ext,
                    Outcome::FailOpen,
                    "engine-unavailable",
                    latency,
                );
                Step::Pass
            } else {
                tracing::error!(engine, error = %e, "rbac engine failed; failing closed");
                metrics::counter!("gw_rbac_fail_closed_total", "engine" => engine).increment(1);
                record(
                    config,
                    ext,
                    Outcome::FailClosed,
                    "engine-unavailable",
                    latency,
                );
                Step::Respond(
                    Problem::new(ProblemType::SERVICE_UNAVAILABLE)
                        .code("service-unavailable")
                        .detail("the authorization engine is unavailable; retry later")
                        .with("engine", engine)
                        .response_for(req),
                )
            }
        }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Rbac<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
    ResB: From<Bytes> + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        // Only the pending path calls the inner service later: it takes the readied
        // service and leaves a clone in its place.
        let inner = &mut self.inner;
        match decide(&self.config, &self.shared, &req) {
            Step::Pass => ResponseFuture::inner(inner.call(req), None),
            Step::Respond(res) => ResponseFuture::ready(Ok(res)),
            Step::Allow(user) => {
                let headers = RbacHeaders::for_user(&user);
                req.extensions_mut().insert(user);
                ResponseFuture::inner(inner.call(req), Some(headers))
            }
            Step::Pending(auth, ctx) => {
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let config = self.config.clone();
                let shared = self.shared.clone();
                ResponseFuture::pending(async move {
                    let result = auth.await;
                    if let (Ok(d), Some(c)) = (&result, &ctx.cache) {
                        let input = AuthzInput {
                            principal: &ctx.principal,
                            resource: &ctx.resource,
                            action: &ctx.action,
                        };
                        c.insert(ctx.revision, &input, d.clone());
                    }
                    let step = match req.extensions().get::<Principal>() {
                        Some(p) => conclude(
                            &config,
                            &shared,
                            &req,
                            p,
                            &ctx.resource,
                            &ctx.action,
                            result,
                            ctx.start,
                        ),
                        // The request was ours since the principal was read; keep fail-closed.
                        None => Step::Respond(
                            Problem::new(ProblemType::UNAUTHORIZED)
                                .code("unauthorized")
                                .response_for(&req),
                        ),
                    };
                    match step {
                        Step::Allow(user) => {
                            let headers = RbacHeaders::for_user(&user);
                            req.extensions_mut().insert(user);
                            let mut res = inner.call(req).await?;
                            headers.apply(&mut res);
                            Ok(res)
                        }
                        Step::Respond(res) => Ok(res),
                        Step::Pass | Step::Pending(..) => inner.call(req).await,
                    }
                })
            }
        }
    }
}
