//! Governor approval: sensitive actions need a single-use approval token.

use std::sync::Arc;
use std::time::SystemTime;

use gw_core::{BackendError, PatternError, Principal, RouteSet};
use gw_problem::{Problem, ProblemType};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::PolicySettings;
use crate::eval::{ConsumedApproval, Effects, PolicyResult, Rejection, Subject};
use crate::store::memory::MemoryApprovalStore;
use crate::store::{ApprovalBinding, ApprovalCheck, ApprovalStore};

/// The default sensitive actions and the routes they are mapped from.
///
/// Every API version (`{version}`), as gw-rbac maps every `/api/v{n}/`. Where gw-rbac
/// asks for the matching permission on a whole subtree, the action covers that subtree:
/// `agents:delete` is every `DELETE` under `/api/v{n}/agents` (the collection, an agent,
/// anything below it such as `/agents/7/force`), so `delete_agent` is too; likewise
/// `delete_customer` and `update_billing`. `export_data` and `change_subscription` stay
/// exact routes, like gw-rbac's `data:export` override.
pub const DEFAULT_SENSITIVE_ROUTES: &[(&str, &str)] = &[
    ("delete_agent", "DELETE /api/{version}/agents/*"),
    ("update_billing", "PUT,PATCH /api/{version}/billing/*"),
    (
        "change_subscription",
        "POST /api/{version}/subscriptions/{id}/change",
    ),
    ("export_data", "GET,POST /api/{version}/data/export"),
    ("delete_customer", "DELETE /api/{version}/customers/*"),
];

/// Request header carrying an approval token: `X-Governor-Approval`.
pub static APPROVAL_HEADER: HeaderName = HeaderName::from_static("x-governor-approval");
/// `X-Governor-Approval-Required: true` on an approval answer.
pub static APPROVAL_REQUIRED_HEADER: HeaderName =
    HeaderName::from_static("x-governor-approval-required");
/// `X-Governor-Action`: the sensitive action.
pub static ACTION_HEADER: HeaderName = HeaderName::from_static("x-governor-action");
/// `X-Governor-Agent-ID`: the principal's governor agent, if any.
pub static AGENT_ID_HEADER: HeaderName = HeaderName::from_static("x-governor-agent-id");

/// Query values: everything but RFC 3986 unreserved characters is encoded.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// The configured base URL: keep its structure, encode what a header cannot carry.
const BASE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// How an unapproved sensitive request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApprovalResponse {
    /// `307 Temporary Redirect` to the approval UI (the reference behaviour).
    #[default]
    Redirect,
    /// `428 Precondition Required` with an `approval-required` problem and `Location`.
    PreconditionRequired,
}

/// Configuration of the governor-approval policy.
#[derive(Debug, Clone)]
pub struct GovernorConfig {
    pub(crate) routes: Arc<RouteSet<Arc<str>>>,
    pub(crate) approval_ui_url: Arc<str>,
    pub(crate) response: ApprovalResponse,
    pub(crate) token_header: HeaderName,
    pub(crate) store: Arc<dyn ApprovalStore>,
    pub(crate) settings: PolicySettings,
}

impl Default for GovernorConfig {
    fn default() -> Self {
        Self::new("")
    }
}

impl GovernorConfig {
    /// The default sensitive routes, answered with a 307 to
    /// `{approval_ui_url}/approval?...`, in-memory approvals, 2 s timeout, fail-open.
    pub fn new(approval_ui_url: impl Into<Arc<str>>) -> Self {
        let mut routes = RouteSet::new();
        for (action, route) in DEFAULT_SENSITIVE_ROUTES {
            routes
                .insert(route, Arc::from(*action))
                .expect("default sensitive routes parse");
        }
        Self {
            routes: Arc::new(routes),
            approval_ui_url: approval_ui_url.into(),
            response: ApprovalResponse::Redirect,
            token_header: APPROVAL_HEADER.clone(),
            store: Arc::new(MemoryApprovalStore::new()),
            settings: PolicySettings::new(),
        }
    }

