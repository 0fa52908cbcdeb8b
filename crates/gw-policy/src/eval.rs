//! What one policy evaluation produces, and how timeouts, fail modes, shadow mode and
//! decision records are applied to it uniformly.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use gw_core::{BackendError, Decision, FailMode, Principal, Stopwatch, TargetBackend};
use gw_problem::{Problem, ProblemType};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::config::PolicySettings;
use crate::trial::{RATELIMIT, RATELIMIT_POLICY};

/// Name of this layer in decision records.
pub(crate) const LAYER: &str = "policy";

/// The request as every policy sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub parts: &'a Parts,
    /// The request's principal, looked up once for all policies.
    pub principal: Option<&'a Principal>,
    /// The normalized path.
    pub path: &'a str,
}

/// `RateLimit-Policy` and `RateLimit` values of a counted task.
#[derive(Debug, Clone)]
pub(crate) struct RateLimit {
    pub policy: HeaderValue,
    pub limit: HeaderValue,
}

/// Extra headers, set on the response of an admitted request.
#[derive(Debug, Default)]
pub(crate) struct Headers {
    pub ratelimit: Option<RateLimit>,
    /// `X-Target-Backend`.
    pub target: Option<TargetBackend>,
}

impl Headers {
    /// Sets the headers on a response, replacing those of the same names.
    pub fn apply(self, map: &mut HeaderMap) {
        map.reserve(2 * usize::from(self.ratelimit.is_some()) + usize::from(self.target.is_some()));
        if let Some(r) = self.ratelimit {
            map.insert(RATELIMIT_POLICY.clone(), r.policy);
            map.insert(RATELIMIT.clone(), r.limit);
        }
        if let Some(target) = self.target {
            map.insert(TargetBackend::HEADER, target_value(target));
        }
    }
}

/// The `X-Target-Backend` value of `target`.
pub(crate) fn target_value(target: TargetBackend) -> HeaderValue {
    const SANDBOX: HeaderValue = HeaderValue::from_static(TargetBackend::Sandbox.as_str());
    const PRODUCTION: HeaderValue = HeaderValue::from_static(TargetBackend::Production.as_str());
    match target {
        TargetBackend::Sandbox => SANDBOX,
        TargetBackend::Production => PRODUCTION,
    }
}

/// A rejection, rendered into a response of any body type at the end.
#[derive(Debug)]
pub(crate) struct Rejection {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The problem; its JSON is the body unless `empty_body`.
    pub problem: Problem,
    pub empty_body: bool,
}

impl Rejection {
    /// A problem response for the request described by `parts`.
    pub fn problem(problem: Problem, parts: &Parts) -> Self {
        let problem = problem
            .with_extensions(&parts.extensions)
            .instance(parts.uri.path());
        Self {
            status: problem.status(),
            headers: Vec::new(),
            problem,
            empty_body: false,
        }
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let mut res = if self.empty_body {
            let mut res = Response::new(B::from(Bytes::new()));
            res.extensions_mut().insert(self.problem);
            res
        } else {
            self.problem.into_response()
        };
        *res.status_mut() = self.status;
        for (name, value) in self.headers {
            res.headers_mut().insert(name, value);
        }
        res
    }
}

/// What a policy decided before shadow mode and fail modes are applied.
#[derive(Debug)]
pub(crate) enum Verdict {
    Skip,
    Allow,
    Deny(Box<Rejection>),
}

/// A consumed approval, kept so it can be restored if another policy rejects.
#[derive(Debug)]
pub(crate) struct ConsumedApproval {
    pub token: String,
    pub action: std::sync::Arc<str>,
    pub resource: String,
    pub user_id: String,
    pub expires_at: SystemTime,
}

/// Side effects of an admitted evaluation.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// The quota left after a counted task, for the `RateLimit` response headers.
    pub quota: Option<crate::trial::Quota>,
    /// Where to route the request.
    pub target: Option<TargetBackend>,
    /// A usage key counted by the trial policy.
    pub acquired: Option<String>,
    /// An approval used up by the governor policy.
    pub approval: Option<Box<ConsumedApproval>>,
}

/// The result of evaluating one policy.
#[derive(Debug)]
pub(crate) struct PolicyResult {
    pub verdict: Verdict,
    pub reason: &'static str,
    pub effects: Effects,
}

impl PolicyResult {
    pub fn skip(reason: &'static str) -> Self {
        Self {
            verdict: Verdict::Skip,
            reason,
            effects: Effects::default(),
        }
    }

    pub fn allow(reason: &'static str, effects: Effects) -> Self {
        Self {
            verdict: Verdict::Allow,
            reason,
            effects,
        }
    }

    pub fn deny(reason: &'static str, rejection: Rejection) -> Self {
        Self {
            verdict: Verdict::Deny(Box::new(rejection)),
            reason,
            effects: Effects::default(),
        }
    }
}

/// A policy's final, enforced result, and the decision to record for it.
#[derive(Debug, Default)]
pub(crate) struct Evaluated {
    pub effects: Effects,
    pub rejection: Option<Box<Rejection>>,
    /// Policy, outcome and reason; recorded by the caller once all policies are done.
    pub decision: Option<(&'static str, gw_core::Outcome, &'static str)>,
    /// The policy's own latency if it had to wait; otherwise the caller uses the time
    /// the whole evaluation took.
    pub latency: Option<Duration>,
}

