//! The [`Authorizer`] trait and its engines: [`NativeAuthorizer`] (default), `RegoAuthorizer`
//! (feature `rego`) and `OpaAuthorizer` (feature `opa`).

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use gw_core::{BackendError, Principal};
use serde::Deserialize;

use crate::policy::{Policy, PolicyError};
use crate::user::Permissions;

mod native;
#[cfg(feature = "opa")]
mod opa;
#[cfg(feature = "rego")]
mod rego;

pub use native::NativeAuthorizer;
#[cfg(feature = "opa")]
pub use opa::{DEFAULT_OPA_PATH, DEFAULT_OPA_TIMEOUT, OpaAuthorizer};
#[cfg(feature = "rego")]
pub use rego::{DECISION_RULE, RegoAuthorizer};

/// Deny reason when none of the caller's roles is known to the policy.
pub const NO_KNOWN_ROLE: &str = "no recognised role";

/// What an engine is asked: may this principal do `action` on `resource`?
#[derive(Debug, Clone, Copy)]
pub struct AuthzInput<'a> {
    /// The caller.
    pub principal: &'a Principal,
    /// Resource name (`agents`).
    pub resource: &'a str,
    /// Action (`read`).
    pub action: &'a str,
}

impl AuthzInput<'_> {
    /// The input document sent to Rego / OPA: `{"resource", "action", "jwt": {..}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let p = self.principal;
        serde_json::json!({
            "resource": self.resource,
            "action": self.action,
            "jwt": {
                "sub": p.sub,
                "user_id": p.user_id,
                "email": p.email,
                "customer_id": p.customer_id,
                "roles": &*p.roles,
            },
        })
    }
}

/// An engine's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzDecision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// Why not, naming the missing permission (`missing permission agents:delete`).
    pub deny_reason: Option<Arc<str>>,
    /// Level of the caller's highest known role, if any role is known.
    pub role_level: Option<u8>,
    /// Whether the caller holds the `admin` role.
    pub is_admin: bool,
    /// The caller's effective permissions.
    pub permissions: Permissions,
}

/// The decision document of the Rego policy (`data.rbac_pp.decision`).
#[derive(Debug, Deserialize)]
pub(crate) struct DecisionDoc {
    allow: bool,
    #[serde(default)]
    deny_reason: Option<String>,
    user_info: UserInfoDoc,
}

#[derive(Debug, Deserialize)]
struct UserInfoDoc {
    #[serde(default)]
    role_level: Option<u8>,
    #[serde(default)]
    is_admin: bool,
    #[serde(default)]
    permissions: Vec<String>,
}

impl DecisionDoc {
    /// Parses a decision document from an engine `backend`.
    #[cfg_attr(not(any(feature = "rego", feature = "opa")), allow(dead_code))]
    pub(crate) fn parse(
        value: serde_json::Value,
        backend: &'static str,
    ) -> Result<AuthzDecision, BackendError> {
        let doc: DecisionDoc = serde_json::from_value(value)
            .map_err(|e| BackendError::invalid(backend, format!("decision document: {e}")))?;
        Ok(AuthzDecision {
            allowed: doc.allow,
            deny_reason: if doc.allow {
                None
            } else {
                Some(doc.deny_reason.unwrap_or_else(|| "denied".into()).into())
            },
            role_level: doc.user_info.role_level,
            is_admin: doc.user_info.is_admin,
            permissions: Permissions::from_names(doc.user_info.permissions),
        })
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<AuthzDecision, BackendError>> + Send>>;

enum Repr {
    Ready(Option<Result<AuthzDecision, BackendError>>),
    Pending(BoxFuture),
}

/// The result of [`Authorizer::authorize`]: ready at once (native, Rego) or pending (OPA).
/// It is a future either way.
pub struct Authorization(Repr);

impl Authorization {
    /// An answer available now.
    pub fn ready(result: Result<AuthzDecision, BackendError>) -> Self {
        Self(Repr::Ready(Some(result)))
    }

    /// An answer that needs I/O.
    pub fn pending(
        fut: impl Future<Output = Result<AuthzDecision, BackendError>> + Send + 'static,
    ) -> Self {
        Self(Repr::Pending(Box::pin(fut)))
    }

    /// Takes the answer out if it was available at once.
    pub fn try_take(&mut self) -> Option<Result<AuthzDecision, BackendError>> {
        match &mut self.0 {
            Repr::Ready(r) => r.take(),
            Repr::Pending(_) => None,
        }
    }
}

impl Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.0 {
            Repr::Ready(_) => "ready",
            Repr::Pending(_) => "pending",
        };
        f.debug_tuple("Authorization").field(&state).finish()
    }
}

impl Future for Authorization {
    type Output = Result<AuthzDecision, BackendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Repr::Ready(r) => Poll::Ready(r.take().expect("Authorization polled after completion")),
            Repr::Pending(f) => f.as_mut().poll(cx),
        }
    }
}

/// A policy engine: decides whether a principal may perform an action on a resource.
pub trait Authorizer: Send + Sync + Debug + 'static {
    /// Engine name for logs and metrics (`native`, `rego`, `opa`).
    fn name(&self) -> &'static str;

    /// Decides. Engines that need I/O return [`Authorization::pending`]; the future must
    /// not borrow `self` (clone what it needs).
    fn authorize(&self, input: &AuthzInput<'_>) -> Authorization;

    /// Switches to a new policy (hot reload). Remote engines whose policy lives elsewhere
    /// ignore it (the default).
    fn reload(&self, policy: &Policy) -> Result<(), PolicyError> {
        let _ = policy;
        Ok(())
    }
}

impl<A: Authorizer + ?Sized> Authorizer for Arc<A> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn authorize(&self, input: &AuthzInput<'_>) -> Authorization {
        (**self).authorize(input)
    }

    fn reload(&self, policy: &Policy) -> Result<(), PolicyError> {
        (**self).reload(policy)
    }
}
