//! The request-scoped record of what each layer decided.
//!
//! An outer layer (normally the audit layer) puts a [`Decisions`] handle into the request
//! extensions; every inner layer appends to it through [`Decisions::record`]; the outer
//! layer reads it back once the response is done. The handle is a cheap clone of one shared
//! list, so what inner layers append is visible outside although they own the request.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::Extensions;
use serde::Serialize;

use crate::identity::Principal;

/// What a layer decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The request may go on.
    Allow,
    /// The request was rejected.
    Deny,
    /// The policy did not apply to this request.
    Skip,
    /// The policy would have denied, but runs in shadow mode and did not enforce.
    ShadowDeny,
    /// The policy could not decide (backend down, timeout) and let the request through.
    FailOpen,
    /// The policy could not decide and rejected the request.
    FailClosed,
}

impl Outcome {
    /// The snake_case wire name, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Skip => "skip",
            Self::ShadowDeny => "shadow_deny",
            Self::FailOpen => "fail_open",
            Self::FailClosed => "fail_closed",
        }
    }
}

/// One decision: which layer and policy, the outcome, a reason code and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The deciding layer (`auth`, `rbac`, `policy`, `budget`, ...).
    pub layer: &'static str,
    /// The policy within the layer (`trial_mode`, `rbac_pp`, ...).
    pub policy: Cow<'static, str>,
    /// What was decided.
    pub outcome: Outcome,
    /// Stable reason code (the problem `code` when denied), if any.
    pub reason: Option<Cow<'static, str>>,
    /// Time spent deciding.
    #[serde(serialize_with = "serialize_micros")]
    pub latency: Duration,
}

impl Decision {
    /// A decision with no reason code.
    pub fn new(
        layer: &'static str,
        policy: impl Into<Cow<'static, str>>,
        outcome: Outcome,
        latency: Duration,
    ) -> Self {
        Self {
            layer,
            policy: policy.into(),
            outcome,
            reason: None,
            latency,
        }
    }

    /// Sets the reason code.
    pub fn reason(mut self, reason: impl Into<Cow<'static, str>>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// The resource a request acts on, as mapped by an authorization layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceAction {
    /// Resource name (`agents`, `billing`, ...).
    pub resource: String,
    /// Action (`read`, `create`, `deploy`, ...).
    pub action: String,
    /// The addressed resource instance, if the path names one.
    pub resource_id: Option<String>,
}

/// Everything recorded about one request by the layers that handled it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DecisionLog {
    /// Decisions in the order they were recorded.
    pub decisions: Vec<Decision>,
    /// The resource and action, when a layer mapped them.
    pub resource: Option<ResourceAction>,
    /// Time the upstream took, when a proxy measured it.
    #[serde(serialize_with = "serialize_opt_micros")]
    pub upstream_latency: Option<Duration>,
    /// The authenticated caller, once a layer inside the one that installed the log
    /// knew it (see [`Decisions::record_principal`]).
    pub principal: Option<Principal>,
}

impl DecisionLog {
    /// Sum of the latencies of all decisions.
    pub fn policy_latency(&self) -> Duration {
        self.decisions.iter().map(|d| d.latency).sum()
    }
}

/// A shared, request-scoped [`DecisionLog`]; clone it freely, all clones see one log.
#[derive(Debug, Clone)]
pub struct Decisions(Arc<Mutex<DecisionLog>>);

impl Default for Decisions {
    fn default() -> Self {
        Self::new()
    }
}

