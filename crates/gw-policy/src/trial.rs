//! Trial mode: at most N tasks per day for trial principals, nothing for expired trials.

use std::sync::Arc;
use std::time::SystemTime;

use gw_core::{BackendError, PatternError, RouteSet};
use gw_problem::{Problem, ProblemType};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method};

use crate::config::PolicySettings;
use crate::eval::{Effects, PolicyResult, RateLimit, Rejection, Subject};
use crate::store::memory::MemoryUsageStore;
use crate::store::{Usage, UsageStore, unix_millis};
use crate::time::{DayWindow, rfc3339};

/// Default daily task limit of a trial principal.
pub const DEFAULT_TRIAL_LIMIT: u64 = 10;

/// Default task routes: every `POST`, `PUT`, `PATCH` and `DELETE`.
pub const DEFAULT_TASK_ROUTES: &[&str] = &["POST,PUT,PATCH,DELETE /*"];

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-09).
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-09).
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Configuration of the trial-mode policy.
#[derive(Debug, Clone)]
pub struct TrialConfig {
    pub(crate) limit: u64,
    pub(crate) tasks: Arc<RouteSet>,
    pub(crate) utc_offset_secs: i32,
    pub(crate) upgrade_url: Arc<str>,
    pub(crate) quota_name: Arc<str>,
    /// `RateLimit-Policy` value, rebuilt when the limit or the name changes.
    pub(crate) policy_header: HeaderValue,
    pub(crate) store: Arc<dyn UsageStore>,
    pub(crate) settings: PolicySettings,
}

impl Default for TrialConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl TrialConfig {
    /// 10 tasks a day, tasks = every POST/PUT/PATCH/DELETE, days in UTC, upgrade URL
    /// `/upgrade`, in-memory counters, 2 s timeout, fail-open.
    pub fn new() -> Self {
        Self {
            limit: DEFAULT_TRIAL_LIMIT,
            tasks: Arc::new(
                RouteSet::from_routes(DEFAULT_TASK_ROUTES).expect("default task routes parse"),
            ),
            utc_offset_secs: 0,
            upgrade_url: "/upgrade".into(),
            quota_name: "trial".into(),
            policy_header: policy_header("trial", DEFAULT_TRIAL_LIMIT),
            store: Arc::new(MemoryUsageStore::new()),
            settings: PolicySettings::new(),
        }
    }

    /// Sets the daily task limit.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self.policy_header = policy_header(&self.quota_name, limit);
        self
    }

    /// Sets which routes count as tasks (gw-core route syntax, e.g. `POST /api/v1/tasks`).
    pub fn task_routes<I, R>(mut self, routes: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = R>,
        R: AsRef<str>,
    {
        self.tasks = Arc::new(RouteSet::from_routes(routes)?);
        Ok(self)
    }

    /// Sets the zone days are counted in, as seconds east of UTC (clamped to ±24 h):
    /// the count resets at midnight there.
    pub fn utc_offset_seconds(mut self, offset: i32) -> Self {
        self.utc_offset_secs = offset.clamp(-86_399, 86_399);
        self
    }

    /// Sets the URL the problem bodies point to for upgrading.
    pub fn upgrade_url(mut self, url: impl Into<Arc<str>>) -> Self {
        self.upgrade_url = url.into();
        self
    }

    /// Sets the quota policy name in the `RateLimit` headers (default `trial`).
    /// Characters a structured-field string cannot hold (`"`, `\`, non-printable ASCII)
    /// are dropped.
    pub fn quota_name(mut self, name: impl AsRef<str>) -> Self {
        let clean: String = name
            .as_ref()
            .chars()
            .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
            .collect();
        self.quota_name = clean.into();
        self.policy_header = policy_header(&self.quota_name, self.limit);
        self
    }

    /// Sets the counter store.
    pub fn store(self, store: impl UsageStore) -> Self {
        self.shared_store(Arc::new(store))
    }

    /// Sets a shared counter store.
    pub fn shared_store(mut self, store: Arc<dyn UsageStore>) -> Self {
        self.store = store;
        self
    }

    /// Sets timeout, fail mode and shadow mode.
    pub fn settings(mut self, settings: PolicySettings) -> Self {
        self.settings = settings;
        self
    }

    /// Whether `method path` (normalized) is a task.
    pub fn is_task(&self, method: &Method, path: &str) -> bool {
        self.tasks.matches(method, path)
    }

    /// The store key of `user_id` on `day`: `{user_id}:{day}`.
    fn key(user_id: &str, day: i64) -> String {
        let mut buf = itoa::Buffer::new();
        let day = buf.format(day);
        let mut key = String::with_capacity(user_id.len() + 1 + day.len());
        key.push_str(user_id);
        key.push(':');
        key.push_str(day);
        key
    }
}

