//! The native engine: the role table compiled into lookup tables and bit sets.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{Authorization, Authorizer, AuthzDecision, AuthzInput, NO_KNOWN_ROLE};
use crate::hash::FnvBuild;
use crate::policy::{Policy, PolicyError, split_permission};
use crate::user::{Bits, Permissions};

/// A declared permission: its action, bit index and prepared deny reason.
#[derive(Debug)]
struct Perm {
    action: Box<str>,
    index: usize,
    deny_reason: Arc<str>,
}

/// Resource -> its permissions.
type PermIndex = HashMap<Box<str>, Vec<Perm>, FnvBuild>;

#[derive(Debug)]
struct Tables {
    /// Permission index -> name.
    names: Arc<[Arc<str>]>,
    /// Resource -> [(action, permission index)].
    perms: PermIndex,
    /// Deny reason when the caller has no known role.
    no_known_role: Arc<str>,
    no_permissions: Permissions,
    /// Role -> (level, effective permission bits).
    roles: HashMap<Box<str>, (u8, Bits), FnvBuild>,
}

impl Tables {
    fn compile(policy: &Policy) -> Result<Self, PolicyError> {
        policy.validate()?;
        let names: Arc<[Arc<str>]> = policy
            .permissions
            .keys()
            .map(|n| Arc::from(n.as_str()))
            .collect();
        let index: HashMap<&str, usize> =
            names.iter().enumerate().map(|(i, n)| (&**n, i)).collect();
        let mut perms = PermIndex::default();
        for (i, name) in names.iter().enumerate() {
            let (r, a) = split_permission(name)
                .ok_or_else(|| PolicyError::new(format!("bad permission {name:?}")))?;
            perms.entry(r.into()).or_default().push(Perm {
                action: a.into(),
                index: i,
                deny_reason: Arc::from(format!("missing permission {name}")),
            });
        }
        let roles = policy
            .roles
            .iter()
            .map(|(name, role)| {
                let mut bits: Bits = [0; 4];
                for p in policy.effective_permissions(name) {
                    let i = index[p];
                    bits[i / 64] |= 1 << (i % 64);
                }
                (Box::from(name.as_str()), (role.level, bits))
            })
            .collect();
        Ok(Self {
            names,
            perms,
            no_known_role: Arc::from(NO_KNOWN_ROLE),
            no_permissions: Permissions::empty(),
            roles,
        })
    }
}

/// Decides from tables compiled at load: role -> level and permission bit set, permission
/// name -> bit. No allocation when a request is allowed. The default engine.
#[derive(Debug)]
pub struct NativeAuthorizer {
    tables: ArcSwap<Tables>,
}

impl NativeAuthorizer {
    /// Compiles `policy`.
    pub fn new(policy: &Policy) -> Result<Self, PolicyError> {
        Ok(Self {
            tables: ArcSwap::from_pointee(Tables::compile(policy)?),
        })
    }

    /// Decides synchronously (what [`Authorizer::authorize`] wraps).
    pub fn decide(&self, input: &AuthzInput<'_>) -> AuthzDecision {
        let t = self.tables.load();
        let mut bits: Bits = [0; 4];
        let mut level: Option<u8> = None;
        for role in input.principal.roles.iter() {
            if let Some((l, b)) = t.roles.get(role.as_str()) {
                for (acc, w) in bits.iter_mut().zip(b) {
                    *acc |= w;
                }
                level = Some(level.map_or(*l, |cur| cur.min(*l)));
            }
        }
        let is_admin = input.principal.is_admin();
        let Some(role_level) = level else {
            return AuthzDecision {
                allowed: false,
                deny_reason: Some(t.no_known_role.clone()),
                role_level: None,
                is_admin,
                permissions: t.no_permissions.clone(),
            };
        };
        let perm = t
            .perms
            .get(input.resource)
            .and_then(|perms| perms.iter().find(|p| *p.action == *input.action));
        let allowed = perm.is_some_and(|p| bits[p.index / 64] >> (p.index % 64) & 1 == 1);
        AuthzDecision {
            allowed,
            deny_reason: match perm {
                _ if allowed => None,
                Some(p) => Some(p.deny_reason.clone()),
                // Not a declared permission: nobody holds it.
                None => Some(Arc::from(format!(
                    "missing permission {}:{}",
                    input.resource, input.action
                ))),
            },
            role_level: Some(role_level),
            is_admin,
            permissions: Permissions::from_bits(t.names.clone(), bits),
        }
    }
}

impl Authorizer for NativeAuthorizer {
    fn name(&self) -> &'static str {
        "native"
    }

    fn authorize(&self, input: &AuthzInput<'_>) -> Authorization {
        Authorization::ready(Ok(self.decide(input)))
    }

    fn reload(&self, policy: &Policy) -> Result<(), PolicyError> {
        self.tables.store(Arc::new(Tables::compile(policy)?));
        Ok(())
    }
}