impl Decisions {
    /// An empty log, with room for the decisions of a typical chain (no regrowth).
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(DecisionLog {
            decisions: Vec::with_capacity(8),
            ..DecisionLog::default()
        })))
    }

    /// Appends `decision` to the log in `extensions`, if a log was installed there.
    ///
    /// Layers call this unconditionally; when nobody installed a log (no audit layer),
    /// the decision is simply not kept.
    ///
    /// A [`Principal`] present in the same `extensions` is kept too, if none was yet, so
    /// the outer layer learns who was calling although inner layers own the request.
    pub fn record(extensions: &Extensions, decision: Decision) {
        if let Some(log) = extensions.get::<Self>() {
            let mut log = log.lock();
            log.decisions.push(decision);
            Self::pick_principal(&mut log, extensions);
        }
    }

    /// Sets the resource/action in the log in `extensions`, if one was installed (and
    /// keeps a [`Principal`] present there, like [`Decisions::record`]).
    pub fn record_resource(extensions: &Extensions, resource: ResourceAction) {
        if let Some(log) = extensions.get::<Self>() {
            let mut log = log.lock();
            log.resource = Some(resource);
            Self::pick_principal(&mut log, extensions);
        }
    }

    /// Sets the authenticated caller in the log in `extensions`, if one was installed.
    ///
    /// Authentication layers call this when they insert a [`Principal`].
    pub fn record_principal(extensions: &Extensions, principal: &Principal) {
        if let Some(log) = extensions.get::<Self>() {
            log.lock().principal = Some(principal.clone());
        }
    }

    fn pick_principal(log: &mut DecisionLog, extensions: &Extensions) {
        if log.principal.is_none()
            && let Some(p) = extensions.get::<Principal>()
        {
            log.principal = Some(p.clone());
        }
    }

    /// Sets the upstream latency in the log in `extensions`, if one was installed.
    pub fn record_upstream_latency(extensions: &Extensions, latency: Duration) {
        if let Some(log) = extensions.get::<Self>() {
            log.lock().upstream_latency = Some(latency);
        }
    }

    /// Appends a decision to this log.
    pub fn push(&self, decision: Decision) {
        self.lock().decisions.push(decision);
    }

    /// Appends several decisions to this log, in order, under one lock.
    pub fn extend(&self, decisions: impl IntoIterator<Item = Decision>) {
        self.lock().decisions.extend(decisions);
    }

    /// A copy of the log as it is now.
    pub fn snapshot(&self) -> DecisionLog {
        self.lock().clone()
    }

    /// Takes the log out, leaving it empty.
    pub fn take(&self) -> DecisionLog {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, DecisionLog> {
        // A panic while holding this lock cannot leave the log inconsistent (each
        // operation is a single push or assignment), so a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn serialize_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn serialize_opt_micros<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serialize_micros(d, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PrincipalData;

    #[test]
    fn inner_records_are_visible_to_the_outer_handle() {
        let outer = Decisions::new();
        let mut ext = Extensions::new();
        ext.insert(outer.clone());

        Decisions::record(
            &ext,
            Decision::new("rbac", "rbac_pp", Outcome::Deny, Duration::from_micros(3))
                .reason("permission-denied"),
        );
        Decisions::record(
            &ext,
            Decision::new(
                "policy",
                "trial_mode",
                Outcome::Allow,
                Duration::from_micros(2),
            ),
        );
        Decisions::record_resource(
            &ext,
            ResourceAction {
                resource: "agents".into(),
                action: "delete".into(),
                resource_id: Some("42".into()),
            },
        );

        let log = outer.take();
        assert_eq!(log.decisions.len(), 2);
        assert_eq!(
            log.decisions[0].reason.as_deref(),
            Some("permission-denied")
        );
        assert_eq!(log.policy_latency(), Duration::from_micros(5));
        assert_eq!(log.resource.unwrap().resource_id.as_deref(), Some("42"));
        assert!(outer.snapshot().decisions.is_empty());

        let json = serde_json::to_value(&log.decisions[1]).unwrap();
        assert_eq!(json["outcome"], "allow");
        assert_eq!(json["latency"], 2);
    }

    #[test]
    fn extend_appends_in_order() {
        let log = Decisions::new();
        log.push(Decision::new("auth", "jwt", Outcome::Allow, Duration::ZERO));
        let policy = |p: &'static str| Decision::new("policy", p, Outcome::Skip, Duration::ZERO);
        log.extend([policy("trial_mode"), policy("sandbox_routing")]);
        let policies: Vec<_> = log.take().decisions.into_iter().map(|d| d.policy).collect();
        assert_eq!(policies, ["jwt", "trial_mode", "sandbox_routing"]);
    }

    #[test]
    fn principal_is_kept_explicitly_or_from_the_extensions() {
        let outer = Decisions::new();
        let mut ext = Extensions::new();
        ext.insert(outer.clone());
        Decisions::record(
            &ext,
            Decision::new("a", "b", Outcome::Allow, Duration::ZERO),
        );
        assert!(outer.snapshot().principal.is_none());

        let p = Principal::from(PrincipalData {
            sub: "s".into(),
            user_id: "u".into(),
            email: "u@example.com".into(),
            customer_id: "c".into(),
            roles: Arc::from(vec!["viewer".to_owned()]),
            governor_agent_id: None,
            trial: None,
        });
        ext.insert(p.clone());
        Decisions::record(
            &ext,
            Decision::new("a", "b", Outcome::Allow, Duration::ZERO),
        );
        assert_eq!(outer.snapshot().principal.as_ref(), Some(&p));

        let other = Principal::from(PrincipalData {
            user_id: "v".into(),
            ..PrincipalData::clone(&p)
        });
        Decisions::record_principal(&ext, &other);
        assert_eq!(&*outer.take().principal.unwrap().user_id, "v");
    }

    #[test]
    fn recording_without_a_log_is_a_no_op() {
        let ext = Extensions::new();
        Decisions::record(&ext, Decision::new("x", "y", Outcome::Skip, Duration::ZERO));
        assert!(ext.get::<Decisions>().is_none());
    }
}
