//! The policy as data: roles with levels, `resource:action` permissions, route overrides.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The policy shipped with the crate (`policy/rbac.toml`): 7 roles, 34 permissions.
pub const BUILTIN_POLICY_TOML: &str = include_str!("../policy/rbac.toml");

/// The same policy in Rego (`policy/rbac_pp.rego`, package `rbac_pp`), reading the roles
/// and permissions from `data.gw_rbac`. Deploy it to OPA together with
/// [`Policy::to_data_json`].
pub const BUILTIN_POLICY_REGO: &str = include_str!("../policy/rbac_pp.rego");

/// The most permissions a policy may declare (decisions use fixed-size bit sets).
pub const MAX_PERMISSIONS: usize = 256;

/// A policy file that could not be read or is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub(crate) String);

impl PolicyError {
    pub(crate) fn new(msg: impl fmt::Display) -> Self {
        Self(msg.to_string())
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid rbac policy: {}", self.0)
    }
}

impl std::error::Error for PolicyError {}

/// One role: its level (1 is the highest) and the permissions it adds to those of the
/// roles below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// 1 = highest. Levels are unique within a policy.
    pub level: u8,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The role's own permissions (`resource:action`).
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// A route override: which permission a matching request needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// A gw-core route (`POST /api/{version}/deployments`, `/api/{version}/keys/*`).
    pub route: String,
    /// The full permission (`resource:action`) the route needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// Only the resource; the action comes from the method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// A whole policy, as read from TOML (see `policy/rbac.toml` for the format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Free-form revision label, for logs.
    #[serde(default)]
    pub revision: String,
    /// Declared permissions (`resource:action` -> description).
    pub permissions: BTreeMap<String, String>,
    /// Roles by name.
    pub roles: BTreeMap<String, Role>,
    /// Route overrides, checked before the default mapping.
    #[serde(default)]
    pub routes: Vec<RouteRule>,
}

impl Policy {
    /// The policy shipped with the crate.
    pub fn builtin() -> Self {
        Self::from_toml(BUILTIN_POLICY_TOML).expect("the shipped policy is valid")
    }

    /// Parses and validates a TOML policy.
    pub fn from_toml(src: &str) -> Result<Self, PolicyError> {
        let policy: Self = toml::from_str(src).map_err(PolicyError::new)?;
        policy.validate()?;
        Ok(policy)
    }

    /// Reads, parses and validates a TOML policy file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let src = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::new(format!("{}: {e}", path.display())))?;
        Self::from_toml(&src)
    }

    /// Checks the policy: permissions are `resource:action` and declared, levels unique,
    /// routes parse.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.permissions.len() > MAX_PERMISSIONS {
            return Err(PolicyError::new(format!(
                "{} permissions declared, at most {MAX_PERMISSIONS} allowed",
                self.permissions.len()
            )));
        }
        for name in self.permissions.keys() {
            split_permission(name).ok_or_else(|| {
                PolicyError::new(format!("permission {name:?} is not resource:action"))
            })?;
        }
        let mut levels = BTreeSet::new();
        for (name, role) in &self.roles {
            if name.is_empty() || name.contains(',') {
                return Err(PolicyError::new(format!("bad role name {name:?}")));
            }
            if role.level == 0 || !levels.insert(role.level) {
                return Err(PolicyError::new(format!(
                    "role {name:?}: level {} is zero or used twice",
                    role.level
                )));
            }
            for p in &role.permissions {
                if !self.permissions.contains_key(p) {
                    return Err(PolicyError::new(format!(
                        "role {name:?}: permission {p:?} is not declared"
                    )));
                }
            }
        }
        for rule in &self.routes {
            match (&rule.permission, &rule.resource) {
                (Some(p), None) if self.permissions.contains_key(p) => {}
                (Some(p), None) => {
                    return Err(PolicyError::new(format!(
                        "route {:?}: permission {p:?} is not declared",
                        rule.route
                    )));
                }
                (None, Some(r)) if !r.is_empty() && !r.contains(':') => {}
                _ => {
                    return Err(PolicyError::new(format!(
                        "route {:?}: set exactly one of permission or resource",
                        rule.route
                    )));
                }
            }
            gw_core::RouteSet::new()
                .route(&rule.route, ())
                .map_err(PolicyError::new)?;
        }
        Ok(())
    }

    /// Roles ordered from the highest (level 1) down.
    pub fn roles_by_level(&self) -> Vec<(&str, &Role)> {
        let mut v: Vec<_> = self.roles.iter().map(|(n, r)| (n.as_str(), r)).collect();
        v.sort_by_key(|(_, r)| r.level);
        v
    }

    /// The effective permissions of `role`: its own plus every lower role's. Empty for an
    /// unknown role.
    pub fn effective_permissions(&self, role: &str) -> BTreeSet<&str> {
        let Some(level) = self.roles.get(role).map(|r| r.level) else {
            return BTreeSet::new();
        };
        self.roles
            .values()
            .filter(|r| r.level >= level)
            .flat_map(|r| r.permissions.iter().map(String::as_str))
            .collect()
    }

    /// The data document the Rego policy reads: `{"gw_rbac": {"roles": .., "permissions": ..}}`.
    pub fn to_data_json(&self) -> serde_json::Value {
        let roles: serde_json::Map<String, serde_json::Value> = self
            .roles
            .iter()
            .map(|(name, role)| {
                (
                    name.clone(),
                    serde_json::json!({ "level": role.level, "permissions": role.permissions }),
                )
            })
            .collect();
        serde_json::json!({
            "gw_rbac": { "roles": roles, "permissions": self.permissions }
        })
    }
}