    /// Replaces the sensitive routes: `(action, route)` pairs in gw-core route syntax.
    pub fn sensitive_routes<I, A, R>(mut self, routes: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = (A, R)>,
        A: AsRef<str>,
        R: AsRef<str>,
    {
        let mut set = RouteSet::new();
        for (action, route) in routes {
            set.insert(route.as_ref(), Arc::from(action.as_ref()))?;
        }
        self.routes = Arc::new(set);
        Ok(self)
    }

    /// Sets how unapproved requests are answered (307 or 428; see the crate docs).
    pub fn response(mut self, response: ApprovalResponse) -> Self {
        self.response = response;
        self
    }

    /// Sets the request header that carries approval tokens.
    pub fn token_header(mut self, name: HeaderName) -> Self {
        self.token_header = name;
        self
    }

    /// Sets the approval store.
    pub fn store(self, store: impl ApprovalStore) -> Self {
        self.shared_store(Arc::new(store))
    }

    /// Sets a shared approval store (share it with whatever issues approvals).
    pub fn shared_store(mut self, store: Arc<dyn ApprovalStore>) -> Self {
        self.store = store;
        self
    }

    /// Sets timeout, fail mode and shadow mode.
    pub fn settings(mut self, settings: PolicySettings) -> Self {
        self.settings = settings;
        self
    }

    /// The sensitive action `method path` (normalized) maps to, if any.
    pub fn action_for(&self, method: &Method, path: &str) -> Option<&str> {
        self.routes.find(method, path).map(|m| &**m.value)
    }

    /// The approval UI URL for a request: `{approval_ui_url}/approval?action=..&user_id=..
    /// &resource=..&governor_id=..`, every value percent-encoded.
    pub fn approval_url(
        &self,
        action: &str,
        user_id: &str,
        resource: &str,
        governor_id: &str,
    ) -> String {
        let base = self.approval_ui_url.trim_end_matches('/');
        format!(
            "{}/approval?action={}&user_id={}&resource={}&governor_id={}",
            utf8_percent_encode(base, BASE),
            utf8_percent_encode(action, QUERY),
            utf8_percent_encode(user_id, QUERY),
            utf8_percent_encode(resource, QUERY),
            utf8_percent_encode(governor_id, QUERY),
        )
    }
}

/// The state of the approval presented with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalState {
    /// No approval token.
    Missing,
    /// A token that the store accepted (and consumed) for this action, resource and user.
    Valid,
    /// A token that is unknown, used, expired, or bound to something else.
    Invalid,
}

/// What the governor policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GovernorDecision {
    /// Not a sensitive action: the policy does not apply.
    NotSensitive,
    /// A sensitive action with a valid approval.
    Approved,
    /// A sensitive action without an approval.
    ApprovalRequired,
    /// A sensitive action with an approval that is not valid for it.
    ApprovalInvalid,
}

impl GovernorDecision {
    /// The stable reason code.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::NotSensitive => "not-sensitive",
            Self::Approved => "approved",
            Self::ApprovalRequired => "approval-required",
            Self::ApprovalInvalid => "approval-invalid",
        }
    }

    /// Whether the request may go on.
    pub const fn allows(&self) -> bool {
        matches!(self, Self::NotSensitive | Self::Approved)
    }
}

/// The governor decision, as a pure function of the mapped action and the approval state.
pub fn decide(action: Option<&str>, approval: ApprovalState) -> GovernorDecision {
    match (action, approval) {
        (None, _) => GovernorDecision::NotSensitive,
        (Some(_), ApprovalState::Valid) => GovernorDecision::Approved,
        (Some(_), ApprovalState::Missing) => GovernorDecision::ApprovalRequired,
        (Some(_), ApprovalState::Invalid) => GovernorDecision::ApprovalInvalid,
    }
}

/// A sensitive request, before its approval is checked.
#[derive(Debug)]
pub(crate) struct Sensitive<'a> {
    action: &'a Arc<str>,
    principal: Option<&'a Principal>,
    user_id: &'a str,
    /// The presented token to consume, or the approval state when there is none to check.
    pub token: Result<&'a str, ApprovalState>,
}

impl<'a> Sensitive<'a> {
    /// What the approval must be bound to.
    pub fn binding(&self, resource: &'a str) -> ApprovalBinding<'a> {
        ApprovalBinding {
            action: self.action,
            resource,
            user_id: self.user_id,
        }
    }
}

/// The governor policy up to the store: `Err` with the result when the request is not
/// sensitive, otherwise the sensitive request whose approval [`conclude`] decides.
pub(crate) fn plan<'a>(
    cfg: &'a GovernorConfig,
    req: Subject<'a>,
) -> Result<Sensitive<'a>, PolicyResult> {
    let Subject {
        parts,
        principal,
        path,
    } = req;
    let Some(found) = cfg.routes.find(&parts.method, path) else {
        return Err(PolicyResult::skip(GovernorDecision::NotSensitive.reason()));
    };
    let token = match parts
        .headers
        .get(&cfg.token_header)
        .map(HeaderValue::to_str)
    {
        None => Err(ApprovalState::Missing),
        Some(Ok(token)) if token.trim().is_empty() => Err(ApprovalState::Missing),
        Some(Err(_)) => Err(ApprovalState::Invalid),
        Some(Ok(token)) => Ok(token.trim()),
    };
    Ok(Sensitive {
        action: found.value,
        principal,
        user_id: principal.map_or("", |p| &*p.user_id),
        token,
    })
}