/// The facts the trial decision depends on; the same as the Rego policy's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialInput {
    /// Whether the principal is on a trial plan.
    pub is_trial: bool,
    /// When the trial ends (ms since the epoch), if it does.
    pub expires_at_ms: Option<u64>,
    /// The current time (ms since the epoch).
    pub now_ms: u64,
    /// Whether the request is a task.
    pub is_task: bool,
    /// Tasks already run today, before this one.
    pub task_count: u64,
    /// The daily limit.
    pub limit: u64,
}

/// What the trial policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialDecision {
    /// No trial principal: the policy does not apply.
    NotTrial,
    /// The trial has ended: 403 `trial-expired`.
    Expired,
    /// Not a task: allowed, not counted.
    NotATask,
    /// A task within the limit: allowed and counted.
    Admit {
        /// Tasks left today after this one.
        remaining: u64,
    },
    /// A task over the limit: 429 `trial-limit-exceeded`.
    LimitExceeded,
}

impl TrialDecision {
    /// The stable reason code (as recorded in decisions and returned by the Rego policy).
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::NotTrial => "not-trial",
            Self::Expired => "trial-expired",
            Self::NotATask => "not-a-task",
            Self::Admit { .. } => "within-limit",
            Self::LimitExceeded => "trial-limit-exceeded",
        }
    }

    /// Whether the request may go on.
    pub const fn allows(&self) -> bool {
        !matches!(self, Self::Expired | Self::LimitExceeded)
    }
}

/// The trial decision, as a pure function (the reference the Rego policy is tested
/// against).
pub fn decide(input: &TrialInput) -> TrialDecision {
    if !input.is_trial {
        TrialDecision::NotTrial
    } else if input.expires_at_ms.is_some_and(|at| at <= input.now_ms) {
        TrialDecision::Expired
    } else if !input.is_task {
        TrialDecision::NotATask
    } else if input.task_count < input.limit {
        TrialDecision::Admit {
            remaining: input.limit - input.task_count - 1,
        }
    } else {
        TrialDecision::LimitExceeded
    }
}

/// `RateLimit-Policy: "trial";q=10;w=86400`.
fn policy_header(name: &str, limit: u64) -> HeaderValue {
    HeaderValue::try_from(format!("\"{name}\";q={limit};w=86400"))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// What is left of the day's quota after a counted task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    /// Tasks left today.
    pub remaining: u64,
    /// Seconds until the count resets.
    pub seconds_left: u64,
}

/// `RateLimit-Policy: "trial";q=10;w=86400` and `RateLimit: "trial";r=3;t=3600`.
pub(crate) fn ratelimit(cfg: &TrialConfig, quota: Quota) -> RateLimit {
    let mut remaining = itoa::Buffer::new();
    let remaining = remaining.format(quota.remaining).as_bytes();
    let mut seconds = itoa::Buffer::new();
    let seconds = seconds.format(quota.seconds_left).as_bytes();
    let name = cfg.quota_name.as_bytes();
    // Exactly sized: `Bytes` takes the vector over without another allocation.
    let mut value = Vec::with_capacity(name.len() + remaining.len() + seconds.len() + 8);
    value.push(b'"');
    value.extend_from_slice(name);
    value.extend_from_slice(b"\";r=");
    value.extend_from_slice(remaining);
    value.extend_from_slice(b";t=");
    value.extend_from_slice(seconds);
    RateLimit {
        policy: cfg.policy_header.clone(),
        limit: HeaderValue::from_maybe_shared(bytes::Bytes::from(value))
            .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
    }
}

/// A task of a trial principal within its trial, to be counted in the store.
#[derive(Debug)]
pub(crate) struct Task {
    input: TrialInput,
    window: DayWindow,
    /// The store key: `{user_id}:{day}`.
    pub key: String,
}

impl Task {
    /// When the count of this task's day resets.
    pub fn reset_at(&self) -> SystemTime {
        self.window.reset_at()
    }
}

/// The trial policy up to the store.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Decided without the store.
    Decided(PolicyResult),
    /// A task to count; [`conclude`] decides once the store has answered.
    Count(Task),
}