/// Splits `resource:action`.
pub(crate) fn split_permission(p: &str) -> Option<(&str, &str)> {
    let (r, a) = p.split_once(':')?;
    (!r.is_empty() && !a.is_empty() && !a.contains(':')).then_some((r, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_policy_shape() {
        let p = Policy::builtin();
        assert_eq!(p.roles.len(), 7);
        assert!(p.permissions.len() >= 25);
        let order: Vec<_> = p.roles_by_level().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            order,
            [
                "admin",
                "customer_admin",
                "developer",
                "manager",
                "analyst",
                "support",
                "viewer"
            ]
        );
        // admin holds everything; each role holds everything of the roles below it.
        assert_eq!(p.effective_permissions("admin").len(), p.permissions.len());
        let levels = p.roles_by_level();
        for w in levels.windows(2) {
            let hi = p.effective_permissions(w[0].0);
            let lo = p.effective_permissions(w[1].0);
            assert!(
                lo.is_subset(&hi) && lo.len() < hi.len(),
                "{} vs {}",
                w[0].0,
                w[1].0
            );
        }
        assert!(p.effective_permissions("nobody").is_empty());
    }

    #[test]
    fn rejects_inconsistent_policies() {
        let base = r#"
            [permissions]
            "agents:read" = "x"
            [roles.viewer]
            level = 7
            permissions = ["agents:read"]
        "#;
        assert!(Policy::from_toml(base).is_ok());
        for bad in [
            base.replace("[\"agents:read\"]", "[\"agents:write\"]"),
            base.replace("\"agents:read\" = \"x\"", "\"agents\" = \"x\""),
            base.replace("level = 7", "level = 0"),
            format!("{base}\n[roles.other]\nlevel = 7\n"),
            format!("{base}\n[[routes]]\nroute = \"POST /a\"\npermission = \"a:b\"\n"),
            format!("{base}\n[[routes]]\nroute = \"nope\"\nresource = \"a\"\n"),
            format!("{base}\n[[routes]]\nroute = \"/a\"\n"),
            format!("{base}\nsurprise = 1\n"),
        ] {
            assert!(Policy::from_toml(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn data_document() {
        let d = Policy::builtin().to_data_json();
        assert_eq!(d["gw_rbac"]["roles"]["viewer"]["level"], 7);
        assert_eq!(d["gw_rbac"]["permissions"]["agents:read"], "View agents");
    }
}