impl Evaluated {
    /// The decision to record, with `latency` unless it measured its own.
    pub fn take_decision(&mut self, latency: Duration) -> Option<Decision> {
        let (policy, outcome, reason) = self.decision.take()?;
        let latency = self.latency.unwrap_or(latency);
        Some(Decision::new(LAYER, policy, outcome, latency).reason(reason))
    }
}

/// The result for a policy switched off by its feature flag.
pub(crate) fn disabled(policy: &'static str) -> Evaluated {
    Evaluated {
        decision: Some((policy, gw_core::Outcome::Skip, "disabled")),
        ..Evaluated::default()
    }
}

/// Runs `fut` for at most `timeout`; `None` when it took longer. A future that is ready
/// on its first poll (every in-memory backend) never starts a timer. The flag says
/// whether it had to wait.
pub(crate) async fn within<F: Future>(
    timeout: Duration,
    mut fut: Pin<&mut F>,
) -> (Option<F::Output>, bool) {
    match poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        Poll::Ready(out) => (Some(out), false),
        // Boxed: keeps the timer out of every request's future state.
        Poll::Pending => (
            Box::pin(tokio::time::timeout(timeout, fut)).await.ok(),
            true,
        ),
    }
}

/// Runs one policy under its timeout: its result (`None` when it timed out) and, if it
/// had to wait, its latency.
pub(crate) async fn timed<F>(
    settings: PolicySettings,
    started: Stopwatch,
    fut: Pin<&mut F>,
) -> (Option<F::Output>, Option<Duration>)
where
    F: Future<Output = Result<PolicyResult, BackendError>>,
{
    let (out, waited) = within(settings.timeout, fut).await;
    (out, waited.then(|| started.elapsed()))
}

/// Turns the result of one policy (or `None` for a timeout) into its decision, applying
/// shadow mode and the fail mode.
pub(crate) fn settle(
    policy: &'static str,
    settings: PolicySettings,
    parts: &Parts,
    latency: Option<Duration>,
    result: Option<Result<PolicyResult, BackendError>>,
) -> Evaluated {
    use gw_core::Outcome;

    let result = match result {
        Some(r) => r,
        None => Err(BackendError::timeout(
            "policy",
            format_args!("{policy} did not decide within {:?}", settings.timeout),
        )),
    };
    let mut decision = None;
    let mut record = |outcome, reason: &'static str| {
        decision = Some((policy, outcome, reason));
    };
    let mut evaluated = match result {
        Ok(PolicyResult {
            verdict,
            reason,
            effects,
        }) => match verdict {
            Verdict::Skip => {
                record(Outcome::Skip, reason);
                Evaluated::default()
            }
            Verdict::Allow => {
                record(Outcome::Allow, reason);
                Evaluated {
                    effects,
                    ..Evaluated::default()
                }
            }
            Verdict::Deny(_) if settings.shadow => {
                record(Outcome::ShadowDeny, reason);
                metrics::counter!("gw_policy_shadow_deny_total", "policy" => policy, "reason" => reason)
                    .increment(1);
                tracing::info!(policy, reason, "policy would deny (shadow mode)");
                Evaluated::default()
            }
            Verdict::Deny(rejection) => {
                record(Outcome::Deny, reason);
                metrics::counter!("gw_policy_deny_total", "policy" => policy, "reason" => reason)
                    .increment(1);
                Evaluated {
                    rejection: Some(rejection),
                    ..Evaluated::default()
                }
            }
        },
        Err(err) => {
            let reason = match err.kind {
                gw_core::BackendErrorKind::Timeout => "timeout",
                gw_core::BackendErrorKind::Unavailable => "backend-unavailable",
                gw_core::BackendErrorKind::Invalid => "backend-invalid",
            };
            // Only a backend that is down or slow follows the fail mode; one that answers
            // something unusable (wrong key type, ACL refusal, bad script reply) is a
            // fault to surface, not an outage to ride out, so it fails closed.
            let open = settings.fail_mode == FailMode::Open && err.is_unavailable();
            if open || settings.shadow {
                record(Outcome::FailOpen, reason);
                metrics::counter!("gw_policy_fail_open_total", "policy" => policy).increment(1);
                tracing::warn!(policy, error = %err, "policy failed open");
                Evaluated::default()
            } else {
                record(Outcome::FailClosed, reason);
                metrics::counter!("gw_policy_fail_closed_total", "policy" => policy).increment(1);
                tracing::error!(policy, error = %err, "policy failed closed");
                let problem = Problem::new(ProblemType::SERVICE_UNAVAILABLE)
                    .code("policy-unavailable")
                    .detail("A policy this request depends on could not be evaluated; retry later.")
                    .with("policy", policy);
                Evaluated {
                    rejection: Some(Box::new(Rejection::problem(problem, parts))),
                    ..Evaluated::default()
                }
            }
        }
    };
    evaluated.decision = decision;
    evaluated.latency = latency;
    evaluated
}
