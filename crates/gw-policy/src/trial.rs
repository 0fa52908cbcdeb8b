//! Trial mode: at most N tasks per day for trial principals, nothing for expired trials.

use std::sync::Arc;
use std::time::SystemTime;

use gw_core::{BackendError, PatternError, Principal, RouteSet};
use gw_problem::{Problem, ProblemType};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method};

use crate::config::PolicySettings;
use crate::eval::{Effects, Headers, PolicyResult, Rejection};
use crate::store::memory::MemoryUsageStore;
use crate::store::{UsageStore, unix_millis};
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
        let mut key = String::with_capacity(user_id.len() + 8);
        key.push_str(user_id);
        key.push(':');
        if day < 0 {
            key.push('-');
        }
        push_u64(&mut key, day.unsigned_abs());
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

/// Appends `n` in decimal (the hot path avoids the `fmt` machinery).
fn push_u64(s: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits are always valid UTF-8.
    s.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `RateLimit-Policy: "trial";q=10;w=86400`.
fn policy_header(name: &str, limit: u64) -> HeaderValue {
    header_value(format!("\"{name}\";q={limit};w=86400"))
}

/// `RateLimit-Policy: "trial";q=10;w=86400` and `RateLimit: "trial";r=3;t=3600`, with
/// room for the routing header that may follow.
fn ratelimit_headers(cfg: &TrialConfig, remaining: u64, window: &DayWindow) -> Headers {
    let mut headers = Vec::with_capacity(3);
    headers.push((RATELIMIT_POLICY.clone(), cfg.policy_header.clone()));
    headers.push((
        RATELIMIT.clone(),
        header_value({
            let mut v = String::with_capacity(cfg.quota_name.len() + 32);
            v.push('"');
            v.push_str(&cfg.quota_name);
            v.push_str("\";r=");
            push_u64(&mut v, remaining);
            v.push_str(";t=");
            push_u64(&mut v, window.seconds_left);
            v
        }),
    ));
    headers
}

/// Evaluates the trial policy for one request.
pub(crate) async fn evaluate(
    cfg: &TrialConfig,
    parts: &Parts,
    path: &str,
    now: SystemTime,
) -> Result<PolicyResult, BackendError> {
    let principal = parts.extensions.get::<Principal>();
    let trial = principal.and_then(|p| p.trial);
    let mut input = TrialInput {
        is_trial: trial.is_some(),
        expires_at_ms: trial.and_then(|t| t.expires_at).map(unix_millis),
        now_ms: unix_millis(now),
        // Only matched for trial principals.
        is_task: trial.is_some() && cfg.is_task(&parts.method, path),
        task_count: 0,
        limit: cfg.limit,
    };
    match decide(&input) {
        d @ TrialDecision::NotTrial => return Ok(PolicyResult::skip(d.reason())),
        d @ TrialDecision::NotATask => {
            return Ok(PolicyResult::allow(d.reason(), Effects::default()));
        }
        d @ TrialDecision::Expired => {
            let expires = trial
                .and_then(|t| t.expires_at)
                .map(|at| rfc3339(gw_core::clock::unix_seconds(at)));
            let problem = Problem::new(ProblemType::TRIAL_EXPIRED)
                .code(d.reason())
                .detail("Your trial has ended; upgrade to continue.")
                .with("trial_expires_at", expires)
                .with("upgrade_url", &*cfg.upgrade_url);
            return Ok(PolicyResult::deny(
                d.reason(),
                Rejection::problem(problem, parts),
            ));
        }
        TrialDecision::Admit { .. } | TrialDecision::LimitExceeded => {}
    }
    // Counted per user; a principal without a user id is counted by its subject.
    let user_id = principal.map_or("", |p| {
        if p.user_id.is_empty() {
            &*p.sub
        } else {
            &*p.user_id
        }
    });
    let window = DayWindow::at(now, cfg.utc_offset_secs);
    let key = TrialConfig::key(user_id, window.day);
    let usage = cfg
        .store
        .acquire(&key, cfg.limit, window.reset_at())
        .await?;
    // The count before this request: one less than after when admitted.
    input.task_count = if usage.admitted {
        usage.count.saturating_sub(1)
    } else {
        usage.count.max(cfg.limit)
    };
    match decide(&input) {
        d @ TrialDecision::Admit { remaining } => Ok(PolicyResult::allow(
            d.reason(),
            Effects {
                headers: ratelimit_headers(cfg, remaining, &window),
                acquired: Some(key),
                ..Effects::default()
            },
        )),
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
            rejection.headers.extend(ratelimit_headers(cfg, 0, &window));
            Ok(PolicyResult::deny(d.reason(), rejection))
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
        let mut s = String::new();
        for n in [0, 7, 10, 86_400, u64::MAX] {
            s.clear();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }
}