/// Evaluates the governor policy for one request, waiting for the store.
pub(crate) async fn evaluate(
    cfg: &GovernorConfig,
    req: Subject<'_>,
    now: SystemTime,
) -> Result<PolicyResult, BackendError> {
    let sensitive = match plan(cfg, req) {
        Ok(sensitive) => sensitive,
        Err(result) => return Ok(result),
    };
    let check = match sensitive.token {
        Ok(token) => Some(
            cfg.store
                .consume(token, sensitive.binding(req.path), now)
                .await?,
        ),
        Err(_) => None,
    };
    Ok(conclude(cfg, req, &sensitive, check))
}

/// Decides a sensitive request from the store's answer (`None` when there was no token
/// to check).
pub(crate) fn conclude(
    cfg: &GovernorConfig,
    req: Subject<'_>,
    sensitive: &Sensitive<'_>,
    check: Option<ApprovalCheck>,
) -> PolicyResult {
    let Subject { parts, path, .. } = req;
    let &Sensitive {
        action,
        principal,
        user_id,
        token,
    } = sensitive;
    let mut effects = Effects::default();
    let state = match (token, check) {
        (Err(state), _) => state,
        (Ok(token), Some(ApprovalCheck::Approved { expires_at })) => {
            effects.approval = Some(Box::new(ConsumedApproval {
                token: token.to_owned(),
                action: action.clone(),
                resource: path.to_owned(),
                user_id: user_id.to_owned(),
                expires_at,
            }));
            ApprovalState::Valid
        }
        (Ok(_), _) => ApprovalState::Invalid,
    };
    let decision = decide(Some(action), state);
    if decision.allows() {
        return PolicyResult::allow(decision.reason(), effects);
    }
    let governor_id = principal
        .and_then(|p| p.governor_agent_id.as_deref())
        .unwrap_or("");
    let url = cfg.approval_url(action, user_id, path, governor_id);
    let problem = Problem::new(ProblemType::APPROVAL_REQUIRED)
        .code(decision.reason())
        .detail("This action needs a governor's approval; request one at the approval URL.")
        .with("action", &**action)
        .with("resource", path)
        .with("approval_url", &url)
        .with("governor_id", governor_id);
    let mut rejection = Rejection::problem(problem, parts);
    if cfg.response == ApprovalResponse::Redirect {
        rejection.status = StatusCode::TEMPORARY_REDIRECT;
        rejection.empty_body = true;
    }
    if let Ok(location) = HeaderValue::try_from(url) {
        rejection = rejection.header(http::header::LOCATION, location);
    }
    rejection = rejection.header(
        APPROVAL_REQUIRED_HEADER.clone(),
        HeaderValue::from_static("true"),
    );
    if let Ok(v) = HeaderValue::from_str(action) {
        rejection = rejection.header(ACTION_HEADER.clone(), v);
    }
    // Only a plain visible-ASCII id goes into a header; anything else (or an empty id)
    // is left to the percent-encoded Location URL.
    if !governor_id.is_empty()
        && governor_id.bytes().all(|b| b.is_ascii_graphic())
        && let Ok(v) = HeaderValue::from_str(governor_id)
    {
        rejection = rejection.header(AGENT_ID_HEADER.clone(), v);
    }
    PolicyResult::deny(decision.reason(), rejection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_default_routes() {
        let cfg = GovernorConfig::new("https://approve.example.com/");
        assert_eq!(
            cfg.action_for(&Method::DELETE, "/api/v1/agents/7"),
            Some("delete_agent")
        );
        assert_eq!(cfg.action_for(&Method::GET, "/api/v1/agents/7"), None);
        assert_eq!(
            cfg.action_for(&Method::PATCH, "/api/v1/billing/plan"),
            Some("update_billing")
        );
        assert_eq!(
            cfg.action_for(&Method::DELETE, "/api/v1/agents/7/x"),
            Some("delete_agent")
        );
        assert_eq!(
            cfg.action_for(&Method::DELETE, "/api/v2/customers/c1"),
            Some("delete_customer")
        );
        assert_eq!(cfg.action_for(&Method::DELETE, "/api/v1/agentsX/7"), None);
        assert_eq!(
            cfg.approval_url("delete_agent", "u&x=1", "/a b", ""),
            "https://approve.example.com/approval?action=delete_agent&user_id=u%26x%3D1&resource=%2Fa%20b&governor_id="
        );
    }

    #[test]
    fn decision_table() {
        assert_eq!(
            decide(None, ApprovalState::Missing),
            GovernorDecision::NotSensitive
        );
        assert_eq!(
            decide(Some("x"), ApprovalState::Valid),
            GovernorDecision::Approved
        );
        assert!(!decide(Some("x"), ApprovalState::Invalid).allows());
    }
}
