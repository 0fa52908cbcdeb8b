//! Who is calling: an end user ([`Principal`]) or an internal service ([`ServiceIdentity`]).

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

/// Role name that grants everything (`admin`).
pub const ADMIN_ROLE: &str = "admin";

/// The authenticated caller, inserted into the request extensions by an authentication
/// layer (such as gw-auth) and read by every layer after it.
///
/// One shared allocation: the clones layers make of it (into the request, into the
/// decision log) cost one reference count, whatever it holds. Its fields are those of
/// [`PrincipalData`], read through it (`principal.user_id`):
///
/// ```
/// use gw_core::{Principal, PrincipalData};
///
/// let p = Principal::from(PrincipalData {
///     sub: "u-1".into(),
///     user_id: "u-1".into(),
///     email: "u-1@example.com".into(),
///     customer_id: "c-1".into(),
///     roles: vec!["developer".to_owned()].into(),
///     governor_agent_id: None,
///     trial: None,
/// });
/// assert_eq!(&*p.user_id, "u-1");
/// assert!(p.has_role("developer") && !p.is_trial());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Principal(Arc<PrincipalData>);

impl From<PrincipalData> for Principal {
    fn from(data: PrincipalData) -> Self {
        Self(Arc::new(data))
    }
}

impl std::ops::Deref for Principal {
    type Target = PrincipalData;

    fn deref(&self) -> &PrincipalData {
        &self.0
    }
}

/// What a [`Principal`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrincipalData {
    /// Token subject (`sub`).
    pub sub: Arc<str>,
    /// Application user id (`user_id`).
    pub user_id: Arc<str>,
    /// E-mail address (`email`).
    pub email: Arc<str>,
    /// Tenant the user belongs to (`customer_id`).
    pub customer_id: Arc<str>,
    /// Role names, as granted by the issuer.
    pub roles: Arc<[String]>,
    /// Governor agent acting for this user, if any (`governor_agent_id`).
    pub governor_agent_id: Option<Arc<str>>,
    /// Present when the user is on a trial plan.
    pub trial: Option<TrialInfo>,
}

/// Trial plan details of a [`Principal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TrialInfo {
    /// When the trial ends; `None` for an open-ended trial.
    pub expires_at: Option<SystemTime>,
}

impl TrialInfo {
    /// Whether the trial has ended at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

impl PrincipalData {
    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the caller holds the `admin` role.
    pub fn is_admin(&self) -> bool {
        self.has_role(ADMIN_ROLE)
    }

    /// Whether the caller is on a trial plan.
    pub fn is_trial(&self) -> bool {
        self.trial.is_some()
    }
}

/// An authenticated internal service, inserted by a service-authentication layer (such as
/// svc-hmac) after its request signature verified.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ServiceIdentity {
    /// The calling service (`X-Service-ID`).
    pub service_id: Arc<str>,
    /// The key that signed the request (`X-Service-Key-ID`).
    pub key_id: Arc<str>,
}

/// Which upstream environment a request is routed to, set by a routing policy and read by
/// the proxy (`X-Target-Backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetBackend {
    /// The isolated environment for trial users.
    Sandbox,
    /// The paid, production environment.
    Production,
}

impl TargetBackend {
    /// Header that carries the target backend: `X-Target-Backend`.
    pub const HEADER: http::HeaderName = http::HeaderName::from_static("x-target-backend");

    /// The wire name: `sandbox` or `production`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Production => "production",
        }
    }
}

/// Which of the two gateways a layer runs in: the customer portal (`cp`) or the partner
/// portal (`pp`). Some policies (RBAC in the reference system) run on one only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayType {
    /// Customer portal gateway.
    Cp,
    /// Partner portal gateway.
    Pp,
}

impl GatewayType {
    /// The wire name: `cp` or `pp`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cp => "cp",
            Self::Pp => "pp",
        }
    }
}

impl std::str::FromStr for GatewayType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cp" | "CP" => Ok(Self::Cp),
            "pp" | "PP" => Ok(Self::Pp),
            other => Err(format!(
                "unknown gateway type {other:?} (expected cp or pp)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn user(roles: &[&str], trial: Option<TrialInfo>) -> Principal {
        Principal::from(PrincipalData {
            sub: "u1".into(),
            user_id: "u1".into(),
            email: "u1@example.com".into(),
            customer_id: "c1".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            governor_agent_id: None,
            trial,
        })
    }

    #[test]
    fn roles_and_trial() {
        let p = user(&["admin", "viewer"], None);
        assert!(p.is_admin() && p.has_role("viewer") && !p.has_role("developer"));
        assert!(!p.is_trial());

        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let t = TrialInfo {
            expires_at: Some(now),
        };
        assert!(user(&[], Some(t)).is_trial());
        assert!(t.is_expired(now));
        assert!(!t.is_expired(now - Duration::from_secs(1)));
        assert!(!TrialInfo { expires_at: None }.is_expired(now));
    }

    #[test]
    fn wire_names() {
        assert_eq!(TargetBackend::Sandbox.as_str(), "sandbox");
        assert_eq!("pp".parse::<GatewayType>().unwrap(), GatewayType::Pp);
        assert!("xx".parse::<GatewayType>().is_err());
    }
}