/// Evaluates the trial policy for one request up to the point where it needs the store.
pub(crate) fn plan(cfg: &TrialConfig, req: Subject<'_>, now: SystemTime) -> Plan {
    let Subject {
        parts,
        principal,
        path,
    } = req;
    let trial = principal.and_then(|p| p.trial);
    let input = TrialInput {
        is_trial: trial.is_some(),
        expires_at_ms: trial.and_then(|t| t.expires_at).map(unix_millis),
        now_ms: unix_millis(now),
        // Only matched for trial principals.
        is_task: trial.is_some() && cfg.is_task(&parts.method, path),
        task_count: 0,
        limit: cfg.limit,
    };
    let d = decide(&input);
    match d {
        TrialDecision::NotTrial => Plan::Decided(PolicyResult::skip(d.reason())),
        TrialDecision::NotATask => {
            Plan::Decided(PolicyResult::allow(d.reason(), Effects::default()))
        }
        TrialDecision::Expired => {
            let expires = trial
                .and_then(|t| t.expires_at)
                .map(|at| rfc3339(gw_core::clock::unix_seconds(at)));
            let problem = Problem::new(ProblemType::TRIAL_EXPIRED)
                .code(d.reason())
                .detail("Your trial has ended; upgrade to continue.")
                .with("trial_expires_at", expires)
                .with("upgrade_url", &*cfg.upgrade_url);
            Plan::Decided(PolicyResult::deny(
                d.reason(),
                Rejection::problem(problem, parts),
            ))
        }
        TrialDecision::Admit { .. } | TrialDecision::LimitExceeded => {
            // Counted per user; a principal without a user id is counted by its subject.
            let user_id = principal.map_or("", |p| {
                if p.user_id.is_empty() {
                    &*p.sub
                } else {
                    &*p.user_id
                }
            });
            let window = DayWindow::at(now, cfg.utc_offset_secs);
            Plan::Count(Task {
                input,
                window,
                key: TrialConfig::key(user_id, window.day),
            })
        }
    }
}

/// Decides a counted task from the store's answer.
pub(crate) fn conclude(cfg: &TrialConfig, parts: &Parts, task: Task, usage: Usage) -> PolicyResult {
    let Task {
        mut input,
        window,
        key,
    } = task;
    // The count before this request: one less than after when admitted.
    input.task_count = if usage.admitted {
        usage.count.saturating_sub(1)
    } else {
        usage.count.max(cfg.limit)
    };
    match decide(&input) {
        d @ TrialDecision::Admit { remaining } => PolicyResult::allow(
            d.reason(),
            Effects {
                quota: Some(Quota {
                    remaining,
                    seconds_left: window.seconds_left,
                }),
                acquired: Some(key),
                ..Effects::default()
            },
        ),
        d => {
            let reset_at = rfc3339(window.reset_unix);
            let problem = Problem::new(ProblemType::TRIAL_LIMIT_EXCEEDED)
                .code(d.reason())
                .detail(format!(
                    "Trial accounts may run {} tasks per day; the count resets at {reset_at}.",
                    cfg.limit
                ))
                .with("limit", cfg.limit)
                .with("task_count", usage.count)
                .with("reset_at", reset_at)
                .with("retry_after", window.seconds_left)
                .with("upgrade_url", &*cfg.upgrade_url);
            let mut rejection = Rejection::problem(problem, parts).header(
                http::header::RETRY_AFTER,
                HeaderValue::from(window.seconds_left),
            );
            let quota = Quota {
                remaining: 0,
                seconds_left: window.seconds_left,
            };
            let RateLimit { policy, limit } = ratelimit(cfg, quota);
            rejection.headers.push((RATELIMIT_POLICY.clone(), policy));
            rejection.headers.push((RATELIMIT.clone(), limit));
            PolicyResult::deny(d.reason(), rejection)
        }
    }
}

/// Evaluates the trial policy for one request, waiting for the store.
pub(crate) async fn evaluate(
    cfg: &TrialConfig,
    req: Subject<'_>,
    now: SystemTime,
) -> Result<PolicyResult, BackendError> {
    match plan(cfg, req, now) {
        Plan::Decided(result) => Ok(result),
        Plan::Count(task) => {
            let usage = cfg
                .store
                .acquire(&task.key, cfg.limit, task.reset_at())
                .await?;
            Ok(conclude(cfg, req.parts, task, usage))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(is_trial: bool, expires: Option<u64>, is_task: bool, used: u64) -> TrialInput {
        TrialInput {
            is_trial,
            expires_at_ms: expires,
            now_ms: 1_000,
            is_task,
            task_count: used,
            limit: 2,
        }
    }

    #[test]
    fn decision_table() {
        use TrialDecision::*;
        assert_eq!(decide(&input(false, Some(1), true, 9)), NotTrial);
        assert_eq!(decide(&input(true, Some(1_000), false, 0)), Expired);
        assert_eq!(decide(&input(true, Some(1_001), false, 9)), NotATask);
        assert_eq!(decide(&input(true, None, true, 0)), Admit { remaining: 1 });
        assert_eq!(decide(&input(true, None, true, 1)), Admit { remaining: 0 });
        assert_eq!(decide(&input(true, None, true, 2)), LimitExceeded);
        assert!(!LimitExceeded.allows() && NotATask.allows());
    }

    #[test]
    fn policy_header_follows_limit_and_sanitized_name() {
        let cfg = TrialConfig::new().quota_name("a\"b\\c\n").limit(5);
        assert_eq!(cfg.policy_header, "\"abc\";q=5;w=86400");
        assert_eq!(TrialConfig::key("u:1", -3), "u:1:-3");
        assert_eq!(TrialConfig::key("u", 19_675), "u:19675");
        assert_eq!(TrialConfig::key("", 0), ":0");
    }
}
